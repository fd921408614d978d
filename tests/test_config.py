import dataclasses
import math
import re
import types
import typing
from datetime import datetime
from pathlib import Path

import pytest

from analyzer.config import Config, load_config, parse_config
from analyzer.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def camera(**extra: object) -> dict:
    return {"cameras": [{"id": "door", "source": "door.mp4", **extra}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**camera(), "trackr": {}}, r"trackr: unknown key; did you mean 'tracker'\? allowed here: "),
        (camera(lines=[]), r"cameras\[0\]\.lines: unknown key; did you mean 'line'\? allowed here: detector, id, "),
        ({**camera(), "x": 1}, r"^[^:]*x: unknown key; allowed here: "),  # nothing near: no guess
        (camera(realtime="yes"), r"cameras\[0\]\.realtime: expected true or false, got 'yes'"),
        (camera(detector={"min_score": "high"}), r"cameras\[0\]\.detector\.min_score: expected a number"),
        (camera(detector={"roi": [0.5, 0, 0.2, 1]}), r"cameras\[0\]\.detector\.roi: .* must be \[x1, y1, x2, y2\]"),
        (camera(detector={"roi": [0, 0, 1]}), r"roi: \[0.0, 0.0, 1.0\] must have exactly 4 numbers"),
        (camera(detector={"model": "long_range"}), "is not one of full_range, short_range"),
        (
            {"cameras": [{"id": "a", "source": "x"}, {"id": "a", "source": "y"}]},
            r"cameras\[1\]\.id: duplicate camera id 'a'",
        ),
        ({"cameras": [{"id": "bad id!", "source": "x"}]}, "must be a non-empty name"),
        ({"cameras": [{"id": "a"}]}, r"cameras\[0\]\.source: missing"),
        ({"cameras": [{"id": "a", "source": "  "}]}, r"cameras\[0\]\.source: missing"),
        ({"cameras": [{"id": "a", "source": "rtsp://"}]}, r"source: rtsp:// names no camera address; give one like"),
        (
            {"cameras": [{"id": "a", "source": "rtsp://admin:p#ss@10.0.0.12/stream1"}]},
            r"^cameras\[0\]\.source: rtsp://admin:\*\*\*@10\.0\.0\.12/stream1: its password holds '#', which ends a "
            r"URL's address; write it percent-encoded: '#' as %23$",
        ),
        ({"cameras": [{"id": "a", "source": "rtsp://admin:pa/ss@cam/live"}]}, r"password holds '/'.*'/' as %2F$"),
        (
            {"cameras": [{"id": "a", "source": "http://viewer:s3cret@/mjpeg"}]},
            r"source: http://viewer:\*\*\*@/mjpeg names no camera address",
        ),
        ({"cameras": []}, "at least one camera"),
        ({**camera(), "tracker": {"min_hits": 1.5}}, "tracker.min_hits: expected a whole number"),
        ({**camera(), "tracker": {"high_score": 1.5}}, r"tracker\.high_score: 1\.5 must be between 0 and 1"),
        ({**camera(), "sampler": {"min_face_px": 0}}, r"sampler\.min_face_px: 0 must be 8\.\.1024 pixels"),
        ({**camera(), "sampler": {"interval_s": -1}}, r"sampler\.interval_s: -1 must be 0\.\.60 seconds"),
        (
            {**camera(), "sampler": {"samples_per_track": 7, "max_classified_per_track": 5}},
            r"sampler\.max_classified_per_track: 5 is below samples_per_track \(7\)",
        ),
        ({**camera(), "classifier": {"backend": "cuda"}}, "classifier.backend: 'cuda' is not one of"),
        ({**camera(), "metrics": {"port": 70000}}, "metrics.port: 70000 must be 0..65535"),
        ({**camera(), "site": "north/door"}, "site: 'north/door' must be a non-empty name of letters"),
        ({"cameras": [{"id": "a", "source": "a.mp4", "site": "x#"}]}, r"cameras\[0\]\.site: 'x#' must be"),
        ({**camera(), "mqtt": {"host": "broker", "topic_prefix": "shops/#"}}, "mqtt.topic_prefix: 'shops/#' must"),
        ({**camera(), "mqtt": {"host": "broker", "password_file": "/no/such"}}, "mqtt.password_file: /no/such is not"),
        ({**camera(), "mqtt": {"host": "broker", "cert_file": __file__}}, "mqtt: a client certificate needs both"),
        ({**camera(), "web": {"host": "0.0.0.0"}}, "web.host: 0.0.0.0 lets other machines open the page"),
        (
            {**camera(), "footfall": {"reentry_window_s": 29}},
            r"footfall: linger_s \+ reentry_window_s is 30.5 s, over 30 s; a hidden visitor's likeness",
        ),
        ({**camera(), "footfall": {"linger_s": 25, "reentry_window_s": 6}}, "is 31 s, over 30 s"),  # privacy
        ({**camera(), "footfall": {"min_duration_s": 1e5}}, r"footfall\.min_duration_s: 100000 must be 0\.\.600"),
        ({**camera(), "classifier": {"max_wait_ms": 1e5}}, r"max_wait_ms: 100000 must be 0\.\.1000 milliseconds"),
        ({**camera(), "sampler": {"samples_per_track": 1000}}, r"samples_per_track: 1000 must be 1\.\.100"),
        ({**camera(), "tracker": {"min_hits": 1000}}, r"tracker\.min_hits: 1000 must be 1\.\.30 frames"),
        ({**camera(), "zmq": {"summary_interval_s": 0}}, r"zmq\.summary_interval_s: 0 must be 1\.\.3600"),
        ({**camera(), "zmq": {"send_hwm": -5}}, r"zmq\.send_hwm: -5 must be 1\.\.10000000"),
        ({**camera(), "health": {"stall_after_s": 1}}, r"health\.stall_after_s: 1 must be 5\.\.3600 seconds"),
        ({**camera(), "status_interval_s": -1}, r"status_interval_s: -1 must be 0\.\.3600 seconds \(0 = never\)"),
        ({**camera(), "footfall": {"age_grouping": "decades"}}, "footfall.age_grouping: 'decades' is not one of"),
        ({**camera(), "age_groupings": {"mine": ["0-9", "12+"]}}, "age grouping 'mine'"),
        ([1, 2], "expected a mapping"),
        (camera(labels={"site": "x"}), r"cameras\[0\]\.labels\.site: not a usable Prometheus label name"),
        (camera(labels={"floor-2": "x"}), "not a usable Prometheus label name"),
        (camera(line={"start": [0.5, 1.0], "end": [0.5, 1.0]}), "start and end are the same point"),
        (camera(line={"start": [0.5, 1.2], "end": [0.5, 0.0]}), r"line\.start: \[0\.5, 1\.2\] must be .* 0 and 1$"),
        (
            camera(line={"start": [640, 0], "end": [640, 720]}),
            r"line\.start: \[640\.0, 0\.0\] must be \[x, y\] with both between 0 and 1; these look like pixels: "
            r"divide x by the frame's width and y by its height",
        ),
        (
            camera(zones=[{"name": "a", "polygon": [[0.1, 0.1], [0.5, 0.1], [900, 500]]}]),
            r"zones\[0\]\.polygon\[2\]: \[900\.0, 500\.0\] must be .*; these look like pixels",
        ),
        (camera(line={"unseen_crossing_s": -1}), r"line\.unseen_crossing_s: -1 must be 0\.\.5 seconds"),
        (camera(line={"anchor": "feet"}), "anchor: 'feet' is not one of center, top, bottom"),
        (camera(zones=[{"name": "a", "polygon": [[0, 0], [1, 1]]}]), "needs at least 3"),
        (
            camera(masks=[[[0.1, 0.1], [0.3, 0.1]]]),
            r"cameras\[0\]\.masks\[0\]: needs at least 3 \[x, y\] points, got 2",
        ),
        (
            camera(masks=[[[0.1, 0.1], [0.3, 0.1], [1.3, 0.4]]]),
            r"cameras\[0\]\.masks\[0\]\[2\]: \[1\.3, 0\.4\] must be",
        ),
        (
            camera(masks=[[[0.6, 0.0], [0.95, 0.0], [0.6, 1.0], [0.95, 1.0]]]),
            r"cameras\[0\]\.masks\[0\]: its outline crosses itself \(the side masks\[0\]\[1\]-masks\[0\]\[2\] .*"
            r"around the mask",
        ),
        (camera(min_duration_s=-1), r"cameras\[0\]\.min_duration_s: -1 must be 0\.\.600 seconds"),
        (camera(detector={"tiles": 4}), r"cameras\[0\]\.detector\.tiles: 4 must be 1, 2 or 3"),
        (camera(zones=[{"name": "a", "polygon": [[0, 0], [0.5, 0.5], [1, 1]]}]), "enclose no area"),
        (  # corners in reading order, not around the zone: a bow-tie, whatever its area
            camera(zones=[{"name": "a", "polygon": [[0.6, 0.0], [0.95, 0.0], [0.6, 1.0], [0.95, 1.0]]}]),
            r"zones\[0\]\.polygon: its outline crosses itself \(the side polygon\[1\]-polygon\[2\] crosses "
            r"polygon\[3\]-polygon\[0\]\)",
        ),
        (
            camera(zones=[{"name": "a", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.2, 0.9], [0.9, 0.8]]}]),
            "list the corners in order around the zone",
        ),
        (
            camera(
                zones=[
                    {"name": "a", "polygon": [[0, 0], [1, 0], [1, 1]]},
                    {"name": "a", "polygon": [[0, 0], [1, 0], [0, 1]]},
                ]
            ),
            "duplicate zone name 'a'",
        ),
    ],
)
def test_bad_config_names_the_key(document: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(document)


def test_an_at_sign_in_a_camera_url_s_path_is_not_taken_for_a_password() -> None:
    for source in [
        "rtsp://10.0.0.12:554/live?notify=desk@shop.example",
        "http://cam.local/snap@2x.mjpg",
        "rtsp://admin:p%23ss@10.0.0.12/stream1",
        "rtsp://admin:p@ss@10.0.0.12/stream1",
        "rtsp://cam/live?auth=op:pw@site",
    ]:
        assert parse_config({"cameras": [{"id": "a", "source": source}]}).cameras[0].source == source


def test_camera_detector_overrides_only_named_keys() -> None:
    config = parse_config({**camera(detector={"tiles": 2}), "detector": {"min_score": 0.4, "model": "short_range"}})
    detector = config.cameras[0].detector
    assert (detector.tiles, detector.min_score, detector.model) == (2, 0.4, "short_range")


def test_a_camera_may_count_shorter_or_longer_visits_than_the_rest() -> None:
    document = {"cameras": [{"id": "door", "source": "a.mp4"}, {"id": "queue", "source": "b.mp4", "min_duration_s": 3}]}
    config = parse_config({**document, "footfall": {"min_duration_s": 1.5}})
    assert [camera.visit_min_duration_s(config.footfall) for camera in config.cameras] == [1.5, 3.0]


def test_a_recordings_start_time_is_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "recorded.yaml"
    path.write_text(
        "cameras:\n"
        "  - {id: mon, source: mon/door.mp4, recorded_at: 2026-11-30T09:00:00+01:00}\n"  # YAML reads this itself
        "  - {id: tue, source: tue/door.mp4, recorded_at: '2026-12-01 09:00'}\n"  # no zone: this box's time
        "  - {id: utc, source: utc/door.mp4, recorded_at: '2026-11-30T08:00:00Z'}\n"  # Z, on Python 3.10 too
    )
    monday, tuesday, utc = (camera.recorded_at for camera in load_config(path).cameras)
    assert monday is not None and monday.timestamp() == 1796025600.0  # 08:00 UTC
    assert utc is not None and utc.timestamp() == monday.timestamp()
    assert tuesday is not None and tuesday.timestamp() == datetime(2026, 12, 1, 9, 0).timestamp()


@pytest.mark.parametrize(
    ("camera_settings", "message"),
    [
        ({"recorded_at": "2026-12-01"}, "2026-12-01 has no time of day; give when the first frame was recorded"),
        ({"recorded_at": "monday 9am"}, "expected a date and time like 2026-12-01T09:00:00"),
        ({"recorded_at": "2096-12-01T09:00"}, "2096-12-01T09:00:00 is in the future; check the date and the time zone"),
        ({"recorded_at": "2026-12-01T09:00", "source": "rtsp://10.0.0.12/stream1"}, "only for a video file played"),
        ({"recorded_at": "2026-12-01T09:00", "loop": True}, "only for a video file played once"),
    ],
)
def test_a_recording_time_that_cannot_be_right_is_refused(camera_settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"cameras\[0\]\.recorded_at: {message}"):
        parse_config(camera(**camera_settings))


def test_custom_grouping_is_used() -> None:
    document = {**camera(), "age_groupings": {"kids": ["0-17", "18+"]}, "footfall": {"age_grouping": "kids"}}
    config = parse_config(document)
    assert config.grouping().names == ["0-17", "18+"]


@pytest.mark.parametrize("name", ["default.yaml", "store-entrance.yaml", "webcam.yaml"])
def test_shipped_configs_load(name: str) -> None:
    assert load_config(REPO / "configs" / name).cameras


def test_a_config_that_is_a_video_or_a_folder_is_one_line(tmp_path: Path) -> None:
    video = tmp_path / "door.mp4"  # -c door.mp4 for --source door.mp4 was a UnicodeDecodeError traceback
    video.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ConfigError, match=r"door\.mp4: not a text file; give the YAML config"):
        load_config(video)
    with pytest.raises(ConfigError, match=r"is a folder; give the config file"):
        load_config(tmp_path)
    latin = tmp_path / "latin.yaml"  # an editor's Latin-1 was "not a text file" too
    latin.write_bytes("cameras:\n  - id: door\n    source: t\u00fcr.mp4\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.yaml line 3: not UTF-8 text; save the config as UTF-8$"):
        load_config(latin)
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_text("cameras:\n  - id: door\n    source: door.mp4\n", encoding="utf-16")
    with pytest.raises(ConfigError, match=r"utf16\.yaml: not a text file; .* saved as UTF-8$"):
        load_config(utf16)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("cameras:\n  - id: door\n    source: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml line \d+: not valid YAML"):
        load_config(path)


