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

import numpy as np

from analyzer.config import CameraConfig, Config
from analyzer.core.camera_url import without_password
from analyzer.core.zones import CountingLine, Point
from analyzer.pipeline.appearance import FaceLikeness
from analyzer.pipeline.camera_stages import CameraStages
from analyzer.pipeline.capture import CaptureWorker, LatestFrameSlot, StreamStatus
from analyzer.pipeline.detect import FaceDetector
from analyzer.pipeline.face_check import FaceCheck, FacePresence
from analyzer.pipeline.footfall import VisitEnded
from analyzer.service.console import how_many
from analyzer.service.model_assets import asset_path

COUNTING_FACE_PX = 40  # docs/ACCURACY.md measures counting on faces at least this wide for a second
LOW_FPS = 8.0  # a walker crosses a door in about a second: fewer frames than this and tracks break
KEPT_UP = 0.6  # below this share of frames searched, the tracker bridges gaps of several frames


@dataclass(frozen=True)
class CameraCheck:
    """What a few seconds of one camera showed, and what to change."""

    camera: str
    source: str  # without the URL's password
    problem: str  # why no frame came ("" when frames came)
    seconds: float
    frames: int
    fps: float
    width: int
    height: int
    frames_searched: int
    detections: int  # faces found, summed over the frames searched (one walker counts in many frames)
    face_px: list[float] = field(default_factory=list)  # 10th, 50th and 90th percentile face width; [] if none
    people: int = 0  # visits a run would count: tracked at least the camera's min_duration_s
    line_in: int | None = None  # people whose first crossing of the counting line was 'in'; None: no line
    line_out: int | None = None
    zone_people: dict[str, int] = field(default_factory=dict)  # people who spent time in each zone
    # a line across the way people walked: {"start", "end", "in": "left to right"...}; None if no one walked
    line_across_path: dict[str, object] | None = None
    advice: list[str] = field(default_factory=list)
    fixtures: int = 0  # faces as still as a photo (posters, screens): never visitors; see the proposed masks
    # detector settings to paste, from a second, finer look when faces were small or few: {"tiles": 3}
    proposed_detector: dict[str, object] = field(default_factory=dict)
    proposed_masks: list[list[list[float]]] = field(default_factory=list)  # a mask over each fixture found

    @property
    def failed(self) -> bool:
        """No frame came: nothing can be counted on this camera as configured."""
        return bool(self.problem)

    def to_dict(self) -> dict[str, object]:
        """For ``--json``."""
        return {**asdict(self), "failed": self.failed}


def stream_fps(read_at: list[float]) -> float:
    """The frames per second a stream delivers: one over the median time between frames read.

    Not frames over time: after opening an H.264/H.265 stream FFmpeg hands
    over at once the frames it read to learn it (a second or two of them),
    which would add that much to a ten-second watch.
    """
    typical_gap = float(np.median(np.diff(read_at))) if len(read_at) > 1 else 0.0
    return 1.0 / typical_gap if typical_gap > 0 else 0.0


def advice_for(
    fps: float, face_widths: np.ndarray, seconds: float, min_face_px: int, tiles: int, kept_up: float = 1.0
) -> list[str]:
    """What to change so that this camera counts well; [] when nothing.

    ``kept_up`` is the share of the frames meant for detection that the box
    searched while watching every camera at once; a run drops the rest too.
    """
    advice = []
    if fps < LOW_FPS:
        advice.append(f"{fps:.1f} fps is low: a walker crosses the door in about a second; set the stream to 10-15 fps")
    if kept_up < KEPT_UP:
        advice.append(
            f"this box searched only {kept_up:.0%} of the frames for faces with every camera running: set "
            "detector.every_n_frames: 2, fewer detector.tiles, or fewer cameras on this box"
        )
    if not len(face_widths):
        advice.append(
            f"no face seen in {seconds:.0f} s: check while people walk in, and that the camera sees faces "
            "from the front, not the tops of heads"
        )
        return advice
    median = float(np.median(face_widths))
    if median < min_face_px:
        advice.append(
            f"faces are {median:.0f} px wide (median): below {min_face_px} px (sampler.min_face_px) they are not "
            "classified; zoom in, mount the camera closer to the door, or use its higher-resolution stream"
        )
    elif median < COUNTING_FACE_PX:
        advice.append(
            f"faces are {median:.0f} px wide (median): counts are measured on faces of {COUNTING_FACE_PX} px and more; "
            + ("set detector.tiles: 2 to find more small faces, or zoom in" if tiles < 2 else "zoom in")
        )
    return advice


def _extent(points: Sequence[Point]) -> str:
    """Where faces were seen, for advice: 'x 0.05-0.95, y 0.40-0.55'."""
    xs, ys = [point[0] for point in points], [point[1] for point in points]
    return f"x {min(xs):.2f}-{max(xs):.2f}, y {min(ys):.2f}-{max(ys):.2f}"


