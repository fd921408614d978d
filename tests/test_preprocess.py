import cv2
import numpy as np
import pytest

from analyzer.core.preprocess import (
    ALIGNMENT_TEMPLATE,
    Normalization,
    align_face,
    alignment_matrix,
    chips_to_input,
    template_keypoints,
)


def textured(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def test_aligned_crop_maps_onto_itself() -> None:
    image = textured(200)
    chip = align_face(image, template_keypoints(200, 200), 200)
    assert np.abs(chip.astype(int) - image.astype(int)).mean() < 1.0


@pytest.mark.parametrize(
    ("angle", "scale", "shift"), [(20.0, 1.0, (0, 0)), (-15.0, 2.5, (300, 120)), (8.0, 0.6, (40, 10))]
)
def test_rotated_scaled_face_aligns_back(angle: float, scale: float, shift: tuple[int, int]) -> None:
    image = textured(200)
    keypoints = template_keypoints(200, 200)
    # Place the crop rotated, scaled and shifted inside a bigger frame, moving the keypoints with it.
    matrix = cv2.getRotationMatrix2D((100, 100), angle, scale)
    matrix[:, 2] += shift
    frame = cv2.warpAffine(image, matrix, (900, 700), flags=cv2.INTER_CUBIC)
    moved = keypoints @ matrix[:, :2].T + matrix[:, 2]
    chip = align_face(frame, moved, 80)
    reference = cv2.resize(image, (80, 80), interpolation=cv2.INTER_AREA)
    inner = (slice(8, 72), slice(8, 72))
    assert np.abs(chip[inner].astype(int) - reference[inner].astype(int)).mean() < 12


def test_alignment_levels_the_eye_line() -> None:
    keypoints = np.array([[100, 100], [160, 160], [110, 170], [100, 200]], dtype=float)
    matrix = alignment_matrix(keypoints, 64)
    eyes = keypoints[:2] @ matrix[:, :2].T + matrix[:, 2]
    assert abs(eyes[0, 1] - eyes[1, 1]) < 6  # nearly level after the fit
    assert eyes[0, 0] < eyes[1, 0]


def test_wrong_keypoints_rejected() -> None:
    with pytest.raises(ValueError, match="keypoints"):
        align_face(np.zeros((10, 10, 3), np.uint8), np.zeros((2, 2)), 32)


def test_chips_to_input_normalises_per_channel() -> None:
    chips = np.zeros((2, 4, 4, 3), np.uint8)
    chips[..., 0] = 255
    chips[1, ..., 2] = 51
    normalization = Normalization(mean=(0.5, 0.4, 0.2), std=(0.25, 0.5, 0.1))
    tensor = chips_to_input(chips, normalization)
    assert tensor.shape == (2, 3, 4, 4) and tensor.dtype == np.float32 and tensor.flags["C_CONTIGUOUS"]
    assert np.allclose(tensor[:, 0], (1.0 - 0.5) / 0.25)
    assert np.allclose(tensor[:, 1], (0.0 - 0.4) / 0.5)
    assert np.allclose(tensor[0, 2], (0.0 - 0.2) / 0.1)
    assert np.allclose(tensor[1, 2], (0.2 - 0.2) / 0.1, atol=1e-6)


def test_template_is_mirror_symmetric() -> None:
    mirrored = ALIGNMENT_TEMPLATE.copy()
    mirrored[:, 0] = 1 - mirrored[:, 0]
    assert np.allclose(mirrored[[1, 0, 2, 3]], ALIGNMENT_TEMPLATE)
