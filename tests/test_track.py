import itertools

import numpy as np
import pytest

from analyzer.core.faces import Faces
from analyzer.pipeline.track import ByteTracker


def faces(boxes: list[list[float]], scores: list[float] | None = None) -> Faces:
    array = np.array(boxes, np.float32).reshape(-1, 4)
    score = np.array(scores if scores is not None else [0.9] * len(array), np.float32)
    return Faces(array, score, np.zeros((len(array), 6, 2), np.float32))


def walk(start: tuple[float, float], velocity: tuple[float, float], size: float, t: float) -> list[float]:
    x, y = start[0] + velocity[0] * t, start[1] + velocity[1] * t
    return [x, y, x + size, y + size]


def test_ids_stable_through_a_short_miss_and_crossing() -> None:
    tracker = ByteTracker(min_hits=2, max_lost_s=1.0)
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    fps = 15
    for frame in range(60):
        t = frame / fps
        a = walk((100, 300), (300, 0), 70, t)  # walks right
        b = walk((1100, 320), (-280, 0), 80, t)  # walks left, passes a
        boxes, names = [a, b], ["a", "b"]
        if 20 <= frame < 26:  # a is missed for 0.4 s
            boxes, names = [b], ["b"]
        update = tracker.update(faces(boxes), t)
        matched = update.tracks[update.tracks.matched & update.tracks.confirmed]
        for box, track_id in zip(matched.boxes, matched.ids, strict=True):
            name = names[int(np.argmin([abs(box[0] - candidate[0]) for candidate in boxes]))]
            seen[name].add(int(track_id))
    assert len(seen["a"]) == 1 and len(seen["b"]) == 1
    assert seen["a"] != seen["b"]


def test_a_faint_detection_keeps_a_track_but_cannot_start_one() -> None:
    tracker = ByteTracker(high_score=0.6, min_hits=1)
    first = tracker.update(faces([[0, 0, 50, 50]], [0.9]), 0.0)
    faint = tracker.update(faces([[3, 0, 53, 50]], [0.3]), 0.07)
    assert faint.tracks.ids.tolist() == first.tracks.ids.tolist() and bool(faint.tracks.matched[0])
    fresh = ByteTracker(high_score=0.6).update(faces([[0, 0, 50, 50]], [0.3]), 0.0)
    assert len(fresh.tracks) == 0


@pytest.mark.parametrize(("gap_s", "ends"), [(0.5, False), (1.6, True)])
def test_tracks_end_after_max_lost(gap_s: float, ends: bool) -> None:
    tracker = ByteTracker(min_hits=1, max_lost_s=1.0)
    first = tracker.update(faces([[0, 0, 50, 50]]), 0.0)
    update = tracker.update(faces([]), gap_s)
    assert (update.ended == first.tracks.ids.tolist()) is ends


def test_unconfirmed_flicker_never_ends_as_a_track() -> None:
    tracker = ByteTracker(min_hits=3)
    tracker.update(faces([[0, 0, 50, 50]]), 0.0)
    assert tracker.update(faces([]), 0.1).ended == []
    assert tracker.end_all() == []


def test_two_trackers_have_independent_ids() -> None:
    first, second = ByteTracker(min_hits=1), ByteTracker(min_hits=1)
    first.update(faces([[0, 0, 50, 50], [100, 0, 150, 50]]), 0.0)
    assert second.update(faces([[0, 0, 50, 50]]), 0.0).tracks.ids.tolist() == [1]
    first.reset()
    assert first.update(faces([[0, 0, 50, 50]]), 0.0).tracks.ids.tolist() == [1]


def test_a_face_walking_out_of_the_frame_ends_at_once() -> None:
    tracker = ByteTracker(min_hits=1, max_lost_s=2.0)
    for frame in range(10):
        tracker.update(faces([[100 - frame * 30, 100, 160 - frame * 30, 160]]), frame / 10, (640, 480))
    # unseen now, predicted further left, out of the frame: ended without waiting max_lost_s
    ended = []
    for frame in range(10, 14):
        ended += tracker.update(faces([]), frame / 10, (640, 480)).ended
    assert ended == [1]
    # someone entering at the same edge gets a new id
    update = tracker.update(faces([[0, 100, 60, 160]]), 1.4, (640, 480))
    assert update.tracks.ids.tolist() == [2]


