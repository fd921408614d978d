"""A short-lived appearance cue: colours of a face and the clothes below it, and a face likeness.

When a face is hidden for a moment (someone walks in front), motion alone
cannot tell whether the face that appears next is the same person. Two cues
can: a 2×(8 hue + 4 saturation) bin colour histogram of face and torso, and
the face likeness, a unit vector from the trunk of our own age and gender
network (``<model>.likeness.onnx``, written by ``analyzer export``). The
colours separate most people but not two in similar clothes or one under
changing light; the likeness separates faces but is noisy on small or
blurred ones. Their mean separates people far better than either
(docs/ARCHITECTURE.md). Both are kept only in the tracker's and the footfall
counter's memory while a track lives or its visit may still be re-found,
never written or sent anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from analyzer.config import TrackerConfig
from analyzer.core.model_meta import LIKENESS_PROPS, open_session
from analyzer.core.preprocess import ALIGNMENT_TEMPLATE, Normalization, align_face, chips_to_input
from analyzer.errors import ModelError

HUE_BINS = 8
SATURATION_BINS = 4
COLOUR_SIZE = 2 * (HUE_BINS + SATURATION_BINS)
#: Length of the face likeness vector (the network trunk's pooled features).
LIKENESS_SIZE = 256
FEATURE_SIZE = COLOUR_SIZE + LIKENESS_SIZE
#: The likeness model's input and output names (its metadata key is ``model_meta.LIKENESS_PROPS``).
LIKENESS_INPUT = "chips"
LIKENESS_OUTPUT = "likeness"


#: Each 8-bit hue (0..179) and saturation (0..255) value's bin, as one-hot rows: a histogram of exact values
#: times this matrix is the binned histogram, to the count.
_HUE_BIN_OF = np.eye(HUE_BINS, dtype=np.float32)[(np.arange(180) * HUE_BINS) // 180]
_SATURATION_BIN_OF = np.eye(SATURATION_BINS, dtype=np.float32)[(np.arange(256) * SATURATION_BINS) // 256]


def _histogram(hsv: np.ndarray) -> np.ndarray:
    """Hue and saturation bins of an HSV region, summing to 2 (one per part).

    OpenCV counts each exact 8-bit value (a bin per value is exact, where a
    float bin edge could put a value on the wrong side); folding those
    counts into bins costs a small matrix product instead of a pass over the
    pixels in numpy.
    """
    if hsv.size == 0:
        return np.zeros(HUE_BINS + SATURATION_BINS, np.float32)
    hue = cv2.calcHist([hsv], [0], None, [180], [0, 180]).ravel() @ _HUE_BIN_OF
    saturation = cv2.calcHist([hsv], [1], None, [256], [0, 256]).ravel() @ _SATURATION_BIN_OF
    features = np.concatenate([hue, saturation])
    return features / max(float(features.sum()) / 2, 1.0)


def _colours(frame_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    height, width = frame_rgb.shape[:2]
    features = np.zeros((len(boxes), COLOUR_SIZE), np.float32)
    for row, (x1, y1, x2, y2) in enumerate(boxes):
        size = max(x2 - x1, 1.0)
        face = (int(max(x1, 0)), int(max(y1, 0)), int(min(x2, width)), int(min(y2, height)))
        # The middle of the torso only: its edges show whatever is behind the person.
        body = (
            int(max(x1 + 0.15 * size, 0)),
            int(min(y2 + 0.4 * size, height)),
            int(min(x2 - 0.15 * size, width)),
            int(min(y2 + 1.4 * size, height)),
        )
        parts = []
        for left, top, right, bottom in (face, body):
            region = frame_rgb[top:bottom:2, left:right:2]
            parts.append(_histogram(cv2.cvtColor(region, cv2.COLOR_RGB2HSV) if region.size else region))
        features[row] = np.concatenate(parts)
    return features


class FaceLikeness:
    """Face likeness vectors from the likeness model.

    One instance serves every camera thread: ONNX Runtime's ``run`` is safe
    to call concurrently, and with one intra-op thread each call runs on its
    caller's thread, so cameras do not wait for each other.

    Example:
        >>> likeness = FaceLikeness(Path("engines/agegender.likeness.onnx"))  # doctest: +SKIP
        >>> likeness.describe(frame_rgb, faces.keypoints).shape  # doctest: +SKIP
        (2, 256)
    """

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelError(
                f"{model_path}: face likeness model not found; write it with `analyzer export` "
                'or set tracker.likeness_model to "" to re-find hidden faces by colour only'
            )
        self._session = open_session(model_path, threads)
        props = self._session.get_modelmeta().custom_metadata_map
        if LIKENESS_PROPS not in props:
            raise ModelError(
                f"{model_path}: not a face likeness model (no {LIKENESS_PROPS} metadata); "
                "point tracker.likeness_model at the .likeness.onnx file `analyzer export` writes"
            )
        try:
            settings = json.loads(props[LIKENESS_PROPS])
            size, template = settings["size"], np.asarray(settings["template"], dtype=float)
            self.input_size = int(settings["input_size"])
            self.normalization = Normalization(tuple(settings["mean"]), tuple(settings["std"]))
        except (KeyError, TypeError, ValueError) as error:  # JSONDecodeError is a ValueError
            raise ModelError(
                f"{model_path}: {LIKENESS_PROPS} metadata is malformed ({error!r}); "
                "write it again with `analyzer export`"
            ) from None
        if (
            size != LIKENESS_SIZE
            or template.shape != np.shape(ALIGNMENT_TEMPLATE)
            or not np.allclose(template, ALIGNMENT_TEMPLATE)
        ):
            raise ModelError(
                f"{model_path}: likeness size {size} or alignment differs from this analyzer's "
                f"({LIKENESS_SIZE}); export it again with this version"
            )
        self.path = model_path

    @classmethod
    def for_tracker(cls, settings: TrackerConfig) -> FaceLikeness | None:
        """The likeness ``tracker.likeness_model`` names; None when it is "" (colours only)."""
        model_path = settings.likeness_model_path()
        return None if model_path is None else cls(model_path)

    def describe(self, frame_rgb: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """(N, LIKENESS_SIZE) unit vectors of the faces at ``keypoints`` (N, K, 2) in the frame."""
        if not len(keypoints):
            return np.zeros((0, LIKENESS_SIZE), np.float32)
        chips = np.stack([align_face(frame_rgb, points, self.input_size) for points in keypoints])
        (likeness,) = self._session.run([LIKENESS_OUTPUT], {LIKENESS_INPUT: chips_to_input(chips, self.normalization)})
        return np.asarray(likeness, dtype=np.float32)


def appearance_features(
    frame_rgb: np.ndarray,
    boxes: np.ndarray,
    keypoints: np.ndarray | None = None,
    likeness: FaceLikeness | None = None,
    wanted: np.ndarray | None = None,
) -> np.ndarray:
    """(N, FEATURE_SIZE) float32: colour histograms, then the face likeness (zeros where not computed).

    ``wanted`` (N,) bool limits the likeness to the faces the tracker can use
    it for (``ByteTracker.wants_likeness``); the others keep zeros, "unknown".
    """
    features = np.zeros((len(boxes), FEATURE_SIZE), np.float32)
    features[:, :COLOUR_SIZE] = _colours(frame_rgb, boxes)
    if likeness is not None and keypoints is not None and len(boxes):
        rows = np.arange(len(boxes)) if wanted is None else np.flatnonzero(wanted)
        if len(rows):
            features[rows, COLOUR_SIZE:] = likeness.describe(frame_rgb, keypoints[rows])
    return features


def has_likeness(features: np.ndarray) -> np.ndarray:
    """(N,) bool: rows whose face likeness is known."""
    return np.any(features[..., COLOUR_SIZE:] != 0, axis=-1)


def running_mean(mean: np.ndarray, seen: np.ndarray, weight: float = 0.2) -> np.ndarray:
    """A track's cue after one more sighting; an unknown likeness leaves the likeness part as it was."""
    updated = (1 - weight) * mean + weight * seen
    if not has_likeness(seen):
        updated[COLOUR_SIZE:] = mean[COLOUR_SIZE:]
    elif not has_likeness(mean):
        updated[COLOUR_SIZE:] = seen[COLOUR_SIZE:]
    return updated


def similarity(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pairwise likeness of (N, F) and (M, F) features, (N, M) in 0..1.

    The colours' Bhattacharyya coefficient, averaged with the cosine of the
    face likeness where both sides have one (a track's cue is a running mean
    of unit vectors, so it is normalised here).
    """
    colours_first, colours_second = np.clip(first[:, :COLOUR_SIZE], 0, None), np.clip(second[:, :COLOUR_SIZE], 0, None)
    colour = np.sqrt(colours_first) @ np.sqrt(colours_second).T / 4
    faces_first, faces_second = first[:, COLOUR_SIZE:], second[:, COLOUR_SIZE:]
    norms_first = np.linalg.norm(faces_first, axis=1)[:, None]
    norms_second = np.linalg.norm(faces_second, axis=1)[None, :]
    known = (norms_first > 0) & (norms_second > 0)
    cosine = np.clip(faces_first @ faces_second.T / np.maximum(norms_first * norms_second, 1e-9), 0, 1)
    return np.where(known, 0.5 * (colour + cosine), colour)
