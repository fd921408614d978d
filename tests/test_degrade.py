"""A face as a camera sees it small: the degradation shared by training and ``evaluate --face-px``."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.core.age_groups import builtin_grouping
from analyzer.core.preprocess import alignment_matrix
from analyzer.datasets.degrade import CHIP_PER_FACE_BOX, chip_px_for_face, jpeg, seen_small
from analyzer.datasets.face_photos import read_rgb
from analyzer.datasets.labels import read_labels
from analyzer.pipeline.detect import PhotoFaceFinder
from analyzer.tools.evaluation import NetworkPredictor, evaluate_folder, select_split
from analyzer.tools.scene import heads_on_wall


def _chip() -> np.ndarray:
    rng = np.random.default_rng(4)
    coarse = cv2.resize(rng.uniform(0, 255, (8, 8, 3)).astype(np.float32), (64, 64), cv2.INTER_CUBIC)
    return np.clip(coarse + rng.normal(0, 10, (64, 64, 3)), 0, 255).astype(np.uint8)


def test_a_small_face_holds_only_its_own_pixels_and_is_compressed_at_that_size() -> None:
    chip = _chip()
    small = cv2.resize(chip, (20, 20), interpolation=cv2.INTER_AREA)
    plain = seen_small(chip, 20)
    assert plain.shape == chip.shape
    assert np.array_equal(plain, cv2.resize(small, (64, 64), interpolation=cv2.INTER_LINEAR))
    compressed = seen_small(chip, 20, jpeg_quality=20)
    assert np.array_equal(compressed, cv2.resize(jpeg(small, 20), (64, 64), interpolation=cv2.INTER_LINEAR))
    assert not np.array_equal(compressed, plain)


def test_a_face_bigger_than_the_chip_is_only_compressed() -> None:
    chip = _chip()
    assert np.array_equal(seen_small(chip, 80), chip)
    assert np.array_equal(seen_small(chip, 80, jpeg_quality=30), jpeg(chip, 30))


def test_the_chip_spans_the_measured_share_of_the_detectors_face_box(utkface: Path) -> None:
    faces = select_split(read_labels(utkface), "validation")[:40]
    finder = PhotoFaceFinder()
    ratios = []
    try:
        for face in faces:
            found = finder.find(read_rgb(face.path))
            if len(found):
                scale = float(np.hypot(*alignment_matrix(found.keypoints[0], 64)[:, 0]))
                ratios.append(64 / scale / float(found.boxes[0, 2] - found.boxes[0, 0]))
    finally:
        finder.close()
    assert len(ratios) >= 35
    assert abs(float(np.median(ratios)) - CHIP_PER_FACE_BOX) < 0.02
    assert chip_px_for_face(40) == round(40 * CHIP_PER_FACE_BOX)


@pytest.mark.slow
def test_evaluate_scores_small_compressed_faces_below_clean_ones(shipped_model: Path, utkface: Path) -> None:
    predictor = NetworkPredictor(OnnxRuntimeBackend(shipped_model))
    report = evaluate_folder(
        predictor,
        utkface,
        [builtin_grouping("fairface9")],
        split="validation",
        limit=120,
        face_px=(12, 96),
        jpeg_quality=70,
        on_scene=True,
    )
    by_size = report["small_faces"]["by_face_px"]
    assert report["small_faces"]["jpeg_quality"] == 70
    assert by_size["12"]["n"] == by_size["96"]["n"] == report["n"]
    # 12 px leaves almost nothing of a face; 96 px is bigger than the chip, so only the compression differs.
    assert by_size["12"]["age_mae"] > report["age_mae"] + 4
    assert by_size["12"]["gender_accuracy"] < report["gender_accuracy"] - 0.1
    assert abs(by_size["96"]["age_mae"] - report["age_mae"]) < 1.0
    assert report["on_scene"]["n"] == report["n"]
    assert report["on_scene"]["age_mae"] != report["age_mae"]  # the same faces, seen differently


def test_heads_on_the_wall_keep_the_face_and_change_only_the_corners() -> None:
    chips = np.stack([_chip(), _chip()[::-1].copy()])
    pasted = heads_on_wall(chips, seed=1)
    assert pasted.shape == chips.shape and pasted.dtype == np.uint8
    centre = slice(16, 48)
    assert np.abs(pasted[:, centre, centre].astype(int) - chips[:, centre, centre]).max() <= 1
    corners = np.abs(pasted[:, :6, :6].astype(int) - chips[:, :6, :6]).mean()
    assert corners > 10  # the wall shows where the head outline leaves the crop
    assert np.array_equal(heads_on_wall(chips, seed=1), pasted)