def test_cameras_share_settings_through_an_x_anchor_and_override_them_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "doors.yaml"
    path.write_text(
        "x-door: &door\n  line: {start: [0.5, 1.0], end: [0.5, 0.0]}\n  min_duration_s: 2.0\n"
        "cameras:\n  - {<<: *door, id: north, source: n.mp4}\n"
        "  - <<: *door\n    id: south\n    source: s.mp4\n    min_duration_s: 3.0\n"
    )
    north, south = load_config(path).cameras
    assert north.line is not None and south.line is not None and north.line.start == south.line.start == [0.5, 1.0]
    assert (north.min_duration_s, south.min_duration_s) == (2.0, 3.0)  # an override is not a key given twice


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "cameras:\n  - id: door\n    source: a.mp4\ndetector: {tiles: 2}\ndetector: {min_score: 0.4}\n",
            "line 5: .*'detector'",
        ),
        (
            "cameras:\n  - id: door\n    source: a.mp4\n    line: {start: [0.5, 1], end: [0.5, 0]}\n"
            "    line: {start: [0.3, 1], end: [0.3, 0]}\n",
            "line 5: .*'line'",
        ),
    ],
)
def test_a_key_given_twice_is_refused_not_silently_overwritten(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"twice\.yaml {message} appears twice in one mapping; keep one and merge"):
        load_config(path)


