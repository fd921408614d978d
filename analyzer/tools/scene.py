"""Drawing people into synthetic entrance scenes (demo clip, simulator).

A person is a real face photo on a simple head-and-body figure. Only the
drawing lives here; who walks where and when is decided by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from analyzer.datasets.head_outline import head_alpha


@dataclass(frozen=True)
class FacePatch:
    """A face photo cut for pasting: RGB pixels and a soft elliptical alpha.

    ``face_box`` is where the face itself (eyes to chin) sits inside the patch,
    as fractions, so a caller can size the figure by face size.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    face_box: tuple[float, float, float, float]

    @classmethod
    def from_photo(cls, photo: np.ndarray, face_box: tuple[int, int, int, int], margin: float = 0.35) -> FacePatch:
        """Cut a head-sized patch around ``face_box`` (x, y, w, h pixels) of an RGB photo."""
        x, y, width, height = face_box
        pad_x, pad_y = int(width * margin), int(height * margin)
        left, top = max(x - pad_x, 0), max(y - int(pad_y * 1.3), 0)
        right, bottom = min(x + width + pad_x, photo.shape[1]), min(y + height + pad_y, photo.shape[0])
        rgb = np.ascontiguousarray(photo[top:bottom, left:right])
        alpha = np.zeros(rgb.shape[:2], np.float32)
        centre = (rgb.shape[1] // 2, rgb.shape[0] // 2)
        axes = (int(rgb.shape[1] * 0.46), int(rgb.shape[0] * 0.49))
        cv2.ellipse(alpha, centre, axes, 0, 0, 360, 1.0, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(rgb.shape[1] * 0.03, 1.0))
        box = ((x - left) / rgb.shape[1], (y - top) / rgb.shape[0], width / rgb.shape[1], height / rgb.shape[0])
        return cls(rgb, alpha, box)

    @classmethod
    def from_crop(cls, crop: np.ndarray) -> FacePatch:
        """Use a tight aligned face crop (UTKFace-like) as a whole head.

        The alpha is a rounded square (a superellipse), not an ellipse: hair
        reaching into the crop's corners stays, as a camera would see it. An
        ellipse cut it away, which cost our network 3 points of gender and 6
        of fairface9 accuracy on simulated faces that no real camera costs.
        """
        alpha = head_alpha(crop.shape[0], crop.shape[1], 4.0)
        # BlazeFace's box on UTKFace crops spans ~(0.01, 0.02)-(0.97, 0.97) of the crop.
        return cls(np.ascontiguousarray(crop), alpha, (0.02, 0.02, 0.94, 0.94))


def paste(canvas: np.ndarray, patch: np.ndarray, alpha: np.ndarray, left: int, top: int) -> None:
    """Alpha-blend ``patch`` into ``canvas`` at (left, top), clipped to the canvas."""
    height, width = patch.shape[:2]
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + width, canvas.shape[1]), min(top + height, canvas.shape[0])
    if x1 >= x2 or y1 >= y2:
        return
    region = canvas[y1:y2, x1:x2].astype(np.float32)
    source = patch[y1 - top : y2 - top, x1 - left : x2 - left].astype(np.float32)
    weight = alpha[y1 - top : y2 - top, x1 - left : x2 - left, None]
    canvas[y1:y2, x1:x2] = (region * (1 - weight) + source * weight).astype(np.uint8)


