"""Per-camera face tracking: a ByteTrack-style tracker of our own.

Kalman-predicted boxes are matched to detections in two rounds (confident
detections first, then faint ones, which only keep existing tracks alive), so
a face that blurs for a frame keeps its id. A track lost for longer than
``max_lost_s`` ends. Ids come from the tracker's own counter: one tracker per
camera, and resetting one never disturbs another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from scipy.optimize import linear_sum_assignment

from analyzer.config import TrackerConfig
from analyzer.core.faces import NUM_KEYPOINTS, Faces, box_iou, cut_by_frame
from analyzer.core.tracks import Tracks
from analyzer.pipeline.appearance import (
    FEATURE_SIZE,
    FaceLikeness,
    appearance_features,
    has_likeness,
    running_mean,
    similarity,
)


@dataclass(frozen=True)
class TrackUpdate:
    """Result of one tracker update: live tracks, the ids that ended now, and which of those walked out of view."""

    tracks: Tracks
    ended: list[int]
    exited: list[int] = field(default_factory=list)


class _KalmanBox:
    """Constant-velocity Kalman filter on box centre and size (cx, cy, w, h).

    Noise scales with the box size, so small far faces and big near ones are
    followed equally well; time steps are real seconds, so dropped frames
    just mean a longer prediction.
    """

    def __init__(self, box: np.ndarray) -> None:
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]])
        self.state = np.concatenate([centre, np.zeros(4)])
        size = max(centre[2], centre[3], 1.0)
        self.covariance = np.diag(np.square([0.1 * size] * 4 + [1.0 * size] * 4))

    def predict(self, dt: float) -> None:
        transition = np.eye(8)
        transition[:4, 4:] = np.eye(4) * dt
        size = max(self.state[2], self.state[3], 1.0)
        # Position noise grows with dt; velocity noise lets walkers speed up and turn.
        noise = np.diag(np.square([0.05 * size * dt] * 4 + [0.6 * size * dt] * 4)) + np.eye(8) * 1e-6
        self.state = transition @ self.state
        self.state[2:4] = np.maximum(self.state[2:4], 1.0)
        self.covariance = transition @ self.covariance @ transition.T + noise

    def update(self, box: np.ndarray) -> None:
        measurement = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]])
        size = max(measurement[2], measurement[3], 1.0)
        observation = np.hstack([np.eye(4), np.zeros((4, 4))])
        innovation_cov = observation @ self.covariance @ observation.T + np.diag(np.square([0.05 * size] * 4))
        gain = self.covariance @ observation.T @ np.linalg.inv(innovation_cov)
        self.state = self.state + gain @ (measurement - observation @ self.state)
        self.covariance = (np.eye(8) - gain @ observation) @ self.covariance

    def box(self, ahead_s: float = 0.0) -> np.ndarray:
        """The box now, or ``ahead_s`` seconds on at the current velocity (the filter is not advanced)."""
        cx, cy, width, height = self.state[:4] + self.state[4:] * ahead_s
        width, height = max(width, 1.0), max(height, 1.0)
        return np.array([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], dtype=np.float32)


@dataclass
class _Track:
    track_id: int
    filter: _KalmanBox
    last_seen: float
    hits: int = 1
    confirmed: bool = False
    box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    appearance: np.ndarray | None = None
    path_low: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # min centre x, y seen
    path_high: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # max centre x, y seen
    exit_direction: np.ndarray | None = None  # out of the edge it is leaving by, once it is
    outermost: float = 0.0  # furthest its centre got along exit_direction
    started: float = 0.0  # when it was first seen
    likeness_at: float | None = None  # when its face likeness was last refreshed
    rest_centre: np.ndarray | None = None  # where it has stayed (within half a face width) since resting_since
    resting_since: float = 0.0


#: A face's centre: pixels in the tracker, frame fractions in the footfall counter.
RestPoint = TypeVar("RestPoint", np.ndarray, tuple[float, float])

#: Unseen this long (two frames at 15 fps), a track counts as hidden rather than just missed once.
HIDDEN_AFTER_S = 0.15
#: How far (face widths, from the prediction) a detection may be and still match by distance alone.
FRAME_REACH = 0.6
#: A face that stayed within half its width this long before it was lost at a frame edge sat there: it is hidden
#: (looked away), not gone. Passers-by who turn back at the edge stop for a second or so.
SETTLED_S = 5.0
#: How fast a brisk walker's face moves across the image, in its own widths per second
#: (about 1.4 m/s at 16 cm a face): FRAME_REACH per frame at 15 fps.
FACE_WIDTHS_PER_S = 9.0

#: How often a track in plain view refreshes its face likeness (it only matters once the face is hidden).
LIKENESS_REFRESH_S = 0.5
#: A new track takes its face likeness on every frame this long (the footfall counter's re-entry check
#: reads the new track's cue within ``reentry_verify_s``).
LIKENESS_NEW_TRACK_S = 0.5
#: A detection overlapping a settled track by this much plainly continues it.
LIKENESS_CONTINUES_IOU = 0.3
#: A detection overlapping a second track by this much could be matched to it (a hidden face it
#: re-finds, or the other face of a crossing), so it gets its likeness.
LIKENESS_OTHER_IOU = 0.1

#: Unit vectors out of the frame through its left, right, top and bottom edge.
_OUTWARD = np.array([(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)], np.float32)


def _walks_backwards(
    tracks: list[_Track], centres: np.ndarray, now: float, frame_size: tuple[int, int] | None = None
) -> np.ndarray:
    """(T, D) True where matching a track to a detection means reversing its walk.

    A face lost for a few frames that "reappears" behind where it was heading
    is almost always someone else (two people crossing); people rarely turn
    around while hidden. The same holds in plain view at the frame's edge: a
    face walking out that "steps back" by more than a quarter of its width is
    the next person walking in there; once the face is already cut by the
    edge it walks out of, any step back beyond detector jitter is. A track
    marked as walking out (``_note_walking_out``) stays so: its box stalls as
    the face is cut and its speed fades, but a face coming back in from that
    edge, past the furthest point it reached, is still someone else.
    """
    backwards = np.zeros((len(tracks), len(centres)), dtype=bool)
    for row, track in enumerate(tracks):
        size = max(float(track.box[2] - track.box[0]), 1.0)
        if track.exit_direction is not None:
            # On its way out: the detector's box stalls as the face is cut, so speed says nothing;
            # a face coming back in from there, beyond detector jitter, is the next person.
            backwards[row] = centres @ track.exit_direction < track.outermost - 0.05 * size
            continue
        velocity = track.filter.state[4:6]
        speed = float(np.hypot(*velocity))
        if speed < 0.3 * size:
            continue
        lost = now - track.last_seen >= HIDDEN_AFTER_S
        leaving = frame_size is not None and _at_edge(track, frame_size) and _heading_out(track, frame_size)
        if not (lost or leaving):
            continue  # a face in plain view may turn around (window shoppers do)
        last_centre = (track.box[:2] + track.box[2:]) / 2
        if lost:
            tolerance = 0.0
        elif frame_size is not None and _cut_by_edge(track, frame_size):
            tolerance = 0.05 * size
        else:
            tolerance = 0.25 * size
        backwards[row] = (centres - last_centre) @ (velocity / speed) < -tolerance
    return backwards


def _heading_out(track: _Track, frame_size: tuple[int, int]) -> bool:
    """Moving towards the nearest frame edge."""
    return bool(track.filter.state[4:6] @ _nearest_edge(track, frame_size) > 0)


def _nearest_edge(track: _Track, frame_size: tuple[int, int]) -> np.ndarray:
    """Unit vector out of the frame edge nearest the track's last box."""
    width, height = frame_size
    x1, y1, x2, y2 = track.box
    distances = [x1, width - x2, y1, height - y2]
    return _OUTWARD[int(np.argmin(distances))]


