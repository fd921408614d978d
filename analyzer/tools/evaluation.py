"""``analyzer evaluate``: the network on labelled photos, plain, seen small and drawn into a scene.

The metrics themselves (:mod:`analyzer.datasets.scores`) are shared with
training's validation each epoch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from analyzer.backends.base import ClassifierBackend, FaceAttributes, classify_chips
from analyzer.core.age_groups import AgeGrouping, builtin_grouping
from analyzer.datasets.degrade import chip_px_for_face, seen_small
from analyzer.datasets.face_photos import align_photos
from analyzer.datasets.labels import LabelledFace, read_labels, split_by_md5
from analyzer.datasets.scores import REPORT_GROUPING, attribute_report, group_predictions, subset_summary
from analyzer.errors import DataError
from analyzer.service.console import progress_bar
from analyzer.tools.scene import heads_on_wall


def agreement(
    reference_age: np.ndarray,
    reference_gender: np.ndarray,
    other_age: np.ndarray,
    other_gender: np.ndarray,
    bin_edges: Sequence[float],
    grouping: AgeGrouping,
) -> dict[str, float]:
    """Fraction of faces on which two precisions (or backends) give the same answers."""
    same_gender = np.argmax(reference_gender, axis=1) == np.argmax(other_gender, axis=1)
    same_group = group_predictions(reference_age, bin_edges, grouping) == group_predictions(
        other_age, bin_edges, grouping
    )
    return {
        "gender": float(np.mean(same_gender)) if len(same_gender) else 1.0,
        grouping.name: float(np.mean(same_group)) if len(same_group) else 1.0,
        "max_abs_prob_diff": float(
            max(
                np.abs(reference_age - other_age).max(initial=0), np.abs(reference_gender - other_gender).max(initial=0)
            )
        ),
    }


class ChipPredictor(Protocol):
    """Anything that turns aligned chips into fine-bin age and gender probabilities."""

    name: str
    chip_size: int
    bin_edges: Sequence[float]
    bin_values: np.ndarray

    def predict(self, chips: np.ndarray) -> FaceAttributes:
        """Probabilities for (N, S, S, 3) uint8 RGB chips."""
        ...


class NetworkPredictor:
    """Our exported network behind any classifier backend."""

    def __init__(self, backend: ClassifierBackend, max_batch: int = 64) -> None:
        self.backend = backend
        self.name = f"{backend.metadata.version} [{backend.name}, {backend.metadata.precision}]"
        self.chip_size = backend.metadata.input_size
        self.bin_edges = backend.metadata.age_bin_edges
        self.bin_values = backend.metadata.age_bin_values
        self.max_batch = max_batch

    def predict(self, chips: np.ndarray) -> FaceAttributes:
        """Classify in batches."""
        return classify_chips(self.backend, chips, self.max_batch)


def select_split(faces: list[LabelledFace], split: str, validation_fraction: float = 0.1) -> list[LabelledFace]:
    """``all``, or the ``train`` / ``validation`` side of the md5 split used by training."""
    if split == "all":
        return faces
    train, validation = split_by_md5(faces, validation_fraction)
    side = {"train": train, "validation": validation}[split]
    if not side:  # a small folder can have every face on one side
        raise DataError(
            f"none of the {len(faces)} labelled faces is on the {split} side of the md5 split (about 1 face in "
            f"{round(1 / validation_fraction)} is a validation face); give more faces, or --split all"
        )
    return side


def latency_ms(
    predictor: ChipPredictor, batch_sizes: Sequence[int] = (1, 32), repeats: int = 30, faces: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """Median time per call and per face of ``predict`` at each batch size (on ``faces`` chips when given)."""
    rng = np.random.default_rng(0)
    timings: dict[str, dict[str, float]] = {}
    for batch in batch_sizes:
        if faces is not None and len(faces):
            chips = faces[np.arange(batch) % len(faces)]
        else:
            chips = rng.integers(0, 256, (batch, predictor.chip_size, predictor.chip_size, 3), dtype=np.uint8)
        predictor.predict(chips)
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            predictor.predict(chips)
            samples.append((time.perf_counter() - started) * 1000)
        median = float(np.median(samples))
        timings[str(batch)] = {"per_call": median, "per_face": median / batch}
    return timings


def _degraded_summary(
    predictor: ChipPredictor, chips: np.ndarray, true_ages: np.ndarray, true_genders: np.ndarray
) -> dict[str, float | int]:
    """Gender, MAE and fairface9 of the predictor on altered chips of the same faces."""
    fairface = builtin_grouping(REPORT_GROUPING)
    attributes = predictor.predict(chips)
    expected_ages = attributes.age_probs.astype(np.float64) @ np.asarray(predictor.bin_values, dtype=np.float64)
    return subset_summary(
        np.ones(len(chips), dtype=bool),
        true_ages,
        true_genders,
        expected_ages,
        np.argmax(attributes.gender_probs, axis=1),
        fairface.indices_of(true_ages),
        group_predictions(attributes.age_probs, predictor.bin_edges, fairface),
    )


def small_face_report(
    predictor: ChipPredictor,
    chips: np.ndarray,
    true_ages: np.ndarray,
    true_genders: np.ndarray,
    face_px: Sequence[int],
    jpeg_quality: int,
) -> dict[str, object]:
    """Accuracy on the same faces as a camera sees them ``face_px`` wide, compressed at that size.

    Entrance cameras see most faces at 30-60 px; a network's score on clean
    crops says little about those (``analyzer.datasets.degrade``).
    """
    by_size = {
        str(width): _degraded_summary(
            predictor,
            np.stack([seen_small(chip, chip_px_for_face(width), jpeg_quality) for chip in chips]),
            true_ages,
            true_genders,
        )
        for width in face_px
    }
    return {"jpeg_quality": jpeg_quality, "by_face_px": by_size}


def evaluate_folder(
    predictor: ChipPredictor,
    data_dir: Path,
    groupings: Sequence[AgeGrouping],
    align: str = "auto",
    split: str = "all",
    comparisons: dict[str, ChipPredictor] | None = None,
    limit: int = 0,
    face_px: Sequence[int] = (),
    jpeg_quality: int = 70,
    on_scene: bool = False,
) -> dict[str, object]:
    """The full ``analyzer evaluate`` report for one predictor on a labelled folder.

    ``comparisons`` maps a report key (``fp16_agreement``, ``onnxruntime_agreement``)
    to another predictor whose answers on the same chips are compared with ours.
    ``face_px`` adds ``small_faces``: the same faces shrunk to each width and
    compressed there at ``jpeg_quality`` (:func:`small_face_report`); ``on_scene``
    adds ``on_scene``: the faces' head outlines drawn on the simulated entrance
    (:func:`analyzer.tools.scene.heads_on_wall`).
    """
    faces = select_split(read_labels(data_dir), split)
    if limit:
        faces = faces[:limit]
    with progress_bar(total=len(faces), desc="aligning faces", unit="img", leave=False) as bar:
        aligned = align_photos([face.path for face in faces], predictor.chip_size, align, progress=bar.update)
    kept = [face for face, found in zip(faces, aligned.found, strict=True) if found]
    if not kept:  # scores of nothing would read as 0% accuracy
        raise DataError(
            f"{data_dir}: no face was found in any of its {len(faces)} photos (--align {align}); "
            "for photos that are tight face crops, use --align crop"
        )
    chips = aligned.chips[aligned.found]
    attributes = predictor.predict(chips)
    report: dict[str, object] = {
        "model": predictor.name,
        "data": str(data_dir),
        "split": split,
        "align": {
            "mode": align,
            **{how: int(np.sum(aligned.how == how)) for how in ("crop", "detect", "missing")},
        },
    }
    true_ages = np.array([face.age for face in kept])
    true_genders = np.array([face.gender_index for face in kept])
    report.update(
        attribute_report(
            true_ages,
            true_genders,
            attributes.age_probs,
            attributes.gender_probs,
            predictor.bin_edges,
            predictor.bin_values,
            groupings,
            [face.race for face in kept],
        )
    )
    fairface = next(g for g in groupings if g.name == REPORT_GROUPING)
    for key, other in (comparisons or {}).items():
        theirs = other.predict(chips)
        report[key] = agreement(
            attributes.age_probs,
            attributes.gender_probs,
            theirs.age_probs,
            theirs.gender_probs,
            predictor.bin_edges,
            fairface,
        )
    if face_px:
        report["small_faces"] = small_face_report(predictor, chips, true_ages, true_genders, face_px, jpeg_quality)
    if on_scene:
        report["on_scene"] = _degraded_summary(predictor, heads_on_wall(chips), true_ages, true_genders)
    report["latency_ms"] = latency_ms(predictor)
    return report
