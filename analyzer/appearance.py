"""A weak, short-lived appearance cue: colour histograms of a face and the clothes below it.

When a face is hidden for a moment (someone walks in front), motion alone
cannot tell whether the face that appears next is the same person; colours
usually can. The cue is a 3×(8 hue + 4 saturation) bin histogram, too coarse
to identify anyone, kept only in the tracker's memory while the track lives.
"""

from __future__ import annotations

import cv2
import numpy as np

HUE_BINS = 8
SATURATION_BINS = 4
FEATURE_SIZE = 2 * (HUE_BINS + SATURATION_BINS)


def _histogram(hsv: np.ndarray) -> np.ndarray:
    if hsv.size == 0:
        return np.zeros(HUE_BINS + SATURATION_BINS, np.float32)
    hue = np.bincount((hsv[..., 0].ravel().astype(np.int32) * HUE_BINS) // 180, minlength=HUE_BINS)
    saturation = np.bincount((hsv[..., 1].ravel().astype(np.int32) * SATURATION_BINS) // 256, minlength=SATURATION_BINS)
    features = np.concatenate([hue, saturation]).astype(np.float32)
    return features / max(float(features.sum()) / 2, 1.0)


def appearance_features(frame_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, FEATURE_SIZE) float32 colour features of each face box and the area below it."""
    height, width = frame_rgb.shape[:2]
    features = np.zeros((len(boxes), FEATURE_SIZE), np.float32)
    for row, (x1, y1, x2, y2) in enumerate(boxes):
        size = max(x2 - x1, 1.0)
        face = (int(max(x1, 0)), int(max(y1, 0)), int(min(x2, width)), int(min(y2, height)))
        # The middle of the torso only: its edges show whatever is behind the person.
        body = (int(max(x1 + 0.15 * size, 0)), int(min(y2 + 0.4 * size, height)),
                int(min(x2 - 0.15 * size, width)), int(min(y2 + 1.4 * size, height)))  # fmt: skip
        parts = []
        for left, top, right, bottom in (face, body):
            region = frame_rgb[top:bottom:2, left:right:2]
            parts.append(_histogram(cv2.cvtColor(region, cv2.COLOR_RGB2HSV) if region.size else region))
        features[row] = np.concatenate(parts)
    return features


def similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pairwise Bhattacharyya coefficient of (N, F) and (M, F) features, (N, M) in 0..1."""
    return np.sqrt(np.clip(first, 0, None)) @ np.sqrt(np.clip(second, 0, None)).T / (2 * 2)