def _note_walking_out(track: _Track, frame_size: tuple[int, int], matched: bool) -> None:
    """Mark a track that has walked to an edge and is going out of it: cut by it, or lost at it.

    It must have been further inside before (a pass-by shopper leaves by the
    edge they came in by), so a face stepping in at the edge is not taken for
    one stepping out.
    """
    centre = (track.box[:2] + track.box[2:]) / 2
    if matched:
        track.path_low, track.path_high = np.minimum(track.path_low, centre), np.maximum(track.path_high, centre)
    if track.exit_direction is None:
        outward = _nearest_edge(track, frame_size)
        size = max(float(track.box[2] - track.box[0]), 1.0)
        innermost = float(track.path_low @ np.maximum(outward, 0) + track.path_high @ np.minimum(outward, 0))
        came_from_inside = float(centre @ outward) - innermost > 0.5 * size
        cut = bool(cut_by_frame(track.box[None], *frame_size).any())
        if came_from_inside and (cut or (not matched and _at_edge(track, frame_size))):
            track.exit_direction, track.outermost = outward, float(centre @ outward)
    elif matched:
        track.outermost = max(track.outermost, float(centre @ track.exit_direction))


def _cut_by_edge(track: _Track, frame_size: tuple[int, int]) -> bool:
    """The last face box reaches past the frame edge the track is heading to (the face is leaving)."""
    left, top, right, bottom = cut_by_frame(track.box[None], *frame_size)[0]
    vx, vy = track.filter.state[4:6]
    return bool((left and vx < 0) or (right and vx > 0) or (top and vy < 0) or (bottom and vy > 0))