def _side(line: CountingLine, hysteresis: float, point: Point) -> str:
    distance = line.signed_distance(point)
    return "on" if abs(distance) < hysteresis else ("in" if distance > 0 else "out")


def _way(axis: Point) -> str:
    """A walking direction in the image, in words."""
    if abs(axis[0]) >= abs(axis[1]):
        return "left to right" if axis[0] > 0 else "right to left"
    return "down the image" if axis[1] > 0 else "up the image"


def line_across_path(visits: Sequence[VisitEnded]) -> dict[str, object] | None:
    """A counting line across the way the counted people walked, for the config; None if no one walked."""
    found = CountingLine.across([(visit.first_position, visit.last_position) for visit in visits if visit.counted])
    if found is None:
        return None
    line, axis = found
    return {**line.to_dict(), "in": _way(axis)}


def config_line(line: dict[str, object]) -> str:
    """The suggestion as the config line to paste, with what it counts as 'in'."""
    return (
        f"line: {{start: {line['start']}, end: {line['end']}}} (crossing it {line['in']} is 'in'; "
        "swap start and end if that is the way out)"
    )


def placement_advice(
    camera: CameraConfig,
    visits: Sequence[VisitEnded],
    seconds: float,
    min_duration_s: float,
    across: dict[str, object] | None,
) -> list[str]:
    """Whether the counting line lies across people's paths and the zones where they were; [] when so.

    Judged on the visits' first and last positions (the line's anchor point):
    people at a door walk nearly straight. A line most people did not cross,
    or a zone no one entered, is most likely somewhere people do not walk.
    ``across`` is ``line_across_path`` of the visits, offered in place of a misplaced line.
    """
    if camera.line is None and not camera.zones:
        return []
    counted = [visit for visit in visits if visit.counted]
    if not counted:
        return [
            f"no one stayed in view for {min_duration_s:g} s, so the line and zones "
            f"could not be checked in {seconds:.0f} s: check again while people walk through"
        ]
    points = [point for visit in counted for point in (visit.first_position, visit.last_position)]
    advice = []
    if camera.line is not None:
        line = camera.line.counting_line()
        uncrossed = [visit for visit in counted if visit.direction == "none"]
        if uncrossed and 2 * len(uncrossed) >= len(counted):
            sides = {
                _side(line, camera.line.hysteresis, point)
                for visit in uncrossed
                for point in (visit.first_position, visit.last_position)
            }
            where = (
                f"they stayed on its '{sides.pop()}' side"
                if len(sides) == 1 and sides != {"on"}
                else "they passed beyond its ends or along it"
            )
            advice.append(
                f"{len(uncrossed)} of {len(counted)} people seen did not cross the counting line "
                f"{camera.line.start} -> {camera.line.end} ({where}): if they walked in or out, move the line across "
                f"their path; their faces ({camera.line.anchor} point) were seen at {_extent(points)}"
                + (f"; one across it: {config_line(across)}" if across else "")
            )
    for zone in camera.zones:
        if not any(visit.zone_dwell_s.get(zone.name, 0.0) > 0 for visit in counted):
            advice.append(
                f"none of {len(counted)} people seen spent time in zone '{zone.name}': if people stood there, "
                f"move its polygon to where their faces were seen ({_extent(points)})"
            )
    return advice


@dataclass
class _Watched:
    """What one camera's stream gave during a check."""

    read_at: list[float] = field(default_factory=list)  # when each frame was read: the stream's own rate
    statuses: list[StreamStatus] = field(default_factory=list)
    visits: list[VisitEnded] = field(default_factory=list)
    widths: list[np.ndarray] = field(default_factory=list)  # face widths of each frame searched
    skipped: list[str] = field(default_factory=list)  # why frames could not be searched
    searched: int = 0
    size: tuple[int, int] = (0, 0)
    seconds: float = 0.0

    @property
    def face_widths(self) -> np.ndarray:
        return np.concatenate(self.widths) if self.widths else np.empty(0)

    @property
    def fixtures(self) -> list[VisitEnded]:
        """Faces as still as a photo: never visitors."""
        return [visit for visit in self.visits if visit.fixture]

    @property
    def fps(self) -> float:
        """The rate the stream delivered."""
        return stream_fps(self.read_at)


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
    watched = _watch_camera(camera, stages, seconds, interrupted)
    last = watched.statuses[-1] if watched.statuses else None
    problem = ""
    if not watched.read_at:
        # the cause without the retry note: the check does not go on retrying
        problem = last.cause if last and last.state in ("failed", "down") else f"no frame within {seconds:g} s"
    face_widths = watched.face_widths
    counted = [visit for visit in watched.visits if visit.counted]
    fixtures = watched.fixtures
    across = line_across_path(counted)
    return CameraCheck(
        camera=camera.id,
        source=without_password(camera.source),
        problem=problem,
        seconds=round(watched.seconds, 1),
        frames=len(watched.read_at),
        fps=round(watched.fps, 1),
        width=watched.size[0],
        height=watched.size[1],
        frames_searched=watched.searched,
        detections=len(face_widths),
        face_px=[round(float(value), 1) for value in np.percentile(face_widths, [10, 50, 90])]
        if len(face_widths)
        else [],
        people=len(counted),
        line_in=sum(visit.direction == "in" for visit in counted) if camera.line else None,
        line_out=sum(visit.direction == "out" for visit in counted) if camera.line else None,
        zone_people={
            zone.name: sum(visit.zone_dwell_s.get(zone.name, 0.0) > 0 for visit in counted) for zone in camera.zones
        },
        line_across_path=across,
        advice=[] if problem else _advice(camera, config, watched, across),
        fixtures=len(fixtures),
        proposed_masks=fixture_masks(fixtures, watched.size),
    )


