import dataclasses
import itertools
from collections.abc import Callable

import numpy as np
import pytest

from analyzer.core.tracks import Tracks
from analyzer.core.visits import TrackAttributes, random_visit_id
from analyzer.core.zones import CountingLine, LineState, Zone
from analyzer.pipeline.appearance import FEATURE_SIZE, similarity
from analyzer.pipeline.footfall import FootfallCounter

SIZE = (1000, 1000)


def tracks(
    ids: list[int], centres: list[tuple[float, float]] | None = None, size: float = 60, colours: bool = False
) -> Tracks:
    """Confirmed, matched tracks; with ``colours``, every face has the same colour cue."""
    count = len(ids)
    centres = centres or [(500.0, 500.0)] * count
    boxes = np.array([[x - size / 2, y - size / 2, x + size / 2, y + size / 2] for x, y in centres], np.float32)
    return Tracks(
        np.array(ids, np.int64),
        boxes.reshape(-1, 4),
        np.ones(count, np.float32),
        np.zeros((count, 6, 2), np.float32),
        np.ones(count, bool),
        np.ones(count, bool),
        np.full((count, FEATURE_SIZE), 0.25, np.float32) if colours else None,
    )


def counter(**settings: object) -> FootfallCounter:
    ids = (f"v{n}" for n in itertools.count())
    return FootfallCounter("door", new_visit_id=lambda: next(ids), **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seen_s", "counted"), [(0.5, False), (1.0, True), (3.0, True)])
def test_visit_counts_only_after_min_duration(seen_s: float, counted: bool) -> None:
    footfall = counter(min_duration_s=1.0, reentry_window_s=0.0)
    footfall.clock_origin = 1000.0
    for step in range(int(seen_s * 10) + 1):
        footfall.update(tracks([7]), [], step / 10, 0.0, SIZE)
    (ended,) = footfall.update(tracks([]), [7], seen_s + 1.5, 0.0, SIZE)
    assert ended.counted is counted
    assert ended.visit_id == "v0" and ended.track_ids == (7,)
    assert ended.dwell_s == pytest.approx(seen_s)
    assert ended.direction is None  # no line configured
    visit = ended.visit(TrackAttributes.unknown())
    assert visit.start == pytest.approx(1000.0) and visit.end == pytest.approx(1000.0 + seen_s)
    assert visit.to_dict()["age_group"] == "unknown" and "direction" not in visit.to_dict()


def test_close_ends_every_open_visit_and_faces_in_view() -> None:
    footfall = counter()
    footfall.update(tracks([1, 2], [(100, 100), (800, 800)]), [], 0.0, 0.0, SIZE)
    assert footfall.faces_in_view == 2
    assert {e.track_ids for e in footfall.close(0.0)} == {(1,), (2,)}
    assert footfall.faces_in_view == 0 and footfall.close(0.0) == []


@pytest.mark.parametrize(
    ("xs", "expected"),
    [
        ([0.30, 0.40, 0.49, 0.51, 0.49, 0.51, 0.60, 0.70], ["in"]),  # jitter on the line counts once
        ([0.70, 0.60, 0.52, 0.48, 0.30], ["out"]),
        ([0.30, 0.49, 0.51, 0.49, 0.51, 0.49, 0.30], []),  # never clears the hysteresis band
        ([0.30, 0.70, 0.30], ["in", "out"]),
    ],
)
def test_line_crossing_with_hysteresis(xs: list[float], expected: list[str]) -> None:
    line = CountingLine((0.5, 1.0), (0.5, 0.0))
    footfall = counter(line=line, hysteresis=0.05, reentry_window_s=0.0)
    for step, x in enumerate(xs):
        footfall.update(tracks([3], [(x * 1000, 500)]), [], step * 0.2, 0.0, SIZE)
    (ended,) = footfall.close(0.0)
    assert [direction for direction, _ in ended.crossings] == expected
    assert ended.direction == (expected[0] if expected else "none")


def test_crossing_outside_the_segment_does_not_count() -> None:
    line = CountingLine((0.5, 1.0), (0.5, 0.6))  # only the lower part of the frame
    footfall = counter(line=line, hysteresis=0.02)
    for step, x in enumerate([0.3, 0.4, 0.6, 0.7]):
        footfall.update(tracks([3], [(x * 1000, 200)]), [], step * 0.2, 0.0, SIZE)
    assert footfall.close(0.0)[0].direction == "none"


@pytest.mark.parametrize(
    ("paths", "way"),
    [
        ([((0.05, 0.27), (0.96, 0.31)), ((0.10, 0.30), (0.90, 0.29))], (1.0, 0.0)),  # left to right
        # two in, one out on the same axis: the line serves both, 'in' the way most walked
        ([((0.9, 0.5), (0.2, 0.6)), ((0.8, 0.4), (0.1, 0.5)), ((0.1, 0.45), (0.9, 0.4))], (-1.0, 0.0)),
        ([((0.50, 0.20), (0.55, 0.90)), ((0.40, 0.30), (0.45, 0.95))], (0.0, 1.0)),  # towards a camera over the door
        ([((0.1, 0.1), (0.9, 0.9)), ((0.2, 0.1), (0.9, 0.8))], (0.7, 0.7)),  # diagonal
    ],
)
def test_a_line_across_the_way_people_walked_is_crossed_by_each_of_them(
    paths: list[tuple[tuple[float, float], tuple[float, float]]], way: tuple[float, float]
) -> None:
    found = CountingLine.across(paths)
    assert found is not None
    line, axis = found
    assert float(np.dot(axis, way)) > 0.95 * float(np.hypot(*way))  # the way most walked
    for first, last in paths:
        walked_along = float(np.dot(np.subtract(last, first), axis)) > 0
        assert line.crossings([first, last], [0.0, 1.0], hysteresis=0.02) == [("in" if walked_along else "out", 1.0)]
    assert all(0.0 <= value <= 1.0 for point in (line.start, line.end) for value in point)


def test_no_line_across_people_who_did_not_walk() -> None:
    assert CountingLine.across([((0.5, 0.5), (0.52, 0.51))]) is None  # a shopper standing at the till
    assert CountingLine.across([]) is None


def test_zone_dwell() -> None:
    zone = Zone("display", ((0.6, 0.0), (1.0, 0.0), (1.0, 1.0), (0.6, 1.0)))
    footfall = counter(zones=[zone])
    path = [0.3] * 5 + [0.8] * 16 + [0.3] * 5  # 3 s inside at 0.2 s steps
    for step, x in enumerate(path):
        footfall.update(tracks([5], [(x * 1000, 500)]), [], step * 0.2, 0.0, SIZE)
    (ended,) = footfall.close(0.0)
    assert ended.zone_dwell_s["display"] == pytest.approx(3.2, abs=0.01)


def test_a_zone_outline_that_crosses_itself_is_found_and_a_concave_one_is_not() -> None:
    square = ((0.6, 0.0), (1.0, 0.0), (1.0, 1.0), (0.6, 1.0))
    l_shape = ((0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0))  # around a till, say
    assert Zone("a", square).crossed_sides() is None and Zone("a", l_shape).crossed_sides() is None
    assert Zone("a", square).area() == pytest.approx(0.4) and Zone("a", l_shape).area() == pytest.approx(0.75)
    bow_tie = (square[0], square[1], square[3], square[2])  # corners in reading order
    assert Zone("a", bow_tie).crossed_sides() == (1, 3)
    star = ((0.5, 0.0), (0.8, 1.0), (0.0, 0.35), (1.0, 0.35), (0.2, 1.0))  # a pentagram: its first side crosses two
    assert Zone("a", star).crossed_sides() == (0, 2)


def test_visitor_occluded_for_one_second_counts_once() -> None:
    """The tracker loses the face for 1 s (a new track id afterwards); the visit continues."""
    footfall = counter(min_duration_s=1.0, reentry_window_s=2.0, reentry_distance=0.1)
    ended_all = []
    fps = 10
    for frame in range(80):
        t = frame / fps
        x = 100 + 80 * t  # walks right at 80 px/s
        if t < 3.0:
            update = tracks([1], [(x, 500)])
            gone = []
        elif t < 4.0:  # occluded; the tracker ends track 1 after its linger
            update, gone = tracks([]), ([1] if frame == 35 else [])
        else:
            update, gone = tracks([2], [(x, 505)]), []
        ended_all += footfall.update(update, gone, t, 0.0, SIZE)
    ended_all += footfall.close(0.0)
    assert len(ended_all) == 1
    assert ended_all[0].track_ids == (1, 2) and ended_all[0].counted


def test_someone_else_far_away_is_a_new_visit() -> None:
    footfall = counter(reentry_window_s=2.0, reentry_distance=0.1)
    for frame in range(20):
        footfall.update(tracks([1], [(100 + frame * 5, 500)]), [], frame / 10, 0.0, SIZE)
    ended = footfall.update(tracks([]), [1], 2.5, 0.0, SIZE)
    ended += footfall.update(tracks([9], [(900, 200)]), [], 2.6, 0.0, SIZE)
    ended += footfall.update(tracks([9], [(900, 200)]), [], 5.0, 0.0, SIZE)
    ended += footfall.close(0.0)
    assert sorted(e.track_ids for e in ended) == [(1,), (9,)]


def test_visit_ids_are_random_and_not_track_ids() -> None:
    ids = {random_visit_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 12 for i in ids)


def test_someone_stepping_in_where_a_paused_visitor_was_hidden_is_a_new_visit() -> None:
    """A visitor pauses near the right edge and is hidden; a newcomer walks in from that edge past the spot.

    Where the newcomer's face first shows is close enough to the paused visitor
    to continue their visit, but traced back in time the newcomer came from the
    edge, not from where the visitor stood: two visits.
    """
    footfall = counter(min_duration_s=1.0, reentry_window_s=3.0, reentry_distance=0.12)
    ended = []
    for frame in range(30):  # walks in and pauses at x = 0.80
        x = min(100 + 50 * frame, 800)
        ended += footfall.update(tracks([1], [(x, 400)], size=140), [], frame / 15, 0.0, SIZE)
    ended += footfall.update(tracks([]), [1], 2.6, 0.0, SIZE)  # hidden
    for frame in range(20):  # the newcomer walks left at 0.3 frames/s, first seen 0.06 from the lost face
        t = 2.8 + frame / 15
        ended += footfall.update(tracks([2], [(860 - 300 * (t - 2.8), 390)], size=140), [], t, 0.0, SIZE)
    ended += footfall.close(0.0)
    assert sorted(e.track_ids for e in ended) == [(1,), (2,)]


def test_a_hidden_walker_who_reappears_on_their_way_is_merged_after_verification() -> None:
    """The same walker hidden for 1.5 s reappears further along: merged once its own motion confirms it."""
    footfall = counter(min_duration_s=1.0, reentry_window_s=3.0, reentry_distance=0.12, reentry_verify_s=0.4)
    line = CountingLine((0.5, 1.0), (0.5, 0.0))
    footfall.line, footfall.hysteresis = line, 0.02
    ended, counts = [], []
    for frame in range(90):
        t = frame / 15
        x = 100 + 200 * t  # 0.2 frames/s to the right; hidden while crossing the line at x = 0.5
        if t < 1.5:
            ended += footfall.update(tracks([1], [(x, 500)]), [], t, 0.0, SIZE)
        elif t < 3.0:
            ended += footfall.update(tracks([]), [1] if frame == 30 else [], t, 0.0, SIZE)
        else:
            ended += footfall.update(tracks([2], [(x, 500)]), [], t, 0.0, SIZE)
        counts.append(len(footfall._visits))
    ended += footfall.close(0.0)
    assert max(counts[45:]) == 2 and counts[-1] == 1  # a visit of its own until verified, then one
    (visit,) = ended
    assert visit.track_ids == (1, 2) and visit.direction == "in" and visit.crossings[0][1] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ([0.30, 0.40], [0.51, 0.60, 0.70], "in"),  # crossed while hidden, reappears inside the band
        ([0.30, 0.40], [0.60, 0.70], "in"),
        ([0.70, 0.60], [0.40, 0.30], "out"),
        ([0.30, 0.40], [0.45, 0.40], None),  # came back on the same side
    ],
)
def test_a_line_crossed_while_hidden_counts_when_the_face_reappears(
    before: list[float], after: list[float], expected: str | None
) -> None:
    line = CountingLine((0.5, 1.0), (0.5, 0.0))
    earlier, later = LineState(line, 0.02), LineState(line, 0.02)
    for x in before:
        assert earlier.update((x, 0.5)) is None
    for x in after:
        assert later.update((x, 0.5)) is None
    assert earlier.continue_with(later) == expected
    assert earlier.side == later.side


