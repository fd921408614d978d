"""The web page's parts that need no browser: the config rewrite, passwords, the day's figures, stills, access."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer.config import load_config
from analyzer.core.age_groups import builtin_grouping
from analyzer.core.faces import Faces
from analyzer.core.tracks import Tracks
from analyzer.core.visits import TrackAttributes, Visit, random_visit_id
from analyzer.errors import ConfigError
from analyzer.outputs.report import RunReport, visit_document
from analyzer.outputs.web.access import Access, hash_password, password_matches
from analyzer.outputs.web.stills import blurred
from analyzer.outputs.web.today import Today
from analyzer.pipeline.camera_stages import FrameDone, FrameOutcome
from analyzer.pipeline.capture import Frame
from analyzer.pipeline.detect import FaceDetector
from analyzer.pipeline.live_setup import LiveSetup
from analyzer.service.config_file import ConfigFile
from tests.harness import free_port, wait_for

FAIRFACE9 = builtin_grouping("fairface9")
REPO = Path(__file__).resolve().parents[1]

SITE = """\
# Corner cafe, front door camera
x-camera: &camera
  realtime: true   # play at the clip's own fps
cameras:
  - id: door       # the front door
    <<: *camera
    source: {source}
    line:
      start: [0.5, 1.0]   # bottom middle
      end: [0.5, 0.0]
      hysteresis: 0.03    # tuned on site
sampler:
  max_classified_per_track: null   # K calls
web:
  port: {port}
