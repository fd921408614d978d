"""The classifier backends' contract: aligned face chips in, age and gender probabilities out.

Every backend (ONNX Runtime on CPU boxes, TensorRT on GPU boxes) honours
:class:`ClassifierBackend`, so the pipeline and ``analyzer evaluate`` cannot
tell them apart; :func:`largest_difference` checks that two do agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from analyzer.core.model_meta import ModelMetadata
from analyzer.core.preprocess import chips_to_input


@dataclass(frozen=True)
class FaceAttributes:
    """Network outputs for N faces.

    Attributes:
        age_probs: (N, B) float32, probability per fine age bin; rows sum to 1.
        gender_probs: (N, 2) float32, ordered as the model's ``gender_labels``.
    """

    age_probs: np.ndarray
    gender_probs: np.ndarray

    def __post_init__(self) -> None:
        if self.age_probs.ndim != 2 or self.gender_probs.shape != (len(self.age_probs), 2):
            raise ValueError(
                f"age_probs (N, B) and gender_probs (N, 2) must agree, got "
                f"{self.age_probs.shape} and {self.gender_probs.shape}"
            )

    def __len__(self) -> int:
        return len(self.age_probs)

    def expected_age(self, bin_values: np.ndarray) -> np.ndarray:
        """Expected age in years, (N,) float."""
        return self.age_probs @ bin_values


class ClassifierBackend(Protocol):
    """What the pipeline needs from an inference engine."""

    metadata: ModelMetadata
    name: str

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        """Run float32 NCHW inputs (see :func:`chips_to_input`) through the network."""
        ...


def classify_chips(backend: ClassifierBackend, chips: np.ndarray, max_batch: int = 64) -> FaceAttributes:
    """Classify uint8 RGB chips (N, S, S, 3) in batches of at most ``max_batch``."""
    size = backend.metadata.input_size
    if len(chips) and chips.shape[1:3] != (size, size):
        raise ValueError(f"chips are {chips.shape[1:3]}, the model takes {size}x{size}")
    ages, genders = [], []
    for start in range(0, len(chips), max_batch):
        result = backend.infer(chips_to_input(chips[start : start + max_batch], backend.metadata.normalization))
        ages.append(result.age_probs)
        genders.append(result.gender_probs)
    if not ages:
        bins = len(backend.metadata.age_bin_edges)
        return FaceAttributes(np.zeros((0, bins), np.float32), np.zeros((0, 2), np.float32))
    return FaceAttributes(np.concatenate(ages), np.concatenate(genders))


def largest_difference(
    backend: ClassifierBackend, reference: ClassifierBackend, batch_sizes: list[int], seed: int = 0
) -> float:
    """Largest absolute probability difference between two backends on random chips of each batch size."""
    rng = np.random.default_rng(seed)
    size = reference.metadata.input_size
    largest = 0.0
    for batch in batch_sizes:
        chips = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        ours, theirs = classify_chips(backend, chips, batch), classify_chips(reference, chips, batch)
        largest = max(
            largest,
            float(np.abs(ours.age_probs - theirs.age_probs).max()),
            float(np.abs(ours.gender_probs - theirs.gender_probs).max()),
        )
    return largest