def replay(footfall: FootfallCounter, frames: int, scene: Callable[[int, float], tuple[Tracks, list[int]]]) -> list:
    """Feed ``scene(frame, t)`` (the tracks seen and the track ids ended) at 15 fps, then close."""
    ended = []
    for frame in range(frames):
        t = frame / 15
        ended += footfall.update(*scene(frame, t), t, 0.0, SIZE)
    return ended + footfall.close(0.0)


def test_a_visitor_who_stops_while_hidden_and_walks_on_is_one_visit() -> None:
    """Walks right, hidden behind someone stops for a while, then walks on: the new face, traced back, passes there."""

    def scene(frame: int, t: float) -> tuple[Tracks, list[int]]:
        if t < 2.0:  # walking right at 0.2 frames/s, up to x = 0.5
            return tracks([1], [(100 + 200 * t, 500)]), []
        if t < 4.0:  # hidden: stands at 0.5 until 3.5 s, then walks on
            return tracks([]), [1] if frame == 45 else []
        return tracks([2], [(500 + 200 * (t - 3.5), 500)]), []  # seen again at 0.6, walking

    ended = replay(counter(min_duration_s=1.0, reentry_window_s=3.0, reentry_distance=0.12), 75, scene)
    assert [e.track_ids for e in ended] == [(1, 2)]


