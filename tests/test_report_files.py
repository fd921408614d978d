"""``--report 'report-{date}.json'``: a file per day, written as the day goes, old days let go from memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.core.age_groups import builtin_grouping
from analyzer.core.visits import TrackAttributes, Visit, random_visit_id
from analyzer.errors import ConfigError
from analyzer.outputs.daily_reports import DailyReportFiles
from analyzer.outputs.report import RunReport
from analyzer.service.output_locks import OutputClaim
from tests.harness import NO_SERVERS, ManualClock, claimed_elsewhere, run_cli, wait_for

FAIRFACE9 = builtin_grouping("fairface9")


def _visit(camera: str, end: datetime, gender: str = "female", direction: str | None = None) -> Visit:
    attributes = TrackAttributes("20-29", gender, {"20-29": 0.9}, {gender: 0.9}, 25.0, 3)
    return Visit(camera, random_visit_id(), end.timestamp() - 5, end.timestamp(), 0.0, 5.0, attributes, direction)


def _day(path: Path) -> dict:
    return json.loads(path.read_text())


def test_each_day_has_its_file_written_as_it_goes_and_lets_its_visits_go_when_over(tmp_path: Path) -> None:
    clock, log = ManualClock(), []
    report = RunReport(["door", "till"], FAIRFACE9)
    files = DailyReportFiles(tmp_path / "report-{date}.json", FAIRFACE9, 60, 3600, log.append, clock)
    december_1, december_2 = tmp_path / "report-2026-12-01.json", tmp_path / "report-2026-12-02.json"
    evening = datetime(2026, 12, 1, 23, 50)
    for minutes, camera in [(0, "door"), (5, "till"), (9, "door")]:
        report.add(_visit(camera, evening + timedelta(minutes=minutes), direction="in"))
    assert not files.due()
    clock.now += 60
    assert files.due() and files.write(report) == [december_1] and not files.due()
    document = _day(december_1)
    assert document["date"] == "2026-12-01" and document["totals"]["visitors"] == 3
    assert document["totals"]["by_direction"] == {"in": 3}
    assert [len(document["cameras"][camera]["visits"]) for camera in ("door", "till")] == [2, 1]
    assert files.write(report) == []  # nothing new: the file is not written again

    report.add(_visit("door", datetime(2026, 12, 2, 0, 20)))
    assert files.write(report) == [december_2]
    assert len(report.visits["door"]) == 3  # 20 minutes into the new day: yesterday is kept for late visits
    report.add(_visit("door", datetime(2026, 12, 2, 1, 0)))
    assert files.write(report) == [december_2]
    assert [len(report.visits[camera]) for camera in ("door", "till")] == [2, 0]  # December 1 let go
    assert report.tallies["door"].visitors == 4 and report.tallies["till"].visitors == 1  # the run's totals keep all
    assert "20-29" in report.table().splitlines()[0]

    late = _visit("till", datetime(2026, 12, 1, 23, 59, 59))  # a camera far behind the others
    report.add(late)
    assert files.write(report) == [december_1]
    document = _day(december_1)
    assert document["totals"]["visitors"] == 4 and document["cameras"]["till"]["totals"]["visitors"] == 2
    assert late.visit_id in {visit["visit_id"] for visit in document["cameras"]["till"]["visits"]}
    assert _day(december_2)["totals"]["visitors"] == 2 and log == []


def test_an_earlier_run_s_file_of_the_day_is_added_to_and_a_foreign_one_kept_aside(tmp_path: Path) -> None:
    earlier = RunReport(["door"], FAIRFACE9)
    earlier.add(_visit("door", datetime(2026, 12, 3, 9, 0), gender="male"))
    DailyReportFiles(tmp_path / "r-{date}.json", FAIRFACE9).write(earlier, final=True)
    log: list[str] = []
    restarted = RunReport(["door", "street"], FAIRFACE9)  # the service restarted at noon, with a new camera
    restarted.add(_visit("street", datetime(2026, 12, 3, 12, 0)))
    DailyReportFiles(tmp_path / "r-{date}.json", FAIRFACE9, log=log.append).write(restarted, final=True)
    document = _day(tmp_path / "r-2026-12-03.json")
    assert document["totals"]["visitors"] == 2 and document["totals"]["by_gender"] == {"female": 1, "male": 1}
    assert sorted(document["cameras"]) == ["door", "street"] and log == []

    (tmp_path / "r-2026-12-04.json").write_text("{not json")
    other = RunReport(["door"], FAIRFACE9)
    other.add(_visit("door", datetime(2026, 12, 4, 10, 0)))
    DailyReportFiles(tmp_path / "r-{date}.json", FAIRFACE9, log=log.append).write(other, final=True)
    (kept,) = tmp_path.glob("r-2026-12-04.json.*.old")
    assert kept.read_text() == "{not json" and _day(tmp_path / "r-2026-12-04.json")["totals"]["visitors"] == 1
    assert len(log) == 1 and "r-2026-12-04.json: not a report this run can add to" in log[0] and kept.name in log[0]


def test_a_day_s_file_another_run_writes_by_its_own_name_waits_and_is_claimed_once_written(tmp_path: Path) -> None:
    report = RunReport(["door"], FAIRFACE9)
    report.add(_visit("door", datetime(2026, 12, 3, 9, 0)))
    day_file = tmp_path / "report-2026-12-03.json"
    holder = claimed_elsewhere(day_file)  # `analyzer run --report report-2026-12-03.json`, started first
    log: list[str] = []
    files = DailyReportFiles(tmp_path / "report-{date}.json", FAIRFACE9, log=log.append)
    try:
        assert files.write(report) == [] and not day_file.exists()  # counting goes on; the visit waits
    finally:
        holder.communicate("")
    assert log == [
        f"--report {day_file} is being written by another analyzer (pid {holder.pid}); "
        "give each run its own file; trying again in 60 s"
    ]
    assert files.write(report) == [day_file] and _day(day_file)["totals"]["visitors"] == 1
    with pytest.raises(ConfigError, match="is being written by another analyzer"):  # now this run's
        OutputClaim("--report", day_file)
    files.write(report, final=True)  # the stop lets go of it
    OutputClaim("--report", day_file).release()


def test_a_run_across_midnight_writes_each_visit_into_the_day_it_ended(
    walkers_clip: tuple[Path, int], tmp_path: Path
) -> None:
    clip, true_visitors = walkers_clip
    run = ["run", "--source", str(clip), "--fast", *NO_SERVERS]
    plain = run_cli(*run, "--recorded-at", "2026-11-30T12:00", "--report", str(tmp_path / "plain.json"))
    assert plain.returncode == 0, plain.stderr
    ends = sorted(visit["stream_end"] for visit in _day(tmp_path / "plain.json")["cameras"]["walkers"]["visits"])
    midnight = datetime(2026, 12, 1)  # this box's time, as --recorded-at without a zone
    recorded_at = midnight - timedelta(seconds=(ends[0] + ends[1]) / 2)  # the first visit ends before it
    daily = run_cli(*run, "--recorded-at", recorded_at.isoformat(), "--report", str(tmp_path / "report-{date}.json"))
    assert daily.returncode == 0, daily.stderr
    before, after = _day(tmp_path / "report-2026-11-30.json"), _day(tmp_path / "report-2026-12-01.json")
    assert before["totals"]["visitors"] == 1 and after["totals"]["visitors"] == true_visitors - 1
    for document in (before, after):
        for visit in document["cameras"]["walkers"]["visits"]:
            assert datetime.fromtimestamp(visit["end"]).date().isoformat() == document["date"]
    assert "report written to" in daily.stdout and "report-2026-11-30.json" in daily.stdout


def test_a_killed_run_leaves_the_day_written_up_to_its_last_rewrite(tmp_path: Path) -> None:
    """kill -9 (or the power going) between rewrites: the day's file is whole and holds what was counted."""
    template = tmp_path / "report-{date}.json"
    command = [
        sys.executable,
        "-m",
        "analyzer",
        "run",
        *NO_SERVERS,
        "--report",
        str(template),
        "--report-every",
        "1",
    ]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(tmp_path.glob("report-*.json")), 120, "the first visit's day file")
        time.sleep(0.5)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(30)
    finally:
        run.kill()
    (day_file,) = tmp_path.glob("report-*.json")
    document = _day(day_file)  # whole: it parses
    assert document["totals"]["visitors"] >= 1 and not list(tmp_path.glob(".*partial"))


def test_a_report_rewrite_interval_out_of_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--report", "r-{date}.json", "--report-every", "0"]) == 2
    assert capsys.readouterr().err == "error: --report-every 0: give 1..3600 seconds\n"
