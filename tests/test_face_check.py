"""The face check: MediaPipe's face mesh model on real footage, and the rules built on its readings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer.core.tracks import Tracks
from analyzer.pipeline.detect import FaceDetector
from analyzer.pipeline.face_check import FaceCheck, FacePresence, MeshReading, shape_change
from analyzer.pipeline.footfall import FootfallCounter
from analyzer.service.model_assets import asset_path
from tests.conftest import SHARED_DATA

REAL_CLIPS = SHARED_DATA / "real-clips"


def _readings_of(clip: Path, every: int = 1, limit: int = 10_000) -> list[float]:
    """The presence logit of every face BlazeFace finds (shipped settings) in every ``every``-th frame."""
    detector = FaceDetector("full_range", 0.5)
    presence = FacePresence(asset_path("face_landmark.tflite"))
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS)
    logits, index = [], 0
    while index < limit:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            faces = detector.detect(rgb, int(index * 1000 / fps))
            logits += [
                presence.read(rgb, box, points).logit for box, points in zip(faces.boxes, faces.keypoints, strict=True)
            ]
        index += 1
    detector.close()
    return logits


def test_backs_of_heads_that_blazeface_boxes_on_a_real_camera_are_not_faces() -> None:
    # six people in turn with their backs to an elevated office camera: BlazeFace boxes the backs of their heads
    logits = _readings_of(REAL_CLIPS / "one-by-one-backview.mp4", every=3)
    assert len(logits) > 50  # the detector's false faces are there...
    assert max(logits) < 0  # ... and not one of them reads as a face


def test_a_real_face_turning_from_profile_to_frontal_is_a_face_all_the_way() -> None:
    logits = _readings_of(REAL_CLIPS / "head-pose-female.mp4")
    assert len(logits) >= 20 and min(logits) > 0  # profile frames included


def test_the_astronaut_is_a_face_and_the_wall_beside_her_is_not(astronaut: np.ndarray) -> None:
    detector = FaceDetector("full_range", 0.5)
    faces = detector.detect(astronaut, 0)
    detector.close()
    presence = FacePresence(asset_path("face_landmark.tflite"))
    assert presence.read(astronaut, faces.boxes[0], faces.keypoints[0]).logit > 10
    shifted = faces.boxes[0] + np.array([250, 0, 250, 0], np.float32)  # the same box moved onto the background
    assert presence.read(astronaut, shifted, faces.keypoints[0] + np.array([250, 0], np.float32)).logit < 0


def test_a_file_that_is_not_the_face_mesh_model_is_one_clear_error(tmp_path: Path) -> None:
    from analyzer.errors import ModelError

    wrong = tmp_path / "face_landmark.tflite"
    wrong.write_bytes(asset_path("face_detection_short_range.tflite").read_bytes())  # a real model, the wrong one
    with pytest.raises(ModelError, match=r"not the face mesh model .*run `analyzer models fetch`"):
        FacePresence(wrong)


# --- the rules, on scripted readings ------------------------------------------


FRAME = np.zeros((360, 640, 3), np.uint8)
BASE_SHAPE = np.random.default_rng(1).uniform(40, 150, (468, 2)).astype(np.float32)


def one_track(x: float = 300, width: float = 60, track_id: int = 1) -> Tracks:
    box = np.array([[x, 100, x + width, 100 + width]], np.float32)
    return Tracks(
        np.array([track_id]),
        box,
        np.ones(1, np.float32),
        np.zeros((1, 6, 2), np.float32),
        np.ones(1, bool),
        np.ones(1, bool),
    )


class Script:
    """Readings by frame time: ``logit(t)`` and a shape that wobbles by ``wobble(t)`` pixels."""

    def __init__(self, logit: Callable[[float], float], wobble: Callable[[float], float] = lambda t: 0.3) -> None:
        self.logit, self.wobble, self.t, self.calls = logit, wobble, 0.0, 0
        self.rng = np.random.default_rng(0)

    def __call__(self, frame: np.ndarray, box: np.ndarray, keypoints: np.ndarray) -> MeshReading:
        self.calls += 1
        noise = self.rng.normal(0, self.wobble(self.t), BASE_SHAPE.shape).astype(np.float32)
        return MeshReading(self.logit(self.t), BASE_SHAPE + noise)


def play(check: FaceCheck, script: Script, seconds: float, x: Callable[[float], float] = lambda t: 300.0) -> list:
    """15 fps of one track through the check; each frame's (face, fixture)."""
    verdicts = []
    for frame in range(int(seconds * 15)):
        script.t = frame / 15
        tracks = check.update(FRAME, one_track(x(script.t)), script.t)
        verdicts.append((bool(tracks.face[0]), bool(tracks.fixture[0])))
    return verdicts


