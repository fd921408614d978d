"""Is the network as sure as it is right? Reliability tables, calibration error and the unknown curve.

A probability is useful for ``unknown`` only if it means what it says:
among answers given with 0.8, about 8 in 10 should be right. The
reliability table bins answers by their probability and compares each
bin's mean probability with how often it was right; the expected
calibration error (ECE) is the size-weighted mean of those gaps. The unknown
curve is what a threshold buys: the share of answers it makes ``unknown``
against the accuracy of the answers it keeps. ``analyzer accuracy`` measures
them on validation faces and on the votes of the simulated visits.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReliabilityBin:
    """Answers whose probability fell in ``[low, high)``: how many, how sure on average, how often right."""

    low: float
    high: float
    count: int
    mean_probability: float
    accuracy: float


def reliability(probability: np.ndarray, correct: np.ndarray, edges: Sequence[float]) -> list[ReliabilityBin]:
    """The reliability table of answers with ``probability`` (N,) that were ``correct`` (N,); empty bins left out."""
    bins = []
    for low, high in itertools.pairwise(edges):
        inside = (probability >= low) & ((probability < high) if high < edges[-1] else (probability <= high))
        if inside.any():
            mean, right = float(probability[inside].mean()), float(correct[inside].mean())
            bins.append(ReliabilityBin(low, high, int(inside.sum()), mean, right))
    return bins


def expected_calibration_error(bins: Sequence[ReliabilityBin]) -> float:
    """Mean |probability - accuracy| over the bins, weighted by their answers."""
    total = sum(item.count for item in bins)
    return sum(item.count * abs(item.mean_probability - item.accuracy) for item in bins) / total if total else 0.0


@dataclass(frozen=True)
class CurvePoint:
    """What answering ``unknown`` below ``threshold`` does: the share made unknown and the kept answers' accuracy."""

    threshold: float
    unknown_share: float
    accuracy_of_rest: float | None


def unknown_curve(probability: np.ndarray, correct: np.ndarray, thresholds: Sequence[float]) -> list[CurvePoint]:
    """One point per threshold, from answers with ``probability`` that were ``correct``."""
    points = []
    for threshold in thresholds:
        kept = probability >= threshold
        accuracy = float(correct[kept].mean()) if kept.any() else None
        points.append(CurvePoint(threshold, float(1 - kept.mean()) if len(kept) else 0.0, accuracy))
    return points


def winning(probabilities: Sequence[dict[str, float]], truth: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probability of the winning answer, whether it is ``truth``) for each answer given as ``{name: p}``."""
    best = [max(answer, key=answer.get) if answer else "" for answer in probabilities]  # type: ignore[arg-type]
    probability = np.array([answer.get(name, 0.0) for answer, name in zip(probabilities, best, strict=True)])
    correct = np.array([name == true for name, true in zip(best, truth, strict=True)], bool)
    return probability, correct