FRAME_SIZE = (1280, 720)


def walk_out_right(tracker: ByteTracker, start_x: float, speed: float, size: float, frames: int) -> tuple[int, float]:
    """A walks right for ``frames`` frames at 15 fps; returns A's track id and the left edge of its last box."""
    for frame in range(frames):
        update = tracker.update(faces([walk((start_x, 200), (speed, 0), size, frame / 15)]), frame / 15, FRAME_SIZE)
    return int(update.tracks.ids[0]), float(update.tracks.boxes[0, 0])


def test_someone_entering_where_a_face_walks_out_is_not_the_same_track() -> None:
    """In plain view, no missed frame: A walks out at the right edge as B steps in right behind it."""
    tracker = ByteTracker(min_hits=1)
    size, frame_size = 150.0, FRAME_SIZE
    leaving_id, last_x1 = walk_out_right(tracker, 950, 150, size, 14)
    assert last_x1 + size >= frame_size[0] - 0.35 * size  # A is at the edge, walking out
    entering = [last_x1 - 0.45 * size, 200, last_x1 - 0.45 * size + size, 200 + size]
    update = tracker.update(faces([entering]), 14 / 15, frame_size)
    assert update.tracks.ids.tolist() != [leaving_id]


def test_a_face_walking_out_slowly_keeps_its_id_to_the_edge() -> None:
    tracker = ByteTracker(min_hits=1)
    ids = set()
    for frame in range(30):
        update = tracker.update(faces([walk((1000, 200), (60, 0), 150.0, frame / 15)]), frame / 15, (1280, 720))
        ids |= set(update.tracks.ids.tolist())
    assert ids == {1}


def test_a_face_cut_by_the_edge_it_walks_out_of_is_not_continued_by_the_next_one_in() -> None:
    """A's face is a quarter past the right edge; B steps in there, only 0.1 of a face width behind."""
    tracker = ByteTracker(min_hits=1)
    size, frame_size = 200.0, FRAME_SIZE
    leaving_id, last_x1 = walk_out_right(tracker, 760, 190, size, 30)
    assert last_x1 + size > frame_size[0]  # A's face is cut by the edge
    b_ids = set()
    for frame in range(30, 36):  # B walks left from there
        x1 = last_x1 - 0.1 * size - 190 * (frame - 30) / 15
        update = tracker.update(faces([[x1, 205, x1 + size, 205 + size]]), frame / 15, frame_size)
        b_ids |= set(update.tracks.ids[update.tracks.matched].tolist())
    assert len(b_ids) == 1 and leaving_id not in b_ids


def test_a_face_hidden_mid_frame_is_not_taken_for_gone_when_its_prediction_drifts_out() -> None:
    """Last seen at 0.74 of the width, walking right; 1.2 s unseen, its prediction is out, the face need not be."""
    tracker = ByteTracker(min_hits=1, max_lost_s=1.5)
    for frame in range(15):
        tracker.update(faces([walk((700, 200), (250, 0), 80.0, frame / 15)]), frame / 15, FRAME_SIZE)
    ended, exited = [], []
    for frame in range(15, 45):
        update = tracker.update(faces([]), frame / 15, FRAME_SIZE)
        ended += update.ended
        exited += update.exited
    assert ended == [1] and exited == []