def _document_with(key: str, value: object) -> dict:
    """A valid config (one camera with a line and a zone) with ``key`` (``cameras[0].line.hysteresis``) set."""
    document: dict = {
        "cameras": [{"id": "door", "source": "door.mp4", "line": {}, "zones": [{"name": "till", "polygon": SQUARE}]}]
    }
    parts = key.replace("[0]", ".0").split(".")
    section: dict | list = document
    for part in parts[:-1]:
        section = section[int(part)] if part.isdigit() else section.setdefault(part, {})  # type: ignore[index, union-attr]
    section[parts[-1]] = value  # type: ignore[index]
    return document


SQUARE = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
PRIVACY = r"^footfall: linger_s \+ reentry_window_s is .* over 30 s"


def _ranged(key: str, lowest: float, highest: float, below: float, above: float, above_names: str = "") -> list:
    """Cases for a key allowing ``lowest..highest``: both ends accepted, ``below``/``above``/NaN/inf refused.

    ``above_names``: the start of the message when a value too high breaks a rule between two keys.
    """
    path = re.escape(key)
    return [
        (key, lowest, None),
        (key, highest, None),
        (key, below, rf"^{path}: "),
        (key, above, above_names or rf"^{path}: "),
        (key, math.nan, rf"^{path}: expected a (finite|whole) number, got nan$"),
        (key, math.inf, rf"^{path}: expected a (finite|whole) number, got inf$"),
        (key, -math.inf, rf"^{path}: expected a (finite|whole) number, got -inf$"),
    ]


