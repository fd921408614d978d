"""Visits: people seen long enough to count, with line crossings and zone dwell.

A visit starts when a track is confirmed and counts only if it lasted at least
``min_duration_s`` (shorter tracks are glimpses or false faces) and one of its
tracks passed the face check without being a fixture (:mod:`analyzer.pipeline.face_check`:
a back of a head or a poster is never a visitor). When its
track ends (unseen for the tracker's ``linger_s``), the visit waits
``reentry_window_s`` more: a new track that starts near where the lost face
was heading, while the old one is unseen, may be the same person (turned
away, occluded by someone passing). It starts a visit of its own, and after
``reentry_verify_s`` its own motion decides: traced back in time, it must
pass where the lost face was, without walking the other way. Only then is it
merged into the lost visit, so one person is not counted twice, and someone
who steps into the view behind a person who paused there is not merged into
them. The appearance cue (colours and face likeness, :mod:`analyzer.pipeline.appearance`)
also has to agree, taken when the decision is made (a face stepping out from
behind someone has mixed colours at first); it lives only in memory and
nothing is kept past the window.
A visit first seen just past the line, walking away from it (or last seen
just short of it, walking at it), crossed it out of sight: within
``unseen_crossing_s`` of walking, that crossing counts. People are often
found a moment late, having just turned towards the camera or stepped out
from behind someone; the horizon is short because shoppers also appear
from behind shelves.
Visit ids are random per run, so nothing links a visit to a person.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analyzer.config import CameraConfig, FootfallConfig
from analyzer.core.tracks import Tracks
from analyzer.core.visits import NOT_CROSSED, TrackAttributes, Visit, random_visit_id
from analyzer.core.zones import CountingLine, LineState, Point, Zone
from analyzer.pipeline.appearance import similarity
from analyzer.pipeline.track import SETTLED_S, resting


@dataclass(frozen=True)
class VisitEnded:
    """A visit ended; the classifier stage attaches attributes if ``counted``.

    Attributes:
        camera: camera id.
        track_ids: the tracker ids that made up the visit (internal, never published).
        visit_id: random id for publishing.
        start: stream seconds when the face was first seen.
        end: stream seconds when it was last seen.
        counted: lasted at least ``min_duration_s``.
        captured_at: ``time.monotonic()`` of the frame that ended it (latency).
        clock_origin: unix time of stream time 0, to report wall-clock times.
        direction: ``in``/``out`` (first crossing), ``none``, or None when no line is set.
        crossings: every crossing as (direction, stream seconds).
        zone_dwell_s: seconds spent in each configured zone.
        first_position: (x, y) anchor when first seen, fractions of the frame.
        last_position: (x, y) anchor when last seen.
        fixture: a face as still as a photo all along (a poster): not counted, whatever its time.
        face_size: the face's width when last seen, as a fraction of the frame's.
    """

    camera: str
    track_ids: tuple[int, ...]
    visit_id: str
    start: float
    end: float
    counted: bool
    captured_at: float
    clock_origin: float
    direction: str | None = None
    crossings: tuple[tuple[str, float], ...] = ()
    zone_dwell_s: dict[str, float] = field(default_factory=dict)
    first_position: Point = (0.0, 0.0)
    last_position: Point = (0.0, 0.0)
    fixture: bool = False
    face_size: float = 0.0

    @property
    def dwell_s(self) -> float:
        """Seconds from first to last sight."""
        return self.end - self.start

    def visit(self, attributes: TrackAttributes) -> Visit:
        """The publishable visit with its attributes."""
        return Visit(
            camera=self.camera,
            visit_id=self.visit_id,
            start=self.clock_origin + self.start,
            end=self.clock_origin + self.end,
            stream_start=self.start,
            stream_end=self.end,
            attributes=attributes,
            direction=self.direction,
            zone_dwell_s=self.zone_dwell_s,
            first_position=self.first_position,
            last_position=self.last_position,
        )


@dataclass(eq=False)  # compared by identity: two open visits are never "equal"
class _OpenVisit:
    visit_id: str
    start: float
    last_seen: float
    first_position: Point
    last_position: Point
    line_state: LineState | None
    track_ids: list[int] = field(default_factory=list)
    active: set[int] = field(default_factory=set)
    velocity: Point = (0.0, 0.0)
    start_velocity: Point = (0.0, 0.0)  # mean motion over the first START_VELOCITY_S
    face_size: float = 0.0
    appearance: np.ndarray | None = None
    exited: bool = False
    crossings: list[tuple[str, float]] = field(default_factory=list)
    zone_dwell: dict[str, float] = field(default_factory=dict)
    tracks_ended_at: float | None = None
    lost_candidates: list[_OpenVisit] = field(default_factory=list)  # visits this one may continue (unverified)
    face_tracks: set[int] = field(default_factory=set)  # its tracks that passed the face check
    moved: bool = False  # a face of it moved from where it was first seen (walked, came nearer): never a fixture
    rest_point: Point | None = None  # where it has stayed (within half a face width) since resting_since
    resting_since: float = 0.0
    fixture_tracks: set[int] = field(default_factory=set)  # its tracks found as still as a photo (a poster)

    @property
    def settled(self) -> bool:
        """It sat or stood within half a face width for ``SETTLED_S`` before it was last seen."""
        return self.rest_point is not None and self.last_seen - self.resting_since >= SETTLED_S

    @property
    def person_seen(self) -> bool:
        """A face that is not a fixture: only then is it a visitor."""
        return bool(self.face_tracks - self.fixture_tracks)

    def mean_velocity(self) -> Point | None:
        """Average motion since the first sight (frame fractions per second), None before any time passed."""
        elapsed = self.last_seen - self.start
        if elapsed <= 0:
            return None
        return (
            (self.last_position[0] - self.first_position[0]) / elapsed,
            (self.last_position[1] - self.first_position[1]) / elapsed,
        )

    def left_the_view(self, timestamp: float) -> bool:
        """Last seen at a frame edge walking out: gone, not hidden; a face appearing there is someone else.

        The edge band is at least 6% of the frame and grows with the face: a big
        face's centre is never closer to the edge than half its width. A face
        that sat there for ``SETTLED_S`` (a customer at the table by the edge)
        has not left.
        """
        if self.settled:
            return False
        x, y = self.last_position
        px, py = self.predicted(timestamp)
        edge = max(0.06, 0.85 * self.face_size)
        return (x < edge and px < x) or (x > 1 - edge and px > x) or (y < edge and py < y) or (y > 1 - edge and py > y)

    def predicted(self, timestamp: float) -> Point:
        """Where the face would be now if it kept walking (capped at 2 s of motion)."""
        gap = min(max(timestamp - self.last_seen, 0.0), 2.0)
        return (self.last_position[0] + self.velocity[0] * gap, self.last_position[1] + self.velocity[1] * gap)


#: Likeness a face walking back needs to be the lost face turned around (on the simulated entrances, the
#: same person: median 0.99, 80% above 0.9; two people: median 0.56, 3% above 0.9).
TURNED_AROUND_SIMILARITY = 0.9
#: A held visit of a still face counts this long after ``hold_still_s``: the fixture check reads once a second.
HOLD_MARGIN_S = 2.0
#: Slower than this (frame widths per second) a face is standing, and its motion predicts nothing.
MIN_WALKING_SPEED = 0.03
#: A visit's motion at its start is its mean velocity over this long.
START_VELOCITY_S = 0.5


def _speed(velocity: Point) -> float:
    return float(np.hypot(*velocity))


def _walked(point: Point, velocity: Point, seconds: float) -> Point:
    """Where a face walking at ``velocity`` is ``seconds`` later (earlier if negative); a standing face stays."""
    if _speed(velocity) < MIN_WALKING_SPEED:
        return point
    return (point[0] + velocity[0] * seconds, point[1] + velocity[1] * seconds)


def _distance(first: Point, second: Point) -> float:
    return float(np.hypot(first[0] - second[0], first[1] - second[1]))


def _distance_to_segment(point: Point, start: Point, end: Point) -> float:
    """Distance from ``point`` to the segment ``start``-``end``."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = dx * dx + dy * dy
    along = 0.0 if length <= 0 else min(max(((point[0] - start[0]) * dx + (point[1] - start[1]) * dy) / length, 0), 1)
    return _distance(point, (start[0] + along * dx, start[1] + along * dy))


