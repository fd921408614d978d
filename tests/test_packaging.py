"""The analyzer as a wheel: it carries its networks, configs and schema, and runs outside a checkout."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from tests.conftest import REPO


def test_an_installed_wheel_runs_the_demo_from_another_folder(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # the dependencies this environment already has; its .pth files (our editable install) are not read from there
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = dist.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    in_tree = {path.relative_to(REPO).as_posix() for path in (REPO / "analyzer").rglob("*.py")}
    assert in_tree - shipped == set()  # pyproject.toml lists every package
    assert {"analyzer/engines/agegender.onnx", "analyzer/configs/default.yaml"} <= shipped
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [fresh / "bin" / "analyzer", "run", "--fast", "--report", "report.json", "--web-port", "0"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((elsewhere / "report.json").read_text())
    assert report["totals"]["visitors"] == 6  # the demo's six walkers, as `make run` counts them
    where = subprocess.run(
        [python, "-c", "import analyzer.core.shipped as s; print(s.shipped_path('engines'))"],
        cwd=elsewhere,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site)  # the wheel's network, not this checkout's
    reads_the_page = (
        "import analyzer.outputs.web.server as server\n"
        "for name in (*server.PAGES.values(), 'today.js', 'setup.js', 'common.js', 'style.css', 'favicon.svg'):\n"
        "    server._asset(name)\n"
        "print(server.__file__)"
    )
    page = subprocess.run(  # the web page's files are in the wheel, found from another folder
        [python, "-c", reads_the_page], cwd=elsewhere, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert Path(page).is_relative_to(site)
