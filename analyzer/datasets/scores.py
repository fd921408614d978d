"""Accuracy of age and gender predictions against labels.

Pure numpy, shared by ``analyzer train`` (validation each epoch) and
``analyzer evaluate`` (the JSON report and the model card).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analyzer.core.age_groups import AgeGrouping
from analyzer.datasets.labels import GENDERS

REPORT_GROUPING = "fairface9"


def group_predictions(age_probs: np.ndarray, bin_edges: Sequence[float], grouping: AgeGrouping) -> np.ndarray:
    """Most probable group per face: argmax of summed bin probabilities, (N,) int."""
    return np.argmax(age_probs @ grouping.bin_matrix(bin_edges), axis=1)


def group_scores(true_groups: np.ndarray, predicted_groups: np.ndarray, group_count: int) -> dict[str, object]:
    """Exact and within-one-group accuracy and the confusion matrix (rows = truth)."""
    confusion = np.zeros((group_count, group_count), dtype=np.int64)
    np.add.at(confusion, (true_groups, predicted_groups), 1)
    total = max(len(true_groups), 1)
    return {
        "exact": float(np.sum(true_groups == predicted_groups) / total),
        "within_one": float(np.sum(np.abs(true_groups - predicted_groups) <= 1) / total),
        "confusion": confusion.tolist(),
    }


def subset_summary(
    mask: np.ndarray,
    true_ages: np.ndarray,
    true_genders: np.ndarray,
    expected_ages: np.ndarray,
    predicted_genders: np.ndarray,
    true_groups: np.ndarray,
    predicted_groups: np.ndarray,
) -> dict[str, float | int]:
    """The metrics over the faces ``mask`` selects (``{"n": 0}`` when none)."""
    count = int(mask.sum())
    if count == 0:
        return {"n": 0}
    return {
        "n": count,
        "gender_accuracy": float(np.mean(true_genders[mask] == predicted_genders[mask])),
        "age_mae": float(np.mean(np.abs(expected_ages[mask] - true_ages[mask]))),
        f"{REPORT_GROUPING}_exact": float(np.mean(true_groups[mask] == predicted_groups[mask])),
        f"{REPORT_GROUPING}_within_one": float(np.mean(np.abs(true_groups[mask] - predicted_groups[mask]) <= 1)),
    }


def attribute_report(
    true_ages: np.ndarray,
    true_genders: np.ndarray,
    age_probs: np.ndarray,
    gender_probs: np.ndarray,
    bin_edges: Sequence[float],
    bin_values: np.ndarray,
    groupings: Sequence[AgeGrouping],
    races: Sequence[str | None] | None = None,
) -> dict[str, object]:
    """The ``evaluate --json`` metrics for N faces.

    Args:
        true_ages: (N,) whole years.
        true_genders: (N,) index into ``GENDERS``.
        age_probs: (N, bins) predicted fine-bin probabilities.
        gender_probs: (N, 2) predicted, ordered as ``GENDERS``.
        bin_edges: lower edges of the fine bins.
        bin_values: age each bin stands for (for the expected age).
        groupings: reporting groupings; ``fairface9`` also drives the breakdowns.
        races: optional (N,) labels for a per-race breakdown.
    """
    true_ages = np.asarray(true_ages, dtype=np.float64)
    true_genders = np.asarray(true_genders, dtype=np.int64)
    expected_ages = age_probs.astype(np.float64) @ np.asarray(bin_values, dtype=np.float64)
    predicted_genders = np.argmax(gender_probs, axis=1)
    groups: dict[str, object] = {}
    group_indices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for grouping in groupings:
        truth = grouping.indices_of(true_ages)
        predicted = group_predictions(age_probs, bin_edges, grouping)
        group_indices[grouping.name] = (truth, predicted)
        scores = group_scores(truth, predicted, len(grouping.groups))
        groups[grouping.name] = {"labels": grouping.names, **scores}
    report: dict[str, object] = {
        "n": len(true_ages),
        "gender_accuracy": float(np.mean(true_genders == predicted_genders)) if len(true_ages) else 0.0,
        "age_mae": float(np.mean(np.abs(expected_ages - true_ages))) if len(true_ages) else 0.0,
        "groups": groups,
    }
    if REPORT_GROUPING not in group_indices:
        return report
    true_groups, predicted_groups = group_indices[REPORT_GROUPING]
    grouping = next(g for g in groupings if g.name == REPORT_GROUPING)
    subset_arguments = (true_ages, true_genders, expected_ages, predicted_genders, true_groups, predicted_groups)
    report["by_gender"] = {
        gender: subset_summary(true_genders == index, *subset_arguments) for index, gender in enumerate(GENDERS)
    }
    report["by_age_group"] = {
        name: subset_summary(true_groups == index, *subset_arguments) for index, name in enumerate(grouping.names)
    }
    if races is not None and any(race for race in races):
        race_array = np.array([race or "unknown" for race in races], dtype=object)
        report["by_race"] = {
            str(race): subset_summary(race_array == race, *subset_arguments) for race in sorted(set(race_array))
        }
    return report
