"""The final summary table a run prints."""

from __future__ import annotations

import dataclasses

from analyzer.core.age_groups import builtin_grouping
from analyzer.core.visits import TrackAttributes, Visit
from analyzer.outputs.report import RunReport

FAIRFACE9 = builtin_grouping("fairface9")


def _visit(camera: str, gender: str, age_group: str, direction: str | None) -> Visit:
    attributes = TrackAttributes(age_group, gender, {age_group: 0.9}, {gender: 0.9}, 30.0, 3)
    return Visit(camera, "v", 0.0, 2.0, 0.0, 2.0, attributes, direction=direction)


def test_table_counts_each_camera_by_gender_age_group_and_direction() -> None:
    report = RunReport(["door", "till"], FAIRFACE9)
    for visit in [
        _visit("door", "female", "20-29", "in"),
        _visit("door", "male", "30-39", "in"),
        _visit("door", "male", "30-39", "out"),
        _visit("door", "female", "20-29", "none"),
        _visit("till", "female", "30-39", None),  # no line on this camera
    ]:
        report.add(visit)
    rows = {line.split()[0]: line.split() for line in report.table().splitlines()}
    assert rows["camera"] == ["camera", "visitors", "female", "male", "unknown", "in", "out", "20-29", "30-39"]
    assert rows["door"] == ["door", "4", "2", "2", "0", "2", "1", "2", "2"]
    assert rows["till"] == ["till", "1", "1", "0", "0", "-", "-", "0", "1"]
    assert rows["TOTAL"] == ["TOTAL", "5", "3", "2", "0", "2", "1", "2", "3"]


def test_the_status_line_says_how_many_came_in_and_went_out_on_a_camera_with_a_line() -> None:
    report = RunReport(["door", "till", "back"], FAIRFACE9, lined={"door", "back"})
    for visit in [
        _visit("door", "female", "20-29", "in"),
        _visit("door", "male", "30-39", "none"),
        _visit("till", "female", "30-39", None),
    ]:
        report.add(visit)
    report.stats["door"].state = "up"
    assert report.status_line("door").endswith("| 0 faces in view | 2 visitors (in 1, out 0) | 0 frames dropped")
    report.stats["till"].faces_in_view, report.stats["till"].dropped = 1, 1
    assert report.status_line("till").endswith("| 1 face in view | 1 visitor | 1 frame dropped")
    # a camera with a line says so before anyone has been counted: in the status line and the table
    assert report.status_line("back").endswith("| 0 faces in view | 0 visitors (in 0, out 0) | 0 frames dropped")
    rows = {line.split()[0]: line.split() for line in report.table().splitlines()}
    assert rows["back"][:7] == ["back", "0", "0", "0", "0", "0", "0"] and rows["till"][5:7] == ["-", "-"]


def test_a_summary_on_a_camera_with_a_line_has_in_out_and_none_from_the_start() -> None:
    report = RunReport(["door", "till", "back"], FAIRFACE9, lined={"door", "back"})
    for visit in [
        _visit("door", "female", "20-29", "in"),
        _visit("door", "male", "30-39", "none"),
        _visit("till", "female", "30-39", None),
    ]:
        report.add(visit)
    assert report.summary("door")["by_direction"] == {"in": 1, "out": 0, "none": 1}
    assert report.summary("back")["by_direction"] == {"in": 0, "out": 0, "none": 0}  # nobody counted yet
    assert "by_direction" not in report.summary("till")
    assert report.summary("door")["visitors"] == 2 and report.summary("door")["by_gender"] == {"female": 1, "male": 1}


def test_table_has_no_direction_columns_without_a_line() -> None:
    report = RunReport(["door"], FAIRFACE9)
    report.add(_visit("door", "male", "20-29", None))
    header, _, door, _ = report.table().splitlines()
    assert header.split() == ["camera", "visitors", "female", "male", "unknown", "20-29"]
    assert door.split() == ["door", "1", "0", "1", "0", "1"]


def test_age_groups_go_youngest_first_in_the_table_the_report_and_the_summaries() -> None:
    """Group names sort wrongly as text: "3-9" after "20-29", "young" after "old"."""
    for grouping, seen in [
        (FAIRFACE9, ["20-29", "3-9", "unknown", "70+", "10-19"]),
        (builtin_grouping("three"), ["young", "old", "middle", "unknown"]),
    ]:
        report = RunReport(["door"], grouping)
        for age_group in seen:
            report.add(_visit("door", "female", age_group, None))
            report.add(_visit("door", "male", age_group, None))
        youngest_first = [name for name in grouping.names if name in seen] + ["unknown"]
        assert report.table().splitlines()[0].split()[5:] == youngest_first
        totals = report.to_dict()["totals"]
        assert list(totals["by_age_group"]) == youngest_first
        assert list(totals["by_age_group_gender"]) == [
            f"{name}|{gender}" for name in youngest_first for gender in ("female", "male")
        ]
        assert list(report.tallies["door"].to_dict(grouping.names)["by_age_group"]) == youngest_first


def test_a_report_that_lists_only_the_latest_visits_still_counts_them_all() -> None:
    # a service with one --report file ran for months: every visit was held in memory until the end
    report = RunReport(["door", "till"], FAIRFACE9, keep_visits=2)
    for index in range(5):
        report.add(
            dataclasses.replace(_visit("door", "female" if index % 2 else "male", "20-29", None), visit_id=f"v{index}")
        )
    report.add(_visit("till", "female", "30-39", None))
    document = report.to_dict()
    door = document["cameras"]["door"]
    assert [visit["visit_id"] for visit in door["visits"]] == ["v3", "v4"] and door["visits_left_out"] == 3
    assert door["totals"]["visitors"] == 5 and door["totals"]["by_gender"] == {"female": 2, "male": 3}
    assert "visits_left_out" not in document["cameras"]["till"]
    assert document["totals"]["visitors"] == 6
    nothing_listed = RunReport(["door"], FAIRFACE9, keep_visits=0)  # no report asked for: totals only
    nothing_listed.add(_visit("door", "male", "20-29", None))
    assert nothing_listed.visits["door"] == [] and nothing_listed.tallies["door"].visitors == 1
