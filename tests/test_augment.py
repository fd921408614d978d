"""Training augmentation: the camera effects it claims to make are the ones it makes."""

import cv2
import numpy as np

from analyzer.core.preprocess import align_face, template_keypoints
from analyzer.datasets.degrade import jpeg
from analyzer.train.augment import AUGMENTATIONS, CameraAugment

#: Every random effect off; each test turns on the one it looks at.
NOTHING = dict(
    max_rotation_deg=0.0,
    max_scale=0.0,
    max_shift=0.0,
    keypoint_noise=0.0,
    flip=0.0,
    background=0.0,
    low_resolution=0.0,
    low_resolution_jpeg=0.0,
    blur=0.0,
    motion_blur=0.0,
    jpeg=0.0,
    occlusion=0.0,
    colour=0.0,
    grayscale=0.0,
    noise=0.0,
)


def _textured_chip(side: int = 80) -> np.ndarray:
    """A smooth colour texture with detail at every scale, like a face at source resolution."""
    rng = np.random.default_rng(3)
    coarse = cv2.resize(rng.uniform(0, 255, (6, 6, 3)).astype(np.float32), (side, side), cv2.INTER_CUBIC)
    fine = rng.normal(0, 12, (side, side, 3)).astype(np.float32)
    return np.clip(coarse + fine, 0, 255).astype(np.uint8)


def _aligned(source: np.ndarray) -> np.ndarray:
    """The chip with no jitter: the alignment every effect starts from."""
    return align_face(source, template_keypoints(*source.shape[1::-1]), 64)


def _shrunk(source: np.ndarray, side: int) -> np.ndarray:
    return cv2.resize(_aligned(source), (side, side), interpolation=cv2.INTER_AREA)


def _upscaled(small: np.ndarray, size: int) -> list[np.ndarray]:
    """Both upscalings the augmentation may pick."""
    return [cv2.resize(small, (size, size), interpolation=mode) for mode in (cv2.INTER_LINEAR, cv2.INTER_CUBIC)]


def _one_of(chip: np.ndarray, candidates: list[np.ndarray]) -> bool:
    return any(np.array_equal(chip, candidate) for candidate in candidates)


def test_a_low_resolution_chip_is_the_face_shrunk_and_scaled_back_up() -> None:
    source = _textured_chip()
    settings = NOTHING | dict(low_resolution=1.0, low_resolution_px=(20, 20))
    chip = CameraAugment(**settings)(source, 64, np.random.default_rng(0))
    assert _one_of(chip, _upscaled(_shrunk(source, 20), 64))


def test_compression_comes_after_the_rescale_of_a_small_face() -> None:
    # The chip is compressed as the network sees it, at 64 px (the documented order of effects).
    source = _textured_chip()
    settings = NOTHING | dict(low_resolution=1.0, low_resolution_px=(20, 20), jpeg=1.0, jpeg_quality=(15, 15))
    chip = CameraAugment(**settings)(source, 64, np.random.default_rng(0))
    assert _one_of(chip, [jpeg(upscaled, 15) for upscaled in _upscaled(_shrunk(source, 20), 64)])


def test_a_small_face_can_be_compressed_at_its_own_size_as_a_camera_stream_does() -> None:
    source = _textured_chip()
    settings = NOTHING | dict(
        low_resolution=1.0, low_resolution_px=(20, 20), low_resolution_jpeg=1.0, jpeg_quality=(15, 15)
    )
    chip = CameraAugment(**settings)(source, 64, np.random.default_rng(0))
    compressed_small = _upscaled(jpeg(_shrunk(source, 20), 15), 64)
    assert _one_of(chip, compressed_small)
    # Not the same as compressing after the upscale: the 8-px blocks sit on the small face.
    assert not _one_of(chip, [jpeg(upscaled, 15) for upscaled in _upscaled(_shrunk(source, 20), 64)])