@pytest.mark.parametrize("pass_by", [False, True])
def test_a_face_stepping_in_where_another_walked_out_gets_its_own_id(pass_by: bool) -> None:
    """One person walks out at the left edge; the next steps in there before the first is lost.

    The leaving face's box stalls as the edge cuts it, so its speed fades; the
    track must still not follow the face walking back in. A pass-by shopper
    who came in by the same edge and walks back out of it is leaving too.
    """
    tracker = ByteTracker(min_hits=1, max_lost_s=1.0)
    size, frame = 150, (1280, 720)
    if pass_by:
        path = [40 + 200 * t for t in np.arange(0, 1.5, 1 / 15)] + [340 - 200 * t for t in np.arange(0, 1.5, 1 / 15)]
    else:
        path = [500 - 200 * t for t in np.arange(0, 2.5, 1 / 15)]
    path += [path[-1] - k for k in range(1, 10)]  # stalls against the edge, cut: its speed fades
    t = 0.0
    for x in path:
        update = tracker.update(faces([[x - size / 2, 300, x + size / 2, 300 + size]]), t, frame)
        t += 1 / 15
    (leaver,) = update.tracks.ids.tolist()
    for _ in range(2):  # then the detector loses it
        tracker.update(faces([]), t, frame)
        t += 1 / 15
    for k in range(8):  # the next person steps in from the same edge (first further out), walking right
        x = path[-1] - 10 + 15 * k
        update = tracker.update(faces([[x - size / 2, 305, x + size / 2, 305 + size]]), t, frame)
        t += 1 / 15
    (newcomer,) = update.tracks[update.tracks.matched].ids.tolist()
    assert newcomer != leaver


def _as_mediapipe_gives_it(box: list[float]) -> list[float]:
    """MediaPipe clamps a box's left and top to 0 and keeps its size (checked on the astronaut photo)."""
    x1, y1, x2, y2 = box
    shift_x, shift_y = max(-x1, 0.0), max(-y1, 0.0)
    return [x1 + shift_x, y1 + shift_y, x2 + shift_x, y2 + shift_y]


def test_a_face_stepping_in_at_the_left_edge_over_one_hidden_there_gets_its_own_id() -> None:
    """A child walks left towards the edge and is hidden by an adult stepping in there, walking right.

    MediaPipe gives the adult's cut face as a box starting at x = 0, wider than
    what is in view, overlapping where the child was heading: the child's
    track takes it. It is a face cut by the edge, and it then walks back
    into the frame: someone else (crowd-s45 counted the two as one visit).
    """
    tracker = ByteTracker(min_hits=1, max_lost_s=1.0)
    frame, t = (1280, 720), 0.0
    for k in range(34):  # the child: 180 px face, walking left at 140 px/s to 100 px from the edge
        x = 500 - 140 * k / 15
        update = tracker.update(faces([[x - 90, 200, x + 90, 380]]), t, frame)
        t += 1 / 15
    (child,) = update.tracks.ids.tolist()
    ids_on_the_adult = []
    for k in range(20):  # the adult: 210 px face, coming in from the left at 200 px/s; the child is behind
        x = -45 + 200 * k / 15
        update = tracker.update(faces([_as_mediapipe_gives_it([x - 105, 205, x + 105, 415])]), t, frame)
        ids_on_the_adult += update.tracks[update.tracks.matched].ids.tolist()
        t += 1 / 15
    assert ids_on_the_adult[-1] != child


def test_a_face_walking_in_from_the_edge_keeps_its_id() -> None:
    tracker = ByteTracker(min_hits=1, max_lost_s=1.0)
    ids = set()
    for k in range(30):  # cut by the left edge at first, then walks in
        x = -20 + 12 * k
        update = tracker.update(faces([[x - 75, 300, x + 75, 450]]), k / 15, (1280, 720))
        ids |= set(update.tracks.ids.tolist())
    assert len(ids) == 1


@pytest.mark.parametrize(("detect_every", "confirmed"), [(2, True), (1, False)])
def test_a_new_fast_face_is_confirmed_across_a_skipped_frame(detect_every: int, confirmed: bool) -> None:
    """A face moving 0.9 of its width per detection: a walker if detected every second frame, not in one frame."""
    tracker = ByteTracker(min_hits=2, max_lost_s=1.0)
    size, step = 30.0, 27.0  # no box overlap left between detections
    seen = set()
    for detection in range(8):
        t = detection * detect_every / 15
        update = tracker.update(faces([[100 + step * detection, 300, 100 + step * detection + size, 330]]), t)
        seen |= {int(i) for i in update.tracks.ids[update.tracks.matched & update.tracks.confirmed]}
    assert len(seen) == (1 if confirmed else 0)