def test_a_track_is_a_face_once_two_checks_passed_and_a_back_of_a_head_never_is() -> None:
    face = Script(lambda t: 12.0)
    verdicts = play(FaceCheck(face, needed=2, interval_s=0.2, fixture_after_s=0), face, 2.0)
    assert [is_face for is_face, _ in verdicts].index(True) == 3  # checks at 0 and 0.2 s: a face from then on
    assert face.calls == 2  # and not checked again
    back = Script(lambda t: -7.0)
    verdicts = play(FaceCheck(back, needed=2, interval_s=0.2), back, 30.0)
    assert not any(is_face for is_face, _ in verdicts)
    assert 10 <= back.calls <= 10 + 28 + 1  # every 0.2 s for ten checks, then once a second


def test_one_lucky_check_of_a_back_of_a_head_does_not_make_a_visitor() -> None:
    lucky = Script(lambda t: 3.0 if abs(t - 1.0) < 0.01 else -6.0)
    verdicts = play(FaceCheck(lucky, needed=2), lucky, 5.0)
    assert not any(is_face for is_face, _ in verdicts)


def test_a_sample_votes_only_when_its_own_crop_is_a_face_and_reuses_the_frame_s_check() -> None:
    turning = Script(lambda t: 9.0 if t < 1.0 else -4.0)  # a shopper who turns away after a second
    check = FaceCheck(turning, needed=2, fixture_after_s=0)
    play(check, turning, 0.5)
    calls = turning.calls
    box, points = one_track().boxes[0], np.zeros((6, 2), np.float32)
    assert check.presence(FRAME, 1, box, points, 3 / 15) == 9.0  # that frame's check (its second), not a new one
    assert turning.calls == calls
    turning.t = 1.5
    assert check.presence(FRAME, 1, box, points, 1.5) is None  # its back: this crop does not vote


def test_a_face_as_still_as_a_photo_becomes_a_fixture_after_fixture_after_s() -> None:
    poster = Script(lambda t: 15.0, wobble=lambda t: 0.3)  # the model's own noise on a photo's landmarks
    verdicts = play(FaceCheck(poster, fixture_after_s=30.0), poster, 40.0)
    fixture_at = [fixture for _, fixture in verdicts].index(True) / 15
    assert 30.0 <= fixture_at <= 31.5 and all(fixture for _, fixture in verdicts[int(31.5 * 15) :])


@pytest.mark.parametrize(
    ("what", "x", "wobble", "logit"),
    [
        ("walked in, then stood still", lambda t: 100 + 60 * min(t, 3.0), lambda t: 0.3, lambda t: 15.0),
        ("stood, then stepped aside", lambda t: 300.0 if t < 20 else 360.0, lambda t: 0.3, lambda t: 15.0),
        ("sat still but turned the head", lambda t: 300.0, lambda t: 0.3 if t < 12 else 8.0, lambda t: 15.0),
        ("sat still but looked down at a phone", lambda t: 300.0, lambda t: 0.3, lambda t: 15.0 if t < 15 else -2.0),
    ],
)
def test_a_person_who_moves_is_never_a_fixture(
    what: str, x: Callable[[float], float], wobble: Callable[[float], float], logit: Callable[[float], float]
) -> None:
    person = Script(logit, wobble)
    verdicts = play(FaceCheck(person, fixture_after_s=30.0), person, 60.0, x)
    assert not any(fixture for _, fixture in verdicts), what


