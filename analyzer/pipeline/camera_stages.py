"""One camera's work on a frame: detect, track, check faces, sample and count. ``run`` and ``check`` share it.

A stage that raises costs that frame, never a visit: the tracker reports a
track's end once, on one frame, and whatever else fails on that frame the
counter still hears of it (:meth:`FootfallCounter.end_tracks`), so the
visit is published at its normal time and its likeness leaves memory on
time. Detection or tracking failing means the frame was not searched at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from analyzer.core.faces import Faces
from analyzer.core.tracks import Tracks
from analyzer.core.visits import random_visit_id
from analyzer.core.zones import Zone
from analyzer.pipeline.appearance import FaceLikeness
from analyzer.pipeline.capture import EndOfStream, Frame, LatestFrameSlot
from analyzer.pipeline.detect import FaceDetector
from analyzer.pipeline.face_check import FaceCheck
from analyzer.pipeline.footfall import FootfallCounter, VisitEnded
from analyzer.pipeline.motion import MotionGate
from analyzer.pipeline.sample import Sample, Sampler
from analyzer.pipeline.track import ByteTracker

if TYPE_CHECKING:
    from analyzer.config import CameraConfig, Config


def masked(boxes: np.ndarray, width: int, height: int, masks: Sequence[Zone]) -> np.ndarray:
    """(N,) bool: whether each box's centre lies inside one of ``masks`` (frame fractions)."""
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2 / width, (boxes[:, 1] + boxes[:, 3]) / 2 / height], axis=1)
    return np.array([any(mask.contains((float(x), float(y))) for mask in masks) for x, y in centres], bool)


def _looked_at(first: int, end: int, every_n_frames: int) -> int:
    """How many of the frames ``first`` .. ``end - 1`` are ``every_n_frames``-th ones, the ones the stages look at."""
    return (end - 1) // every_n_frames - (first - 1) // every_n_frames


@dataclass
class FrameOutcome:
    """What one searched frame produced.

    Attributes:
        faces: what the detector found.
        tracks: the tracks alive after this frame.
        samples: face chips to classify.
        ended: visits that are over.
        seconds: time spent per stage (``detect``, ``track``, ``sample``).
        error: the first stage that raised after tracking (sampling or counting), if any; the
            frame still counted what it could.
    """

    faces: Faces
    tracks: Tracks
    samples: list[Sample] = field(default_factory=list)
    ended: list[VisitEnded] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    error: Exception | None = None


@dataclass(frozen=True)
class FrameDone:
    """One frame of a camera's stream, after :meth:`CameraStages.frames` gave it to the stages.

    Attributes:
        frame: the frame.
        outcome: what the stages made of it; None when it was not searched (not an ``every_n_frames``-th
            frame: the tracker predicts across it) or when detection or tracking raised.
        error: what detection or tracking raised on it, if they did.
        motionless: the motion gate let it skip the search (taken as searched and found empty).
        ended: on a motionless frame, the visits that ended on it: a lost face's track or a re-entry window
            ran out (a searched frame's are in its ``outcome``).
        still_passed_over: of the frames passed over just before it (``frame.passed_over``, the camera was
            idle), those the stages would have looked at (every ``every_n_frames``-th): still frames too.
    """

    frame: Frame
    outcome: FrameOutcome | None = None
    error: Exception | None = None
    motionless: bool = False  # not searched because nothing moved and no face was in view (the motion gate)
    ended: list[VisitEnded] = field(default_factory=list)
    still_passed_over: int = 0  # of the frames passed over before it, those the stages would have looked at

    @property
    def still(self) -> int:
        """Frames the gate let skip the search, this one's share: passed over while idle, or looked at and still."""
        return self.still_passed_over + self.motionless


