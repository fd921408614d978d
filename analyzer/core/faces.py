"""``Faces``: detections of one frame as parallel numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_KEYPOINTS = 6


@dataclass(frozen=True)
class Faces:
    """Faces found in one frame, one row per face.

    Attributes:
        boxes: (N, 4) float32 ``x1, y1, x2, y2`` in frame pixels.
        scores: (N,) float32 detector confidence 0..1.
        keypoints: (N, 6, 2) float32 frame pixels, MediaPipe order (right eye,
            left eye, nose tip, mouth centre, right ear, left ear).

    Example:
        >>> faces = Faces.empty()
        >>> len(faces)
        0
    """

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.boxes)
        expected = {
            "boxes": (self.boxes, (count, 4)),
            "scores": (self.scores, (count,)),
            "keypoints": (self.keypoints, (count, NUM_KEYPOINTS, 2)),
        }
        for name, (array, shape) in expected.items():
            if array.shape != shape:
                raise ValueError(f"Faces.{name} must have shape {shape}, got {array.shape}")

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Faces:
        """Rows selected by a boolean mask, index array or slice."""
        return Faces(self.boxes[index], self.scores[index], self.keypoints[index])

    @classmethod
    def empty(cls) -> Faces:
        """No faces."""
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
        )

    @classmethod
    def concatenate(cls, parts: list[Faces]) -> Faces:
        """Stack the rows of several ``Faces``."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([part.boxes for part in parts]),
            np.concatenate([part.scores for part in parts]),
            np.concatenate([part.keypoints for part in parts]),
        )

    @property
    def sizes(self) -> np.ndarray:
        """(N,) face size in pixels: the geometric mean of box width and height."""
        widths = self.boxes[:, 2] - self.boxes[:, 0]
        heights = self.boxes[:, 3] - self.boxes[:, 1]
        return np.sqrt(np.clip(widths, 0, None) * np.clip(heights, 0, None))

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Faces:
        """Coordinates mapped by ``p * scale + (dx, dy)`` (from a crop or tile to the frame)."""
        offset = np.array([dx, dy], dtype=np.float32)
        return Faces(
            (self.boxes * scale + np.tile(offset, 2)).astype(np.float32),
            self.scores,
            (self.keypoints * scale + offset).astype(np.float32),
        )


def _intersections(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas (N, M) and the areas of both box sets."""
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    return intersection, np.prod(first[:, 2:] - first[:, :2], axis=1), np.prod(second[:, 2:] - second[:, :2], axis=1)


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes, as (N, M)."""
    intersection, area_first, area_second = _intersections(first, second)
    union = area_first[:, None] + area_second[None, :] - intersection
    return intersection / np.maximum(union, 1e-9)


def box_intersection_over_smaller(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area, (N, M): 1 when one box holds the other."""
    intersection, area_first, area_second = _intersections(first, second)
    return intersection / np.maximum(np.minimum(area_first[:, None], area_second[None, :]), 1e-9)


def non_max_suppression(faces: Faces, iou_threshold: float, containment: float = 0.7) -> Faces:
    """Keep the best-scoring face of each overlapping cluster (tiles see faces twice).

    A box mostly inside a better one (``containment`` of its area) is the same
    face seen in part, and is dropped too.
    """
    order = np.argsort(-faces.scores)
    keep: list[int] = []
    ious = np.maximum(
        box_iou(faces.boxes, faces.boxes),
        (box_intersection_over_smaller(faces.boxes, faces.boxes) > containment).astype(np.float64),
    )
    suppressed = np.zeros(len(faces), dtype=bool)
    for index in order:
        if suppressed[index]:
            continue
        keep.append(int(index))
        suppressed |= ious[index] > iou_threshold
    return faces[np.array(keep, dtype=np.int64)]


def cut_by_frame(boxes: np.ndarray, width: int, height: int, slack: np.ndarray | float = 0.0) -> np.ndarray:
    """(N, 4) bool: whether each box is cut by the frame's left, top, right and bottom edge.

    MediaPipe clamps a box's left and top to 0 and keeps its size (a face
    half out on the left comes back as ``x1 = 0``, its ``x2`` too far
    right), while right and bottom run past the frame. So a box touching 0
    is cut, by an amount nobody knows; past the right or bottom edge it is
    cut when it reaches more than ``slack`` (pixels, per box or for all) beyond.
    """
    slack = np.broadcast_to(np.asarray(slack, dtype=np.float64), (len(boxes),))
    return np.stack(
        [boxes[:, 0] <= 0, boxes[:, 1] <= 0, boxes[:, 2] > width + slack, boxes[:, 3] > height + slack], axis=1
    )
