"""The final summary table a run prints."""

from __future__ import annotations

from analyzer.attributes import TrackAttributes
from analyzer.footfall import Visit
from analyzer.report import RunReport


def _visit(camera: str, gender: str, age_group: str, direction: str | None) -> Visit:
    attributes = TrackAttributes(age_group, gender, {age_group: 0.9}, {gender: 0.9}, 30.0, 3)
    return Visit(camera, "v", 0.0, 2.0, 0.0, 2.0, attributes, direction=direction)


def test_table_counts_each_camera_by_gender_age_group_and_direction() -> None:
    report = RunReport(["door", "till"], "fairface9")
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


def test_table_has_no_direction_columns_without_a_line() -> None:
    report = RunReport(["door"], "fairface9")
    report.add(_visit("door", "male", "20-29", None))
    header, _, door, _ = report.table().splitlines()
    assert header.split() == ["camera", "visitors", "female", "male", "unknown", "20-29"]
    assert door.split() == ["door", "1", "0", "1", "0", "1"]
