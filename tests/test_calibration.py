"""Reliability tables, calibration error and the unknown curve: what the unknown thresholds are chosen from."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.tools.calibration import expected_calibration_error, reliability, unknown_curve, winning


def test_a_calibrated_set_has_no_calibration_error_and_an_overconfident_one_has() -> None:
    rng = np.random.default_rng(0)
    probability = rng.uniform(0.5, 1.0, 20000)
    honest = rng.uniform(size=20000) < probability  # right as often as it says
    overconfident = rng.uniform(size=20000) < 0.5 + (probability - 0.5) / 2  # says 0.9, is right 70% of the time
    edges = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert expected_calibration_error(reliability(probability, honest, edges)) < 0.01
    bins = reliability(probability, overconfident, edges)
    assert expected_calibration_error(bins) == pytest.approx(0.125, abs=0.01)
    assert sum(item.count for item in bins) == 20000 and len(bins) == 5  # every answer in one bin, the top included


def test_the_unknown_curve_trades_answers_for_accuracy() -> None:
    probability = np.array([0.55, 0.6, 0.7, 0.8, 0.9, 0.95])
    correct = np.array([False, True, False, True, True, True])
    points = unknown_curve(probability, correct, (0.5, 0.65, 0.85, 0.99))
    assert [round(point.unknown_share, 3) for point in points] == [0.0, 0.333, 0.667, 1.0]
    assert [point.accuracy_of_rest for point in points] == [pytest.approx(4 / 6), 0.75, 1.0, None]


def test_the_winning_answer_and_whether_it_was_right() -> None:
    probability, correct = winning(
        [{"female": 0.7, "male": 0.3}, {"female": 0.2, "male": 0.8}, {}], ["male", "male", "male"]
    )
    assert probability.tolist() == [0.7, 0.8, 0.0] and correct.tolist() == [False, True, False]