"""


def _site(tmp_path: Path, source: str = "door.mp4", port: int = 8108) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(source=source, port=port))
    return path


# --- the config file rewrite ------------------------------------------------


def test_a_saved_set_up_keeps_every_comment_anchor_and_other_key_of_the_file(tmp_path: Path) -> None:
    path = _site(tmp_path)
    config = ConfigFile(path).set_camera_geometry(
        "door",
        ((0.1, 0.6), (0.9, 0.62)),
        [("queue", [(0.1, 0.1), (0.4, 0.1), (0.4, 0.4), (0.1, 0.4)])],
        [[(0.8, 0.0), (1.0, 0.0), (1.0, 0.2)]],
    )
    text = path.read_text()
    kept_lines = ["# Corner cafe, front door camera", "# the front door", "# bottom middle", "# tuned on site"]
    kept_lines += ["<<: *camera", "max_classified_per_track: null   # K calls", "hysteresis: 0.03"]
    for kept in kept_lines:
        assert kept in text
    assert "start: [0.1, 0.6]   # bottom middle" in text  # the new value where the old one was, comment and all
    reloaded = load_config(path)
    door = reloaded.cameras[0]
    assert (door.line.start, door.line.end, door.line.hysteresis) == ([0.1, 0.6], [0.9, 0.62], 0.03)
    assert [(zone.name, zone.polygon) for zone in door.zones] == [
        ("queue", [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]])
    ]
    assert door.masks == [[[0.8, 0.0], [1.0, 0.0], [1.0, 0.2]]]
    assert config.cameras[0].zones == door.zones
    ConfigFile(path).set_camera_geometry("door", None, [], [])  # everything removed again
    assert (
        "line:" not in path.read_text()
        and "zones" not in path.read_text()
        and load_config(path).cameras[0].line is None
    )


@pytest.mark.parametrize("name", ["default.yaml", "store-entrance.yaml", "webcam.yaml", "simulated.yaml"])
def test_a_change_that_changes_nothing_leaves_a_shipped_config_byte_for_byte(tmp_path: Path, name: str) -> None:
    copy = tmp_path / name
    copy.write_bytes((REPO / "configs" / name).read_bytes())
    ConfigFile(copy).change(lambda document: None)
    assert copy.read_bytes() == (REPO / "configs" / name).read_bytes()


@pytest.mark.parametrize(
    ("line", "zones"),
    [
        (((0.3, 0.3), (0.3, 0.3)), []),  # a line of zero length
        (None, [("bow", [(0.1, 0.1), (0.4, 0.4), (0.4, 0.1), (0.1, 0.4)])]),  # a zone that crosses itself
        (None, [("no name!", [(0.1, 0.1), (0.4, 0.1), (0.4, 0.4)])]),
        (((0.3, 1.4), (0.3, 0.2)), []),  # outside the frame
    ],
)
def test_a_bad_shape_is_refused_with_the_loaders_message_and_the_file_is_left_alone(
    tmp_path: Path, line: tuple | None, zones: list
) -> None:
    path = _site(tmp_path)
    before = path.read_text()
    with pytest.raises(ConfigError) as refused:
        ConfigFile(path).set_camera_geometry("door", line, zones, [])
    assert path.read_text() == before
    # the same shape written by hand: the loader says exactly the same
    by_hand = tmp_path / "by-hand" / "site.yaml"
    by_hand.parent.mkdir()
    camera = f"    line: {{start: {list(line[0])}, end: {list(line[1])}}}\n" if line else ""
    for name, polygon in zones:
        camera += f"    zones:\n      - name: '{name}'\n        polygon: {[list(point) for point in polygon]}\n"
    by_hand.write_text(f"cameras:\n  - id: door\n    source: door.mp4\n{camera}")
    with pytest.raises(ConfigError) as loaded:
        load_config(by_hand)
    assert str(refused.value).replace(str(path), "FILE") == str(loaded.value).replace(str(by_hand), "FILE")


def test_a_camera_that_is_not_in_the_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no camera 'till'"):
        ConfigFile(_site(tmp_path)).set_camera_geometry("till", None, [], [])


# --- passwords and access ----------------------------------------------------


def test_a_password_is_kept_as_a_salted_hash_that_only_it_matches() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and "correct horse" not in first  # salted: the same password, two hashes
    assert password_matches("correct horse", first) and password_matches("correct horse", second)
    assert not password_matches("correct hors", first) and not password_matches("correct horse", "scrypt$junk")
    access = Access({"anna": first}, required=True)

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert access.user(basic("anna", "correct horse")) == "anna"
    assert access.user(basic("anna", "wrong")) is None and access.user(basic("bob", "correct horse")) is None
    assert access.user(None) is None and access.user("Bearer x") is None and access.user("Basic %%%") is None
    assert Access({}, required=False).user(None) == "local"


def test_web_password_writes_the_hash_into_the_config_and_keeps_its_comments(tmp_path: Path) -> None:
    path = _site(tmp_path)
    command = [sys.executable, "-m", "analyzer", "web-password", "-c", str(path), "--user", "manager"]
    done = subprocess.run([*command, "--password-stdin"], input="hunter2hunter2\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    config = load_config(path)
    assert password_matches("hunter2hunter2", config.web.users["manager"])
    assert "# the front door" in path.read_text() and "hunter2" not in path.read_text()
    short = subprocess.run([*command, "--password-stdin"], input="short\n", capture_output=True, text=True)
    assert short.returncode == 2 and "at least 8" in short.stderr


def test_a_page_other_machines_can_open_needs_a_password(tmp_path: Path) -> None:
    path = _site(tmp_path)
    path.write_text(path.read_text().replace("web:\n", "web:\n  host: 0.0.0.0\n"))
    with pytest.raises(ConfigError, match=r"web.host: 0.0.0.0 lets other machines open the page.*web-password"):
        load_config(path)


def _get(url: str, user: str | None = None, password: str = "", data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "text/plain"} if data else {})
    if user is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError:  # not listening yet
        return 0


@pytest.mark.slow
def test_a_page_bound_beyond_loopback_refuses_every_request_without_the_password(
    tmp_path: Path, walkers_clip: tuple[Path, int]
) -> None:
    port = free_port()
    path = _site(tmp_path, source=str(walkers_clip[0]), port=port)
    path.write_text(
        path.read_text().replace("web:\n", "web:\n  host: 0.0.0.0\n").replace("realtime: true", "loop: true")
    )
    ConfigFile(path).set_user("manager", hash_password("hunter2hunter2"))
    command = [sys.executable, "-m", "analyzer", "run", "-c", str(path), "--metrics-port", "0", "--zmq-bind", ""]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{base}/api/today") == 401, 120, "the page to answer")
        for page in ("/", "/setup", "/api/today", "/api/cameras", "/api/cameras/door/still.jpg", "/static/today.js"):
            assert _get(base + page) == 401
            assert _get(base + page, "manager", "wrong password") == 401
            assert _get(base + page, "someone", "hunter2hunter2") == 401
        assert _get(f"{base}/api/today", "manager", "hunter2hunter2") == 200
        assert _get(f"{base}/static/today.js", "manager", "hunter2hunter2") == 200
        # a change sent as a form (what another web site could make the browser send) is refused
        assert _get(f"{base}/api/cameras/door/setup", "manager", "hunter2hunter2", data=b"line=x") == 415
    finally:
        run.terminate()
        _, stderr = run.communicate(timeout=60)
    assert f"web page: http://0.0.0.0:{port}/" in stderr and "users: manager; password needed" in stderr


# --- the day's figures --------------------------------------------------------


def _visit(camera: str, end: datetime, gender: str, age_group: str, direction: str | None, dwell: float) -> Visit:
    attributes = TrackAttributes(age_group, gender, {age_group: 0.9}, {gender: 0.9}, 30.0, 3)
    start = end.timestamp() - dwell
    return Visit(camera, random_visit_id(), start, end.timestamp(), 0.0, dwell, attributes, direction)


def test_the_days_figures_are_the_reports_own_per_camera_and_in_total() -> None:
    morning = datetime(2026, 12, 7, 9, 15)
    visits = [
        _visit("door", morning, "female", "20-29", "in", 4.0),
        _visit("door", morning + timedelta(minutes=50), "male", "70+", "out", 12.0),
        _visit("door", morning + timedelta(hours=3), "unknown", "unknown", "none", 2.0),
        _visit("till", morning + timedelta(hours=3, minutes=5), "female", "3-9", None, 95.0),
    ]
    report = RunReport(["door", "till"], FAIRFACE9, lined={"door"})
    today = Today(FAIRFACE9, ["door", "till"], report.has_line, clock=lambda: morning.timestamp())
    for visit in visits:
        report.add(visit)
        today.add(visit_document(visit))
    shown = today.snapshot()
    reported = report.to_dict()
    assert shown["date"] == "2026-12-07"
    for camera in ("door", "till"):
        assert shown["cameras"][camera]["totals"] == reported["cameras"][camera]["totals"]
    assert shown["total"]["totals"] == reported["totals"]
    door = shown["cameras"]["door"]
    assert door["by_hour"][9:13] == [1, 1, 0, 1] and door["in_by_hour"][9] == 1 and door["out_by_hour"][10] == 1
    assert list(door["by_age_group"]) == [*FAIRFACE9.names, "unknown"]  # youngest first, every group, then unknown
    assert door["dwell"]["median_s"] == 4.0 and door["dwell"]["counts"][:2] == [2, 1]
    assert shown["cameras"]["till"]["lined"] is False and shown["total"]["lined"] is True
    assert [visit["camera"] for visit in shown["latest"]] == ["till", "door", "door", "door"]  # newest first
    assert "visit_id" not in shown["latest"][0] and "first_position" not in shown["latest"][0]


def test_the_page_turns_to_a_new_day_and_shows_the_days_before_from_their_files() -> None:
    day = datetime(2026, 12, 7, 23, 50)
    saved = {"2026-12-05": {"visitors": 40, "by_gender": {"female": 25, "male": 15}}}  # the file's totals
    now = [day.timestamp()]
    today = Today(
        FAIRFACE9,
        ["door"],
        set().__contains__,
        saved_totals=lambda date: saved.get(date.isoformat()),
        clock=lambda: now[0],
    )
    today.add(visit_document(_visit("door", day, "female", "20-29", None, 3.0)))
    now[0] = (day + timedelta(minutes=20)).timestamp()  # past midnight: the page shows the new day, empty
    shown = today.snapshot()
    assert shown["date"] == "2026-12-08" and shown["total"]["totals"]["visitors"] == 0
    days = {entry["date"]: entry["visitors"] for entry in shown["days"]}
    assert len(days) == 7 and days["2026-12-07"] == 1 and days["2026-12-05"] == 40 and days["2026-12-08"] == 0


def test_the_page_starts_with_the_visits_an_earlier_run_left_in_todays_file() -> None:
    now = datetime(2026, 12, 7, 15, 0)
    earlier = visit_document(_visit("door", now - timedelta(hours=2), "male", "30-39", None, 5.0))
    saved = {"cameras": {"door": {"visits": [earlier]}}}
    today = Today(FAIRFACE9, ["door"], set().__contains__, saved_day=lambda day: saved, clock=lambda: now.timestamp())
    today.add(visit_document(_visit("door", now, "female", "20-29", None, 3.0)))
    assert today.snapshot()["total"]["totals"]["by_gender"] == {"female": 1, "male": 1}


# --- stills ------------------------------------------------------------------


def test_a_blurred_still_has_no_face_our_detector_finds_and_the_sharp_one_had(astronaut: np.ndarray) -> None:
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[100:612, 300:812] = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    detector = FaceDetector("full_range", min_score=0.5)
    try:
        found = detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 1)
        assert len(found) >= 1  # the control: the sharp frame has a face
        hidden = blurred(frame, found.boxes)
        assert len(detector.detect(cv2.cvtColor(hidden, cv2.COLOR_BGR2RGB), 2)) == 0
        short = FaceDetector("short_range", min_score=0.5)
        try:
            assert len(short.detect(cv2.cvtColor(hidden, cv2.COLOR_BGR2RGB), 3)) == 0
        finally:
            short.close()
    finally:
        detector.close()
    outside = np.ones(frame.shape[:2], bool)
    x1, y1, x2, y2 = found.boxes[0]
    outside[int(y1) - 60 : int(y2) + 60, int(x1) - 60 : int(x2) + 60] = False
    assert np.array_equal(hidden[outside], frame[outside])  # the rest of the picture is untouched


def test_the_today_document_is_plain_json() -> None:
    today = Today(FAIRFACE9, ["door"], {"door"}.__contains__)
    today.add(visit_document(_visit("door", datetime.now(), "female", "20-29", "in", 3.0)))
    assert json.loads(json.dumps(today.snapshot()))["total"]["totals"]["visitors"] == 1


# --- the running cameras' side of the set-up ----------------------------------


def _live(frame: np.ndarray, show_faces: bool, config_file: ConfigFile | None = None) -> LiveSetup:
    from analyzer.config import CameraConfig, Config, LineConfig

    config = Config(cameras=[CameraConfig(id="door", source="door.mp4", line=LineConfig())])
    live = LiveSetup(config, config_file, "" if config_file else "given with --source", show_faces=show_faces)
    outcome = FrameOutcome(Faces.empty(), Tracks.empty())
    live.frame_done("door", FrameDone(Frame("door", 0, 0.0, 0.0, frame), outcome))
    return live


def _faces_in(jpeg: bytes) -> int:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    detector = FaceDetector("full_range", min_score=0.5)
    try:
        return len(detector.detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), 1))
    finally:
        detector.close()


def test_a_still_is_blurred_unless_the_config_says_loudly_to_show_faces(astronaut: np.ndarray) -> None:
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[100:612, 300:812] = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    blurred_live, sharp_live = _live(frame, show_faces=False), _live(frame, show_faces=True)
    try:
        assert _faces_in(blurred_live.still("door")) == 0
        assert _faces_in(sharp_live.still("door")) == 1
        assert blurred_live.cameras()[0]["faces_blurred"] is True and sharp_live.cameras()[0]["faces_blurred"] is False
    finally:
        blurred_live.close()
    with pytest.raises(LookupError, match="has not delivered a frame yet"):
        LiveSetup(blurred_live.config).still("door")


def test_a_shape_saved_without_a_config_file_counts_until_the_run_stops_and_says_so(tmp_path: Path) -> None:
    live = _live(np.zeros((72, 128, 3), np.uint8), show_faces=False)
    saved = live.save("door", {"line": {"start": [0.1, 0.5], "end": [0.9, 0.5]}, "zones": [], "masks": []}, "test")
    assert saved["saved_to"] is None and "not saved: given with --source" in saved["note"]
    assert live.config.cameras[0].line.start == [0.1, 0.5] and live.config.cameras[0].line.hysteresis == 0.02
    with pytest.raises(ConfigError, match=r"^cameras\[0\].line: start and end are the same point"):
        live.save("door", {"line": {"start": [0.2, 0.2], "end": [0.2, 0.2]}}, "test")
    assert live.config.cameras[0].line.start == [0.1, 0.5]  # a refused shape changes nothing


def test_the_days_before_come_from_the_daily_report_files(tmp_path: Path) -> None:
    from analyzer.outputs.daily_reports import DailyReportFiles

    files = DailyReportFiles(tmp_path / "report-{date}.json", FAIRFACE9)
    monday = datetime(2026, 12, 7, 10, 0)
    report = RunReport(["door"], FAIRFACE9)
    for minutes in range(3):
        report.add(_visit("door", monday + timedelta(minutes=minutes), "male", "30-39", None, 4.0))
    files.write(report, final=True)
    tuesday = monday + timedelta(days=1)
    today = Today(
        FAIRFACE9,
        ["door"],
        set().__contains__,
        saved_day=files.saved_day,
        saved_totals=files.saved_totals,
        clock=lambda: tuesday.timestamp(),
    )
    days = {entry["date"]: entry for entry in today.snapshot()["days"]}
    assert days["2026-12-07"]["visitors"] == 3 and days["2026-12-07"]["by_gender"] == {"male": 3}
    assert files.saved_day(tuesday.date()) is None
    report.add(_visit("door", monday + timedelta(minutes=30), "female", "20-29", None, 4.0))  # a late visit
    files.write(report, final=True)
    days = {entry["date"]: entry for entry in today.snapshot()["days"]}
    assert days["2026-12-07"]["visitors"] == 4  # the file changed: read again