def draw_person(
    canvas: np.ndarray,
    face: FacePatch,
    centre_x: float,
    face_top: float,
    face_px: float,
    clothes: tuple[int, int, int],
    step_phase: float,
) -> tuple[float, float, float, float]:
    """Draw a figure whose face is ``face_px`` wide with its top at ``face_top``.

    Returns:
        The face box actually drawn (x1, y1, x2, y2) in canvas pixels.
    """
    scale = face_px / max(face.face_box[2] * face.rgb.shape[1], 1.0)
    head_w = max(int(face.rgb.shape[1] * scale), 2)
    head_h = max(int(face.rgb.shape[0] * scale), 2)
    head_left = int(centre_x - head_w / 2)
    head_top = int(face_top - face.face_box[1] * head_h)
    unit = face_px
    # Body first, so the head overlaps the neck.
    shoulders_y = head_top + head_h - int(0.1 * unit)
    torso = np.array(
        [
            [centre_x - 1.3 * unit, shoulders_y + 0.35 * unit],
            [centre_x - 0.9 * unit, shoulders_y],
            [centre_x + 0.9 * unit, shoulders_y],
            [centre_x + 1.3 * unit, shoulders_y + 0.35 * unit],
            [centre_x + 1.0 * unit, shoulders_y + 3.0 * unit],
            [centre_x - 1.0 * unit, shoulders_y + 3.0 * unit],
        ],
        dtype=np.int32,
    )
    cv2.fillPoly(canvas, [torso], clothes, lineType=cv2.LINE_AA)
    swing = np.sin(step_phase) * 0.35 * unit
    legs_colour = tuple(int(c * 0.5) for c in clothes)
    for side, sway in ((-1, swing), (1, -swing)):
        hip = (int(centre_x + side * 0.45 * unit), int(shoulders_y + 3.0 * unit))
        foot = (int(centre_x + side * 0.45 * unit + sway), int(shoulders_y + 5.5 * unit))
        cv2.line(canvas, hip, foot, legs_colour, max(int(0.55 * unit), 1), cv2.LINE_AA)
    neck = (int(centre_x), int(shoulders_y))
    cv2.circle(canvas, neck, max(int(0.3 * unit), 1), (170, 140, 120), -1, cv2.LINE_AA)
    resized = cv2.resize(face.rgb, (head_w, head_h), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(face.alpha, (head_w, head_h), interpolation=cv2.INTER_LINEAR)
    paste(canvas, resized, alpha, head_left, head_top)
    x1 = head_left + face.face_box[0] * head_w
    y1 = head_top + face.face_box[1] * head_h
    return (x1, y1, x1 + face.face_box[2] * head_w, y1 + face.face_box[3] * head_h)


#: A surgical mask's outline around a BlazeFace box: (x, y) as fractions of the box's width from its left
#: edge and, for y, of the eyes-to-nose-tip height from the eyes (its top) or of the box's width below its bottom.
_MASK_TOP = 0.45  # just under the eyes, on the nose bridge
_MASK_SIDES = ((0.02, 0.98), (0.06, 0.94))  # at the top, at the jaw
_MASK_BELOW_CHIN = (0.05, 0.15)  # at the jaw's corners, at the middle
MASK_BLUE = (170, 200, 225)


def draw_surgical_mask(image: np.ndarray, box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """A copy of ``image`` with a light blue pleated mask from just under the eyes to under the chin.

    ``box`` and ``keypoints`` are BlazeFace's (eyes first, then the nose tip). No labelled photo has a
    masked face; this is how the covered-face rule is measured and tested (docs/ACCURACY.md).
    """
    x1, _, x2, y2 = (float(value) for value in box)
    width = x2 - x1
    eyes_y = float(keypoints[0][1] + keypoints[1][1]) / 2
    top = eyes_y + _MASK_TOP * (float(keypoints[2][1]) - eyes_y)
    (top_left, top_right), (jaw_left, jaw_right) = _MASK_SIDES
    outline = np.array(
        [
            [x1 + top_left * width, top],
            [x1 + top_right * width, top],
            [x1 + jaw_right * width, y2 + _MASK_BELOW_CHIN[0] * width],
            [x1 + width / 2, y2 + _MASK_BELOW_CHIN[1] * width],
            [x1 + jaw_left * width, y2 + _MASK_BELOW_CHIN[0] * width],
        ],
        np.int32,
    )
    masked = image.copy()
    cv2.fillPoly(masked, [outline], MASK_BLUE, lineType=cv2.LINE_AA)
    pleat = tuple(channel - 20 for channel in MASK_BLUE)
    for share in (0.3, 0.5, 0.7):
        height = int(top + share * (y2 - top))
        cv2.line(masked, (int(x1 + 0.12 * width), height), (int(x2 - 0.12 * width), height), pleat, 1, cv2.LINE_AA)
    return masked


def heads_on_wall(chips: np.ndarray, seed: int = 0) -> np.ndarray:
    """Aligned face chips (N, S, S, 3) cut out as the simulator draws heads, each on a random patch of the entrance.

    Measures what drawing a face photo into a synthetic scene costs a network
    (``analyzer evaluate --on-scene``), apart from size, blur and compression.
    """
    rng = np.random.default_rng(seed)
    size = chips.shape[1]
    wall = entrance_background(max(16 * size, 640), max(9 * size, 360), seed)
    alpha = FacePatch.from_crop(chips[0]).alpha[:, :, None] if len(chips) else np.ones((size, size, 1), np.float32)
    pasted = np.empty_like(chips)
    for index, chip in enumerate(chips):
        top, left = rng.integers(0, wall.shape[0] - size), rng.integers(0, wall.shape[1] - size)
        scene = wall[top : top + size, left : left + size].astype(np.float32)
        pasted[index] = (chip.astype(np.float32) * alpha + scene * (1.0 - alpha)).astype(np.uint8)
    return pasted


def entrance_background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A plain shop entrance: wall, door frame, shelves and a floor, in RGB."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width, 3), np.uint8)
    floor_y = int(height * 0.78)
    wall = np.linspace(205, 175, floor_y)[:, None, None] * np.array([1.0, 0.97, 0.9])
    canvas[:floor_y] = wall.astype(np.uint8)
    floor = np.linspace(120, 90, height - floor_y)[:, None, None] * np.array([0.9, 0.85, 0.8])
    canvas[floor_y:] = floor.astype(np.uint8)
    door_left, door_right = int(width * 0.38), int(width * 0.62)
    cv2.rectangle(canvas, (door_left, int(height * 0.12)), (door_right, floor_y), (95, 85, 80), 14)
    cv2.rectangle(canvas, (door_left + 7, int(height * 0.12) + 7), (door_right - 7, floor_y), (150, 170, 185), -1)
    for shelf_x in (int(width * 0.05), int(width * 0.75)):
        for level in range(4):
            y = int(height * (0.25 + 0.13 * level))
            cv2.rectangle(canvas, (shelf_x, y), (shelf_x + int(width * 0.2), y + 10), (120, 90, 60), -1)
            for item in range(6):
                colour = tuple(int(c) for c in rng.integers(60, 230, 3))
                x = shelf_x + 10 + item * int(width * 0.032)
                cv2.rectangle(canvas, (x, y - int(height * 0.06)), (x + int(width * 0.022), y), colour, -1)
    return canvas
