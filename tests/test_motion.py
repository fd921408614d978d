"""The motion gate: an empty doorway skips the detector; light, noise and a flickering screen do not wake it."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from analyzer.core.faces import Faces
from analyzer.pipeline.camera_stages import CameraStages
from analyzer.pipeline.capture import Frame, LatestFrameSlot
from analyzer.pipeline.footfall import FootfallCounter
from analyzer.pipeline.motion import MotionGate
from analyzer.pipeline.track import ByteTracker
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
        elif kind == "slow":  # a face-sized patch lightening too slowly to move the gate: 0.3 grey levels a frame
            frame[150:225, 300:360] += 0.3 * index
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


@EVERY
def test_a_change_too_slow_to_move_the_gate_adds_up_against_the_last_searched_picture(every: int) -> None:
    """The background learns the patch away, so the gate never moves; the picture last searched does not."""
    gate, moved = MotionGate(), []
    for index, frame in enumerate(_doorway("slow", frames=150)):
        if index % every == 0:
            moved.append(gate.moving(frame, every))
            if index == 0:
                gate.searched()
    assert moved[0] and not any(moved[1:])
    assert gate.changed_since_search()  # 45 grey levels in 10 s


@EVERY
@pytest.mark.parametrize("kind", ["still", "clouds", "exposure", "screen"])
def test_light_noise_and_a_flickering_screen_do_not_change_the_picture_since_its_last_search(
    kind: str, every: int
) -> None:
    gate, changed = MotionGate(), []
    for index, frame in enumerate(_doorway(kind, frames=300)):
        if index % every == 0:
            gate.moving(frame, every)
            if index == 6 * FPS:  # the screen is learned as restless by then
                gate.searched()
            elif index > 6 * FPS:
                changed.append(gate.changed_since_search())
    assert changed and not any(changed)


class StillDoorwayDetector:
    """Finds the same faces on every frame (none, or one too faint to start a track); notes each search's time."""

    def __init__(self, faces: Faces) -> None:
        self.faces = faces
        self.searched_at: list[float] = []

    def rgb(self, bgr: np.ndarray) -> np.ndarray:
        return bgr

    def detect(self, frame: np.ndarray, timestamp_ms: int) -> Faces:
        self.searched_at.append(timestamp_ms / 1000)
        return self.faces


#: A face the detector finds at 0.55: below the tracker's 0.6 that starts a track (a poster in the shade).
FAINT_FACE = Faces(
    np.array([[300, 150, 360, 225]], np.float32),
    np.array([0.55], np.float32),
    np.array([[[318, 175], [342, 175], [330, 190], [330, 205], [305, 180], [355, 180]]], np.float32),
)


def _searched_at(kind: str, seconds: float, faces: Faces | None = None) -> list[float]:
    """Stream times at which a gated camera with the shipped wake settings searched ``kind`` of still doorway."""
    detector = StillDoorwayDetector(Faces.empty() if faces is None else faces)
    stages = CameraStages("door", detector, ByteTracker(), FootfallCounter("door"), motion=MotionGate())  # type: ignore[arg-type]
    slot = LatestFrameSlot()
    frames = stages.frames(slot, every_n_frames=1, wait_s=1.0)
    for index, image in enumerate(_doorway(kind, frames=int(seconds * FPS))):
        slot.put(Frame("door", index, index / FPS, index / FPS, image))
        next(frames)
    return detector.searched_at


def test_an_unchanged_still_doorway_is_searched_every_ten_seconds_one_changing_unseen_more_often() -> None:
    """Nothing moves in either: the gate's wake-up searches the still picture again once a second only if it
    changed since its last search (``wake_every_s``), else every ten seconds (``wake_unchanged_every_s``)."""
    assert _searched_at("clouds", 25) == pytest.approx([0, 10, 20])
    slow = _searched_at("slow", 25)
    assert len(slow) >= 8 and all(1 <= later - earlier < 5 for earlier, later in itertools.pairwise(slow))


def test_a_still_picture_whose_last_search_found_a_faint_face_is_searched_every_second() -> None:
    """Its score moves with each frame's noise: the next search may start its track (the poster of test_face_check
    scores 0.50 to 0.64 on its frames, and 0.6 starts a track)."""
    assert _searched_at("clouds", 10, FAINT_FACE) == pytest.approx(list(range(10)))


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
