"""Augmentation that makes studio-like crops look like entrance-camera faces.

Camera faces are small (24-60 px upscaled), blurred by motion and focus,
JPEG/H.264 compressed, noisy, unevenly lit and imperfectly aligned by a
detector whose keypoints jitter; people wear things that hide part of the face.
The head is seen against the shop, not the photo's own backdrop, so the
background around the head outline is sometimes replaced: without that, a
network learns the photo studio's corners (measured on simulated entrances:
3 points of gender and 6 of fairface9 lost when the corners changed).
Each effect is applied with its own probability so many chips stay clean.
Lighting is one 256-entry lookup table per channel, so it costs microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from analyzer.core.preprocess import align_face, template_keypoints
from analyzer.datasets.degrade import jpeg, seen_small
from analyzer.datasets.head_outline import superellipse_radius


@dataclass(frozen=True)
class CameraAugment:
    """Random alignment jitter and camera degradations for one chip at a time.

    Example:
        >>> augment = CameraAugment()
        >>> rng = np.random.default_rng(0)
        >>> chip = augment(np.zeros((128, 128, 3), np.uint8), 64, rng)
        >>> chip.shape
        (64, 64, 3)
    """

    max_rotation_deg: float = 12.0
    max_scale: float = 0.1
    max_shift: float = 0.05
    keypoint_noise: float = 0.015
    flip: float = 0.5
    background: float = 0.25
    outline_power: tuple[float, float] = (2.0, 2.0)  # head outline superellipse: 2 = ellipse, 5 = rounded square
    scene_objects: int = 0  # up to this many hard-edged objects (shelves, door frames) in the painted scene
    low_resolution: float = 0.4
    low_resolution_px: tuple[int, int] = (18, 52)
    low_resolution_jpeg: float = 0.0  # share of low-resolution chips compressed at the low size
    blur: float = 0.15
    motion_blur: float = 0.1
    jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (25, 80)
    occlusion: float = 0.15
    colour: float = 0.8
    grayscale: float = 0.05
    noise: float = 0.2

    def __call__(self, source_chip: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """Cut a jittered ``size`` chip out of an aligned source chip and degrade it."""
        return self._recipe_chip(source_chip, self._jittered_template(source_chip, rng), size, rng)

    def on_two_backdrops(
        self, source_chip: np.ndarray, size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The face on its photo's backdrop and on a painted scene, with the same jitter and camera effects.

        The pair differs only in what surrounds the head, so a loss that ties
        their predictions together teaches the backdrop does not matter
        (``TrainConfig.backdrop_consistency``).
        """
        keypoints = self._jittered_template(source_chip, rng)
        painted = self._replace_background(source_chip, rng)
        effects = rng.bit_generator.state
        photo_chip = self._as_camera_sees(source_chip, keypoints, size, rng)
        rng.bit_generator.state = effects
        return photo_chip, self._as_camera_sees(painted, keypoints, size, rng)

    def with_clean_view(
        self, source_chip: np.ndarray, size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The face cut at one jittered alignment twice: clean, and as this recipe's camera sees it.

        The clean chip keeps its photo's backdrop and gets no camera effect, so
        a frozen teacher's answer on it is a target for the degraded chip
        (``TrainConfig.distill_from``).
        """
        keypoints = self._jittered_template(source_chip, rng)
        return align_face(source_chip, keypoints, size), self._recipe_chip(source_chip, keypoints, size, rng)

    def _jittered_template(self, source_chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The alignment template's keypoints on this source chip, jittered as a detector's are."""
        height, width = source_chip.shape[:2]
        return self.jitter_keypoints(template_keypoints(width, height), width, rng)

    def _recipe_chip(
        self, source_chip: np.ndarray, keypoints: np.ndarray, size: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The recipe at these keypoints: a painted scene with its probability, then the camera's effects."""
        if rng.random() < self.background:
            source_chip = self._replace_background(source_chip, rng)
        return self._as_camera_sees(source_chip, keypoints, size, rng)

    def _as_camera_sees(
        self, source_chip: np.ndarray, keypoints: np.ndarray, size: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Cut the chip at the jittered keypoints, then mirror and degrade it, each effect with its probability."""
        chip = align_face(source_chip, keypoints, size)
        if rng.random() < self.flip:
            chip = np.ascontiguousarray(chip[:, ::-1])
        if rng.random() < self.low_resolution:
            chip = self._low_resolution(chip, rng)
        if rng.random() < self.blur:
            sigma = rng.uniform(0.4, 1.2)
            chip = cv2.GaussianBlur(chip, (0, 0), sigmaX=sigma)
        if rng.random() < self.motion_blur:
            chip = self._motion_blur(chip, rng)
        if rng.random() < self.colour:
            chip = self._colour(chip, rng)
        if rng.random() < self.grayscale:
            chip = cv2.cvtColor(cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        if rng.random() < self.noise:
            noise = rng.normal(0.0, rng.uniform(2.0, 10.0), chip.shape).astype(np.float32)
            chip = cv2.add(chip.astype(np.float32), noise, dtype=cv2.CV_8U)
        if rng.random() < self.jpeg:
            chip = self._jpeg(chip, rng)
        if rng.random() < self.occlusion:
            chip = self._occlude(chip, rng)
        return chip

    def jitter_keypoints(self, keypoints: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
        """Rotate, scale and shift the keypoints as a whole, plus per-point detector noise."""
        angle = np.radians(
            np.clip(rng.normal(0.0, self.max_rotation_deg / 2), -self.max_rotation_deg, self.max_rotation_deg)
        )
        scale = np.exp(rng.uniform(-self.max_scale, self.max_scale))
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = keypoints.mean(axis=0)
        shift = rng.uniform(-self.max_shift, self.max_shift, 2) * width
        noise = rng.normal(0.0, self.keypoint_noise * width, keypoints.shape)
        return (keypoints - centre) @ rotation.T + centre + shift + noise

    def _low_resolution(self, chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A small face, compressed at its own size as a camera stream does (``analyzer.datasets.degrade``)."""
        low = int(rng.integers(self.low_resolution_px[0], self.low_resolution_px[1] + 1))
        upscale = cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC
        quality = None
        if rng.random() < self.low_resolution_jpeg:
            quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        return seen_small(chip, low, quality, upscale)

    def _replace_background(self, chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Keep a soft head outline around the face and paint a random scene outside it.

        The outline is a superellipse (``outline_power`` 2: an ellipse; up to 5:
        a rounded square, as some hair makes a head); the scene is a lit wall
        with up to ``scene_objects`` hard-edged objects, as shelves and door
        frames are.
        """
        height, width = chip.shape[:2]
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        centre_x, centre_y = width * rng.uniform(0.47, 0.53), height * rng.uniform(0.47, 0.53)
        half_width, half_height = width * rng.uniform(0.42, 0.54), height * rng.uniform(0.46, 0.58)
        power = rng.uniform(*self.outline_power)
        radius = superellipse_radius((x - centre_x) / half_width, (y - centre_y) / half_height, power)
        mask = (radius <= 1.0).astype(np.float32)
        mask = cv2.GaussianBlur(mask, (0, 0), max(width * rng.uniform(0.01, 0.05), 0.5))[:, :, None]
        base = rng.uniform(20, 235, 3)
        ramp = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None, None] * rng.uniform(-40, 40, 3)
        texture = cv2.resize(
            rng.normal(0, rng.uniform(0, 30), (4, 4, 3)).astype(np.float32), (width, height), cv2.INTER_CUBIC
        )
        scene = np.clip(base + ramp + texture, 0, 255)
        for _ in range(int(rng.integers(0, self.scene_objects + 1))):
            left, top = rng.integers(0, width), rng.integers(0, height)
            right, bottom = left + rng.integers(2, width // 2), top + rng.integers(2, height // 2)
            scene[top:bottom, left:right] = rng.uniform(20, 235, 3)
        return (chip.astype(np.float32) * mask + scene * (1.0 - mask)).astype(np.uint8)

    @staticmethod
    def _motion_blur(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        turn = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, turn, (length, length))
        return cv2.filter2D(chip, -1, kernel / max(kernel.sum(), 1e-6))

    @staticmethod
    def _colour(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Saturation, then contrast, brightness, white balance and gamma as one LUT."""
        saturation = rng.uniform(0.7, 1.3)
        gray = cv2.cvtColor(cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        chip = cv2.addWeighted(chip, saturation, gray, 1.0 - saturation, 0.0)
        levels = np.arange(256, dtype=np.float64)[:, None] / 255.0
        levels = (levels - 0.5) * rng.uniform(0.75, 1.25) + 0.5
        levels = levels * rng.uniform(0.75, 1.25) * rng.uniform(0.92, 1.08, (1, 3))
        levels = np.clip(levels, 0.0, 1.0) ** rng.uniform(0.7, 1.4)
        table = (levels * 255.0 + 0.5).astype(np.uint8).reshape(256, 1, 3)
        return cv2.LUT(chip, table)

    def _jpeg(self, chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return jpeg(chip, int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)))

    @staticmethod
    def _occlude(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = chip.shape[0]
        area = rng.uniform(0.08, 0.25) * size * size
        aspect = np.exp(rng.uniform(-0.8, 0.8))
        width = int(np.clip(np.sqrt(area * aspect), 4, size))
        height = int(np.clip(area / width, 4, size))
        left = int(rng.integers(0, size - width + 1))
        top = int(rng.integers(0, size - height + 1))
        chip = chip.copy()
        chip[top : top + height, left : left + width] = rng.integers(0, 256, 3, dtype=np.uint8)
        return chip


#: The recipes ``analyzer train --augment`` offers; a run saves the name it used.
AUGMENTATIONS: dict[str, CameraAugment] = {
    "camera": CameraAugment(),
    # Heads drawn on a busier shop: more painted backgrounds, outlines from ellipse to
    # rounded square, hard-edged objects, and small faces compressed at their own size.
    "entrance": CameraAugment(background=0.4, outline_power=(2.0, 5.0), scene_objects=3, low_resolution_jpeg=0.5),
}