def _looks_different(tracks: list[_Track], appearance: np.ndarray, now: float, min_similarity: float) -> np.ndarray:
    """(T, D) True where a lost track and a detection look different (colours, face): not the same person.

    Only tracks unseen for a few frames are gated: in plain view the box
    overlap decides, and the colours around a walking person change with the
    background behind them.
    """
    different = np.zeros((len(tracks), len(appearance)), dtype=bool)
    for row, track in enumerate(tracks):
        if track.appearance is not None and now - track.last_seen >= HIDDEN_AFTER_S:
            different[row] = similarity(track.appearance[None], appearance)[0] < min_similarity
    return different


def _match(
    tracks: list[_Track],
    boxes: np.ndarray,
    min_iou: float,
    now: float,
    appearance: np.ndarray | None = None,
    min_similarity: float = 0.0,
    frame_size: tuple[int, int] | None = None,
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian matching on IoU, with a centre-distance fallback for fast small faces.

    A track seen once has no speed yet, so its prediction stands still; the
    fallback then reaches as far as a walker's face can move since that
    sighting (with ``every_n_frames`` above 1, or a slow camera, that is
    more than one frame's step).

    Returns:
        (track index, detection index) pairs, unmatched track indices, unmatched detection indices.
    """
    if not tracks or not len(boxes):
        return [], list(range(len(tracks))), list(range(len(boxes)))
    predicted = np.stack([track.filter.box() for track in tracks])
    iou = box_iou(predicted, boxes)
    centres_t = (predicted[:, :2] + predicted[:, 2:]) / 2
    centres_d = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = np.sqrt(np.prod(np.clip(predicted[:, 2:] - predicted[:, :2], 1, None), axis=1))
    distance = np.linalg.norm(centres_t[:, None] - centres_d[None], axis=2) / sizes[:, None]
    size_ratio = np.sqrt(np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1, None), axis=1))[None, :] / sizes[:, None]
    similar_size = (size_ratio > 0.6) & (size_ratio < 1.6)
    reach = np.array(
        [
            max(FRAME_REACH, FACE_WIDTHS_PER_S * (now - track.last_seen)) if track.hits == 1 else FRAME_REACH
            for track in tracks
        ]
    )[:, None]
    backwards = _walks_backwards(tracks, centres_d, now, frame_size)
    allowed = ((iou >= min_iou) | ((distance < reach) & similar_size)) & ~backwards
    if appearance is not None:
        allowed &= ~_looks_different(tracks, appearance, now, min_similarity)
    cost = np.where(allowed, 1.0 - iou + 0.3 * np.minimum(distance, 1.0), 1e6)
    rows, columns = linear_sum_assignment(cost)
    pairs = [(int(r), int(c)) for r, c in zip(rows, columns, strict=True) if allowed[r, c]]
    matched_tracks = {r for r, _ in pairs}
    matched_detections = {c for _, c in pairs}
    return (
        pairs,
        [index for index in range(len(tracks)) if index not in matched_tracks],
        [index for index in range(len(boxes)) if index not in matched_detections],
    )


def resting(
    rest: RestPoint | None, since: float, centre: RestPoint, width: float, timestamp: float
) -> tuple[RestPoint, float]:
    """Where a face seen at ``centre`` has stayed, within half its ``width``, and since when.

    One rule for the tracker (pixels) and the footfall counter (frame fractions): a face resting
    ``SETTLED_S`` sat or stood there.
    """
    if rest is None or float(np.hypot(centre[0] - rest[0], centre[1] - rest[1])) > 0.5 * width:
        return centre, timestamp
    return rest, since


def _note_rest(track: _Track, timestamp: float) -> None:
    """Keep where the face has stayed, and since when (:func:`resting`)."""
    centre = (track.box[:2] + track.box[2:]) / 2
    size = max(float(track.box[2] - track.box[0]), 1.0)
    track.rest_centre, track.resting_since = resting(track.rest_centre, track.resting_since, centre, size, timestamp)


def _left_frame(track: _Track, frame_size: tuple[int, int]) -> bool:
    """Last seen at the frame's edge (a face cut by the edge is leaving), or near it and predicted out of it.

    A face last seen far from the edge is not "out" just because its
    prediction drifted there: it may have stopped while hidden. Nor is a face
    that had sat at the edge for ``SETTLED_S``: a cafe's customer at the table by
    the edge who looks away for a moment has not left.
    """
    if _at_edge(track, frame_size):
        return _cut_by_edge(track, frame_size) or track.last_seen - track.resting_since < SETTLED_S
    width, height = frame_size
    predicted = track.filter.box()
    centre_x, centre_y = (predicted[0] + predicted[2]) / 2, (predicted[1] + predicted[3]) / 2
    if 0 <= centre_x < width and 0 <= centre_y < height:
        return False
    return _at_edge(track, frame_size, face_margin=1.5)


def _at_edge(track: _Track, frame_size: tuple[int, int], edge: float = 0.01, face_margin: float = 0.35) -> bool:
    """Last seen within ``face_margin`` face widths of the frame's edge.

    The detector stops finding a face well before all of it is out of view.
    """
    width, height = frame_size
    x1, y1, x2, y2 = track.box
    margin_x = max(edge * width, face_margin * (x2 - x1))
    margin_y = max(edge * height, face_margin * (y2 - y1))
    return bool(x1 <= margin_x or y1 <= margin_y or x2 >= width - margin_x or y2 >= height - margin_y)


class ByteTracker:
    """Face tracker with stable ids through short misses.

    Args:
        high_score: detections at or above this can start tracks and are matched
            first; below it they only extend existing tracks. Raising it means
            fewer false tracks from faint detections and more missed faces.
        match_iou: minimum IoU of predicted and detected box for a match.
            Lowering it follows fast faces better but may swap ids when people cross.
        min_hits: updates a track needs before it is confirmed; 1 confirms at once.
        max_lost_s: how long an unmatched track is kept for re-association before it ends.
        min_similarity: likeness (0..1, colours and face; see :mod:`analyzer.pipeline.appearance`)
            a detection needs to re-find a track unseen for a few frames; raising it
            avoids swapping people who cross, lowering it bridges lighting changes.

    Example:
        >>> tracker = ByteTracker()
        >>> update = tracker.update(Faces.empty(), timestamp=0.0)
        >>> len(update.tracks), update.ended
        (0, [])
    """

    def __init__(
        self,
        high_score: float = 0.6,
        match_iou: float = 0.2,
        min_hits: int = 2,
        max_lost_s: float = 1.5,
        min_similarity: float = 0.65,
    ) -> None:
        self.high_score = high_score
        self.min_similarity = min_similarity
        self.match_iou = match_iou
        self.min_hits = min_hits
        self.max_lost_s = max_lost_s
        self.reset()

    @classmethod
    def from_config(cls, settings: TrackerConfig, max_lost_s: float) -> ByteTracker:
        """The tracker the ``tracker`` settings ask for (``analyzer run`` and ``analyzer check`` alike)."""
        return cls(settings.high_score, settings.match_iou, settings.min_hits, max_lost_s, settings.min_similarity)

    @property
    def following(self) -> bool:
        """Whether any track is alive: seen, or lingering after its face was lost."""
        return bool(self._tracks)

    @property
    def seeing(self) -> bool:
        """Whether a track was matched on the last update: a face is in view, not only a lost one remembered."""
        return any(track.last_seen == self._last_timestamp for track in self._tracks)

    def reset(self) -> None:
        """Forget every track and restart ids at 1."""
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._last_timestamp: float | None = None

    def update(
        self,
        faces: Faces,
        timestamp: float,
        frame_size: tuple[int, int] | None = None,
        appearance: np.ndarray | None = None,
    ) -> TrackUpdate:
        """Advance to ``timestamp`` (seconds) with this frame's detections.

        With ``frame_size`` (width, height), an unseen track that was last
        seen at the frame's edge, or is predicted outside it, ends at once:
        that person walked out, and a face appearing there is someone else.
        With ``appearance`` (see :mod:`analyzer.pipeline.appearance`), a track unseen
        for a few frames is only re-found by a detection that looks like it.
        """
        dt = self._since_last_update(timestamp)
        self._last_timestamp = timestamp
        for track in self._tracks:
            track.filter.predict(dt)
        high = np.flatnonzero(faces.scores >= self.high_score)
        detection_of, unmatched_high = self._associate(faces, high, timestamp, frame_size, appearance)
        for track_index, detection in detection_of.items():
            self._refresh(self._tracks[track_index], faces.boxes[detection], timestamp, appearance, detection)
        if frame_size is not None:
            for index, track in enumerate(self._tracks):
                _note_walking_out(track, frame_size, index in detection_of)
        survivors, survivor_detection, ended, exited = self._survivors(detection_of, timestamp, frame_size)
        for detection in unmatched_high:
            survivor_detection[len(survivors)] = int(high[detection])
            survivors.append(self._start(faces.boxes[high[detection]], timestamp, appearance, int(high[detection])))
        self._tracks = survivors
        return TrackUpdate(self._snapshot(faces, survivor_detection), ended, exited)

    def _associate(
        self,
        faces: Faces,
        high: np.ndarray,
        timestamp: float,
        frame_size: tuple[int, int] | None,
        appearance: np.ndarray | None,
    ) -> tuple[dict[int, int], list[int]]:
        """Track index -> detection index, in two rounds; and the confident detections no track took."""
        low = np.flatnonzero(faces.scores < self.high_score)
        detection_of: dict[int, int] = {}
        looks = None if appearance is None else appearance[high]
        pairs, unmatched, unmatched_high = _match(
            self._tracks, faces.boxes[high], self.match_iou, timestamp, looks, self.min_similarity, frame_size
        )
        for track_index, detection in pairs:
            detection_of[track_index] = int(high[detection])
        # Faint detections may only keep an already confirmed, recently seen track alive.
        candidates = [index for index in unmatched if self._tracks[index].confirmed]
        low_pairs, _, _ = _match(
            [self._tracks[i] for i in candidates],
            faces.boxes[low],
            max(self.match_iou, 0.3),
            timestamp,
            None if appearance is None else appearance[low],
            self.min_similarity,
            frame_size,
        )
        for candidate, detection in low_pairs:
            detection_of[candidates[candidate]] = int(low[detection])
        return detection_of, unmatched_high

    def _refresh(
        self, track: _Track, box: np.ndarray, timestamp: float, appearance: np.ndarray | None, detection: int
    ) -> None:
        """A track seen again in ``box``."""
        track.filter.update(box)
        track.last_seen = timestamp
        track.hits += 1
        track.confirmed = track.confirmed or track.hits >= self.min_hits
        track.box = box
        _note_rest(track, timestamp)
        if appearance is not None:
            seen = appearance[detection]
            track.appearance = seen if track.appearance is None else running_mean(track.appearance, seen)
            if has_likeness(seen):
                track.likeness_at = timestamp

    def _survivors(
        self, detection_of: dict[int, int], timestamp: float, frame_size: tuple[int, int] | None
    ) -> tuple[list[_Track], dict[int, int], list[int], list[int]]:
        """The tracks that go on (and their detections), the confirmed ones that ended, and which of those left."""
        ended: list[int] = []
        exited: list[int] = []
        survivors: list[_Track] = []
        survivor_detection: dict[int, int] = {}
        for index, track in enumerate(self._tracks):
            unseen = timestamp - track.last_seen
            gone = frame_size is not None and unseen >= HIDDEN_AFTER_S and _left_frame(track, frame_size)
            if index not in detection_of and (not track.confirmed or unseen > self.max_lost_s or gone):
                if track.confirmed:
                    ended.append(track.track_id)
                    if gone:
                        exited.append(track.track_id)
                continue
            if index in detection_of:
                survivor_detection[len(survivors)] = detection_of[index]
            survivors.append(track)
        return survivors, survivor_detection, ended, exited

    def _start(self, box: np.ndarray, timestamp: float, appearance: np.ndarray | None, detection: int) -> _Track:
        """A new track on a confident detection no track took."""
        track = _Track(
            self._next_id, _KalmanBox(box), timestamp, box=box, confirmed=self.min_hits <= 1, started=timestamp
        )
        track.path_low = track.path_high = (box[:2] + box[2:]) / 2
        track.appearance = None if appearance is None else appearance[detection]
        if appearance is not None and has_likeness(appearance[detection]):
            track.likeness_at = timestamp
        self._next_id += 1
        return track

    def update_with_appearance(
        self, faces: Faces, frame_rgb: np.ndarray, timestamp: float, likeness: FaceLikeness | None
    ) -> TrackUpdate:
        """``update`` with colours for every face and the likeness where ``wants_likeness`` asks (run and check)."""
        wanted = self.wants_likeness(faces.boxes, timestamp)
        appearance = appearance_features(frame_rgb, faces.boxes, faces.keypoints, likeness, wanted)
        return self.update(faces, timestamp, (frame_rgb.shape[1], frame_rgb.shape[0]), appearance)

    def _since_last_update(self, timestamp: float) -> float:
        """Seconds the filters must predict ahead to reach ``timestamp``."""
        return 0.0 if self._last_timestamp is None else max(timestamp - self._last_timestamp, 0.0)

    def wants_likeness(self, boxes: np.ndarray, timestamp: float) -> np.ndarray:
        """(D,) bool: detections whose face likeness the next ``update`` may use.

        The likeness costs a network pass per face, and it only decides
        anything once a face is hidden. So a face plainly continuing one
        established track skips it, unless that track's likeness is due for
        a refresh; faces that may start a track, or that another track (a
        hidden one, or a face crossing) could be matched to, get it.
        """
        wanted = np.ones(len(boxes), dtype=bool)
        if not len(boxes) or not self._tracks:
            return wanted
        ahead_s = self._since_last_update(timestamp)
        predicted = np.stack([track.filter.box(ahead_s) for track in self._tracks])
        iou = box_iou(predicted, boxes)
        hidden = [timestamp - track.last_seen >= HIDDEN_AFTER_S for track in self._tracks]
        settled = np.array(
            [
                track.confirmed
                and not hidden[row]
                and timestamp - track.started >= LIKENESS_NEW_TRACK_S
                and track.likeness_at is not None
                and timestamp - track.likeness_at < LIKENESS_REFRESH_S
                for row, track in enumerate(self._tracks)
            ]
        )
        # One settled track clearly continues it, and no other track (a hidden one it might re-find,
        # or a second face in a crossing) is anywhere near enough to be matched to it instead.
        continues = ((iou >= LIKENESS_CONTINUES_IOU) & settled[:, None]).any(axis=0)
        alone = (iou >= LIKENESS_OTHER_IOU).sum(axis=0) == 1
        return ~(continues & alone)

    def end_all(self) -> list[int]:
        """End every confirmed track (stream ended); returns their ids."""
        ended = [track.track_id for track in self._tracks if track.confirmed]
        self._tracks = []
        return ended

    def _snapshot(self, faces: Faces, detection_of: dict[int, int]) -> Tracks:
        count = len(self._tracks)
        boxes = np.zeros((count, 4), np.float32)
        scores = np.zeros(count, np.float32)
        keypoints = np.zeros((count, NUM_KEYPOINTS, 2), np.float32)
        matched = np.zeros(count, bool)
        for row, track in enumerate(self._tracks):
            if row in detection_of:
                detection = detection_of[row]
                boxes[row] = faces.boxes[detection]
                scores[row] = faces.scores[detection]
                keypoints[row] = faces.keypoints[detection]
                matched[row] = True
            else:
                boxes[row] = track.filter.box()
        return Tracks(
            ids=np.array([track.track_id for track in self._tracks], dtype=np.int64),
            boxes=boxes,
            scores=scores,
            keypoints=keypoints,
            matched=matched,
            confirmed=np.array([track.confirmed for track in self._tracks], dtype=bool),
            appearance=np.array(
                [
                    track.appearance if track.appearance is not None else np.zeros(FEATURE_SIZE)
                    for track in self._tracks
                ],
                dtype=np.float32,
            ).reshape(count, FEATURE_SIZE),
        )