def _looks(count: int, known: bool = True) -> np.ndarray:
    from analyzer.pipeline.appearance import COLOUR_SIZE, FEATURE_SIZE

    features = np.full((count, FEATURE_SIZE), 1 / 6, np.float32)
    features[:, COLOUR_SIZE:] = 0.0
    if known:
        features[:, COLOUR_SIZE] = 1.0
    return features


def test_only_faces_the_tracker_can_use_it_for_get_a_face_likeness() -> None:
    from analyzer.pipeline.track import LIKENESS_NEW_TRACK_S, LIKENESS_REFRESH_S

    tracker = ByteTracker(min_hits=2, max_lost_s=1.5)
    fps = 15
    box = [400.0, 300.0, 470.0, 370.0]
    assert tracker.wants_likeness(np.array([box], np.float32), 0.0).tolist() == [True]  # would start a track
    frame = 0
    wanted_at: list[float] = []
    while frame / fps < LIKENESS_NEW_TRACK_S + 2 * LIKENESS_REFRESH_S:
        t = frame / fps
        wanted = bool(tracker.wants_likeness(np.array([box], np.float32), t)[0])
        tracker.update(faces([box]), t, (1280, 720), _looks(1, known=wanted))
        if wanted:
            wanted_at.append(t)
        frame += 1
    # Every frame while the track is new, then one refresh per LIKENESS_REFRESH_S.
    new = [t for t in wanted_at if t < LIKENESS_NEW_TRACK_S]
    later = [t for t in wanted_at if t >= LIKENESS_NEW_TRACK_S]
    assert len(new) == int(np.ceil(LIKENESS_NEW_TRACK_S * fps))
    assert 1 <= len(later) <= 3 and all(b - a >= LIKENESS_REFRESH_S - 1e-6 for a, b in itertools.pairwise(later))
    # Just after a refresh, a second face appearing beside it may start a track (wanted); the settled one is not.
    tracker.update(faces([box]), frame / fps, (1280, 720), _looks(1, known=True))
    t = (frame + 1) / fps
    beside = [600.0, 300.0, 670.0, 370.0]
    assert tracker.wants_likeness(np.array([box, beside], np.float32), t).tolist() == [False, True]


def test_a_face_near_a_hidden_track_gets_its_likeness() -> None:
    tracker = ByteTracker(min_hits=2, max_lost_s=1.5)
    standing, other = [400.0, 300.0, 470.0, 370.0], [900.0, 300.0, 970.0, 370.0]
    for frame in range(30):
        boxes = [standing, other] if frame < 20 else [other]  # the standing face is hidden from frame 20
        tracker.update(faces(boxes), frame / 15, (1280, 720), _looks(len(boxes)))
    t = 30 / 15
    nearby = [430.0, 300.0, 500.0, 370.0]  # where the hidden face was: it may be them again
    assert tracker.wants_likeness(np.array([other, nearby], np.float32), t).tolist() == [False, True]


@pytest.mark.parametrize(
    ("speed", "exits"), [(0.0, False), (3.0, False), (150.0, True)], ids=["seated", "swaying", "walker"]
)
def test_a_face_lost_at_the_edge_left_unless_it_had_sat_there(speed: float, exits: bool) -> None:
    """A customer seated at the table by the right edge looks away: hidden, not gone; a walker there is gone.

    Seated: six seconds within half a face width (``SETTLED_S``, 5). Someone who paused there a moment, as a
    passer-by turning back does, is gone as before.
    """
    tracker = ByteTracker(min_hits=1, max_lost_s=1.5)
    size = 160.0
    for frame in range(90):  # six seconds in view, the face's right side 30 px from the edge
        tracker.update(faces([walk((1090 - speed * 6, 200), (speed, 0), size, frame / 15)]), frame / 15, FRAME_SIZE)
    ended, exited = [], []
    for frame in range(90, 120):
        update = tracker.update(faces([]), frame / 15, FRAME_SIZE)
        ended += update.ended
        exited += update.exited
    assert ended == [1] and (exited == [1]) is exits