def test_the_shape_change_of_a_photo_is_its_noise_and_of_a_turned_head_much_more() -> None:
    rng = np.random.default_rng(2)
    photo = [BASE_SHAPE * 1.1 + 5 + rng.normal(0, 0.3, BASE_SHAPE.shape) for _ in range(12)]  # moved and scaled
    turned = [BASE_SHAPE * np.array([1 - 0.03 * n, 1.0]) for n in range(12)]  # narrowing as the head turns
    assert np.percentile(shape_change(photo), 90) < 0.02 < 0.08 < np.percentile(shape_change(turned), 90)


# --- what the counter makes of it ---------------------------------------------


def _flagged(track: Tracks, face: bool, fixture: bool = False) -> Tracks:
    import dataclasses

    return dataclasses.replace(track, face=np.array([face]), fixture=np.array([fixture]))


@pytest.mark.parametrize(
    ("face", "fixture", "counted", "in_view"),
    [(True, False, True, (1, 0)), (False, False, False, (0, 0)), (True, True, False, (0, 1))],
    ids=["a face", "a back of a head", "a poster"],
)
def test_only_a_person_s_face_becomes_a_visitor(face: bool, fixture: bool, counted: bool, in_view: tuple) -> None:
    counter = FootfallCounter("door", min_duration_s=1.0, reentry_window_s=0.0)
    for frame in range(45):
        counter.update(_flagged(one_track(100 + 5 * frame), face, fixture), [], frame / 15, 0.0, (640, 360))
    assert (counter.faces_in_view, counter.fixtures_in_view) == in_view
    (visit,) = counter.update(one_track()[[]], [1], 3.5, 0.0, (640, 360))
    assert visit.counted is counted


# --- a still poster, end to end -----------------------------------------------