def _outside_view(point: Point, face_size: float) -> bool:
    """A face centred here would be at least half out of the frame."""
    margin = 0.5 * face_size
    return not (margin <= point[0] <= 1 - margin and margin <= point[1] <= 1 - margin)


def _reverses(before: Point, after: Point) -> bool:
    """Both walking and in opposite directions."""
    if min(_speed(before), _speed(after)) < MIN_WALKING_SPEED:
        return False
    return before[0] * after[0] + before[1] * after[1] < 0


def anchor_points(boxes: np.ndarray, width: int, height: int, anchor: str) -> np.ndarray:
    """(N, 2) anchor of each face box as fractions of the frame: box centre, top or bottom middle."""
    x = (boxes[:, 0] + boxes[:, 2]) / 2 / max(width, 1)
    if anchor == "top":
        y = boxes[:, 1]
    elif anchor == "bottom":
        y = boxes[:, 3]
    else:
        y = (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([x, y / max(height, 1)], axis=1)


class FootfallCounter:
    """Turns one camera's track updates into visits with direction and dwell.

    Args:
        camera: camera id.
        min_duration_s: shorter visits are not counted. Raising it drops more
            false faces and glimpses, and misses people who rush past.
        line: optional counting line; visits then carry ``direction``.
        hysteresis: how far past the line (fraction of the frame) a face must be.
        anchor: which point of the face box crosses lines and zones.
        zones: polygons whose dwell time is measured per visit.
        reentry_window_s: how long an ended visit waits for its person to reappear.
        reentry_distance: how close (fraction of the frame) to the predicted
            position a new track must start to continue a visit. Raising it
            merges more fragments and risks merging two people.
        min_similarity: likeness of colours and face (0..1, see :mod:`analyzer.pipeline.appearance`)
            a new track needs to continue a visit.
        reentry_verify_s: how long a new track is watched before its motion
            decides whether it continues a lost visit. Longer gives a surer
            velocity; a new track that ends sooner is judged on what was seen.
        unseen_crossing_s: a visit without a seen crossing that, walking on at
            its own speed for this long before it was first seen or after it
            was last seen, is across the line, crossed it there. 0 counts
            only crossings seen; longer also counts people who appear further
            from the line, and someone stepping out from behind a shelf there.
        new_visit_id: id source (random by default; tests inject their own).
        lost_after_s: a visit whose face has not been seen this long has lost
            its track, whether or not the tracker's word of it arrived (more
            than the tracker's ``linger_s``).
        hold_still_s: a visit whose face never moved waits this long from its
            start before it counts, in case a fixture is found where it was (the
            face check's ``fixture_after_s``; 0 never waits).

    Example:
        >>> counter = FootfallCounter("door", min_duration_s=1.0)
        >>> counter.faces_in_view
        0
    """

    def __init__(
        self,
        camera: str,
        min_duration_s: float = 1.0,
        line: CountingLine | None = None,
        hysteresis: float = 0.02,
        anchor: str = "center",
        zones: list[Zone] | None = None,
        reentry_window_s: float = 2.0,
        reentry_distance: float = 0.25,
        min_similarity: float = 0.65,
        reentry_verify_s: float = 0.4,
        unseen_crossing_s: float = 0.75,
        new_visit_id: Callable[[], str] = random_visit_id,
        lost_after_s: float = 5.0,
        hold_still_s: float = 0.0,
    ) -> None:
        self.lost_after_s = lost_after_s
        self.hold_still_s = hold_still_s
        self._held: list[tuple[VisitEnded, float]] = []  # visits of a still face, and when they count
        self._still_visits: set[str] = set()  # ids of the visits being ended whose faces never moved
        self._fixtures_seen: list[tuple[Point, float]] = []  # fixtures in the latest frame: (anchor, width)
        self.min_similarity = min_similarity
        self.unseen_crossing_s = unseen_crossing_s
        self.reentry_verify_s = reentry_verify_s
        self.camera = camera
        self.min_duration_s = min_duration_s
        self.line = line
        self.hysteresis = hysteresis
        self.anchor = anchor
        self.zones = zones or []
        self.reentry_window_s = reentry_window_s
        self.reentry_distance = reentry_distance
        self.new_visit_id = new_visit_id
        self._visits: list[_OpenVisit] = []
        self._by_track: dict[int, _OpenVisit] = {}
        self.faces_in_view = 0
        self.fixtures_in_view = 0
        self.clock_origin = 0.0

    @property
    def following(self) -> bool:
        """Whether a visit is open or waiting to count: frames must be searched until it is over."""
        return bool(self._visits or self._held)

    @classmethod
    def for_camera(
        cls,
        camera: CameraConfig,
        footfall: FootfallConfig,
        min_similarity: float,
        new_visit_id: Callable[[], str] = random_visit_id,
        hold_still_s: float = 0.0,
    ) -> FootfallCounter:
        """The counter a camera's line, zones and the ``footfall`` settings ask for (``run`` and ``check`` alike)."""
        counter = cls(
            camera.id,
            camera.visit_min_duration_s(footfall),
            reentry_window_s=footfall.reentry_window_s,
            reentry_distance=footfall.reentry_distance,
            reentry_verify_s=footfall.reentry_verify_s,
            min_similarity=min_similarity,
            new_visit_id=new_visit_id,
            lost_after_s=2 * footfall.linger_s + 1.0,
            hold_still_s=hold_still_s,
        )
        counter.reshape(camera)
        return counter

    def reshape(self, camera: CameraConfig) -> None:
        """Count by ``camera``'s line and zones from now on (set at start, and when the set-up is saved).

        Visits in progress keep the crossings they made and follow the new
        line from here; their time in a zone is measured from here too.
        """
        line = camera.line
        self.line = line.counting_line() if line else None
        self.hysteresis = line.hysteresis if line else 0.0
        self.anchor = line.anchor if line else "center"
        self.unseen_crossing_s = line.unseen_crossing_s if line else 0.0
        self.zones = [zone.zone() for zone in camera.zones]
        for visit in self._visits:
            visit.line_state = self._line_state()

    def _line_state(self) -> LineState | None:
        """Where a visit stands against the counting line, from now on; None without a line."""
        return LineState(self.line, self.hysteresis) if self.line is not None else None

    def update(
        self,
        tracks: Tracks,
        ended: list[int],
        timestamp: float,
        captured_at: float,
        frame_size: tuple[int, int],
        exited: list[int] | None = None,
    ) -> list[VisitEnded]:
        """Register this frame's tracks; return the visits that ended now.

        ``exited`` are ended tracks that walked out of the frame: their visits
        end at once, since a face appearing there is someone else.
        """
        self.observe(tracks, timestamp, frame_size)
        return self.end_tracks(ended, timestamp, captured_at, exited)

    def observe(self, tracks: Tracks, timestamp: float, frame_size: tuple[int, int]) -> None:
        """Register this frame's tracks: visits start, move, cross lines and dwell in zones."""
        seen = tracks[tracks.confirmed & tracks.matched]
        people, fixtures, stills = seen.people, seen.fixtures, seen.stills
        self.faces_in_view = int(people.sum())  # a back of a head or a poster in view is not a visitor's face
        self.fixtures_in_view = int(fixtures.sum())
        anchors = anchor_points(seen.boxes, frame_size[0], frame_size[1], self.anchor)
        looks = seen.appearance if seen.appearance is not None else [None] * len(seen)
        widths = (seen.boxes[:, 2] - seen.boxes[:, 0]) / max(frame_size[0], 1)
        seen_now = {int(track_id) for track_id in seen.ids if int(track_id) in self._by_track}
        self._fixtures_seen = [
            ((float(x), float(y)), float(width))
            for (x, y), width, fixture in zip(anchors, widths, fixtures, strict=True)
            if fixture
        ]
        for track_id, (x, y), appearance, width, person, fixture, still in zip(
            seen.ids.tolist(), anchors, looks, widths, people, fixtures, stills, strict=True
        ):
            point = (float(x), float(y))
            visit = self._by_track.get(track_id) or self._start(track_id, point, timestamp, seen_now, appearance)
            self._observe(visit, point, timestamp)
            if person or fixture:
                visit.face_tracks.add(track_id)
            if fixture:
                visit.fixture_tracks.add(track_id)
            visit.moved |= bool(person and not still)
            visit.face_size = float(width)
            if appearance is not None and np.any(appearance):
                visit.appearance = appearance
        for visit in list(self._visits):
            if visit.lost_candidates and timestamp - visit.start >= self.reentry_verify_s:
                self._verify_reentry(visit)

    def end_tracks(
        self, ended: list[int], timestamp: float, captured_at: float, exited: list[int] | None = None
    ) -> list[VisitEnded]:
        """Tracks the tracker ended now; return the visits that are over (their re-entry window passed).

        The tracker says once that a track ended, and a visit whose end was
        missed would stay open (and its likeness in memory) for good. So the
        pipeline calls this even when this frame's other stages failed, and a
        visit unseen for ``lost_after_s`` ends here whatever happened to that word.
        """
        for visit in self._visits:
            if visit.tracks_ended_at is None and visit.active and timestamp - visit.last_seen > self.lost_after_s:
                for track_id in visit.active:
                    self._by_track.pop(track_id, None)
                visit.active.clear()
                visit.tracks_ended_at = visit.last_seen + self.lost_after_s
        for track_id in ended:
            visit = self._by_track.pop(track_id, None)
            if visit is not None:
                visit.active.discard(track_id)
                visit.exited = track_id in (exited or [])
                if not visit.active:
                    visit.tracks_ended_at = timestamp
                    if visit.lost_candidates:
                        self._verify_reentry(visit)
        finished = [
            visit
            for visit in self._visits
            if visit.tracks_ended_at is not None
            and (visit.exited or timestamp - visit.tracks_ended_at >= self.reentry_window_s)
        ]
        return self._held_back([self._end(visit, captured_at) for visit in finished], timestamp)

    def _held_back(self, ended: list[VisitEnded], timestamp: float) -> list[VisitEnded]:
        """The visits that are over, except a face that never moved, held until it is known whether it is a fixture.

        A poster's face is boxed again and again as walkers pass in front of
        it: each of those tracks is a visit that ends before anything was
        still long enough to be a fixture. A visit whose faces never moved
        from where they were first seen waits until ``hold_still_s`` after its
        start: a fixture found meanwhile where it was makes it a fixture, not a
        visitor; otherwise it counts then. A person who walked in is never held.
        """
        out = []
        for visit in ended:
            if visit.counted and visit.visit_id in self._still_visits and self.hold_still_s:
                self._held.append((visit, visit.start + self.hold_still_s + HOLD_MARGIN_S))
            else:
                out.append(visit)
        self._still_visits.difference_update(visit.visit_id for visit in ended)
        kept = []
        for visit, release_at in self._held:
            near = [
                width
                for point, width in self._fixtures_seen
                if _distance(point, visit.last_position) < max(width, visit.face_size, 0.02)
            ]
            if near:
                out.append(dataclasses.replace(visit, counted=False, fixture=True))
            elif timestamp >= release_at:
                out.append(visit)
            else:
                kept.append((visit, release_at))
        self._held = kept
        return out

    def close(self, captured_at: float) -> list[VisitEnded]:
        """End every open visit, and release the ones held (stream ended or shutting down)."""
        self.faces_in_view = 0
        ended = [self._end(visit, captured_at) for visit in list(self._visits)] + [visit for visit, _ in self._held]
        self._held, self._still_visits = [], set()
        return ended

    def _start(
        self, track_id: int, point: Point, timestamp: float, seen_now: set[int], appearance: np.ndarray | None
    ) -> _OpenVisit:
        """A new track starts a visit; lost visits it may continue are noted, to be verified by its motion."""
        visit = _OpenVisit(self.new_visit_id(), timestamp, timestamp, point, point, self._line_state())
        visit.lost_candidates = [
            lost for lost in self._visits if self._could_continue(lost, point, timestamp, seen_now)
        ]
        self._visits.append(visit)
        visit.track_ids.append(track_id)
        visit.active.add(track_id)
        self._by_track[track_id] = visit
        return visit

    def _could_continue(self, lost: _OpenVisit, point: Point, timestamp: float, seen_now: set[int]) -> bool:
        """Whether a face appearing at ``point`` is near enough to where ``lost`` should be to be that face."""
        if lost.active & seen_now or timestamp <= lost.last_seen or lost.exited or lost.left_the_view(timestamp):
            return False
        # Hidden people either walked on (predicted) or stopped and turned (near where last seen).
        distance = min(_distance(point, guess) for guess in (lost.predicted(timestamp), lost.last_position))
        return distance < self.reentry_distance

    def _verify_reentry(self, visit: _OpenVisit) -> None:
        """Merge ``visit`` into the lost visit its motion fits, if any.

        A new face that, traced back in time at its own speed, was outside the
        frame walked into view: someone else. Otherwise it continues a lost
        face if, traced back, it passes where that face was (it walked on,
        stood still and looked away, or stood and then walked on), or if the
        lost face, walking, would be where the new one appeared (it walked on
        and then stopped). A face walking the other way is the lost one turned
        around only if it starts where that was last seen and it looks
        closely alike.
        """
        velocity = visit.mean_velocity()
        if velocity is None:
            return  # a single sighting is too little to tell; a track that continues it may tell
        candidates, visit.lost_candidates = visit.lost_candidates, []
        best, best_distance = None, self.reentry_distance
        for lost in candidates:
            if not any(open_visit is lost for open_visit in self._visits) or lost.last_seen >= visit.start:
                continue  # ended meanwhile, or seen again (someone else continued it)
            if not self._looks_alike(lost.appearance, visit.appearance):
                continue
            gap = visit.start - lost.last_seen
            traced_back = (visit.first_position[0] - velocity[0] * gap, visit.first_position[1] - velocity[1] * gap)
            if _outside_view(traced_back, visit.face_size):
                continue
            # Somewhere on its way back it passes where the lost face was: it walked on, or stood, then walked.
            distances = [_distance_to_segment(lost.last_position, visit.first_position, traced_back)]
            if _speed(lost.velocity) >= MIN_WALKING_SPEED:
                distances.append(_distance(visit.first_position, lost.predicted(visit.start)))
            if _reverses(lost.velocity, velocity):
                # Turned around while hidden, or someone else walking the other way: only its looks can tell.
                if not self._looks_alike(lost.appearance, visit.appearance, TURNED_AROUND_SIMILARITY):
                    continue
                distances = [_distance(visit.first_position, lost.last_position)]
            if min(distances) < best_distance:
                best, best_distance = lost, min(distances)
        if best is not None:
            self._merge(best, visit)

    def _merge(self, lost: _OpenVisit, later: _OpenVisit) -> None:
        """``later`` was ``lost``'s person all along: one visit from ``lost``'s start to now."""
        self._visits.remove(later)
        for zone in self.zones:
            if zone.contains(lost.last_position):
                lost.zone_dwell[zone.name] = lost.zone_dwell.get(zone.name, 0.0) + later.start - lost.last_seen
            lost.zone_dwell[zone.name] = lost.zone_dwell.get(zone.name, 0.0) + later.zone_dwell.get(zone.name, 0.0)
        if lost.line_state is not None and later.line_state is not None:
            hidden_crossing = lost.line_state.continue_with(later.line_state)
            if hidden_crossing:
                lost.crossings.append((hidden_crossing, later.start))
        lost.crossings += later.crossings
        lost.track_ids += later.track_ids
        lost.active |= later.active
        for track_id in later.active:
            self._by_track[track_id] = lost
        lost.last_position, lost.last_seen = later.last_position, later.last_seen
        lost.velocity, lost.face_size = later.velocity, later.face_size
        lost.appearance = later.appearance if later.appearance is not None else lost.appearance
        lost.exited = later.exited
        lost.tracks_ended_at = later.tracks_ended_at
        lost.face_tracks |= later.face_tracks
        lost.moved |= later.moved
        lost.fixture_tracks |= later.fixture_tracks

    def _looks_alike(self, first: np.ndarray | None, second: np.ndarray | None, threshold: float | None = None) -> bool:
        if first is None or second is None or not np.any(first) or not np.any(second):
            return threshold is None  # unknown looks never prove that someone turned around
        least = self.min_similarity if threshold is None else threshold
        return bool(similarity(first[None], second[None])[0, 0] >= least)

    def _observe(self, visit: _OpenVisit, point: Point, timestamp: float) -> None:
        elapsed = timestamp - visit.last_seen
        for zone in self.zones:
            if zone.contains(visit.last_position) and elapsed > 0:
                visit.zone_dwell[zone.name] = visit.zone_dwell.get(zone.name, 0.0) + elapsed
        if elapsed > 0:
            step = ((point[0] - visit.last_position[0]) / elapsed, (point[1] - visit.last_position[1]) / elapsed)
            visit.velocity = (0.7 * visit.velocity[0] + 0.3 * step[0], 0.7 * visit.velocity[1] + 0.3 * step[1])
        since_start = timestamp - visit.start
        if 0 < since_start <= START_VELOCITY_S:
            visit.start_velocity = (
                (point[0] - visit.first_position[0]) / since_start,
                (point[1] - visit.first_position[1]) / since_start,
            )
        if visit.line_state is not None:
            direction = visit.line_state.update(point)
            if direction:
                visit.crossings.append((direction, timestamp))
        visit.rest_point, visit.resting_since = resting(
            visit.rest_point, visit.resting_since, point, visit.face_size, timestamp
        )
        visit.last_position = point
        visit.last_seen = max(visit.last_seen, timestamp)

    def _unseen_crossing(self, visit: _OpenVisit) -> tuple[str, float] | None:
        """The crossing a visit made just out of sight, walking, before it was first or after it was last seen."""
        if self.line is None or self.unseen_crossing_s <= 0:
            return None
        came_from = _walked(visit.first_position, visit.start_velocity, -self.unseen_crossing_s)
        went_to = _walked(visit.last_position, visit.velocity, self.unseen_crossing_s)
        crossings = self.line.crossings(
            [came_from, visit.first_position, visit.last_position, went_to],
            [visit.start, visit.start, visit.last_seen, visit.last_seen],
            self.hysteresis,
        )
        return crossings[0] if crossings else None

    def _end(self, visit: _OpenVisit, captured_at: float) -> VisitEnded:
        self._visits.remove(visit)
        if visit.person_seen and not visit.moved:
            self._still_visits.add(visit.visit_id)
        for track_id in visit.active:
            self._by_track.pop(track_id, None)
        if not visit.crossings and (unseen := self._unseen_crossing(visit)):
            visit.crossings.append(unseen)
        direction = None
        if self.line is not None:
            direction = visit.crossings[0][0] if visit.crossings else NOT_CROSSED
        return VisitEnded(
            camera=self.camera,
            track_ids=tuple(visit.track_ids),
            visit_id=visit.visit_id,
            start=visit.start,
            end=visit.last_seen,
            counted=visit.person_seen and visit.last_seen - visit.start >= self.min_duration_s,
            captured_at=captured_at,
            clock_origin=self.clock_origin,
            direction=direction,
            crossings=tuple(visit.crossings),
            zone_dwell_s={zone.name: visit.zone_dwell.get(zone.name, 0.0) for zone in self.zones},
            first_position=visit.first_position,
            last_position=visit.last_position,
            fixture=bool(visit.fixture_tracks) and not visit.person_seen,
            face_size=visit.face_size,
        )
