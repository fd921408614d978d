"""The code runs on Python 3.10: JetPack 6 on Jetson Orin ships it, with TensorRT's bindings built for it.

No 3.10 interpreter is installable on our machines, so vermin reads the code
for syntax, standard-library modules, functions and arguments newer than 3.10.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: vermin's false alarms here: ``bytes.decode`` read as Python 2's ``str.decode``, and a ``context=`` keyword
#: of our own passed inside a thread's target read as 3.14's ``threading.Thread(context=...)``.
FALSE_ALARMS = ("str.decode", "threading.Thread(context)")


def _vermin(*paths: Path) -> subprocess.CompletedProcess[str]:
    vermin = Path(sys.executable).parent / "vermin"
    assert vermin.is_file(), f"{vermin} missing: install the dev extra (pip install -e '.[dev]')"
    excludes = [argument for name in FALSE_ALARMS for argument in ("--exclude", name)]
    command = [str(vermin), "-t=3.10-", "--violations", "--no-tips", "--eval-annotations", *excludes, *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_nothing_in_the_code_needs_python_newer_than_3_10() -> None:
    result = _vermin(REPO / "analyzer", REPO / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_finds_what_python_3_10_lacks(tmp_path: Path) -> None:
    newer = tmp_path / "newer.py"
    newer.write_text("import tomllib\nfrom datetime import UTC\n")
    result = _vermin(newer)
    assert result.returncode != 0 and "'tomllib' module requires !2, 3.11" in result.stdout, result.stdout