def _watch_camera(
    camera: CameraConfig, stages: CameraStages, seconds: float, interrupted: threading.Event | None
) -> _Watched:
    """Run the camera's stages on its stream, as a run does, for ``seconds`` or until it ends."""
    watched = _Watched()
    slot, stop = LatestFrameSlot(), threading.Event()

    def on_frame(camera_id: str, dropped: bool, decode_seconds: float) -> None:
        watched.read_at.append(time.monotonic())

    worker = CaptureWorker(
        camera.id,
        camera.source,
        slot,
        watched.statuses.append,
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
            if done is None or (done.outcome is None and done.error is None):
                continue  # as in a run: the tracker predicts across frames not searched
            watched.size, last_capture = (done.frame.image.shape[1], done.frame.image.shape[0]), done.frame.captured_at
            outcome = done.outcome
            if outcome is None:  # as in a run: a frame detection or tracking failed on is skipped
                watched.skipped.append(f"{type(done.error).__name__}: {done.error}")
                continue
            watched.visits += outcome.ended
            if outcome.error is not None:  # counting failed on it: a frame not searched, for the advice
                watched.skipped.append(f"{type(outcome.error).__name__}: {outcome.error}")
                continue
            watched.widths.append(outcome.faces.boxes[:, 2] - outcome.faces.boxes[:, 0])
            watched.searched += 1
    finally:
        stop.set()
        worker.join(timeout=camera.read_timeout_s + 5)
    watched.visits += stages.close(last_capture)
    watched.seconds = time.monotonic() - started
    return watched


def _advice(camera: CameraConfig, config: Config, watched: _Watched, across: dict[str, object] | None) -> list[str]:
    """What to change, from what the camera showed."""
    face_widths = watched.face_widths
    tried = watched.searched + len(watched.skipped)
    kept_up = min(tried * camera.detector.every_n_frames / max(len(watched.read_at), 1), 1.0)
    advice = advice_for(
        watched.fps, face_widths, watched.seconds, config.sampler.min_face_px, camera.detector.tiles, kept_up
    )
    if len(face_widths):
        min_duration_s = camera.visit_min_duration_s(config.footfall)
        advice += placement_advice(camera, watched.visits, watched.seconds, min_duration_s, across)
    fixtures = watched.fixtures
    if fixtures:
        advice.append(
            f"{how_many(len(fixtures), 'face')} stayed as still as a photo (a poster, a screen, a mirror?) at "
            + ", ".join(f"x {visit.last_position[0]:.2f} y {visit.last_position[1]:.2f}" for visit in fixtures)
            + ": never counted; to stop looking there at all, add to the camera: masks: "
            + str(fixture_masks(fixtures, watched.size))
        )
    if watched.skipped:
        advice.append(
            f"{how_many(len(watched.skipped), 'frame')} could not be searched for faces (first: {watched.skipped[0]}); "
            "a run skips such frames too"
        )
    return advice


def fixture_masks(fixtures: Sequence[VisitEnded], size: tuple[int, int]) -> list[list[list[float]]]:
    """A square mask (frame fractions) over each fixture's face, twice its width across."""
    aspect = size[0] / max(size[1], 1)
    masks = []
    for visit in fixtures:
        (x, y), half = visit.last_position, max(visit.face_size, 0.02)
        left, right = max(x - half, 0.0), min(x + half, 1.0)
        top, bottom = max(y - half * aspect, 0.0), min(y + half * aspect, 1.0)
        masks.append(
            [
                [round(left, 3), round(top, 3)],
                [round(right, 3), round(top, 3)],
                [round(right, 3), round(bottom, 3)],
                [round(left, 3), round(bottom, 3)],
            ]
        )
    return masks


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
