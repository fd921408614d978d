import numpy as np

from analyzer.age_groups import FINE_AGE_EDGES, parse_grouping
from analyzer.evaluation import agreement, attribute_report


def one_hot_ages(ages: list[int]) -> np.ndarray:
    probs = np.zeros((len(ages), len(FINE_AGE_EDGES)), np.float32)
    probs[np.arange(len(ages)), ages] = 1.0
    return probs


def test_metrics_on_a_hand_computed_case() -> None:
    grouping = parse_grouping("fairface9", ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"])
    true_ages = np.array([25, 40, 8, 71])
    true_genders = np.array([1, 0, 0, 1])
    # predictions: 27 (same group), 62 (two groups off), 8 (exact), 65 (one group off)
    age_probs = one_hot_ages([27, 62, 8, 65])
    gender_probs = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6], [0.3, 0.7]], np.float32)
    report = attribute_report(
        true_ages,
        true_genders,
        age_probs,
        gender_probs,
        FINE_AGE_EDGES,
        np.asarray(FINE_AGE_EDGES),
        [grouping],
        races=["White", "Black", "White", None],
    )
    assert report["n"] == 4
    assert report["gender_accuracy"] == 0.75  # third face wrong
    assert np.isclose(report["age_mae"], (2 + 22 + 0 + 6) / 4)
    fairface = report["groups"]["fairface9"]
    assert fairface["exact"] == 0.5
    assert fairface["within_one"] == 0.75
    confusion = np.array(fairface["confusion"])
    assert confusion.sum() == 4 and confusion[3, 3] == 1 and confusion[5, 7] == 1 and confusion[8, 7] == 1
    assert report["by_gender"]["female"]["n"] == 2
    assert report["by_gender"]["female"]["gender_accuracy"] == 0.5
    assert report["by_race"]["White"]["n"] == 2 and report["by_race"]["unknown"]["n"] == 1
    assert report["by_age_group"]["20-29"]["fairface9_exact"] == 1.0


def test_group_prediction_uses_summed_bin_probabilities() -> None:
    grouping = parse_grouping("two", ["0-29", "30+"])
    probs = np.zeros((1, len(FINE_AGE_EDGES)), np.float32)
    probs[0, 29] = 0.4  # single most likely bin is in the first group ...
    probs[0, 30:33] = 0.2  # ... but the second group holds 0.6
    report = attribute_report(
        np.array([31]),
        np.array([0]),
        probs,
        np.array([[1.0, 0.0]]),
        FINE_AGE_EDGES,
        np.asarray(FINE_AGE_EDGES),
        [grouping],
    )
    assert report["groups"]["two"]["exact"] == 1.0


def test_agreement_counts_changed_answers() -> None:
    grouping = parse_grouping("fairface9", ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"])
    ages = one_hot_ages([25, 35, 45, 55])
    other = one_hot_ages([26, 35, 45, 61])
    genders = np.array([[0.9, 0.1]] * 4, np.float32)
    other_genders = genders.copy()
    other_genders[0] = [0.2, 0.8]
    result = agreement(ages, genders, other, other_genders, FINE_AGE_EDGES, grouping)
    assert result["gender"] == 0.75
    assert result["fairface9"] == 0.75