#: Every numeric key: what it allows, written out here (not read from the code), so a check that goes missing fails.
NUMERIC_KEYS = [
    *_ranged("detector.min_score", 0.01, 0.99, 0, 1),
    *_ranged("cameras[0].detector.min_score", 0.01, 0.99, 0, 1),
    *_ranged("detector.every_n_frames", 1, 10, 0, 11),
    *_ranged("cameras[0].detector.every_n_frames", 1, 10, 0, 11),
    *_ranged("cameras[0].detector.wake_every_s", 0.1, 60, 0.09, 60.01),
    *_ranged("detector.idle_every_n_frames", 1, 10, 0, 11),
    *_ranged("cameras[0].detector.idle_every_n_frames", 1, 10, 0, 11),
    *_ranged("detector.tiles", 1, 3, 0, 4),
    *_ranged("cameras[0].detector.tiles", 1, 3, 0, 4),
    *_ranged("tracker.high_score", 0.01, 0.99, 0, 1),
    *_ranged("tracker.match_iou", 0.01, 0.99, 0, 1),
    *_ranged("tracker.min_hits", 1, 30, 0, 31),
    *_ranged("tracker.min_similarity", 0, 1, -0.01, 1.01),
    *_ranged("face_check.min_score", 0.01, 0.99, 0, 1),
    *_ranged("attributes.min_gender_p", 0.5, 1, 0.49, 1.01),
    *_ranged("attributes.min_age_group_p", 0, 1, -0.01, 1.01),
    *_ranged("attributes.min_face_presence", 0, 50, -0.5, 50.5),
    *_ranged("face_check.needed", 1, 20, 0, 21),
    *_ranged("face_check.fixture_after_s", 0, 3600, -0.01, 3600.01),
    *_ranged("sampler.samples_per_track", 1, 100, 0, 101),
    *_ranged("sampler.max_classified_per_track", 7, 1000, 6, 1001),  # at least samples_per_track (7)
    *_ranged("sampler.min_face_px", 8, 1024, 7, 1025),
    *_ranged("sampler.interval_s", 0, 60, -0.01, 60.01),
    *_ranged("sampler.confident_at", 0.5, 1, 0.49, 1.01),
    *_ranged("classifier.max_batch", 8, 1024, 0, 1025),  # at least typical_batch (8)
    *_ranged("classifier.typical_batch", 1, 32, 0, 33),  # at most max_batch (32)
    *_ranged("classifier.workspace_mb", 16, 1_048_576, 15, 1_048_577),
    *_ranged("classifier.max_wait_ms", 0, 1000, -0.01, 1000.01),
    *_ranged("classifier.threads", 0, 256, -1, 257),
    *_ranged("footfall.min_duration_s", 0, 600, -0.01, 600.01),
    *_ranged("footfall.linger_s", 0.01, 28, 0, 28.01, PRIVACY),  # linger_s + reentry_window_s (2): at most 30
    *_ranged("footfall.reentry_window_s", 0, 28.5, -0.01, 28.51, PRIVACY),  # with linger_s 1.5
    *_ranged("footfall.reentry_distance", 0, 1, -0.01, 1.01),
    *_ranged("footfall.reentry_verify_s", 0, 5, -0.01, 5.01),
    *_ranged("zmq.send_hwm", 1, 10_000_000, 0, 10_000_001),
    *_ranged("zmq.summary_interval_s", 1, 3600, 0.99, 3600.01),
    *_ranged("metrics.port", 0, 65535, -1, 65536),
    *_ranged("web.port", 0, 65535, -1, 65536),
    *_ranged("detector.wake_every_s", 0.1, 60, 0.09, 60.01),
    *_ranged("detector.wake_unchanged_every_s", 0.1, 600, 0.09, 600.01),
    *_ranged("cameras[0].detector.wake_unchanged_every_s", 0.1, 600, 0.09, 600.01),
    *_ranged("mqtt.port", 1, 65535, 0, 65536),
    *_ranged("mqtt.keepalive_s", 5, 3600, 4, 3601),
    *_ranged("mqtt.outbox_max_messages", 10, 100_000_000, 9, 100_000_001),
    *_ranged("mqtt.outbox_max_age_s", 60, 365 * 86400, 59.9, 365 * 86400 + 1),
    *_ranged("health.stall_after_s", 5, 3600, 4.99, 3600.01),
    *_ranged("status_interval_s", 1, 3600, 0.99, 3600.01),
    ("status_interval_s", 0, None),  # never
    ("status_interval_s", -1, r"^status_interval_s: "),
    *_ranged("cameras[0].read_timeout_s", 0.1, 3600, 0.09, 3600.01),
    *_ranged("cameras[0].reconnect_backoff_s", 0.1, 30, 0.09, 30.01, r"^cameras\[0\]\.max_backoff_s: 30 is below"),
    *_ranged("cameras[0].max_backoff_s", 1, 3600, 0.99, 3600.01),  # at least reconnect_backoff_s (1)
    *_ranged("cameras[0].min_duration_s", 0, 600, -0.01, 600.01),
    *_ranged("cameras[0].line.hysteresis", 0, 0.49, -0.01, 0.5),
    *_ranged("cameras[0].line.unseen_crossing_s", 0, 5, -0.01, 5.01),
]


