"""configs/systemd/footfall-analyzer.service: the unit an edge box runs the analyzer with."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.cli import build_parser
from analyzer.config import MqttConfig
from analyzer.errors import ConfigError
from tests.conftest import REPO

UNIT = REPO / "configs" / "systemd" / "footfall-analyzer.service"


def _settings(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file, all values of repeated keys in order (systemd allows repeats)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def _exec_start(settings: dict[str, list[str]]) -> list[str]:
    (command,) = settings["ExecStart"]
    return shlex.split(command)


def test_the_unit_runs_the_analyzer_with_options_it_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    settings = _settings(UNIT.read_text())
    executable, *arguments = _exec_start(settings)
    assert executable == f"{settings['WorkingDirectory'][0]}/.venv/bin/analyzer"  # the make install virtualenv
    args = build_parser().parse_args(arguments)  # a renamed option fails here, with argparse's exit 2
    assert args.config == Path("/etc/footfall-analyzer/site.yaml") and args.report.parent.name == "footfall-analyzer"
    assert "{date}" in args.report.name  # a file per day, written as the day goes: months of visits never pile up
    # the directories systemd makes for the service user are the ones the command line and cache use
    assert str(args.config.parent) == "/etc/" + settings["ConfigurationDirectory"][0]
    assert str(args.report.parent) == "/var/lib/" + settings["StateDirectory"][0]
    environment = dict(entry.split("=", 1) for entry in settings["Environment"])
    assert environment["FOOTFALL_CACHE"] == "/var/cache/" + settings["CacheDirectory"][0]
    # the MQTT outbox goes to $XDG_STATE_HOME/footfall-analyzer: the state directory systemd makes
    outbox = MqttConfig().outbox_path().relative_to(Path("~/.local/state").expanduser())
    assert str(Path(environment["XDG_STATE_HOME"]) / outbox.parent) == "/var/lib/" + settings["StateDirectory"][0]
    # stopped the way the analyzer finishes open visits, and given the time to
    assert settings["KillSignal"] == ["SIGTERM"] and settings["KillMode"] == ["mixed"]
    assert int(settings["TimeoutStopSec"][0]) >= 10  # docs/OPERATIONS.md: it exits within a few seconds
    assert settings["Restart"] == ["on-failure"]  # which includes the watchdog's kill
    # it tells systemd when it is ready and pings the watchdog (tests/test_liveness.py speaks the protocol)
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert int(settings["WatchdogSec"][0]) >= 10  # well above the 1 s between pings


def test_a_broken_config_exits_with_a_code_the_unit_does_not_restart_on(tmp_path: Path) -> None:
    """Restarting cannot mend a config: the exact command line, given a broken one, must stop the restarts."""
    settings = _settings(UNIT.read_text())
    kept = {int(code) for code in settings["RestartPreventExitStatus"][0].split()}
    broken = tmp_path / "site.yaml"
    broken.write_text("cameras:\n  - id: door\n    source: demo\n    detector: {min_scor: 0.5}\n")
    _, *arguments = _exec_start(settings)
    arguments = [str(broken) if value.endswith("site.yaml") else value for value in arguments]
    arguments = [str(tmp_path / Path(value).name) if value.startswith("/var/lib/") else value for value in arguments]
    result = subprocess.run(
        [sys.executable, "-m", "analyzer", *arguments], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode in kept and ConfigError.exit_code in kept, result.stderr
    assert "min_scor: unknown key" in result.stderr and sorted(tmp_path.iterdir()) == [broken]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_accepts_every_line_of_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / UNIT.name
    analyzer = Path(sys.executable).with_name("analyzer")  # verify wants the executable to exist
    unit.write_text(UNIT.read_text().replace(_exec_start(_settings(UNIT.read_text()))[0], str(analyzer)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr  # an unknown or bad value only warns
