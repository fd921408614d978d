"""Real camera footage judged by eye (../shared/data/real-clips): only people's faces become visitors.

Each clip runs as a new user runs it (``analyzer run --source CLIP --fast``, the shipped defaults), and
the classroom with the settings ``analyzer check`` proposes for it; ``analyzer score`` judges the report
against ``truth.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from tests.harness import NO_SERVERS, run_cli

REAL_CLIPS = SHARED_DATA / "real-clips"
TRUTH = REAL_CLIPS / "truth.json"


def _run_and_score(tmp_path: Path, clip: str, *run_options: str) -> dict:
    report = tmp_path / f"{Path(clip).stem}.json"
    result = run_cli(
        "run",
        "--source",
        str(REAL_CLIPS / clip),
        "--fast",
        *NO_SERVERS,
        "--report",
        str(report),
        *run_options,
    )
    assert result.returncode == 0, result.stderr
    scored = run_cli("score", "--truth", str(TRUTH), "--report", str(report), "--json")
    (score,) = json.loads(scored.stdout)["clips"]
    return {**score, "visits": json.loads(report.read_text())["cameras"][Path(clip).stem]["visits"]}


@pytest.mark.parametrize("clip", ["one-by-one-backview.mp4", "store-aisle-backs.mp4"])
def test_people_seen_only_from_behind_are_not_visitors_with_an_age_or_a_gender(tmp_path: Path, clip: str) -> None:
    # before the face check: 4 visitors from the backs of six heads, two of them "70+"
    score = _run_and_score(tmp_path, clip)
    assert score["with_attributes"] == 0 and score["counted"] <= 1, score
    assert score["passes"], score["wrong"]


def test_a_woman_turning_from_profile_to_the_camera_is_one_visitor_female(tmp_path: Path) -> None:
    score = _run_and_score(tmp_path, "head-pose-female.mp4")
    assert score["counted"] == 1 and score["gender_right"] == score["gender_checked"] == 1, score
    assert score["passes"]


def test_four_small_seated_faces_are_found_with_what_check_proposes_and_each_counted_once(tmp_path: Path) -> None:
    # faces of 15-30 px from a ceiling camera: the shipped whole-frame search found 1 of them
    clip = REAL_CLIPS / "classroom-seated.mp4"
    checked = run_cli("check", "--source", str(clip), "--json", str(tmp_path / "check.json"))
    assert checked.returncode == 0, checked.stderr
    (check,) = json.loads((tmp_path / "check.json").read_text())
    assert check["people"] < 4 and check["proposed_detector"] == {"tiles": 3}
    assert "with detector.tiles: 3 the check found 4 people" in checked.stdout
    config = tmp_path / "classroom.yaml"
    camera = {"id": "classroom", "source": str(clip), "detector": check["proposed_detector"]}
    config.write_text(json.dumps({"cameras": [camera]}))  # JSON is YAML; --source borrows its one camera's settings
    score = _run_and_score(tmp_path, "classroom-seated.mp4", "-c", str(config))
    assert score["counted"] == 4 and score["passes"], score
    positions = sorted(round(visit["first_position"][0], 1) for visit in score["visits"])
    assert len(set(positions)) == 4  # four places, each counted once