def test_a_glimpse_between_hiding_and_turning_back_still_joins_the_visit() -> None:
    """Walks right, is hidden, shows for one frame, then walks back left: one visit through the glimpse."""

    def scene(frame: int, t: float) -> tuple[Tracks, list[int]]:
        if t < 1.5:  # walking right at 0.2 frames/s, up to x = 0.4
            return tracks([1], [(100 + 200 * t, 500)], colours=True), []
        if frame == 30:  # one frame seen, near where it was hidden: a track of its own, ended at once
            return tracks([2], [(380, 500)], colours=True), [1]
        if frame < 33:
            return tracks([]), [2] if frame == 31 else []
        return tracks([3], [(370 - 200 * (t - 2.2), 500)], colours=True), []  # walking back left from there

    ended = replay(counter(min_duration_s=1.0, reentry_window_s=3.0, reentry_distance=0.12), 60, scene)
    assert [e.track_ids for e in ended] == [(1, 2, 3)]


@pytest.mark.parametrize(
    ("first_x", "speed", "unseen_crossing_s", "expected"),
    [
        (0.53, 0.2, 0.5, "in"),  # first seen just inside, walking in: came through unseen
        (0.53, 0.2, 0.0, "none"),  # ... unless only seen crossings count
        (0.70, 0.2, 0.5, "none"),  # half a second back it was still inside
        (0.53, 0.0, 0.5, "none"),  # standing: nothing says where it came from
        (0.20, 0.2, 0.5, "in"),  # last seen at 0.47 walking at the line: crossed it unseen
        (0.45, -0.2, 0.5, "out"),  # first seen just outside walking out
    ],
)
def test_a_crossing_just_out_of_sight_counts(
    first_x: float, speed: float, unseen_crossing_s: float, expected: str
) -> None:
    footfall = counter(line=CountingLine((0.5, 1.0), (0.5, 0.0)), hysteresis=0.02, unseen_crossing_s=unseen_crossing_s)
    (visit,) = replay(footfall, 21, lambda _, t: (tracks([1], [(1000 * (first_x + speed * t), 500)]), []))  # 1.33 s
    assert visit.direction == expected