def test_a_chip_with_no_effects_is_the_plain_alignment() -> None:
    source = _textured_chip()
    chip = CameraAugment(**NOTHING)(source, 64, np.random.default_rng(0))
    assert np.array_equal(chip, _aligned(source))


def _kept(chip: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Pixels of the chip that are still the face photo's own."""
    return np.all(np.abs(chip.astype(int) - _aligned(source).astype(int)) <= 2, axis=2)


def test_a_painted_background_keeps_the_face_and_replaces_the_corners() -> None:
    source = _textured_chip()
    chip = CameraAugment(**NOTHING | dict(background=1.0))(source, 64, np.random.default_rng(0))
    kept = _kept(chip, source)
    assert kept[16:48, 16:48].all()  # the face inside the head outline
    assert not kept[:6, :6].any() and not kept[-6:, -6:].any()  # the photo's corners are gone


def test_a_squarer_head_outline_keeps_more_of_the_head() -> None:
    source = _textured_chip()
    kept = {
        power: _kept(
            CameraAugment(**NOTHING | dict(background=1.0, outline_power=(power, power)))(
                source, 64, np.random.default_rng(0)
            ),
            source,
        ).mean()
        for power in (2.0, 5.0)
    }
    # same draws but the outline: an ellipse covers pi/4 of its box, a power-5 superellipse ~0.95
    assert kept[5.0] > kept[2.0] + 0.1


def test_two_backdrops_share_the_face_and_every_camera_effect_but_the_scene() -> None:
    # Effects that move pixels about (blur, compression, rescaling) are off, so the face's own
    # pixels must match; jitter, mirror, colour, noise and occlusion stay on. Only the blend with
    # the scene (which truncates, then colour amplifies) leaves them a level or two apart; two
    # draws of the effects differ by tens of levels.
    source = _textured_chip()
    settings = NOTHING | dict(
        max_rotation_deg=12.0,
        max_scale=0.1,
        max_shift=0.05,
        keypoint_noise=0.015,
        flip=0.5,
        colour=1.0,
        noise=1.0,
        occlusion=0.5,
    )
    augment = CameraAugment(**settings)
    for seed in range(6):
        photo, painted = augment.on_two_backdrops(source, 64, np.random.default_rng(seed))
        other_draw, _ = augment.on_two_backdrops(source, 64, np.random.default_rng(seed + 100))
        assert _mean_difference(photo[20:44, 20:44], painted[20:44, 20:44]) < 1.5  # the same face and effects
        assert _mean_difference(photo[20:44, 20:44], other_draw[20:44, 20:44]) > 20
        assert _mean_difference(photo[:5, :5], painted[:5, :5]) > 20  # but another backdrop


def _mean_difference(chip: np.ndarray, other: np.ndarray) -> float:
    return float(np.abs(chip.astype(int) - other.astype(int)).mean())


def test_the_clean_view_is_the_recipes_alignment_without_effects_and_the_camera_view_is_the_recipe() -> None:
    # The teacher's chip must be the same face at the same jittered alignment, with nothing of the
    # camera; the network's chip must be exactly what the recipe alone draws, so distilling changes
    # the target, not the training chips.
    source = _textured_chip()
    recipe = AUGMENTATIONS["entrance"]
    jitter_only = CameraAugment(
        **NOTHING | dict(max_rotation_deg=12.0, max_scale=0.1, max_shift=0.05, keypoint_noise=0.015)
    )
    degraded = 0
    for seed in range(8):
        clean, camera = recipe.with_clean_view(source, 64, np.random.default_rng(seed))
        assert np.array_equal(camera, recipe(source, 64, np.random.default_rng(seed)))
        assert np.array_equal(clean, jitter_only(source, 64, np.random.default_rng(seed)))
        degraded += _mean_difference(clean, camera) > 2
    assert degraded >= 4  # the recipe did change most chips
    assert not np.array_equal(clean, _aligned(source))  # and the clean view is jittered, not the template