@pytest.mark.parametrize(("key", "value", "refused"), NUMERIC_KEYS, ids=lambda item: str(item))
def test_every_numeric_key_refuses_nan_infinity_and_out_of_range_naming_its_path(
    key: str, value: float, refused: str | None
) -> None:
    document = _document_with(key, value)
    if refused is None:
        parse_config(document)
        return
    with pytest.raises(ConfigError) as raised:
        parse_config(document)
    assert re.search(refused, str(raised.value)), str(raised.value)


def _numeric_keys(kind: type, path: str) -> set[str]:
    """The path of every number in the config's dataclasses (``cameras[0].line.hysteresis``)."""
    found: set[str] = set()
    for item in dataclasses.fields(kind):
        inner_kind = typing.get_type_hints(kind)[item.name]
        if typing.get_origin(inner_kind) in (typing.Union, types.UnionType):  # X | None
            inner_kind = next(arg for arg in typing.get_args(inner_kind) if arg is not type(None))
        key = f"{path}.{item.name}" if path else item.name
        if typing.get_origin(inner_kind) is list and dataclasses.is_dataclass(typing.get_args(inner_kind)[0]):
            found |= _numeric_keys(typing.get_args(inner_kind)[0], f"{key}[0]")
        elif dataclasses.is_dataclass(inner_kind):
            found |= _numeric_keys(inner_kind, key)
        elif inner_kind in (int, float):
            found.add(key)
    return found


def test_the_numeric_key_table_covers_every_number_in_the_config() -> None:
    tested = {key for key, _, _ in NUMERIC_KEYS}
    assert _numeric_keys(Config, "") - tested == set()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("detector.roi", [0, 0, math.nan, 1]),
        ("cameras[0].line.start", [math.inf, 0.5]),
        ("cameras[0].zones[0].polygon", [[0.1, 0.1], [0.4, math.nan], [0.4, 0.4]]),
        ("cameras[0].masks", [[[0.1, 0.1], [0.4, math.inf], [0.4, 0.4]]]),
    ],
)
def test_a_point_or_rectangle_with_nan_or_infinity_is_refused(key: str, value: list) -> None:
    with pytest.raises(ConfigError, match=r"expected a finite number, got (nan|inf)$"):
        parse_config(_document_with(key, value))
