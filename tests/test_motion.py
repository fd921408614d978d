"""The motion gate: an empty doorway skips the detector; light, noise and a flickering screen do not wake it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from analyzer.pipeline.motion import MotionGate
from tests.harness import NO_SERVERS, run_cli

FPS = 15


def _doorway(kind: str, frames: int = 150, seed: int = 1) -> Iterator[np.ndarray]:
    """A textured empty doorway with camera noise (sigma 4), and one thing happening to it."""
    rng = np.random.default_rng(seed)
    scene = cv2.resize(rng.integers(60, 200, (90, 160, 3)).astype(np.uint8), (640, 360), interpolation=cv2.INTER_CUBIC)
    noise = [rng.normal(0, 4, scene.shape).astype(np.float32) for _ in range(7)]
    for index in range(frames):
        frame = scene.astype(np.float32)
        if kind == "clouds":  # the whole picture 25% lighter and darker, a 6 s cycle
            frame *= 1 + 0.25 * np.sin(2 * np.pi * index / (6 * FPS))
        elif kind == "exposure":  # auto exposure jumps
            frame *= 1.3 if index > 40 else 1.0
        elif kind == "screen":  # a display in view flashing four times a second
            frame[50:130, 450:590] = 255 if (index // 2) % 2 else 30
        elif kind == "walker":  # a dark coat crossing the door
            left = -50 + index * 6
            frame[125:325, max(left, 0) : max(left + 80, 0)] = 40
        yield np.clip(frame + noise[index % len(noise)], 0, 255).astype(np.uint8)


def _looked_at(gate: MotionGate, frames: Iterator[np.ndarray], every: int) -> list[bool]:
    """The gate's answer on every ``every``-th frame (each standing for the ones passed over before it)."""
    return [gate.moving(frame, every) for index, frame in enumerate(frames) if index % every == 0]


# looked at every frame, and every third one as an idle camera does (LatestFrameSlot.stride)
EVERY = pytest.mark.parametrize("every", [1, 3])


@EVERY
@pytest.mark.parametrize("kind", ["still", "clouds", "exposure"])
def test_noise_and_light_changes_do_not_wake_the_gate(kind: str, every: int) -> None:
    moved = _looked_at(MotionGate(), _doorway(kind), every)
    assert moved[0] and not any(moved[1:])  # the first frame is always searched


@EVERY
def test_a_flickering_screen_is_learned_as_restless_within_seconds(every: int) -> None:
    moved = _looked_at(MotionGate(), _doorway("screen", frames=300), every)
    assert any(moved[1 : 30 // every])  # at first it looks like motion
    assert not any(moved[6 * FPS // every :])  # after a few seconds (the same ones either way) it is left out


@EVERY
def test_a_walker_wakes_the_gate_from_the_first_frames_and_while_in_view(every: int) -> None:
    moved = _looked_at(MotionGate(), _doorway("walker"), every)
    looked = [index * every for index in range(len(moved))]
    in_view = [index for index, frame in enumerate(looked) if 9 <= frame < 115]  # the coat is in from frame 9 to 114
    assert all(moved[index] for index in in_view if looked[index] < 20)
    assert sum(moved[index] for index in in_view) > 0.9 * len(in_view)


def _report(tmp_path: Path, clip: Path, gate: bool) -> tuple[list[dict], int, int]:
    name = "gated" if gate else "every"
    config = {"cameras": [{"id": "door", "source": str(clip), "detector": {"motion_gate": gate}}]}
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
    report = tmp_path / f"{name}.json"
    result = run_cli("run", "-c", str(tmp_path / f"{name}.yaml"), "--fast", "--report", str(report), *NO_SERVERS)
    assert result.returncode == 0, result.stderr
    door = json.loads(report.read_text())["cameras"]["door"]
    same = [
        {key: value for key, value in visit.items() if key not in ("visit_id", "start", "end")}
        for visit in door["visits"]
    ]
    return same, door["frames"], door.get("frames_motionless", 0)


@pytest.mark.slow
def test_gated_detection_counts_the_same_visitors_as_searching_every_frame(
    tmp_path: Path, walkers_clip: tuple[Path, int]
) -> None:
    clip, walkers = walkers_clip
    padded = tmp_path / "quiet-start.mp4"  # four seconds of the empty doorway before the walkers
    capture = cv2.VideoCapture(str(clip))
    ok, first = capture.read()
    writer = cv2.VideoWriter(str(padded), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (first.shape[1], first.shape[0]))
    background = np.median(np.stack([first, first]), axis=0).astype(np.uint8)
    for _ in range(4 * FPS):
        writer.write(background)
    while ok:
        writer.write(first)
        ok, first = capture.read()
    writer.release()
    every, frames, _ = _report(tmp_path, padded, gate=False)
    gated, gated_frames, motionless = _report(tmp_path, padded, gate=True)
    assert len(every) == walkers and gated == every and gated_frames == frames
    assert motionless > 3 * FPS  # most of the empty doorway skipped the detector
