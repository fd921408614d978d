"""One analyzer per output file: a second run on the same ``--report`` is refused, a dead run's claim is not."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from analyzer.errors import ConfigError
from analyzer.service.output_locks import OutputClaim, claimed
from tests.harness import NO_SERVERS, claimed_elsewhere, run_cli


def test_a_claimed_file_is_refused_naming_the_option_and_the_holder_and_free_again_once_released(
    tmp_path: Path,
) -> None:
    report = tmp_path / "reports" / "report.json"  # its folder is made
    first = OutputClaim("--report", report)
    with pytest.raises(ConfigError) as refused:
        OutputClaim("--report", report)
    assert str(refused.value) == (
        f"--report {report} is being written by another analyzer (pid {os.getpid()}); give each run its own file"
    )
    first.release()
    assert not (report.parent / ".report.json.lock").exists()
    OutputClaim("--report", report).release()


def test_claims_are_all_or_none_and_let_go_after_the_block(tmp_path: Path) -> None:
    taken = OutputClaim("--preview", tmp_path / "b.mp4")
    outputs = [("--report", tmp_path / "a.json"), ("--preview", tmp_path / "b.mp4")]
    with pytest.raises(ConfigError, match="--preview"), claimed(outputs):
        pass
    assert not (tmp_path / ".a.json.lock").exists()  # the first claim was let go when the second failed
    taken.release()
    with claimed(outputs):
        assert sorted(path.name for path in tmp_path.iterdir()) == [".a.json.lock", ".b.mp4.lock"]
    assert list(tmp_path.iterdir()) == []


def test_a_second_analyzer_on_the_same_report_stops_before_it_starts_and_leaves_the_file_alone(
    tmp_path: Path,
) -> None:
    template = tmp_path / "report-{date}.json"
    day_file = tmp_path / "report-2026-12-04.json"
    day_file.write_text('{"written by": "the first run"}\n')
    holder = claimed_elsewhere(template)
    try:
        second = run_cli("run", "--report", str(template), *NO_SERVERS)
    finally:
        holder.communicate("")
    assert second.returncode == 2  # a config error: systemd does not restart on it
    assert second.stderr.splitlines() == [
        f"error: --report {template} is being written by another analyzer (pid {holder.pid}); "
        "give each run its own file"
    ]
    assert day_file.read_text() == '{"written by": "the first run"}\n'


def test_the_claim_of_a_killed_run_does_not_block_the_next(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    holder = claimed_elsewhere(report)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    assert (tmp_path / ".report.json.lock").read_text() == f"{holder.pid}\n"  # left behind, but nobody holds it
    claim = OutputClaim("--report", report)
    assert (tmp_path / ".report.json.lock").read_text() == f"{os.getpid()}\n"
    claim.release()
