"""One camera's per-frame stages: a stage that fails on the frame a track ends does not lose the visit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analyzer.core.faces import Faces
from analyzer.core.tracks import Tracks
from analyzer.pipeline.camera_stages import CameraStages
from analyzer.pipeline.capture import Frame, LatestFrameSlot
from analyzer.pipeline.footfall import FootfallCounter, VisitEnded
from analyzer.pipeline.motion import MotionGate
from analyzer.pipeline.sample import Sampler
from analyzer.pipeline.track import ByteTracker

FPS = 15
WIDTH, HEIGHT = 640, 360
GONE_AT_S = 5.2  # the walker's face is last seen just before this
CLIP_S = 16.0
LINGER_S, REENTRY_WINDOW_S = 1.5, 2.0


class ScriptedDetector:
    """One face walking right until ``GONE_AT_S``, then none: the detector's answers without a model."""

    def rgb(self, bgr: np.ndarray) -> np.ndarray:
        return bgr[..., ::-1]

    def detect(self, frame: np.ndarray, timestamp_ms: int) -> Faces:
        t = timestamp_ms / 1000
        if t >= GONE_AT_S:
            return Faces.empty()
        x = 80 + 60 * t
        box = np.array([[x, 120, x + 60, 180]], np.float32)
        eyes_nose_mouth = [[x + 18, 140], [x + 42, 140], [x + 30, 155], [x + 30, 168], [x + 5, 145], [x + 55, 145]]
        return Faces(box, np.array([0.9], np.float32), np.array([eyes_nose_mouth], np.float32))


class SamplerFailingOnceFacesAreGone(Sampler):
    """A sampler that raises on every frame with a track no longer seen: the frame its end is reported on too."""

    def select(self, camera: str, frame_rgb: np.ndarray, tracks: Tracks, *args: object, **kwargs: object) -> list:
        if (len(tracks) and not tracks.matched.all()) or not len(tracks):
            raise RuntimeError("sampler broke")
        return super().select(camera, frame_rgb, tracks, *args, **kwargs)  # type: ignore[arg-type]


class CounterFailingOnceFacesAreGone(FootfallCounter):
    """A counter whose per-frame bookkeeping raises once the face is gone (its end bookkeeping works)."""

    def observe(self, tracks: Tracks, timestamp: float, frame_size: tuple[int, int]) -> None:
        if timestamp >= GONE_AT_S:
            raise RuntimeError("counter broke")
        super().observe(tracks, timestamp, frame_size)


def _run(sampler: Sampler, counter: FootfallCounter) -> tuple[list[tuple[float, VisitEnded]], int]:
    """Play ``CLIP_S`` seconds through the stages; each visit with the stream time it came out, and the failures."""
    stages = CameraStages(
        "door",
        ScriptedDetector(),
        ByteTracker(max_lost_s=LINGER_S),
        counter,
        sampler,  # type: ignore[arg-type]
    )
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    ended, failures = [], 0
    for index in range(int(CLIP_S * FPS)):
        outcome = stages.process(Frame("door", index, index / FPS, 0.0, image))
        failures += outcome.error is not None
        ended += [(index / FPS, visit) for visit in outcome.ended]
    return ended, failures


@pytest.mark.parametrize("failing", ["sampler", "counter"])
def test_a_stage_failing_on_the_frame_a_track_ends_does_not_hold_its_visit(failing: str) -> None:
    counter_class = CounterFailingOnceFacesAreGone if failing == "counter" else FootfallCounter
    counter = counter_class("door", min_duration_s=1.0, reentry_window_s=REENTRY_WINDOW_S)
    sampler = SamplerFailingOnceFacesAreGone(64) if failing == "sampler" else Sampler(64)
    ended, failures = _run(sampler, counter)
    assert failures > 10  # it failed on every frame from then on, the ending one included
    ((published_at, visit),) = ended
    assert visit.counted and visit.end == pytest.approx(GONE_AT_S, abs=0.1)
    # at its normal time: the tracker's linger, then the re-entry window; not at the end of the clip
    assert published_at == pytest.approx(GONE_AT_S + LINGER_S + REENTRY_WINDOW_S, abs=0.3)
    assert counter.close(0.0) == []  # nothing of it left in memory