@pytest.fixture(scope="module")
def poster_clip(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """The astronaut photo, 256 px, on a grey 1280x720 frame with a little noise each frame: 16 s at 15 fps."""
    path = tmp_path_factory.mktemp("poster") / "poster.mp4"
    photo = cv2.cvtColor(cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    frame = np.full((720, 1280, 3), 128, np.uint8)
    frame[232:488, 512:768] = photo
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (1280, 720))
    rng = np.random.default_rng(0)
    for _ in range(16 * 15):
        writer.write(np.clip(frame.astype(np.int16) + rng.integers(-3, 4, frame.shape), 0, 255).astype(np.uint8))
    writer.release()
    return path


def test_a_still_poster_is_a_fixture_not_a_visitor_and_check_proposes_a_mask_over_it(
    poster_clip: Path, shipped_model: Path, tmp_path: Path
) -> None:
    # before: one visitor who stayed the whole clip, "male 70+"
    from analyzer.tools.site_check import check_cameras
    from tests.harness import LiveRun, wait_for

    camera = {"id": "wall", "source": str(poster_clip), "realtime": False}
    quick = {"face_check": {"fixture_after_s": 10}}  # the shipped 30 s, shortened to keep the test short
    with LiveRun({"cameras": [camera], **quick}, shipped_model) as run:
        wait_for(lambda: run.metric("footfall_fixtures_in_view", camera="wall") == 1, 60, "the poster to be a fixture")
        assert run.metric("footfall_faces_in_view", camera="wall") == 0
        assert "(1 fixture ignored)" in run.pipeline.report.status_line("wall")
        report = run.stop()
    assert report.tallies["wall"].visitors == 0 and run.visits("wall") == []
    config = LiveRun.parse({"cameras": [{**camera, "realtime": True}], **quick})
    (check,) = check_cameras(config, 15.0, None, log=lambda _: None)
    assert check.fixtures == 1 and check.people == 0
    ((left, top), _, (right, bottom), _) = check.proposed_masks[0]
    assert left < 0.5 < right and top < 0.45 < bottom  # over the face (x 0.44-0.51, y 0.37-0.47)
    masked = {**camera, "masks": check.proposed_masks}
    with LiveRun({"cameras": [masked], **quick}, shipped_model) as run:  # masked: not even looked at
        wait_for(lambda: run.statuses("wall") and run.statuses("wall")[-1]["state"] == "ended", 60, "the end")
        report = run.stop()
    assert report.tallies["wall"].visitors == 0 and report.stats["wall"].faces_seen == 0


def test_a_poster_seen_again_after_someone_passed_in_front_is_still_a_fixture() -> None:
    # a walker hides the poster: its face is boxed again as a new track, whose 30 s would start anew
    poster = Script(lambda t: 15.0)
    check = FaceCheck(poster, fixture_after_s=30.0)

    def still(track_id: int, start: float, seconds: float) -> list[bool]:
        fixtures = []
        for frame in range(int(seconds * 15)):
            poster.t = start + frame / 15
            fixtures.append(bool(check.update(FRAME, one_track(track_id=track_id), poster.t).fixture[0]))
        return fixtures

    assert not any(still(1, 0.0, 20.0))  # 20 s, then hidden for 2 s
    check.forget([1])
    second = still(2, 22.0, 15.0)  # boxed again: a new track, at the same place
    assert not second[0] and second[-1] and second.index(True) / 15 < 10.0  # the clock went on from the first
    check.forget([2])
    third = still(3, 39.0, 4.0)  # a fixture's place: the next face still there is one (a screen's next still)
    assert not third[0] and third[-1] and third.index(True) / 15 <= 3.5


def test_a_person_stepping_where_a_still_face_was_lost_long_ago_starts_afresh() -> None:
    poster = Script(lambda t: 15.0)
    check = FaceCheck(poster, fixture_after_s=30.0)
    for frame in range(20 * 15):
        poster.t = frame / 15
        check.update(FRAME, one_track(track_id=1), poster.t)
    check.forget([1])
    poster.t = 60.0  # long after: someone else's face there starts its own watch
    assert not check.update(FRAME, one_track(track_id=2), 60.0).fixture[0]
    verdicts = []
    for frame in range(15 * 15):
        poster.t = 60.0 + frame / 15
        verdicts.append(bool(check.update(FRAME, one_track(track_id=2), poster.t).fixture[0]))
    assert not any(verdicts)


def _marked(track: Tracks, fixture: bool, still: bool) -> Tracks:
    import dataclasses

    return dataclasses.replace(track, face=np.array([True]), fixture=np.array([fixture]), still=np.array([still]))


@pytest.mark.parametrize(
    ("fixture_later", "still", "counted", "released_at"),
    [
        (True, True, False, 31.0),  # a poster's first track: held, then found to be a fixture where it was
        (False, True, True, 32.0),  # a face that stood still and left: counted, once it was not a fixture
        (False, False, True, 7.0),  # someone who moved: counted at once, never held
    ],
    ids=["poster", "still person", "walker"],
)
def test_a_visit_of_a_face_that_never_moved_waits_to_be_known_as_no_fixture(
    fixture_later: bool, still: bool, counted: bool, released_at: float
) -> None:
    counter = FootfallCounter("door", min_duration_s=1.0, reentry_window_s=2.0, hold_still_s=30.0)
    out = []
    for frame in range(40 * 15):
        t = frame / 15
        if t < 5:  # the first track: five seconds, then hidden (a walker passed in front)
            seen, ended = _marked(one_track(300 if still else 100 + 40 * t), False, still), []
        elif t < 31:
            seen, ended = one_track()[[]], [1] if frame == 5 * 15 else []
        else:  # boxed again at the same place, and by then known as a fixture (or not)
            seen, ended = _marked(one_track(300, track_id=2), fixture_later, still), []
        for visit in counter.update(seen, ended, t, 0.0, (640, 360)):
            out.append((t, visit))
    (first_at, first), *_ = out
    assert first.counted is counted and first.track_ids == (1,)
    assert first_at == pytest.approx(released_at, abs=0.5)


def test_what_the_check_keeps_of_tracks_is_bounded_by_the_tracks_alive() -> None:
    # the tracker reports the end of confirmed tracks only: a flicker's evidence was kept for good
    check = FaceCheck(Script(lambda t: 5.0))
    for frame in range(2000):  # a new one-frame flicker every frame, for two minutes
        check.update(FRAME, one_track(track_id=frame), frame / 15)
    assert len(check._tracks) == 1


def test_where_everyone_walks_in_never_becomes_a_fixture() -> None:
    # each walker is first seen at the door's edge and moves on: the place saw a face there for a minute on end
    check = FaceCheck(Script(lambda t: 12.0), fixture_after_s=30.0)
    verdicts = []
    for walker in range(30):  # one every 2 s, each in view 3 s, walking in from the same spot
        for frame in range(45):
            t = walker * 2.0 + frame / 15
            check.read.t = t  # type: ignore[attr-defined]
            x = 20 + 150 * frame / 15  # a width and a half a second
            verdicts.append(bool(check.update(FRAME, one_track(x, track_id=walker), t).fixture[0]))
        check.forget([walker])
    assert not any(verdicts) and not check._fixture_places and not check._places


# --- covered faces ------------------------------------------------------------


@pytest.fixture(scope="module")
def walking_astronaut(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> dict[str, Path]:
    """The astronaut walking across a grey 1280x720 frame for 5 s at 15 fps, plain and with a surgical mask."""
    from analyzer.tools.scene import FacePatch, draw_person, draw_surgical_mask

    detector = FaceDetector("full_range", 0.5)
    found = detector.detect(astronaut, 0)
    detector.close()
    left, top, right, bottom = (int(value) for value in found.boxes[0])
    clips = {}
    for name, photo in (
        ("plain", astronaut),
        ("masked", draw_surgical_mask(astronaut, found.boxes[0], found.keypoints[0])),
    ):
        patch = FacePatch.from_photo(photo, (left, top, right - left, bottom - top))
        clips[name] = tmp_path_factory.mktemp("walk") / f"{name}.mp4"
        writer = cv2.VideoWriter(str(clips[name]), cv2.VideoWriter_fourcc(*"mp4v"), 15, (1280, 720))
        for frame_index in range(75):
            frame = np.full((720, 1280, 3), 120, np.uint8)
            draw_person(frame, patch, 100 + frame_index * 14.4, 150, 110, (60, 80, 140), frame_index * 0.5)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
    return clips


@pytest.mark.parametrize("rule_on", [True, False])
def test_a_masked_face_counts_with_unknown_gender_and_age_and_the_same_face_unmasked_does_not(
    walking_astronaut: dict[str, Path], shipped_model: Path, rule_on: bool
) -> None:
    from analyzer.config import AttributesConfig
    from tests.harness import LiveRun, wait_for

    cameras = [{"id": name, "source": str(path), "realtime": False} for name, path in walking_astronaut.items()]
    attributes = {} if rule_on else {"min_face_presence": 0}  # on: the shipped threshold
    with LiveRun({"cameras": cameras, "attributes": attributes}, shipped_model) as run:
        ended = [
            lambda name=name: any(body["state"] == "ended" for body in run.statuses(name)) for name in walking_astronaut
        ]
        wait_for(lambda: all(camera_ended() for camera_ended in ended), 60, "both clips to end")
        report = run.stop()
        (plain,), (masked,) = run.visits("plain"), run.visits("masked")
    assert plain["gender"] == "female" and not plain["face_covered"] and plain["face_presence"] > 20
    assert masked["face_presence"] < AttributesConfig().min_face_presence  # a face, yet little of one...
    if rule_on:  # ... so her sure answer is a guess, published as one
        assert (masked["gender"], masked["age_group"], masked["face_covered"]) == ("unknown", "unknown", True)
        assert masked["gender_p"] and masked["age_group_p"]  # the probabilities stay in the message
        assert report.tallies["masked"].by_gender == {"unknown": 1}
    else:  # the rule off: the network's answer on eyes and hair is published as a fact
        assert masked["gender"] != "unknown" and not masked["face_covered"]
