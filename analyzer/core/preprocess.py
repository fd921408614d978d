"""From an image and face keypoints to the network's input tensor.

Training, evaluation and the live pipeline all call :func:`align_face` and
:func:`chips_to_input`, so serving never differs from training. The chip is the
similarity transform (rotation by the eye line, scale, shift) that puts the
detector's eyes, nose tip and mouth onto :data:`ALIGNMENT_TEMPLATE`, which was
measured as the mean MediaPipe BlazeFace keypoints on the UTKFace training
crops, made left/right symmetric. A tight training crop therefore maps onto
itself, and a face in a camera frame maps to the same framing (eyes level,
forehead to chin, little background).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: Keypoint order of MediaPipe's face detector; the first four are used.
KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear",
    "left_ear",
)

#: Where eyes, nose tip and mouth centre sit in the chip, as fractions of its
#: width and height (subject's right eye on the image's left). Measured on 1,500
#: UTKFace crops with BlazeFace short-range (mean of right eye (0.311, 0.293),
#: left eye (0.700, 0.302), nose (0.505, 0.537), mouth (0.499, 0.724)).
ALIGNMENT_TEMPLATE: np.ndarray = np.array(
    [[0.305, 0.2975], [0.695, 0.2975], [0.5, 0.5375], [0.5, 0.725]], dtype=np.float64
)

#: How much each template point counts in the fit: the eyes fix rotation and
#: scale best; the nose tip moves with head pose, so it counts less.
_POINT_WEIGHTS: np.ndarray = np.array([1.0, 1.0, 0.5, 1.0])

#: Below this scale (source pixels shrink by more than 1/0.75) the face is first
#: shrunk with area averaging, so small chips from big faces do not alias.
_AREA_RESIZE_BELOW = 0.75


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(pixel / 255 - mean) / std`` on RGB, as the network was trained."""

    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)


def template_keypoints(width: int, height: int) -> np.ndarray:
    """Keypoints (4, 2) in pixels of an image that already is an aligned crop."""
    return ALIGNMENT_TEMPLATE * np.array([width, height], dtype=np.float64)


def similarity_transform(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares similarity (Umeyama) mapping ``source`` onto ``target``.

    Returns:
        2×3 float64 affine matrix ``[[a, -b, tx], [b, a, ty]]``.
    """
    weights = weights / weights.sum()
    source_mean = weights @ source
    target_mean = weights @ target
    source_centred = source - source_mean
    target_centred = target - target_mean
    variance = float(weights @ (source_centred**2).sum(axis=1))
    if variance <= 1e-12:
        raise ValueError("keypoints coincide; cannot align a face of zero size")
    a = float(weights @ (source_centred * target_centred).sum(axis=1)) / variance
    b = (
        float(weights @ (source_centred[:, 0] * target_centred[:, 1] - source_centred[:, 1] * target_centred[:, 0]))
        / variance
    )
    rotation_scale = np.array([[a, -b], [b, a]])
    translation = target_mean - rotation_scale @ source_mean
    return np.hstack([rotation_scale, translation[:, None]])


def alignment_matrix(keypoints: np.ndarray, size: int) -> np.ndarray:
    """The 2×3 matrix taking image pixels to a ``size``×``size`` chip."""
    points = np.asarray(keypoints, dtype=np.float64)[: len(ALIGNMENT_TEMPLATE)]
    if points.shape != ALIGNMENT_TEMPLATE.shape:
        raise ValueError(
            f"need keypoints of shape (>=4, 2) in MediaPipe order {KEYPOINT_NAMES[:4]}, got {np.shape(keypoints)}"
        )
    return similarity_transform(points, ALIGNMENT_TEMPLATE * size, _POINT_WEIGHTS)


def align_face(image: np.ndarray, keypoints: np.ndarray, size: int) -> np.ndarray:
    """Cut the aligned ``size``×``size`` chip of one face out of an RGB image.

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints: (K>=4, 2) pixel coordinates in MediaPipe order.
        size: chip side in pixels (the network's input size).

    Returns:
        (size, size, 3) uint8 RGB chip. Pixels outside the image repeat its border.
    """
    matrix = alignment_matrix(keypoints, size)
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < _AREA_RESIZE_BELOW:
        image, matrix = _shrink_region(image, matrix, size, scale)
    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _shrink_region(image: np.ndarray, matrix: np.ndarray, size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Crop the chip's source region and area-resize it so the warp is near 1:1."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64)
    source_corners = corners @ inverse.T
    height, width = image.shape[:2]
    left = int(np.clip(np.floor(source_corners[:, 0].min()) - 1, 0, width - 1))
    top = int(np.clip(np.floor(source_corners[:, 1].min()) - 1, 0, height - 1))
    right = int(np.clip(np.ceil(source_corners[:, 0].max()) + 2, left + 1, width))
    bottom = int(np.clip(np.ceil(source_corners[:, 1].max()) + 2, top + 1, height))
    region = image[top:bottom, left:right]
    shrunk_width = max(1, round((right - left) * scale))
    shrunk_height = max(1, round((bottom - top) * scale))
    shrunk = cv2.resize(region, (shrunk_width, shrunk_height), interpolation=cv2.INTER_AREA)
    factor_x = shrunk_width / (right - left)
    factor_y = shrunk_height / (bottom - top)
    # Express the matrix on `shrunk`: pixel centre u of `shrunk` is image pixel
    # (u + 0.5) / factor - 0.5 + left, as cv2.resize samples it.
    to_image = np.array(
        [
            [1 / factor_x, 0, left + 0.5 / factor_x - 0.5],
            [0, 1 / factor_y, top + 0.5 / factor_y - 0.5],
            [0, 0, 1],
        ],
        dtype=np.float64,
    )
    return shrunk, matrix @ to_image


def chips_to_input(chips: np.ndarray | Sequence[np.ndarray], normalization: Normalization) -> np.ndarray:
    """Stack uint8 RGB chips (N, S, S, 3) into the float32 NCHW network input."""
    batch = np.asarray(chips if isinstance(chips, np.ndarray) else np.stack(list(chips)))
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        raise ValueError(f"chips must be uint8 (N, S, S, 3), got {batch.dtype} {batch.shape}")
    mean = np.asarray(normalization.mean, dtype=np.float32) * 255.0
    inverse_std = 1.0 / (np.asarray(normalization.std, dtype=np.float32) * 255.0)
    normalized = (batch.astype(np.float32) - mean) * inverse_std
    return np.ascontiguousarray(normalized.transpose(0, 3, 1, 2))
