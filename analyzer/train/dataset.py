"""Training and validation tensors from a labelled face folder.

Images are decoded and aligned once (cached on disk, keyed by the labels file,
the alignment mode and the size), then every epoch cuts freshly jittered and
degraded chips out of the in-memory source chips.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from analyzer.core.preprocess import Normalization, chips_to_input
from analyzer.datasets.face_photos import align_photos
from analyzer.datasets.labels import LabelledFace
from analyzer.service.atomic_files import whole_file
from analyzer.service.console import progress_bar
from analyzer.service.model_assets import cache_folder
from analyzer.train.augment import CameraAugment


@dataclass(frozen=True)
class FaceSet:
    """Aligned chips with their labels; rows without a found face are dropped.

    Attributes:
        chips: (N, S, S, 3) uint8 RGB aligned chips.
        ages: (N,) int years.
        genders: (N,) int, index into ``GENDERS``.
        races: race label per row or None.
    """

    chips: np.ndarray
    ages: np.ndarray
    genders: np.ndarray
    races: list[str | None]


def _cache_key(faces: Sequence[LabelledFace], size: int, align: str) -> str:
    digest = hashlib.sha256(json.dumps([size, align]).encode())
    for face in faces:
        digest.update(f"{face.path.resolve()}|{face.md5}|{face.age}|{face.gender}\n".encode())
    return digest.hexdigest()[:20]


def load_face_set(faces: Sequence[LabelledFace], size: int, align: str, label: str) -> FaceSet:
    """Align all faces to ``size`` chips, reusing the on-disk cache when it matches."""
    cache_file = cache_folder("datasets") / f"{_cache_key(faces, size, align)}.npz"
    if cache_file.is_file():
        stored = np.load(cache_file)
        chips, found = stored["chips"], stored["found"]
    else:
        with progress_bar(total=len(faces), desc=f"aligning {label} faces", unit="img") as bar:
            aligned = align_photos([face.path for face in faces], size, align, progress=bar.update)
        chips, found = aligned.chips, aligned.found
        # two runs may align the same faces at once; each writes its own temporary file
        with whole_file(cache_file) as partial, partial.open("wb") as sink:  # a file object: no .npz appended
            np.savez(sink, chips=chips, found=found)
    kept = [face for face, ok in zip(faces, found, strict=True) if ok]
    return FaceSet(
        chips=chips[found],
        ages=np.array([face.age for face in kept], dtype=np.int64),
        genders=np.array([face.gender_index for face in kept], dtype=np.int64),
        races=[face.race for face in kept],
    )


class AugmentedChips(Dataset):
    """Each item: a freshly augmented uint8 chip (S, S, 3), its age and gender.

    Set ``epoch`` before each epoch (workers are re-created per epoch, so they
    see it): the augmentation of item ``i`` depends only on (seed, epoch, i).
    """

    def __init__(self, faces: FaceSet, size: int, augment: CameraAugment, seed: int) -> None:
        self.faces = faces
        self.size = size
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.faces.ages)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int, int]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return self._chips(self.faces.chips[index], rng), int(self.faces.ages[index]), int(self.faces.genders[index])

    def _chips(self, source_chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.augment(source_chip, self.size, rng)


class BackdropPairs(AugmentedChips):
    """Each item: the face on its photo's backdrop and on a painted scene, (2, S, S, 3), its age and gender."""

    def _chips(self, source_chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.stack(self.augment.on_two_backdrops(source_chip, self.size, rng))


class TeacherViews(AugmentedChips):
    """Each item: the face's clean chip and its camera chip at one alignment, (2, S, S, 3), its age and gender."""

    def _chips(self, source_chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.stack(self.augment.with_clean_view(source_chip, self.size, rng))


class BatchCollator:
    """Stacks chips and normalises them with the serving code, inside the loader worker.

    Items of two views (``BackdropPairs``, ``TeacherViews``) give 2N inputs for
    N labels: the N first views, then the N second ones.
    """

    def __init__(self, normalization: Normalization) -> None:
        self.normalization = normalization

    def __call__(self, items: list[tuple[np.ndarray, int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Network inputs (N or 2N, 3, S, S) float32, ages (N,), genders (N,)."""
        chips = np.stack([chip for chip, _, _ in items])
        if chips.ndim == 5:
            chips = chips.swapaxes(0, 1).reshape(-1, *chips.shape[2:])
        inputs = torch.from_numpy(chips_to_input(chips, self.normalization))
        ages = torch.tensor([age for _, age, _ in items], dtype=torch.long)
        genders = torch.tensor([gender for _, _, gender in items], dtype=torch.long)
        return inputs, ages, genders
