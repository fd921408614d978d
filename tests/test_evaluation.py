from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer.core.age_groups import FINE_AGE_EDGES, parse_grouping
from analyzer.datasets.labels import read_labels
from analyzer.datasets.scores import attribute_report
from analyzer.tools.evaluation import agreement

REPO = Path(__file__).resolve().parents[1]


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


def test_nothing_to_score_is_an_error_not_zero_accuracy(
    tmp_path: Path, utkface: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzer.cli import main

    face = read_labels(utkface)[0]
    cv2.imwrite(str(tmp_path / "wall.jpg"), np.full((120, 120, 3), 90, np.uint8))
    (tmp_path / "labels.csv").write_text(
        f"path,age,gender,md5\n{face.path},30,male,ffffffff\nwall.jpg,40,female,ffffffff1\n"
    )
    model = ["evaluate", "--model", str(REPO / "engines" / "agegender.onnx"), "--data", str(tmp_path), "--no-fp16"]
    assert main([*model, "--split", "validation"]) == 1
    assert "none of the 2 labelled faces is on the validation side of the md5 split (about 1 face in 10" in (
        capsys.readouterr().err
    )
    assert main([*model, "--limit", "1", "--align", "detect"]) == 0  # the face photo alone
    assert " on 1 face of " in capsys.readouterr().out
    assert main([*model, "--align", "detect"]) == 0
    assert "on 1 face of " in (out := capsys.readouterr().out) and "; 1 photo without a findable face left out" in out
    (tmp_path / "labels.csv").write_text("path,age,gender\nwall.jpg,40,female\n")
    assert main([*model, "--align", "detect"]) == 1  # was "gender accuracy 0.0000" on 0 faces
    assert "no face was found in any of its 1 photos (--align detect); for photos that are tight face crops" in (
        capsys.readouterr().err
    )