GATED_WINDOW_S = 2.5  # not a whole number of the gate's 1 s wake-ups: the visit must end between two of them


def _through_the_gate(
    motion: MotionGate | None, counter_class: type[FootfallCounter] = FootfallCounter, idle_every_n_frames: int = 1
) -> tuple[list[tuple[int, VisitEnded]], list[int], list[int]]:
    """Play the walker through ``CameraStages.frames`` (a still picture: only the tracker keeps the search on),
    handing over only the frames the stages ask their slot for, as a capture worker does.

    Returns each visit with the frame it came out on, the frames the gate let skip the stages, and the frames
    passed over (never handed over: the camera was idle).
    """
    counter = counter_class("door", min_duration_s=1.0, reentry_window_s=GATED_WINDOW_S)
    tracker = ByteTracker(max_lost_s=LINGER_S)
    stages = CameraStages("door", ScriptedDetector(), tracker, counter, motion=motion)
    stages.idle_every_n_frames = idle_every_n_frames
    slot, image = LatestFrameSlot(), np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frames = stages.frames(slot, every_n_frames=1, wait_s=1.0)
    ended, skipped, passed_over = [], [], []
    since_handed = 0  # frames passed over since the last one handed over
    for index in range(int(CLIP_S * FPS)):
        if not slot.wants(index):
            passed_over.append(index)
            since_handed += 1
            continue
        slot.put(Frame("door", index, index / FPS, index / FPS, image, since_handed))
        since_handed = 0
        done = next(frames)
        assert done is not None and (done.error is None or counter_class is not FootfallCounter)
        over = done.outcome.ended if done.outcome else done.ended
        ended += [(index, dataclasses.replace(visit, visit_id="", clock_origin=0.0)) for visit in over]  # run's own
        skipped += [index] if done.motionless else []
    return ended, skipped, passed_over


@pytest.mark.parametrize("counter_class", [FootfallCounter, CounterFailingOnceFacesAreGone])
def test_a_lost_face_and_its_visit_waiting_out_their_time_sleep_the_gate_and_still_end_on_their_frame(
    counter_class: type[FootfallCounter],
) -> None:
    """No face in view and nothing moving: the frames while the tracker keeps the lost face (its linger) and
    then the visit's re-entry window skip the search, and the visit comes out on the same frame, the same, as
    when every frame is searched; a counter raising on them too."""
    every, none_skipped, _ = _through_the_gate(None, counter_class)
    gated, skipped, _ = _through_the_gate(MotionGate(), counter_class)
    assert none_skipped == [] and len(every) == 1 and every[0][1].counted
    assert gated == every
    for waiting in (
        range(round(GONE_AT_S * FPS) + 1, round((GONE_AT_S + LINGER_S) * FPS)),  # the lost face lingers
        range(round((GONE_AT_S + LINGER_S) * FPS) + 1, every[0][0]),  # its track is over, the visit waits
    ):
        woken = len(waiting) / FPS + 1  # once a second
        assert sum(index in skipped for index in waiting) >= len(waiting) - woken, (waiting, skipped)


def test_an_idle_camera_looks_at_every_third_frame_only_once_no_one_is_in_view_or_waited_for() -> None:
    """With no face in view, no lost track lingering and no visit waiting, nothing moving: the stages ask for
    every third frame; until then every frame, so the visit is the same and comes out on the same frame."""
    every, _, _ = _through_the_gate(None)
    gated, _, passed_over = _through_the_gate(MotionGate(), idle_every_n_frames=3)
    ((visit_frame, _),) = every
    assert gated == every
    assert passed_over and min(passed_over) > visit_frame  # only once the visit was over
    idle = range(visit_frame + 1, int(CLIP_S * FPS))
    wake_ups = len(idle) // FPS + 1  # a still picture is searched once a second: every frame around it is looked at
    assert len(passed_over) >= 2 * len(idle) // 3 - 2 * wake_ups  # two of every three frames from then on
