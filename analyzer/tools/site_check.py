"""``analyzer check``: is each camera set up to count, before the installer leaves the shop?

A camera that streams is not yet a camera that counts: faces must be big
enough to classify, the stream fast enough to follow a walker, and the
counting line and zones where people actually walk and stand. This watches
every camera at once for a few seconds with the run's own capture worker,
face detector, tracker and footfall counter, and says what to change. It
keeps only numbers (frame counts, face widths, positions as fractions of the
frame), never an image; the appearance cue lives in the tracker's memory, as
in a run.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from analyzer.config import CameraConfig, Config
from analyzer.core.camera_url import without_password
from analyzer.pipeline.appearance import FaceLikeness
from analyzer.pipeline.camera_stages import CameraStages
from analyzer.pipeline.capture import CaptureWorker, LatestFrameSlot, StreamStatus
from analyzer.pipeline.detect import FaceDetector
from analyzer.pipeline.face_check import FaceCheck, FacePresence
from analyzer.pipeline.site_watch import COUNTING_FACE_PX, SiteFigures, SiteWatch, config_line, site_figures
from analyzer.service.console import how_many
from analyzer.service.model_assets import asset_path


@dataclass(frozen=True)
class CameraCheck(SiteFigures):
    """What a few seconds of one camera showed, and what to change."""

    camera: str = ""
    source: str = ""  # without the URL's password
    problem: str = ""  # why no frame came ("" when frames came)
    # detector settings to paste, from a second, finer look when faces were small or few: {"tiles": 3}
    proposed_detector: dict[str, object] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """No frame came: nothing can be counted on this camera as configured."""
        return bool(self.problem)

    def to_dict(self) -> dict[str, object]:
        """For ``--json``."""
        fields = asdict(self)
        named = {key: fields.pop(key) for key in ("camera", "source", "problem")}
        return {**named, **fields, "failed": self.failed}


def check_camera(
    camera: CameraConfig,
    seconds: float,
    config: Config,
    detector: FaceDetector,
    likeness: FaceLikeness | None,
    interrupted: threading.Event | None = None,
    presence: FacePresence | None = None,
) -> CameraCheck:
    """Watch one camera for ``seconds`` (a file: until it ends, at its own speed) and sum up what it showed.

    ``interrupted`` ends the watch early (Ctrl-C while every camera is watched). ``presence``: the
    face check's model, so that only people's faces count, as in a run.
    """
    face_check = None if presence is None else FaceCheck.from_config(presence, config.face_check)
    stages = CameraStages.for_camera(camera, config, detector, likeness, face_check)
    statuses: list[StreamStatus] = []
    watched = _watch_camera(camera, stages, seconds, interrupted, statuses)
    last = statuses[-1] if statuses else None
    problem = ""
    if not watched.read_at:
        # the cause without the retry note: the check does not go on retrying
        problem = last.cause if last and last.state in ("failed", "down") else f"no frame within {seconds:g} s"
    figures = site_figures(camera, config, watched, advise=not problem)
    return CameraCheck(camera=camera.id, source=without_password(camera.source), problem=problem, **asdict(figures))


def _watch_camera(
    camera: CameraConfig,
    stages: CameraStages,
    seconds: float,
    interrupted: threading.Event | None,
    statuses: list[StreamStatus],
) -> SiteWatch:
    """Run the camera's stages on its stream, as a run does, for ``seconds`` or until it ends."""
    watched = SiteWatch()
    slot, stop = LatestFrameSlot(), threading.Event()

    def on_frame(camera_id: str, dropped: bool, decode_seconds: float) -> None:
        watched.frame_read()

    worker = CaptureWorker(
        camera.id,
        camera.source,
        slot,
        statuses.append,
        on_frame,
        stop,
        realtime=True,
        loop=False,
        reconnect_backoff_s=camera.reconnect_backoff_s,
        max_backoff_s=camera.max_backoff_s,
        read_timeout_s=camera.read_timeout_s,
    )
    last_capture = started = time.monotonic()

    def watched_enough() -> bool:
        return time.monotonic() - started >= seconds or bool(interrupted and interrupted.is_set())

    worker.start()
    try:
        for done in stages.frames(slot, camera.detector.every_n_frames, wait_s=0.2, until=watched_enough):
            if done is not None:
                last_capture = done.frame.captured_at
                watched.record(done)
    finally:
        stop.set()
        worker.join(timeout=camera.read_timeout_s + 5)
    watched.visits_ended(stages.close(last_capture))
    return watched


def check_cameras(
    config: Config, seconds: float, likeness: FaceLikeness | None, log: Callable[[str], None] = print
) -> list[CameraCheck]:
    """Every camera at once, as a run watches them: a box too slow for all of them shows it here too.

    A camera whose faces were few or small is then watched again with the
    finest tiles (:func:`finer_look`), and what that finds is proposed.
    ``log`` gets one line when each watch starts: the detectors are ready, so
    Ctrl-C from then on meets running camera threads, not MediaPipe's start-up.
    """
    checks = _watch(config.cameras, config, seconds, likeness, log)
    again = [index for index, check in enumerate(checks) if wants_finer_look(check, config.cameras[index])]
    if again:
        finer = [_finer_settings(config.cameras[index]) for index in again]
        looked = _watch(finer, config, seconds, likeness, log, what="again with detector.tiles: 3")
        for index, finer_check in zip(again, looked, strict=True):
            checks[index] = finer_look(checks[index], finer_check, config.cameras[index])
    return checks


