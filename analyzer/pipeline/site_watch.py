"""What a camera shows about its set-up: face sizes, crossings, fixtures, and what to change.

``analyzer check`` watches each camera for a few seconds; a run keeps the
last minutes of each camera for the web page's set-up view. Both keep only
numbers (face widths, positions as fractions of the frame, frame times),
never an image, and judge them with the same rules here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from analyzer.config import CameraConfig, Config
from analyzer.core.zones import CountingLine, Point
from analyzer.pipeline.camera_stages import FrameDone
from analyzer.pipeline.footfall import VisitEnded
from analyzer.service.console import how_many

COUNTING_FACE_PX = 40  # docs/ACCURACY.md measures counting on faces at least this wide for a second
LOW_FPS = 8.0  # a walker crosses a door in about a second: fewer frames than this and tracks break
KEPT_UP = 0.6  # below this share of frames searched, the tracker bridges gaps of several frames


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


class SiteWatch:
    """What one camera's stream gave: over a whole check, or (``window_s``) over a run's last minutes.

    Fed by the camera's own thread, read by another (the web page): every
    access takes the lock, and readers get copies.
    """

    def __init__(self, window_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self.started = clock()
        self.size: tuple[int, int] = (0, 0)
        self._lock = threading.Lock()
        self._read_at: deque[float] = deque()  # when each frame was read: the stream's own rate
        self._searched: deque[float] = deque()  # when each frame was searched for faces
        self._motionless: deque[float] = deque()  # when each frame the motion gate let skip the search came
        self._widths: deque[tuple[float, np.ndarray]] = deque()  # face widths of each frame searched
        self._skipped: deque[tuple[float, str]] = deque()  # why frames could not be searched
        self._visits: deque[tuple[float, VisitEnded]] = deque()

    def frame_read(self) -> None:
        """The stream delivered a frame."""
        with self._lock:
            self._read_at.append(self.clock())
            self._forget_old()

    def record(self, done: FrameDone) -> None:
        """What the stages made of one frame; a frame left to the tracker's prediction adds nothing."""
        if done.still:  # nothing moved: as good as searched, for keeping up
            with self._lock:
                self._motionless.extend([self.clock()] * done.still)
        if done.motionless:
            self.visits_ended(done.ended)
            return
        if done.outcome is None and done.error is None:
            return
        self.size = (done.frame.image.shape[1], done.frame.image.shape[0])
        outcome = done.outcome
        if outcome is None:  # detection or tracking failed on it
            self._skipped_now(f"{type(done.error).__name__}: {done.error}")
            return
        self.visits_ended(outcome.ended)
        if outcome.error is not None:  # counting failed on it: a frame not searched, for the advice
            self._skipped_now(f"{type(outcome.error).__name__}: {outcome.error}")
            return
        now = self.clock()
        with self._lock:
            self._searched.append(now)
            self._widths.append((now, outcome.faces.boxes[:, 2] - outcome.faces.boxes[:, 0]))

    def _skipped_now(self, why: str) -> None:
        with self._lock:
            self._skipped.append((self.clock(), why))

    def visits_ended(self, visits: Iterable[VisitEnded]) -> None:
        """Visits (and fixtures) that ended."""
        now = self.clock()
        with self._lock:
            self._visits.extend((now, visit) for visit in visits)

    def _forget_old(self) -> None:
        if self.window_s is None:
            return
        oldest = self.clock() - self.window_s
        for kept in (self._read_at, self._searched, self._motionless):
            while kept and kept[0] < oldest:
                kept.popleft()
        for timed in (self._widths, self._skipped, self._visits):
            while timed and timed[0][0] < oldest:
                timed.popleft()

    @property
    def seconds(self) -> float:
        """How long this watch covers."""
        watched = self.clock() - self.started
        return watched if self.window_s is None else min(watched, self.window_s)

    @property
    def read_at(self) -> list[float]:
        """When each frame kept was read."""
        with self._lock:
            return list(self._read_at)

    @property
    def searched(self) -> int:
        """Frames searched for faces."""
        with self._lock:
            return len(self._searched)

    @property
    def motionless(self) -> int:
        """Frames the motion gate let skip the search: nothing moved."""
        with self._lock:
            return len(self._motionless)

    @property
    def skipped(self) -> list[str]:
        """Why each frame that could not be searched could not."""
        with self._lock:
            return [why for _, why in self._skipped]

    @property
    def visits(self) -> list[VisitEnded]:
        """Visits and fixtures that ended."""
        with self._lock:
            return [visit for _, visit in self._visits]

    @property
    def face_widths(self) -> np.ndarray:
        """Every face found, its width in pixels."""
        with self._lock:
            return np.concatenate([widths for _, widths in self._widths]) if self._widths else np.empty(0)

    @property
    def fixtures(self) -> list[VisitEnded]:
        """Faces as still as a photo: never visitors."""
        return [visit for visit in self.visits if visit.fixture]

    @property
    def fps(self) -> float:
        """The rate the stream delivered."""
        return stream_fps(self.read_at)


@dataclass(frozen=True)
class SiteFigures:
    """What a watch of one camera showed, and what to change (``check``'s figures, the set-up view's)."""

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
    proposed_masks: list[list[list[float]]] = field(default_factory=list)  # a mask over each fixture found


def site_figures(camera: CameraConfig, config: Config, watched: SiteWatch, advise: bool = True) -> SiteFigures:
    """Sum up a watch of ``camera``; ``advise`` False when its stream failed (the failure is the advice)."""
    face_widths = watched.face_widths
    counted = [visit for visit in watched.visits if visit.counted]
    fixtures = watched.fixtures
    across = line_across_path(counted)
    return SiteFigures(
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
        advice=camera_advice(camera, config, watched, across) if advise else [],
        fixtures=len(fixtures),
        proposed_masks=fixture_masks(fixtures, watched.size),
    )


def camera_advice(
    camera: CameraConfig, config: Config, watched: SiteWatch, across: dict[str, object] | None
) -> list[str]:
    """What to change, from what the camera showed."""
    face_widths = watched.face_widths
    tried = watched.searched + watched.motionless + len(watched.skipped)
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
