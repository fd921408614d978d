"""What an entrance camera does to a small face, applied to an aligned chip.

A face 30 px wide in a frame is encoded (JPEG, H.264) at 30 px, where the
codec's 8-pixel blocks are a quarter of the face wide, and only afterwards
stretched to the network's chip by the alignment. Compressing a chip after
it has been scaled up to 64 px costs the network almost nothing; compressing
it at the face's own size costs it a point of gender accuracy at 28 px
(engines/MODEL_CARD.md). Training augmentation and ``analyzer evaluate
--face-px`` both call :func:`seen_small`, so the network is trained and
measured on the same degradation.
"""

from __future__ import annotations

import cv2
import numpy as np

#: An aligned chip spans this many times the width of the detector's face box
#: (median over validation faces, 1.06-1.09 for 80% of them; tests/test_degrade.py).
CHIP_PER_FACE_BOX = 1.07


def chip_px_for_face(face_px: float) -> int:
    """How many frame pixels the aligned chip of a ``face_px``-wide face box spans."""
    return max(round(face_px * CHIP_PER_FACE_BOX), 4)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` JPEG-encoded at ``quality`` (1-100) and decoded again."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else image


def seen_small(
    chip: np.ndarray, low_px: int, jpeg_quality: int | None = None, upscale: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """The chip as a camera gives it for a face whose chip spans ``low_px`` frame pixels.

    Shrunk with area averaging (the sensor), compressed at that size when
    ``jpeg_quality`` is given (the stream), then scaled back up to the chip's
    side (the alignment's warp is bilinear). A ``low_px`` at or above the
    chip's side only compresses.
    """
    size = chip.shape[0]
    if low_px >= size:
        return jpeg(chip, jpeg_quality) if jpeg_quality is not None else chip
    small = cv2.resize(chip, (low_px, low_px), interpolation=cv2.INTER_AREA)
    if jpeg_quality is not None:
        small = jpeg(small, jpeg_quality)
    return cv2.resize(small, (size, size), interpolation=upscale)
