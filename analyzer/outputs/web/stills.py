"""Set-up stills: a camera's latest frame with every face made unrecognisable, as JPEG bytes, never stored."""

from __future__ import annotations

import cv2
import numpy as np

#: A face box is grown this much on each side before it is blurred: hair, ears and chin identify too.
FACE_MARGIN = 0.5
#: A blurred face keeps this many blocks across: its colours, no features (docs/WEB.md).
BLOCKS_ACROSS = 2


def blurred(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """A copy of BGR ``image`` with each ``x1, y1, x2, y2`` pixel box (and its margin) pixelated, then smoothed.

    Pixelating to a few blocks throws the face's detail away (a Gaussian blur
    alone can be partly undone); the smoothing after it hides the block edges
    that a detector could take for a face's structure.
    """
    out = image.copy()
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in np.asarray(boxes, float).reshape(-1, 4):
        grow_x, grow_y = (x2 - x1) * FACE_MARGIN, (y2 - y1) * FACE_MARGIN
        left, top = max(int(x1 - grow_x), 0), max(int(y1 - grow_y), 0)
        right, bottom = min(int(np.ceil(x2 + grow_x)), width), min(int(np.ceil(y2 + grow_y)), height)
        if right - left < 2 or bottom - top < 2:
            continue
        patch = out[top:bottom, left:right]
        blocks = cv2.resize(patch, (BLOCKS_ACROSS, BLOCKS_ACROSS), interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(blocks, (right - left, bottom - top), interpolation=cv2.INTER_NEAREST)
        kernel = max((min(right - left, bottom - top) // 2) | 1, 3)
        out[top:bottom, left:right] = cv2.GaussianBlur(coarse, (kernel, kernel), 0)
    return out


def jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """BGR ``image`` as JPEG file bytes."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not encode a {image.shape} still as JPEG")
    return encoded.tobytes()