def _watch(
    cameras: Sequence[CameraConfig],
    config: Config,
    seconds: float,
    likeness: FaceLikeness | None,
    log: Callable[[str], None],
    what: str = "",
) -> list[CameraCheck]:
    """Watch ``cameras`` at once."""
    # Detectors and face checks are made and closed while no other thread runs: their native logs are
    # silenced by pointing the process's descriptor 2 elsewhere for that moment.
    presences = [  # first: a missing model must not leave MediaPipe graphs open
        FacePresence(asset_path("face_landmark.tflite")) if config.face_check.enabled else None for _ in cameras
    ]
    detectors = [FaceDetector.from_config(camera.detector) for camera in cameras]
    log(f"watching {how_many(len(cameras), 'camera')}{' ' + what if what else ''} for {seconds:g} s ...")
    interrupted = threading.Event()
    try:
        with ThreadPoolExecutor(max_workers=max(len(cameras), 1), thread_name_prefix="check") as pool:
            running = [
                pool.submit(check_camera, camera, seconds, config, detector, likeness, interrupted, presence)
                for camera, detector, presence in zip(cameras, detectors, presences, strict=True)
            ]
            try:
                return [future.result() for future in running]
            except BaseException:  # Ctrl-C: the cameras stop now, not after --seconds
                interrupted.set()
                raise
    finally:
        for detector in detectors:
            detector.close()


def wants_finer_look(check: CameraCheck, camera: CameraConfig) -> bool:
    """No face, or small ones (under ``COUNTING_FACE_PX``), on a camera that does not search the finest tiles yet."""
    if check.failed or camera.detector.tiles >= 3:
        return False
    return not check.face_px or check.face_px[1] < COUNTING_FACE_PX


def _finer_settings(camera: CameraConfig) -> CameraConfig:
    finer = copy.deepcopy(camera)
    finer.detector.tiles = 3
    return finer


def finer_look(check: CameraCheck, finer: CameraCheck, camera: CameraConfig) -> CameraCheck:
    """``check`` with the finer look's proposal (``detector.tiles: 3``) when it found more people.

    Only what the finer look ran is proposed: a region of interest around the faces would save work, but
    it moves the tiles, and on the classroom clip it lost one of the four people the whole frame found.
    """
    if finer.failed or finer.people <= check.people:
        return check
    advice = [
        f"with detector.tiles: 3 the check found {finer.people} {'person' if finer.people == 1 else 'people'} "
        f"where tiles: {camera.detector.tiles} found {check.people} (faces {_widths(finer)} wide): set it, "
        "detector: {tiles: 3}; the detector then costs about 15 times as much per frame (`analyzer bench` says how "
        "many such cameras this box holds)"
    ]
    kept = [line for line in check.advice if not line.startswith("faces are ")]  # the finer look answers those
    return dataclasses.replace(check, advice=[*kept, *advice], proposed_detector={"tiles": 3})


def _widths(check: CameraCheck) -> str:
    return "-" if not check.face_px else f"{check.face_px[1]:.0f} px"


def check_table(checks: list[CameraCheck]) -> str:
    """The installer's summary: one row per camera, then what to change."""
    header = (
        f"{'camera':<14}{'stream':>11}{'fps':>7}{'detections':>12}  {'face width p10/median/p90':<27}"
        f"{'people':>6}{'in/out':>8}  verdict"
    )
    lines = [header, "-" * len(header)]
    for check in checks:
        stream = f"{check.width}x{check.height}" if check.frames else "-"
        widths = " / ".join(f"{value:.0f}" for value in check.face_px) + " px" if check.face_px else "-"
        crossings = "-" if check.line_in is None else f"{check.line_in}/{check.line_out}"
        verdict = "FAILED" if check.failed else ("change" if check.advice else "ok")
        lines.append(
            f"{check.camera:<14}{stream:>11}{check.fps:>7.1f}{check.detections:>12}  {widths:<27}"
            f"{check.people:>6}{crossings:>8}  {verdict}"
        )
    for check in checks:
        if check.failed:
            lines.append(f"[{check.camera}] {check.problem}")
        lines += [
            f"[{check.camera}] zone {name}: {people} of {check.people} people"
            for name, people in check.zone_people.items()
        ]
        if check.line_in is None and check.line_across_path:
            suggestion = config_line(check.line_across_path)
            lines.append(f"[{check.camera}] no counting line; one across the way people walked: {suggestion}")
        lines += [f"[{check.camera}] {line}" for line in check.advice]
    return "\n".join(lines)
