"""The simulator and the scorer."""

import hashlib
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer.cli import main
from analyzer.datasets.labels import read_labels
from analyzer.errors import DataError
from analyzer.tools.score import outcome, score
from analyzer.tools.simulate import (
    CAFE_TABLES,
    SCREEN_BOX,
    SCREEN_SLIDE_S,
    WallFaces,
    covered_share,
    face_px_at,
    face_top_at,
    figure_boxes,
    plan_walkers,
    simulate,
)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory, utkface: Path) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("sim")
    truth = simulate(utkface, folder / "a.mp4", folder / "a.json", visitors=5, seconds=8.0, seed=11)
    return folder / "a.mp4", truth


def frame_digests(path: Path) -> list[str]:
    capture = cv2.VideoCapture(str(path))
    digests = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return digests
        digests.append(hashlib.md5(frame.tobytes()).hexdigest())


def test_same_seed_same_clip_and_truth(utkface: Path, tmp_path: Path) -> None:
    def render(name: str, seed: int) -> dict:
        return simulate(utkface, tmp_path / f"{name}.mp4", tmp_path / f"{name}.json", 4, 5.0, (320, 180), seed=seed)

    first, again, other = render("a", 11), render("b", 11), render("c", 12)
    assert json.dumps(again["visitors"]) == json.dumps(first["visitors"])
    assert frame_digests(tmp_path / "b.mp4") == frame_digests(tmp_path / "a.mp4")
    assert json.dumps(other["visitors"]) != json.dumps(first["visitors"])


def test_simulate_into_a_log_writes_no_progress_bar(utkface: Path, tmp_path: Path, capsys) -> None:
    # stderr is a file or a pipe here, as in a CI log or nohup.out: a bar's redraws would be noise in it
    args = ["simulate", "--faces", str(utkface), "--out", str(tmp_path / "c.mp4"), "--truth", str(tmp_path / "t.json")]
    assert main([*args, "--visitors", "2", "--seconds", "3", "--size", "320x180"]) == 0
    printed = capsys.readouterr()
    assert "rendering" not in printed.err and "\r" not in printed.err
    assert "wrote " in printed.out


def correlation(first: np.ndarray, second: np.ndarray) -> float:
    first, second = first.astype(np.float64).ravel(), second.astype(np.float64).ravel()
    first, second = first - first.mean(), second - second.mean()
    return float(first @ second / max(np.linalg.norm(first) * np.linalg.norm(second), 1e-9))