class CameraStages:
    """The per-frame stages of one camera, in order, each given its settings by the caller.

    Args:
        camera: camera id (on every sample).
        detector: finds faces.
        tracker: follows them.
        counter: turns tracks into visits.
        sampler: picks face chips to classify; None for ``analyzer check``, which classifies nothing.
        likeness: the face likeness model for the tracker's appearance cue, or None (colours only).
        every_face: classify every face of every frame (the bench's naive baseline).
        face_check: which tracks are faces (only those count and vote); None counts every track.
        masks: polygons (frame fractions) where no face is looked for: a face whose box centre is inside is dropped.
        motion: the motion gate: frames where nothing moved and no face is in view skip the search; None searches all.
        wake_every_s: with a gate, a still picture is searched anyway this often if it changed since its last
            search (:meth:`MotionGate.changed_since_search`) or that search found a face,
        wake_unchanged_every_s: and this often if neither.
        idle_every_n_frames: with a gate, while nothing moves and no one is in view or followed, only every
            n-th frame is made a picture and looked at (:attr:`LatestFrameSlot.stride`); 1 looks at each.

    Example:
        >>> stages = CameraStages("door", detector, tracker, counter)  # doctest: +SKIP
        >>> outcome = stages.process(frame)  # doctest: +SKIP
    """

    def __init__(
        self,
        camera: str,
        detector: FaceDetector,
        tracker: ByteTracker,
        counter: FootfallCounter,
        sampler: Sampler | None = None,
        likeness: FaceLikeness | None = None,
        every_face: bool = False,
        face_check: FaceCheck | None = None,
        masks: Sequence[Zone] = (),
        motion: MotionGate | None = None,
        wake_every_s: float = 1.0,
        wake_unchanged_every_s: float = 10.0,
        idle_every_n_frames: int = 1,
    ) -> None:
        self.motion = motion
        self.wake_every_s = wake_every_s
        self.wake_unchanged_every_s = wake_unchanged_every_s
        self.idle_every_n_frames = idle_every_n_frames
        self.passed_over_at_end = self.still_at_end = 0  # the stream's last frames, passed over while idle
        self._searched_at = float("-inf")  # stream time of the last frame searched
        self._found_at_search = True  # the last search found a face (one too faint to start a track, say)
        self.face_check = face_check
        self.masks = list(masks)
        self.camera = camera
        self.detector = detector
        self.tracker = tracker
        self.counter = counter
        self.sampler = sampler
        self.likeness = likeness
        self.every_face = every_face
        self._reshaped: CameraConfig | None = None  # a new set-up, taken at the next frame

    def reshape(self, camera: CameraConfig) -> None:
        """Count by ``camera``'s line, zones and masks from the next frame on; safe from any thread."""
        self._reshaped = camera

    def _take_new_shape(self) -> None:
        camera, self._reshaped = self._reshaped, None
        if camera is not None:
            self.counter.reshape(camera)
            self.masks = camera.mask_zones()

    @classmethod
    def for_camera(
        cls,
        camera: CameraConfig,
        config: Config,
        detector: FaceDetector,
        likeness: FaceLikeness | None,
        face_check: FaceCheck | None,
        sampler: Sampler | None = None,
        every_face: bool = False,
        new_visit_id: Callable[[], str] = random_visit_id,
    ) -> CameraStages:
        """The tracker, counter and masks ``camera`` and ``config`` ask for, around the given models.

        ``run`` and ``check`` both build their stages here, so a setting cannot reach one and not the other.
        """
        counter = FootfallCounter.for_camera(
            camera,
            config.footfall,
            config.tracker.min_similarity,
            new_visit_id,
            hold_still_s=config.face_check.hold_still_s,
        )
        return cls(
            camera.id,
            detector,
            ByteTracker.from_config(config.tracker, max_lost_s=config.footfall.linger_s),
            counter,
            sampler,
            likeness,
            every_face=every_face,
            face_check=face_check,
            masks=camera.mask_zones(),
            motion=MotionGate() if camera.detector.motion_gate else None,
            wake_every_s=camera.detector.wake_every_s,
            wake_unchanged_every_s=camera.detector.wake_unchanged_every_s,
            idle_every_n_frames=camera.detector.idle_every_n_frames,
        )

    def process(self, frame: Frame, search: bool = True) -> FrameOutcome:
        """Search, track, sample and count one frame; raises only if detection or tracking failed.

        Without ``search`` the frame is taken as searched and found empty (the gate's still frames while a
        lost track lingers): no track is matched on it, so no stage below reads its pixels.
        """
        self._take_new_shape()
        if not self.counter.clock_origin:
            self.counter.clock_origin = time.time() - frame.timestamp
        started = time.perf_counter()
        if search:
            rgb = self.detector.rgb(frame.image)
            faces = self.detector.detect(rgb, int(frame.timestamp * 1000))
            if self.masks and len(faces):
                faces = faces[~masked(faces.boxes, rgb.shape[1], rgb.shape[0], self.masks)]
        else:
            rgb, faces = frame.image, Faces.empty()
        detected = time.perf_counter()
        update = self.tracker.update_with_appearance(faces, rgb, frame.timestamp, self.likeness)
        tracks = update.tracks
        tracked = time.perf_counter()
        seconds = {"detect": detected - started, "track": tracked - detected}
        outcome = FrameOutcome(faces, tracks, seconds=seconds)
        if self.face_check is not None:
            try:
                tracks = outcome.tracks = self.face_check.update(rgb, tracks, frame.timestamp)
            except Exception as error:  # nothing new is confirmed a face on this frame; the rest goes on
                outcome.error = error
            finally:
                self.face_check.forget(update.ended)
            outcome.seconds["face_check"] = time.perf_counter() - tracked
        if self.sampler is not None:
            sampling = time.perf_counter()
            try:
                outcome.samples = self.sampler.select(
                    self.camera, rgb, tracks, frame.timestamp, frame.captured_at, self.every_face
                )
            except Exception as error:  # this frame's chips are lost; the counting below still runs
                outcome.error = error
            finally:
                self.sampler.forget(update.ended)
            outcome.seconds["sample"] = time.perf_counter() - sampling
        try:  # a counter that raises here costs this frame only: the end bookkeeping below runs regardless
            self.counter.observe(tracks, frame.timestamp, (frame.image.shape[1], frame.image.shape[0]))
        except Exception as error:
            outcome.error = outcome.error or error
        outcome.ended = self.counter.end_tracks(update.ended, frame.timestamp, frame.captured_at, update.exited)
        return outcome

    def frames(
        self, slot: LatestFrameSlot, every_n_frames: int, wait_s: float, until: Callable[[], bool] = lambda: False
    ) -> Iterator[FrameDone | None]:
        """The camera's loop, shared by ``run`` and ``check``: each frame of ``slot`` through the stages.

        Yields None when no frame came within ``wait_s`` (the caller's chance to beat), and ends with the
        stream or once ``until()`` says so before the next frame. A frame on which detection or tracking
        raised is yielded with its error: it costs that frame, and the camera goes on. While the camera is
        idle (a still frame, no one followed) it asks ``slot`` for every ``idle_every_n_frames``-th frame
        only; the frames passed over count as still ones (``FrameDone.still``), and those after the last frame
        handed over are left in ``passed_over_at_end`` and ``still_at_end``.
        """
        while not until():
            item = slot.get(timeout=wait_s)
            if item is None:
                yield None
                continue
            if isinstance(item, EndOfStream):
                self.passed_over_at_end = item.passed_over
                self.still_at_end = _looked_at(item.frames - item.passed_over, item.frames, every_n_frames)
                return
            yield self._through(item, slot, every_n_frames)

    def _through(self, frame: Frame, slot: LatestFrameSlot, every_n_frames: int) -> FrameDone:
        """One frame through the gate and the stages, as :meth:`frames` yields it; sets what ``slot`` hands next."""
        still_before = _looked_at(frame.index - frame.passed_over, frame.index, every_n_frames)
        done = partial(FrameDone, frame, still_passed_over=still_before)
        if frame.index % every_n_frames:
            return done()
        if self._still(frame, 1 + still_before):
            slot.stride = 1 if self._following else every_n_frames * self.idle_every_n_frames
            try:
                ended, error = self._nothing_seen(frame)
            except Exception as error:  # tracking failed: this frame cost its tracks' clock, nothing else
                return done(motionless=True, error=error)
            return done(motionless=True, error=error, ended=ended)
        slot.stride = 1
        self._found_at_search = True  # until the search says otherwise
        try:
            outcome = self.process(frame)
        except Exception as error:  # detection or tracking failed: this frame was not searched
            return done(error=error)
        self._found_at_search = len(outcome.faces) > 0
        return done(outcome)

    @property
    def _following(self) -> bool:
        """A track is alive (seen or lingering) or a visit waits out its re-entry window."""
        return self.tracker.following or self.counter.following

    def _still(self, frame: Frame, stands_for: int = 1) -> bool:
        """The gate lets ``frame`` skip the search: nothing moved, no face is in view, and a search was recent.

        Recent: within ``wake_every_s``; within ``wake_unchanged_every_s`` if that search found no face at all
        and the picture did not change since. A face too faint to start a track (a poster, someone sitting in
        the shade) scores differently on each frame's noise, so a picture that found one is searched as often
        as before.

        ``stands_for``: the frames it would have looked at since the last one it did (more after an idle spell).

        A track lingering after its face was lost, or a visit waiting out its re-entry window, does not keep
        the search on: its person can only come back by moving, which wakes the gate, and
        :meth:`_nothing_seen` runs the tracker's and the counter's clocks meanwhile.
        """
        if self.motion is None:
            return False
        moving = self.motion.moving(frame.image, stands_for)
        since = frame.timestamp - self._searched_at
        if (
            moving
            or self.tracker.seeing
            or since >= self.wake_unchanged_every_s
            or (since >= self.wake_every_s and (self._found_at_search or self.motion.changed_since_search()))
        ):
            self._searched_at = frame.timestamp
            self.motion.searched()
            return False
        return True

    def _nothing_seen(self, frame: Frame) -> tuple[list[VisitEnded], Exception | None]:
        """Take a skipped frame as one searched and found empty: a track or visit ends on the frame it would have."""
        if not self._following:
            return [], None
        outcome = self.process(frame, search=False)
        return outcome.ended, outcome.error

    def close(self, captured_at: float) -> list[VisitEnded]:
        """The stream ended: every open visit ends now."""
        self.tracker.reset()
        return self.counter.close(captured_at)
