"""``analyzer check``: what a few seconds of each camera show, and the advice an installer gets."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from analyzer.config import CameraConfig
from analyzer.demo import demo_walkers
from analyzer.detect import FaceDetector
from analyzer.site_check import COUNTING_FACE_PX, advice_for, check_camera
from tests.harness import run_cli
from tests.stream_server import RtspDoor


def _scaled_copy(clip: Path, scale: float, out: Path) -> Path:
    """The same clip with every frame resized: the same scene seen by a camera with fewer pixels."""
    capture = cv2.VideoCapture(str(clip))
    writer = None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
        if writer is None:
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 15, size)
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    capture.release()
    assert writer is not None
    writer.release()
    return out


def test_check_measures_frames_and_face_widths_in_the_cameras_pixels(
    walkers_clip: tuple[Path, int], tmp_path: Path
) -> None:
    clip, _ = walkers_clip
    half = _scaled_copy(clip, 0.5, tmp_path / "half.mp4")
    full_check = check_camera(CameraConfig(id="full", source=str(clip)), 3.0, 28, FaceDetector.from_config)
    half_check = check_camera(CameraConfig(id="half", source=str(half)), 3.0, 28, FaceDetector.from_config)
    assert (full_check.width, full_check.height, half_check.width, half_check.height) == (1280, 720, 640, 360)
    assert not full_check.failed and full_check.frames >= 30 and 10 <= full_check.fps <= 20  # a 15 fps file, played
    true_widths = [walker.face_px for walker in demo_walkers(12.0, 3, 1280, seed=5)]  # the walkers_clip's people
    assert full_check.detections > 10 and 0.6 * min(true_widths) <= full_check.face_px[1] <= 1.2 * max(true_widths)
    assert 0.4 <= half_check.face_px[1] / full_check.face_px[1] <= 0.6  # half the pixels, half the width
    assert full_check.advice == []


@pytest.mark.parametrize(
    ("fps", "widths", "tiles", "expected"),
    [
        (15.0, [60.0, 80.0, 90.0], 1, []),
        (4.0, [60.0, 80.0, 90.0], 1, ["4.0 fps is low"]),
        (15.0, [], 1, ["no face seen in 10 s"]),
        (15.0, [18.0, 20.0, 24.0], 1, ["faces are 20 px wide (median): below 28 px (sampler.min_face_px)"]),
        (15.0, [30.0, 34.0, 36.0], 1, ["faces are 34 px wide (median)", "set detector.tiles: 2"]),
        (15.0, [30.0, 34.0, 36.0], 2, ["faces are 34 px wide (median)", "and more; zoom in"]),
    ],
)
def test_advice_names_what_to_change(fps: float, widths: list[float], tiles: int, expected: list[str]) -> None:
    advice = advice_for(fps, np.array(widths), 10.0, 28, tiles)
    text = " | ".join(advice)
    assert all(words in text for words in expected), text
    assert bool(advice) == bool(expected)
    if tiles == 2:
        assert "tiles" not in text  # already tiled: only zooming in helps
    assert COUNTING_FACE_PX == 40  # the size docs/ACCURACY.md counts on


def test_check_command_fails_only_for_cameras_without_frames_and_never_shows_a_password(
    walkers_clip: tuple[Path, int], tmp_path: Path
) -> None:
    door = RtspDoor().start()
    cameras = [
        {"id": "door", "source": str(walkers_clip[0])},
        {"id": "gone", "source": str(tmp_path / "gone.mp4")},
        {"id": "street", "source": door.url("admin", "Wr0ngPass"), "reconnect_backoff_s": 0.5},
    ]
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({"cameras": cameras}))
    try:
        result = run_cli("check", "-c", str(config), "--seconds", "3", "--json", str(tmp_path / "check.json"))
    finally:
        door.stop()
    assert result.returncode == 1, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:5]}
    assert rows["door"].endswith("ok") and rows["gone"].endswith("FAILED") and rows["street"].endswith("FAILED")
    assert "[gone] file " in result.stdout and "not found" in result.stdout
    assert "[street] rtsp://admin:***@127.0.0.1:" in result.stdout
    assert "refused the user name or password (401 Unauthorized); check them\n" in result.stdout + "\n"
    assert "Wr0ngPass" not in result.stdout + result.stderr + (tmp_path / "check.json").read_text()
    figures = {entry["camera"]: entry for entry in json.loads((tmp_path / "check.json").read_text())}
    assert [figures[name]["failed"] for name in ("door", "gone", "street")] == [False, True, True]
    assert figures["door"]["detections"] > 0 and figures["door"]["width"] == 1280


def test_check_refuses_a_silly_watch_time() -> None:
    result = run_cli("check", "--source", "demo", "--seconds", "0")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--seconds 0" in result.stderr