def test_truth_boxes_are_where_the_faces_were_drawn(small_clip: tuple[Path, dict], utkface: Path) -> None:
    """Spot-check: the pixels inside a truth box are that visitor's face photo, not what is beside it."""
    clip, truth = small_clip
    boxes_in_frame: dict[int, list[tuple[int, list[float]]]] = {}
    for visitor in truth["visitors"]:
        for frame, *box in visitor["boxes"]:
            boxes_in_frame.setdefault(frame, []).append((visitor["id"], box))

    def in_clear_view(visitor_id: int, frame: int, box: list[float]) -> bool:
        """No other face drawn over or beside it (a quarter hidden still counts as visible in the truth)."""
        x1, y1, x2, y2 = box
        pad = 0.3 * (x2 - x1)
        return not any(
            other != visitor_id and ox1 < x2 + pad and ox2 > x1 - pad and oy1 < y2 + pad and oy2 > y1 - pad
            for other, (ox1, oy1, ox2, oy2) in boxes_in_frame[frame]
        )

    checks = []
    for visitor in truth["visitors"]:
        width, height = truth["size"]
        inside = [
            (frame, x1, y1, x2, y2)
            for frame, x1, y1, x2, y2 in visitor["boxes"]
            if x1 >= 0
            and y1 >= 0
            and x2 <= width
            and y2 <= height
            and x2 - x1 >= 60
            and in_clear_view(visitor["id"], frame, [x1, y1, x2, y2])
        ]
        checks += [(visitor, box) for box in inside[:: max(len(inside) // 3, 1)][:3]]
    assert len(checks) >= 6
    frames = {}
    capture = cv2.VideoCapture(str(clip))
    index = 0
    wanted = {box[0] for _, box in checks}
    while wanted - frames.keys():
        ok, frame = capture.read()
        assert ok
        if index in wanted:
            frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        index += 1
    for visitor, (frame_index, x1, y1, x2, y2) in checks:
        photo = cv2.imread(str(utkface / visitor["face"]), cv2.IMREAD_GRAYSCALE)
        left, top, width, height = round(x1), round(y1), round(x2 - x1), round(y2 - y1)
        # the truth box is the photo's (0.02..0.96) span; compare its central half, away from the figure's edge
        inner = (slice(top + height // 4, top + 3 * height // 4), slice(left + width // 4, left + 3 * width // 4))
        drawn = frames[frame_index][inner]
        reference = cv2.resize(photo[50:150, 50:150], (drawn.shape[1], drawn.shape[0]), interpolation=cv2.INTER_AREA)
        beside = frames[frame_index][inner[0], slice(inner[1].start + width // 2, inner[1].stop + width // 2)]
        assert correlation(drawn, reference) > 0.7
        if beside.shape == drawn.shape:
            assert correlation(beside, reference) < correlation(drawn, reference) - 0.2


def visitor(id_: int, start: float, end: float, x0: float, x1: float, **extra: object) -> dict:
    path = [[t, x0 + (x1 - x0) * (t - start) / (end - start), 0.4, 80] for t in np.linspace(start, end, 11)]
    return {
        "id": id_,
        "start_s": start,
        "end_s": end,
        "seen_s": end - start,
        "countable": True,
        "age": 34,
        "gender": "female",
        "direction": None,
        "path": path,
        **extra,
    }


def visit(start: float, end: float, x0: float, x1: float, **extra: object) -> dict:
    return {
        "stream_start": start,
        "stream_end": end,
        "dwell_s": end - start,
        "first_position": [x0, 0.4],
        "last_position": [x1, 0.4],
        "gender": "female",
        "age_group": "30-39",
        **extra,
    }


def test_score_on_a_hand_made_pair() -> None:
    truth = {
        "visitors": [
            visitor(0, 0.0, 4.0, 0.1, 0.9, direction="in"),
            visitor(1, 2.0, 6.0, 0.9, 0.1, direction="out", gender="male"),
            visitor(2, 10.0, 12.0, 0.2, 0.3),  # missed
            visitor(3, 20.0, 21.0, 0.5, 0.5, countable=False),  # glimpse
        ]
    }
    visits = [
        visit(0.1, 3.9, 0.11, 0.89, direction="in"),
        visit(2.1, 3.5, 0.86, 0.6, gender="male", direction="out"),  # visitor 1, first half
        visit(4.2, 5.9, 0.55, 0.12, gender="male", direction="none"),  # visitor 1 again: a double count
        visit(30.0, 32.0, 0.5, 0.5),  # nobody: a false count
    ]
    result = score(truth, {"age_grouping": "fairface9", "cameras": {"sim": {"visits": visits}}})
    assert result["true_visitors"] == 3
    assert result["counted_visitors"] == 4
    assert result["count_error"] == pytest.approx(1 / 3)
    assert (result["misses"], result["double_counts"], result["false_counts"]) == (1, 1, 1)
    assert result["gender_accuracy"] == 1.0
    assert result["age_group_accuracy"] == 1.0
    assert result["direction_accuracy"] == 1.0 and result["crossings"] == 2
    assert result["by_gender"]["male"] == {"true": 1, "counted": 2}


def test_dwell_is_also_scored_without_the_faces_hidden_longer_than_a_reentry_window() -> None:
    def boxes(*spans: tuple[float, float]) -> list[list[float]]:  # frames the face showed, at 15 fps
        return [[frame, 0, 0, 1, 1] for start, end in spans for frame in range(round(start * 15), round(end * 15))]

    truth = {
        "fps": 15,
        "visitors": [
            visitor(0, 0.0, 60.0, 0.5, 0.5, boxes=boxes((0.0, 30.0), (32.0, 60.0))),  # 2 s behind someone
            visitor(1, 0.0, 60.0, 0.8, 0.8, boxes=boxes((0.0, 6.0), (50.0, 60.0))),  # 44 s behind a nearer customer
        ],
    }
    visits = [visit(0.0, 54.0, 0.5, 0.5), visit(0.0, 6.0, 0.8, 0.8)]  # the second lost its last 10 s
    result = score(truth, {"cameras": {"sim": {"visits": visits}}})
    assert result["dwell_error_share"] == pytest.approx((6 / 60 + 54 / 60) / 2)
    assert result["dwell_error_share_in_view"] == pytest.approx(6 / 60) and result["hidden_too_long"] == 1


def test_a_report_of_another_clip_is_not_scored() -> None:
    truth = {"fps": 15, "seconds": 20.0, "clip": "door.mp4", "visitors": [visitor(0, 0.0, 4.0, 0.1, 0.9)]}
    visits = [visit(0.1, 3.9, 0.11, 0.89)]
    assert score(truth, {"cameras": {"sim": {"visits": visits, "frames": 300}}})["misses"] == 0
    behind = {"visits": visits, "frames": 280, "frames_dropped": 20}  # a real-time run on a busy box
    assert score(truth, {"cameras": {"sim": behind}})["misses"] == 0
    with pytest.raises(DataError, match=r"^camera 'sim' of the report played 432 frames, the truth's clip has 300: "):
        score(truth, {"cameras": {"sim": {"visits": visits, "frames": 432}}})  # was scored: "error 800%"


def test_a_report_in_the_run_s_own_age_grouping_is_refused_with_what_to_do() -> None:
    truth = {"visitors": [visitor(0, 0.0, 4.0, 0.1, 0.9)]}
    report = {"age_grouping": "over-and-under-40", "cameras": {"sim": {"visits": [visit(0.1, 3.9, 0.11, 0.89)]}}}
    with pytest.raises(
        DataError,
        match=r"^the report counts age groups of 'over-and-under-40', .*; run the clip "
        r"with a shipped one \(fairface9, retail6, three, ten\)",
    ):
        score(truth, report)  # was: "unknown age grouping ...; define one in the config's age_groupings section"
    assert score(truth, {**report, "age_grouping": "retail6"})["misses"] == 0


def test_mistakes_say_what_went_wrong_whom_and_when(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = {
        "visitors": [
            visitor(0, 0.0, 4.0, 0.1, 0.9, direction="in"),  # counted right
            visitor(1, 2.0, 6.0, 0.9, 0.1, direction="out", gender="male"),  # counted twice
            visitor(2, 10.0, 12.0, 0.2, 0.3),  # missed
            visitor(3, 14.0, 18.0, 0.1, 0.9, direction="in", age=72),  # wrong in every way
        ]
    }
    visits = [
        visit(0.1, 3.9, 0.11, 0.89, direction="in", visit_id="v-right"),
        visit(2.1, 5.9, 0.86, 0.12, gender="male", direction="out", visit_id="v-whole"),
        visit(4.2, 5.8, 0.5, 0.12, gender="male", direction="none", visit_id="v-again"),
        visit(14.1, 17.9, 0.12, 0.88, gender="male", direction="out", visit_id="v-wrong"),
        visit(30.0, 32.0, 0.5, 0.5, visit_id="v-nobody"),
    ]
    report = {"age_grouping": "fairface9", "cameras": {"sim": {"visits": visits}}}
    listed = outcome(truth, report).mistakes()
    found = [(m["kind"], m["visitor"], m["visit"], m.get("true"), m.get("counted")) for m in listed]
    assert found == [
        ("double count", 1, "v-again", None, None),
        ("miss", 2, None, None, None),
        ("age group", 3, "v-wrong", "70+", "30-39"),
        ("direction", 3, "v-wrong", "in", "out"),
        ("gender", 3, "v-wrong", "female", "male"),
        ("false count", None, "v-nobody", None, None),
    ]
    assert [(m["from_s"], m["to_s"]) for m in listed][:2] == [(4.2, 5.8), (10.0, 12.0)]
    # the scorer's figures count the same mistakes
    result = score(truth, report)
    assert (result["misses"], result["double_counts"], result["false_counts"]) == (1, 1, 1)

    (tmp_path / "truth.json").write_text(json.dumps(truth))
    (tmp_path / "report.json").write_text(json.dumps(report))
    args = ["score", "--truth", str(tmp_path / "truth.json"), "--report", str(tmp_path / "report.json")]
    assert main([*args, "--mistakes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3:] == [
        "   4.2 s to    5.8 s  double count  visitor 1 was counted again (visit v-again)",
        "  10.0 s to   12.0 s  miss          visitor 2 was not counted",
        "  14.1 s to   17.9 s  age group     visitor 3: age group 70+, counted 30-39 (visit v-wrong)",
        "  14.1 s to   17.9 s  direction     visitor 3: direction in, counted out (visit v-wrong)",
        "  14.1 s to   17.9 s  gender        visitor 3: gender female, counted male (visit v-wrong)",
        "  30.0 s to   32.0 s  false count   a visit fits no visitor (visit v-nobody)",
    ]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mistakes"] == listed

    # the two files swapped, or a file of another kind: one line naming the file and the command that writes it
    swapped = ["score", "--truth", str(tmp_path / "report.json"), "--report", str(tmp_path / "truth.json")]
    assert main(swapped) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'report.json'}: not a truth file (no 'visitors' in it); "
        "pass the file analyzer simulate --truth wrote\n"
    )
    (tmp_path / "list.json").write_text("[]")
    assert main([*args[:3], "--report", str(tmp_path / "list.json")]) == 1
    assert "list.json: not a report (no 'cameras' in it); pass the file analyzer run --report wrote" in (
        capsys.readouterr().err
    )


def test_queue_places_hold_one_person_at_a_time(utkface: Path) -> None:
    faces = [face for face in read_labels(utkface)[:50]]
    walkers = plan_walkers(faces, "queue", 40, 120.0, np.random.default_rng(4))
    standing: dict[float, list[tuple[float, float]]] = {}
    for walker in walkers:
        for (t0, x0, _), (t1, x1, _) in itertools.pairwise(walker.waypoints):
            if t1 - t0 > 2 and abs(x1 - x0) < 0.02:  # waiting in the queue
                standing.setdefault(round(x0, 2), []).append((t0, t1))
    assert sum(len(spans) for spans in standing.values()) >= 20
    for spans in standing.values():
        spans.sort()
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))


def photo_folder(utkface: Path, folder: Path, faceless: int = 0) -> Path:
    """Real-world-like photos: UTKFace crops inside wider textured scenes, plus ``faceless`` scenes with no face."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    rows = ["path,age,gender"]
    for index, face in enumerate(read_labels(utkface)[:200:25]):
        scene = cv2.GaussianBlur(rng.integers(0, 255, (500, 500, 3), dtype=np.uint8), (0, 0), 6)
        x, y = rng.integers(60, 240, 2)
        if index >= faceless:
            scene[y : y + 200, x : x + 200] = cv2.imread(str(face.path))  # the face spans 40% of the photo
        cv2.imwrite(str(folder / "images" / f"p{index}.jpg"), scene)
        rows.append(f"images/p{index}.jpg,{face.age},{face.gender}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_photos_with_surroundings_are_drawn_by_their_face(utkface: Path, tmp_path: Path) -> None:
    """A folder of real-world photos (face in a wider scene) gets figures sized by the face, truth boxes on it."""
    from analyzer.core.faces import box_iou
    from analyzer.pipeline.detect import FaceDetector

    folder = photo_folder(utkface, tmp_path / "photos")
    truth = simulate(folder, tmp_path / "clip.mp4", tmp_path / "truth.json", visitors=5, seconds=10.0, seed=3)
    assert all(visitor["face_located"] for visitor in truth["visitors"])
    boxes_in_frame: dict[int, list[list[float]]] = {}
    for visitor in truth["visitors"]:
        for frame, *box in visitor["boxes"]:
            if box[2] - box[0] >= 60:
                boxes_in_frame.setdefault(frame, []).append(box)
    detector = FaceDetector("full_range", min_score=0.5)
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    overlaps = []
    for index in itertools.count():
        ok, frame = capture.read()
        if not ok:
            break
        if index % 5 or index not in boxes_in_frame:
            continue
        found = detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), index * 66)
        if len(found):
            overlaps += box_iou(np.array(boxes_in_frame[index], np.float32), found.boxes).max(axis=1).tolist()
    detector.close()
    assert len(overlaps) >= 10
    assert np.median(overlaps) > 0.6  # whole photos pasted as heads: ~0.2, and the faces drawn at half size


def test_a_photo_without_a_findable_face_is_not_expected_in_the_count(utkface: Path, tmp_path: Path) -> None:
    folder = photo_folder(utkface, tmp_path / "photos", faceless=4)  # half the photos show no face
    truth = simulate(folder, tmp_path / "clip.mp4", tmp_path / "truth.json", visitors=8, seconds=12.0, seed=5)
    faceless = [visitor for visitor in truth["visitors"] if int(Path(visitor["face"]).stem[1:]) < 4]
    located = [visitor for visitor in truth["visitors"] if int(Path(visitor["face"]).stem[1:]) >= 4]
    assert faceless and located
    assert not any(visitor["face_located"] or visitor["countable"] for visitor in faceless)
    assert all(visitor["face_located"] for visitor in located) and any(visitor["countable"] for visitor in located)


def test_cafe_customers_sit_one_to_a_table_for_minutes_swaying_and_looking_away(utkface: Path) -> None:
    faces = [face for face in read_labels(utkface)[:50]]
    walkers = plan_walkers(faces, "cafe", 14, 400.0, np.random.default_rng(61))
    sitters = [walker for walker in walkers if walker.kind == "sit"]
    assert len(sitters) >= 8
    seated: dict[int, list[tuple[float, float]]] = {}
    for walker in sitters:
        arrival, leave = walker.waypoints[1][0], walker.waypoints[-2][0]
        assert 60 <= leave - arrival <= 240
        table = min(range(len(CAFE_TABLES)), key=lambda index: abs(CAFE_TABLES[index][0] - walker.waypoints[1][1]))
        seated.setdefault(table, []).append((arrival, leave))
        xs = [x for t, x, _ in walker.waypoints if arrival <= t <= leave]
        assert 0 < max(xs) - min(xs) <= 0.012  # sways a little, never walks while seated
        assert any(arrival < t0 < leave for t0, _ in walker.turned_away)  # turns to someone now and then
    for spans in seated.values():
        spans.sort()
        assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))


def test_no_cafe_seat_is_hidden_behind_another_seated_customer() -> None:
    """A camera placed to measure dwell sees every seat: at most an eighth of a seated face behind another."""
    width, height = 1280, 720
    seats = []
    for x, depth in CAFE_TABLES:
        face_px, top = face_px_at(depth, height), face_top_at(depth, height)
        seats.append((depth, (x * width - face_px / 2, top, x * width + face_px / 2, top + face_px), face_px))
    for depth, face, _ in seats:
        nearer = [part for other_depth, other, px in seats if other_depth > depth for part in figure_boxes(other, px)]
        assert covered_share(face, nearer) <= 0.125, (depth, face)


def test_wall_faces_hang_still_where_the_truth_says_and_the_screen_changes_its_face(utkface: Path) -> None:
    faces = [face for face in read_labels(utkface)[:50]]
    wall = WallFaces(faces, seed=3, size=(640, 360))
    blank = np.full((360, 640, 3), 200, np.uint8)
    first, again, later = blank.copy(), blank.copy(), blank.copy()
    wall.draw(first, 1.0)
    wall.draw(again, 30.0)
    wall.draw(later, SCREEN_SLIDE_S + 1.0)
    fixtures = wall.truth(120.0)
    assert [fixture["kind"] for fixture in fixtures] == ["poster", "poster", "screen"]
    for fixture in fixtures:
        x1, y1, x2, y2 = (round(value * size) for value, size in zip(fixture["box"], (640, 360, 640, 360), strict=True))
        assert np.abs(first[y1:y2, x1:x2].astype(int) - 200).mean() > 20  # a face hangs there
    assert np.array_equal(first, again)  # still as a photo
    x1, y1, x2, y2 = (round(value * size) for value, size in zip(SCREEN_BOX, (640, 360, 640, 360), strict=True))
    assert not np.array_equal(first[y1:y2, x1:x2], later[y1:y2, x1:x2])  # the next slide
    assert np.array_equal(np.delete(first, np.s_[y1:y2], axis=0), np.delete(later, np.s_[y1:y2], axis=0))
