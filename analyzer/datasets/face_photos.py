"""Aligned chips from labelled face photos, as the live pipeline would cut them.

Two kinds of folder exist: tight aligned crops (UTKFace-like chips) and loose
photos (a face with background, tilted, off-centre). ``crop`` trusts the image
to be an aligned crop, ``detect`` finds the face with the live detector and
aligns it with the live code, ``auto`` decides per image: if the detected face
already sits where the template puts it, the image is a crop.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from analyzer.core.preprocess import ALIGNMENT_TEMPLATE, align_face, similarity_transform, template_keypoints
from analyzer.datasets.labels import unreadable_images
from analyzer.errors import DataError

ALIGN_MODES = ("auto", "crop", "detect")

#: An image counts as an aligned crop when the detected keypoints are within
#: these limits of the template: scale ratio, rotation and shift (fraction of width).
_CROP_SCALE = (0.8, 1.25)
_CROP_ROTATION_DEG = 12.0
_CROP_SHIFT = 0.1


@dataclass(frozen=True)
class AlignedChips:
    """Chips cut from a list of photos.

    Attributes:
        chips: (N, S, S, 3) uint8 RGB; rows where ``found`` is False are black.
        found: (N,) bool, a face was located.
        how: (N,) str, ``crop``, ``detect`` or ``missing`` per image.
    """

    chips: np.ndarray
    found: np.ndarray
    how: np.ndarray


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to RGB uint8, or a DataError naming the file."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise DataError(f"{path}: image file not found (listed in labels.csv)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # OpenCV asserts on an empty buffer
    if image is None:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def looks_like_aligned_crop(keypoints: np.ndarray, width: int, height: int) -> bool:
    """Whether detected keypoints already match the template framing of the image."""
    matrix = similarity_transform(
        np.asarray(keypoints, dtype=np.float64)[:4],
        template_keypoints(width, height),
        np.ones(len(ALIGNMENT_TEMPLATE)),
    )
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    rotation = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
    centre = np.array([width / 2, height / 2])
    shift = float(np.linalg.norm(matrix[:, :2] @ centre + matrix[:, 2] - centre)) / width
    return _CROP_SCALE[0] <= scale <= _CROP_SCALE[1] and abs(rotation) <= _CROP_ROTATION_DEG and shift <= _CROP_SHIFT


def locate_face(image: np.ndarray, mode: str, finder: object | None) -> tuple[np.ndarray | None, str]:
    """Keypoints (4, 2) of the face in a photo and how they were found."""
    height, width = image.shape[:2]
    if mode == "crop":
        return template_keypoints(width, height), "crop"
    faces = finder.find(image)  # type: ignore[union-attr]
    if not len(faces):
        # A tight crop the detector cannot see is still a usable crop in auto mode.
        return (template_keypoints(width, height), "crop") if mode == "auto" else (None, "missing")
    detected = faces.keypoints[0, :4].astype(np.float64)
    if mode == "auto" and looks_like_aligned_crop(detected, width, height):
        return template_keypoints(width, height), "crop"
    return detected, "detect"


def align_photos(
    paths: Sequence[Path],
    size: int,
    mode: str,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> AlignedChips:
    """Decode and align every photo to a ``size`` chip, in parallel threads."""
    if mode not in ALIGN_MODES:
        raise DataError(f"--align '{mode}' is not one of {', '.join(ALIGN_MODES)}")
    # Finders are made here, before the worker threads start (creating one silences stderr).
    finders: queue.Queue = queue.Queue()
    if mode != "crop":
        from analyzer.pipeline.detect import PhotoFaceFinder

        for _ in range(workers):
            finders.put(PhotoFaceFinder())

    unreadable: dict[Path, str] = {}

    def one(path: Path) -> tuple[np.ndarray, str]:
        try:
            image = read_rgb(path)
        except DataError as error:  # every broken file is named at the end, not only the first
            unreadable[path] = str(error)
            return np.zeros((size, size, 3), np.uint8), "unreadable"
        if mode == "crop":
            keypoints, how = locate_face(image, mode, None)
        else:
            finder = finders.get()
            try:
                keypoints, how = locate_face(image, mode, finder)
            finally:
                finders.put(finder)
        chip = np.zeros((size, size, 3), np.uint8) if keypoints is None else align_face(image, keypoints, size)
        if progress is not None:
            progress(1)
        return chip, how

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, paths))
    finally:
        while not finders.empty():
            finders.get().close()
    if unreadable:
        raise unreadable_images([unreadable[path] for path in paths if path in unreadable], len(paths))
    chips = np.stack([chip for chip, _ in results]) if results else np.zeros((0, size, size, 3), np.uint8)
    how = np.array([how for _, how in results], dtype=object)
    return AlignedChips(chips, how != "missing", how)