def looks(similar_to_first: float) -> np.ndarray:
    """A colour cue whose likeness to ``looks(1.0)`` is ``similar_to_first`` (each of its four histograms)."""
    cue = np.zeros(FEATURE_SIZE, np.float32)
    for first_bin in (0, 8, 12, 20):  # face hue, face saturation, torso hue, torso saturation
        cue[first_bin], cue[first_bin + 1] = similar_to_first**2, 1 - similar_to_first**2
    return cue


def test_looks_builds_the_likeness_it_is_asked_for() -> None:
    assert similarity(looks(1.0)[None], looks(0.75)[None])[0, 0] == pytest.approx(0.75)


@pytest.mark.parametrize(("likeness", "visits"), [(0.95, [(1, 2)]), (0.75, [(1,), (2,)])])
def test_a_face_walking_back_from_where_one_was_lost_continues_it_only_if_it_looks_closely_alike(
    likeness: float, visits: list[tuple[int, ...]]
) -> None:
    """Walks right and is hidden; a face walks back left from that spot. The same person turned around, or
    someone else walking the other way: only a close likeness (TURNED_AROUND_SIMILARITY, 0.9) joins them; the
    0.75 of someone merely similar passes ``min_similarity`` (0.65) but not that."""

    def scene(frame: int, t: float) -> tuple[Tracks, list[int]]:
        if t < 1.5:  # walking right at 0.2 frames/s, up to x = 0.4
            return with_looks(tracks([1], [(100 + 200 * t, 500)]), looks(1.0)), []
        if t < 2.0:
            return tracks([]), [1] if frame == 25 else []
        return with_looks(tracks([2], [(400 - 200 * (t - 2.0), 500)]), looks(likeness)), []  # back left from there

    ended = replay(counter(min_duration_s=1.0, reentry_window_s=3.0, reentry_distance=0.12), 60, scene)
    assert [e.track_ids for e in ended] == visits


def with_looks(seen: Tracks, cue: np.ndarray) -> Tracks:
    """``seen`` with every track wearing ``cue``."""
    return dataclasses.replace(seen, appearance=np.tile(cue, (len(seen), 1)))


def test_a_visit_whose_track_end_never_arrived_still_ends_on_time() -> None:
    """The tracker says once that a track ended; if that word is lost (a frame that failed), the visit ends anyway."""
    footfall = counter(min_duration_s=1.0, reentry_window_s=2.0, lost_after_s=4.0)
    ended = []
    for frame in range(150):  # seen for 3 s, then gone, and the tracker's 'ended' never comes
        t = frame / 15
        ended += footfall.update(tracks([5], [(200 + 100 * t, 500)]) if t < 3 else tracks([]), [], t, 0.0, SIZE)
        if ended:
            break
    (visit,) = ended
    assert visit.counted and visit.end == pytest.approx(3 - 1 / 15)
    assert t == pytest.approx(visit.end + 4.0 + 2.0, abs=0.1)  # lost_after_s, then the re-entry window
    assert footfall.close(0.0) == []


def test_a_new_line_saved_while_counting_decides_the_crossings_from_then_on() -> None:
    """The web page's save: the visitor in view keeps the crossing made, the next ones follow the new line."""
    from analyzer.config import CameraConfig, FootfallConfig, LineConfig, ZoneConfig

    camera = CameraConfig(id="door", source="door.mp4", line=LineConfig(start=[0.5, 1.0], end=[0.5, 0.0]))
    footfall = FootfallCounter.for_camera(camera, FootfallConfig(reentry_window_s=0.0), 0.65)

    def walk(track: int, start_s: float) -> None:
        for step, x in enumerate([0.2, 0.4, 0.6, 0.8]):  # left to right across the middle
            footfall.update(tracks([track], [(x * 1000, 500)]), [], start_s + step * 0.4, 0.0, SIZE)

    walk(1, 0.0)
    flipped = CameraConfig(
        id="door",
        source="door.mp4",
        line=LineConfig(start=[0.5, 0.0], end=[0.5, 1.0]),
        zones=[ZoneConfig(name="right", polygon=[[0.55, 0.0], [1.0, 0.0], [1.0, 1.0], [0.55, 1.0]])],
    )
    footfall.reshape(flipped)
    footfall.update(tracks([1], [(900, 500)]), [], 1.6, 0.0, SIZE)
    walk(2, 2.0)
    ended = {visit.track_ids[0]: visit for visit in footfall.close(0.0)}
    assert ended[1].direction == "in"  # crossed before the save
    assert ended[2].direction == "out"  # the same walk, after it
    assert ended[2].zone_dwell_s["right"] > 0 and footfall.hysteresis == 0.02
    footfall.reshape(CameraConfig(id="door", source="door.mp4"))
    walk(3, 5.0)
    assert [visit.direction for visit in footfall.close(0.0)] == [None]  # the line removed: no direction
