"""Typed YAML configuration.

One dataclass per section; every field has a default and a one-line comment.
The loader checks types and rejects unknown keys, naming the key path, the bad
value and what is allowed, so a typo never silently falls back to a default.

Example (configs/store-entrance.yaml has a complete one)::

    cameras:
      - id: entrance
        source: rtsp://192.168.1.20:554/stream1
    classifier:
      model: engines/agegender.onnx
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import socket
import time
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from analyzer.core.age_groups import BUILTIN_GROUPINGS, AgeGrouping, parse_grouping
from analyzer.core.camera_url import credentials_need_encoding, names_no_server, without_password
from analyzer.core.shipped import shipped_path
from analyzer.core.sources import source_kind
from analyzer.core.text_files import NotUtf8Error, read_utf8
from analyzer.core.zones import CountingLine, Zone
from analyzer.errors import ConfigError

ANCHORS = ("center", "top", "bottom")
# footfall.linger_s + reentry_window_s: how long a hidden visitor's likeness stays in memory after their face
# was last seen (the track lingers, then its visit waits to be re-found). Occlusions last seconds.
MAX_UNSEEN_LIKENESS_S = 30
MAX_MIN_DURATION_S = 600  # footfall.min_duration_s and a camera's own: a visit shorter than 10 minutes must count
T = TypeVar("T")


@dataclass(frozen=True)
class Bounds:
    """The values a numeric key allows: ``low..high`` in ``unit``, either end left out when ``open``."""

    low: float
    high: float
    unit: str = ""
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        """Whether ``value`` lies inside."""
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        """``1..30 frames``, or ``between 0 and 1`` when an end is left out."""
        unit = f" {self.unit}" if self.unit else ""
        if self.low_open or self.high_open:
            return f"between {_number(self.low)} and {_number(self.high)}{unit}"
        return f"{_number(self.low)}..{_number(self.high)}{unit}"


def _number(value: float) -> str:
    """A number as a person writes it: 10000000, 0.1, 1.5 (not 1e+07 or 1.0)."""
    if math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return f"{value:g}"


def bounded(
    default: Any, low: float, high: float, unit: str = "", *, low_open: bool = False, high_open: bool = False
) -> Any:
    """A numeric config field with the range it allows; the loader refuses anything outside, NaN and inf too."""
    return field(default=default, metadata={"bounds": Bounds(low, high, unit, low_open, high_open)})


def check_ranges(section: object, path: str) -> None:
    """Refuse a numeric key of ``section`` (one config dataclass, not its children) outside its bounds."""
    for item in dataclasses.fields(section):  # type: ignore[arg-type]
        bounds = item.metadata.get("bounds")
        value = getattr(section, item.name)
        if bounds is None or value is None:
            continue
        if not math.isfinite(value) or not bounds.allows(value):
            raise ConfigError(f"{_child(path, item.name)}: {_number(value)} must be {bounds.describe()}")


@dataclass
class DetectorConfig:
    """MediaPipe face detector (top-level defaults; a camera may override any key)."""

    model: str = "full_range"  # full_range (entrance cameras) or short_range (kiosks, < 2 m)
    min_score: float = bounded(
        0.5, 0, 1, low_open=True, high_open=True
    )  # lower finds fainter faces and more false ones
    roi: list[float] | None = None  # [x1, y1, x2, y2] as fractions of the frame; null = whole frame
    # 1 = whole ROI; 2 = plus 2x2 overlapping tiles (~60 px faces at 1080p, ~5x the cost);
    # 3 = plus 3x3 tiles too (~30 px faces at 720p, ~15x the cost)
    tiles: int = 1
    # detect on every n-th frame only; the tracker's motion model bridges the others
    every_n_frames: int = bounded(1, 1, 10, "frames")
    # skip the detector on frames where nothing moved and no one is followed (README, How many cameras per box);
    # an empty doorway then costs a small grey copy of each frame; light changes, noise and a flickering screen
    # do not count; the accuracy set counts the same visits with it as without
    motion_gate: bool = True
    # with the gate on: search a still picture anyway this often, in case someone stands still where no one moved,
    # if it changed since its last search (beyond light and noise: a face turning up, someone sitting down) or that
    # search found a face ...
    wake_every_s: float = bounded(1.0, 0.1, 60, "seconds")
    # ... and this often if neither (an empty doorway); set to wake_every_s to search every still picture as often
    wake_unchanged_every_s: float = bounded(10.0, 0.1, 600, "seconds")
    # with the gate on, while nothing moves and no one is in view: look for motion on every n-th frame only
    # (the others are decoded, not converted or looked at); 1 = every frame
    idle_every_n_frames: int = bounded(3, 1, 10, "frames")

    def check(self, path: str) -> None:
        """Validate values that types alone cannot."""
        check_ranges(self, path)
        if self.model not in ("full_range", "short_range"):
            raise ConfigError(f"{path}.model: '{self.model}' is not one of full_range, short_range")
        if self.tiles not in (1, 2, 3):
            raise ConfigError(f"{path}.tiles: {self.tiles} must be 1, 2 or 3")
        if self.roi is not None:
            x1, y1, x2, y2 = _four(self.roi, f"{path}.roi")
            if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
                raise ConfigError(
                    f"{path}.roi: {self.roi} must be [x1, y1, x2, y2] with 0 <= x1 < x2 <= 1, 0 <= y1 < y2 <= 1"
                )


@dataclass
class TrackerConfig:
    """ByteTrack-style face tracker."""

    # detections above this start and keep tracks; below only keep them
    high_score: float = bounded(0.6, 0, 1, low_open=True, high_open=True)
    match_iou: float = bounded(0.2, 0, 1, low_open=True, high_open=True)  # least overlap of prediction and detection
    # frames a new track needs before it counts (filters flicker); 30 is 2 s at 15 fps, longer than many walkers stay
    min_hits: int = bounded(2, 1, 30, "frames")
    # likeness (0..1, colours and face) to re-find a hidden face; 0 = motion only
    min_similarity: float = bounded(0.65, 0, 1)
    likeness_model: str = "engines/agegender.likeness.onnx"  # face likeness cue; "" = colours only (then use 0.75)

    def check(self, path: str) -> None:
        """Validate ranges."""
        check_ranges(self, path)

    def likeness_model_path(self) -> Path | None:
        """The face likeness model: as given, else relative to the repository root; None for colours only."""
        return _repo_relative(self.likeness_model) if self.likeness_model else None


@dataclass
class FaceCheckConfig:
    """Only what shows a face counts as a visitor and votes: backs and tops of heads, hair and hands do not."""

    enabled: bool = True  # false counts every track the detector follows (the behaviour before the face check)
    # face-presence probability (the face mesh model's) a check needs; higher turns away more backs of heads
    # and more small or blurred real faces
    min_score: float = bounded(0.5, 0, 1, low_open=True, high_open=True)
    needed: int = bounded(2, 1, 20, "checks")  # checks a track must pass to count as a face
    # a face as still as a photo (in place and in shape) from its first sight this long is a fixture (a poster, a
    # screen's still, a mannequin) and never a visitor; 0 = never. Shorter catches fixtures sooner and risks
    # taking a very still person for one.
    fixture_after_s: float = bounded(30.0, 0, 3600, "seconds")

    def check(self, path: str) -> None:
        """Validate ranges."""
        check_ranges(self, path)

    @property
    def hold_still_s(self) -> float:
        """How long the counter holds a visit of a face that never moved, in case it is a fixture (0: never)."""
        return self.fixture_after_s if self.enabled else 0.0

    @property
    def min_logit(self) -> float:
        """``min_score`` as the model's logit."""
        return math.log(self.min_score / (1 - self.min_score))


@dataclass
class AttributesConfig:
    """When a visit's vote is too unsure to publish: that attribute is ``unknown`` (its probabilities are kept)."""

    # a gender whose combined probability is lower is unknown (docs/ACCURACY.md, "Unknown": the curve it comes from)
    min_gender_p: float = bounded(0.55, 0.5, 1)
    # an age group whose combined probability is lower is unknown; chosen for fairface9's nine groups: a grouping
    # of fewer, wider groups is surer of each and may take a higher one
    min_age_group_p: float = bounded(0.3, 0, 1)
    # a visit whose classified crops show less of a face than this (the face check's presence logit, their
    # median) has unknown gender and age group: a mask, a scarf or a hand over the face; the network stays sure
    # on what is left, and is wrong more often (docs/ACCURACY.md, "Covered faces"); 0 never decides so
    min_face_presence: float = bounded(6.0, 0, 50)

    def check(self, path: str) -> None:
        """Validate ranges."""
        check_ranges(self, path)


@dataclass
class SamplerConfig:
    """Which face crops of a track get classified."""

    # K: a track's best samples that vote (docs/ACCURACY.md: accuracy vs samples)
    samples_per_track: int = bounded(7, 1, 100)
    # classifier calls per track at most; null = K (a track's first K crops). Above K, later and better crops
    # replace poor early ones: docs/ACCURACY.md measured no gain at K = 7 for 1.7 times the calls.
    max_classified_per_track: int | None = bounded(None, 1, 1000)
    min_face_px: int = bounded(28, 8, 1024, "pixels")  # faces smaller than this are not classified (too little detail)
    interval_s: float = bounded(0.2, 0, 60, "seconds")  # minimum time between two samples of one track
    confident_at: float = bounded(0.95, 0.5, 1)  # stop sampling once gender and age group are this sure
    refine_keypoints: bool = True  # re-find each sampled face's keypoints with short-range BlazeFace on its crop

    @property
    def calls_per_track(self) -> int:
        """Classifier calls one track may cost: ``max_classified_per_track``, or K when it is not set."""
        return self.max_classified_per_track or self.samples_per_track

    def check(self, path: str) -> None:
        """Validate ranges."""
        check_ranges(self, path)
        if self.max_classified_per_track is not None and self.max_classified_per_track < self.samples_per_track:
            raise ConfigError(
                f"{path}.max_classified_per_track: {self.max_classified_per_track} is below samples_per_track "
                f"({self.samples_per_track}); set it to at least that"
            )


def _repo_relative(value: str) -> Path:
    """A path as given when it exists or is absolute, else as shipped (the checkout's or the wheel's)."""
    given = Path(value).expanduser()
    if given.is_absolute() or given.exists():
        return given
    return shipped_path(given)


@dataclass
class ClassifierConfig:
    """Age and gender network and its inference backend."""

    model: str = "engines/agegender.onnx"  # FP32 ONNX from `analyzer export`
    backend: str = "auto"  # auto | onnxruntime | tensorrt
    # faces per inference call at most (also the TensorRT profile's max batch)
    max_batch: int = bounded(32, 1, 1024, "faces")
    typical_batch: int = bounded(8, 1, 1024, "faces")  # the TensorRT profile's optimum batch, at most max_batch
    workspace_mb: int = bounded(1024, 16, 1_048_576, "MB")  # TensorRT builder workspace
    engine_dir: str = "engines"  # where TensorRT plans are cached
    # how long a face waits for others to fill a batch; its visit is published after
    max_wait_ms: float = bounded(20.0, 0, 1000, "milliseconds")
    threads: int = bounded(0, 0, 256)  # ONNX Runtime threads; 0 = min(cores this process may use, 4)

    def check(self, path: str) -> None:
        """Validate ranges."""
        check_ranges(self, path)
        if self.backend not in ("auto", "onnxruntime", "tensorrt"):
            raise ConfigError(f"{path}.backend: '{self.backend}' is not one of auto, onnxruntime, tensorrt")
        if self.typical_batch > self.max_batch:
            raise ConfigError(
                f"{path}.typical_batch: {self.typical_batch} is above max_batch ({self.max_batch}); "
                "set it to at most that"
            )

    def model_path(self) -> Path:
        """The model file: as given, else relative to the repository root."""
        return _repo_relative(self.model)

    def engine_dir_path(self) -> Path:
        """The TensorRT plan cache: as given, else relative to the repository root."""
        return _repo_relative(self.engine_dir)


@dataclass
class FootfallConfig:
    """What counts as a visit."""

    # tracks shorter than this are not visitors (glimpses, false faces); a visit of 10 minutes must count
    min_duration_s: float = bounded(1.0, 0, MAX_MIN_DURATION_S, "seconds")
    # a visit ends when its face is unseen this long; longer bridges occlusions
    linger_s: float = bounded(1.5, 0, MAX_UNSEEN_LIKENESS_S, "seconds", low_open=True)
    # a new track starting near a just-lost one within this time is the same visit
    reentry_window_s: float = bounded(2.0, 0, MAX_UNSEEN_LIKENESS_S, "seconds")
    # how near (fraction of the frame) to where the lost face was heading
    reentry_distance: float = bounded(0.25, 0, 1)
    # a new track's motion is watched this long before it may continue a lost visit
    reentry_verify_s: float = bounded(0.4, 0, 5, "seconds")
    age_grouping: str = "fairface9"  # fairface9 | retail6 | three | ten | a name from age_groupings

    def check(self, path: str) -> None:
        """Validate ranges."""
        check_ranges(self, path)
        if self.linger_s + self.reentry_window_s > MAX_UNSEEN_LIKENESS_S:  # privacy
            raise ConfigError(
                f"{path}: linger_s + reentry_window_s is {self.linger_s + self.reentry_window_s:g} s, over "
                f"{MAX_UNSEEN_LIKENESS_S} s; a hidden visitor's likeness is held in memory that long after their face "
                "was last seen, so keep both to the seconds an occlusion lasts"
            )


@dataclass
class ZmqConfig:
    """ZeroMQ PUB socket for visit, summary and status messages."""

    bind: str = "tcp://127.0.0.1:5556"  # '' disables ZeroMQ
    # queued messages per subscriber before new ones are dropped (and counted)
    send_hwm: int = bounded(10000, 1, 10_000_000, "messages")
    # how often summary.<camera> goes out; a zero interval would send them five times a second
    summary_interval_s: float = bounded(10.0, 1, 3600, "seconds")

    def check(self, path: str) -> None:
        """Validate ranges."""
        check_ranges(self, path)


@dataclass
class MetricsConfig:
    """Prometheus exporter."""

    host: str = "127.0.0.1"  # 0.0.0.0 to let a Prometheus on another box scrape
    port: int = bounded(9108, 0, 65535)  # 0 disables the exporter

    def check(self, path: str) -> None:
        """Validate ranges."""
        check_ranges(self, path)


@dataclass
class MqttConfig:
    """MQTT out (docs/FLEET.md): visits, summaries and status to a broker; off until ``host`` is set."""

    host: str = ""  # the broker's address; '' = no MQTT
    port: int = bounded(1883, 1, 65535)  # 8883 for TLS, by convention
    # topics <prefix>/<site>/<camera>/visit|summary|status and the retained <prefix>/<site>/availability
    topic_prefix: str = "footfall"
    client_id: str = ""  # '' = footfall-<site>; the broker keeps one session per id
    username: str = ""
    password_file: str = ""  # a file holding the broker's password (kept out of the config; mode 600)
    tls: bool = False  # TLS to the broker, checked against ca_file (or the system's CAs)
    ca_file: str = ""
    cert_file: str = ""  # a client certificate, for brokers that ask for one, with its key_file
    key_file: str = ""
    keepalive_s: int = bounded(30, 5, 3600, "seconds")  # the broker publishes the last will this long after silence
    # visits waiting for the broker, on disk: survives a broker or uplink outage and a restart;
    # '' = $XDG_STATE_HOME/footfall-analyzer/mqtt-outbox.sqlite (~/.local/state/...)
    outbox: str = ""
    outbox_max_messages: int = bounded(200_000, 10, 100_000_000, "messages")  # beyond, the oldest are dropped
    outbox_max_age_s: float = bounded(7 * 86400, 60, 365 * 86400, "seconds")  # older visits are dropped, counted

    def check(self, path: str) -> None:
        """Ranges, a usable topic prefix, and the files it names."""
        check_ranges(self, path)
        if not self.host:
            return
        if not self.topic_prefix or any(char in self.topic_prefix for char in "+#") or self.topic_prefix.endswith("/"):
            raise ConfigError(f"{path}.topic_prefix: '{self.topic_prefix}' must be a topic without +, # or a last /")
        for key in ("password_file", "ca_file", "cert_file", "key_file"):
            value = getattr(self, key)
            if value and not Path(value).expanduser().is_file():
                raise ConfigError(f"{path}.{key}: {value} is not a file")
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError(f"{path}: a client certificate needs both cert_file and key_file")

    def outbox_path(self) -> Path:
        """Where the outbox lives."""
        if self.outbox:
            return Path(self.outbox).expanduser()
        state = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
        return Path(state) / "footfall-analyzer" / "mqtt-outbox.sqlite"


def host_site() -> str:
    """A site name from this box's host name, for a config that names none."""
    name = "".join(char if char.isalnum() or char in "-_." else "-" for char in socket.gethostname())
    return name.strip("-.") or "shop"


def check_site(path: str, site: str) -> None:
    """A site name goes into MQTT topics and Prometheus label values: letters, digits, '.', '-' and '_'."""
    if not site or not site.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigError(f"{path}: '{site}' must be a non-empty name of letters, digits, '.', '-' and '_'")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class WebConfig:
    """The web page: today's visitors and each camera's set-up (docs/WEB.md)."""

    host: str = "127.0.0.1"  # 0.0.0.0 to open it from other machines: then a password is needed (web.users)
    port: int = bounded(8108, 0, 65535)  # 0 disables the page
    # name: scrypt hash, set with `analyzer web-password`; needed (for every request) when host is not loopback
    users: dict[str, str] = field(default_factory=dict)
    # set-up stills show faces UNBLURRED to whoever opens the page (never stored); off: faces are blurred
    show_faces_in_stills: bool = False

    @property
    def loopback(self) -> bool:
        """Only this box can open the page."""
        return self.host in LOOPBACK_HOSTS

    def check(self, path: str) -> None:
        """A page other machines can open needs a password."""
        check_ranges(self, path)
        if self.port and not self.loopback and not self.users:
            raise ConfigError(
                f"{path}.host: {self.host} lets other machines open the page, which then needs a password: "
                "run `analyzer web-password -c <this config> --user <name>`, or set web.host: 127.0.0.1"
            )
        for name, hashed in self.users.items():
            if not name or ":" in name or not hashed.startswith("scrypt$"):
                raise ConfigError(
                    f"{path}.users.{name}: not a user set by `analyzer web-password` (a name without ':' and a "
                    "scrypt$... hash); set it again with that command"
                )


@dataclass
class HealthConfig:
    """When the analyzer counts as stuck: ``/healthz`` answers 503 and systemd's watchdog restarts it."""

    # a camera's processing, the classifier or publishing making no progress this long; a few seconds would take a
    # busy moment for a hang
    stall_after_s: float = bounded(30.0, 5, 3600, "seconds")

    def check(self, path: str) -> None:
        """Validate ranges."""
        check_ranges(self, path)


def _check_point(path: str, point: list[float]) -> None:
    """A point of a line or zone is [x, y] in fractions of the frame, so one config fits any stream size."""
    if len(point) == 2 and all(0.0 <= value <= 1.0 for value in point):
        return
    pixels = len(point) == 2 and min(point) >= 0 and max(point) > 2
    hint = "; these look like pixels: divide x by the frame's width and y by its height (x 640 of 1280 is 0.5)"
    raise ConfigError(f"{path}: {point} must be [x, y] with both between 0 and 1{hint if pixels else ''}")


@dataclass
class LineConfig:
    """A directional counting line: crossing from the left of start→end to its right is 'in'."""

    start: list[float] = field(default_factory=lambda: [0.5, 1.0])  # [x, y] fractions of the frame
    end: list[float] = field(default_factory=lambda: [0.5, 0.0])  # start→end upward: 'in' is left to right
    # a face must be this far (fraction of frame) past the line to count
    hysteresis: float = bounded(0.02, 0, 0.5, "(fraction of the frame)", high_open=True)
    anchor: str = "center"  # point of the face box that crosses: center | top | bottom
    # a face first seen just past the line walking away (or last seen just short of it walking at it)
    # crossed it unseen if this much walking takes it across; 0 = count only crossings seen
    unseen_crossing_s: float = bounded(0.75, 0, 5, "seconds")

    def check(self, path: str) -> None:
        """Geometry must be two distinct points inside the frame."""
        check_ranges(self, path)
        for key, point in (("start", self.start), ("end", self.end)):
            _check_point(f"{path}.{key}", point)
        if self.start == self.end:
            raise ConfigError(f"{path}: start and end are the same point; a line needs two")
        if self.anchor not in ANCHORS:
            raise ConfigError(f"{path}.anchor: '{self.anchor}' is not one of {', '.join(ANCHORS)}")

    def counting_line(self) -> CountingLine:
        """The geometry object."""
        return CountingLine((self.start[0], self.start[1]), (self.end[0], self.end[1]))


@dataclass
class ZoneConfig:
    """A polygon where time spent (dwell) is measured per visitor."""

    name: str = ""  # label value in metrics and the report
    polygon: list[list[float]] = field(default_factory=list)  # [[x, y], ...] fractions, at least 3 points

    def check(self, path: str) -> None:
        """At least a triangle, inside the frame, with a usable name."""
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"{path}.name: '{self.name}' must be a non-empty name of letters, digits, - and _")
        check_polygon(f"{path}.polygon", self.polygon, "zone")

    def zone(self) -> Zone:
        """The geometry object."""
        return Zone(self.name, tuple((x, y) for x, y in self.polygon))


def check_polygon(path: str, polygon: list[list[float]], what: str) -> None:
    """A zone's or a mask's outline: at least a triangle, inside the frame, not crossing itself, enclosing area."""
    if len(polygon) < 3:
        raise ConfigError(f"{path}: needs at least 3 [x, y] points, got {len(polygon)}")
    for index, point in enumerate(polygon):
        _check_point(f"{path}[{index}]", point)
    outline = Zone("", tuple((x, y) for x, y in polygon))
    crossed = outline.crossed_sides()
    if crossed:
        (first, second), count = crossed, len(polygon)
        name = path.rpartition(".")[2]
        raise ConfigError(
            f"{path}: its outline crosses itself (the side {name}[{first}]-{name}[{(first + 1) % count}] "
            f"crosses {name}[{second}]-{name}[{(second + 1) % count}]); list the corners in order around the {what}"
        )
    if outline.area() < 1e-6:
        raise ConfigError(f"{path}: the points enclose no area (all on one line?)")


@dataclass
class CameraConfig:
    """One camera: a file, an RTSP/HTTP URL, a webcam index, or 'demo'."""

    id: str = ""  # short name used in topics, metrics labels and the report
    source: str = ""  # path, rtsp://..., http://..., webcam index (0) or device (/dev/video0), or demo
    realtime: bool = True  # files: play at their own fps (true) or as fast as possible (false)
    loop: bool = False  # files: start again at the end (kiosk demos, soak tests) instead of ending
    # live: watchdog; an open or read with no data this long is retried
    read_timeout_s: float = bounded(10.0, 0.1, 3600, "seconds")
    # live: first wait before reconnecting; doubles each failure
    reconnect_backoff_s: float = bounded(1.0, 0.1, 3600, "seconds")
    max_backoff_s: float = bounded(30.0, 0.1, 3600, "seconds")  # live: the cap on that wait
    detector: DetectorConfig = field(default_factory=DetectorConfig)  # overrides of the top-level detector
    labels: dict[str, str] = field(default_factory=dict)  # extra labels on analyzer_camera_info (e.g. location)
    line: LineConfig | None = None  # directional counting line; visits then carry in/out
    zones: list[ZoneConfig] = field(default_factory=list)  # polygons with dwell time per visit
    # polygons ([[x, y], ...] fractions, like a zone's) where no face is looked for: a poster, a screen, a mirror
    masks: list[list[list[float]]] = field(default_factory=list)
    # this camera's shortest counted visit; default footfall.min_duration_s
    min_duration_s: float | None = bounded(None, 0, MAX_MIN_DURATION_S, "seconds")
    # files: when the first frame was recorded (2026-12-01T09:00:00+01:00; with no zone, this box's local time),
    # so visits carry the times they happened, not the time the file was played
    recorded_at: datetime | None = None
    site: str | None = None  # the shop this camera counts for, when a box serves two; default: the top-level site

    def mask_zones(self) -> list[Zone]:
        """The masks as geometry objects."""
        return [Zone(f"mask{index}", tuple((x, y) for x, y in mask)) for index, mask in enumerate(self.masks)]

    def visit_min_duration_s(self, footfall: FootfallConfig) -> float:
        """The shortest visit this camera counts."""
        return footfall.min_duration_s if self.min_duration_s is None else self.min_duration_s


@dataclass
class Config:
    """The whole analyzer configuration."""

    # the shop: on every message, in the report, in MQTT topics (docs/FLEET.md); '' = this box's host name
    site: str = ""
    cameras: list[CameraConfig] = field(default_factory=list)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    face_check: FaceCheckConfig = field(default_factory=FaceCheckConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    attributes: AttributesConfig = field(default_factory=AttributesConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    footfall: FootfallConfig = field(default_factory=FootfallConfig)
    zmq: ZmqConfig = field(default_factory=ZmqConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    web: WebConfig = field(default_factory=WebConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    age_groupings: dict[str, list[Any]] = field(default_factory=dict)  # name: ["0-17", "18-64", "65+"]
    status_interval_s: float = bounded(
        5.0, 0, 3600, "seconds (0 = never)"
    )  # how often the console status line is printed

    def site_of(self, camera: CameraConfig) -> str:
        """The shop ``camera`` counts for."""
        return camera.site or self.site or host_site()

    def grouping(self) -> AgeGrouping:
        """The age grouping visits are reported in."""
        name = self.footfall.age_grouping
        if name in self.age_groupings:
            return parse_grouping(name, self.age_groupings[name])
        if name in BUILTIN_GROUPINGS:
            return BUILTIN_GROUPINGS[name]
        allowed = ", ".join([*BUILTIN_GROUPINGS, *self.age_groupings])
        raise ConfigError(f"footfall.age_grouping: '{name}' is not one of {allowed}")


def _four(values: list[float], path: str) -> tuple[float, float, float, float]:
    if len(values) != 4:
        raise ConfigError(f"{path}: {values} must have exactly 4 numbers")
    return values[0], values[1], values[2], values[3]


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind)).replace("typing.", "")


def _convert(value: Any, kind: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``kind``; build nested dataclasses."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        inner = [option for option in options if option is not type(None)]
        return _convert(value, inner[0], path)
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, path)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item_kind,) = typing.get_args(kind)
        return [_convert(item, item_kind, f"{path}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        _, value_kind = typing.get_args(kind)
        return {str(key): _convert(item, value_kind, _child(path, key)) for key, item in value.items()}
    if kind is Any:
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):  # YAML's .nan and .inf: every range check would let NaN through
            raise ConfigError(f"{path}: expected a finite number, got {value}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected a whole number, got {value!r}")
        return value
    if kind is datetime:
        return recording_time(value, path)
    if kind is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{path}: expected text, got {value!r}")
        return str(value)
    raise ConfigError(f"{path}: unsupported type {_type_name(kind)}")


def recording_time(value: object, path: str) -> datetime:
    """A date and time of day from YAML (which reads an unquoted ISO timestamp itself) or from text.

    Without a zone it is this box's local time, which is the shop's. A date
    alone is refused: midnight is rarely when a recording starts.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat reads only +00:00
            text = text[:-1] + "+00:00"
        with contextlib.suppress(ValueError):  # a date alone (10 characters) is read as one, to be refused below
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ConfigError(
            f"{path}: {value} has no time of day; give when the first frame was recorded, e.g. {value}T09:00"
        )
    if not isinstance(value, datetime):
        raise ConfigError(f"{path}: expected a date and time like 2026-12-01T09:00:00+01:00, got {value!r}")
    if value.timestamp() > time.time() + 60:  # a minute for clocks that differ
        raise ConfigError(f"{path}: {value.isoformat()} is in the future; check the date and the time zone")
    return value


def _child(path: str, key: object) -> str:
    """``path.key``; a key that is not a plain name is quoted so the message stays one readable line."""
    text = key if isinstance(key, str) and key.isprintable() and key.strip() == key and key else repr(key)
    return f"{path}.{text}" if path else str(text)


def from_dict(cls: type[T], data: Any, path: str) -> T:
    """Build dataclass ``cls`` from a YAML mapping; unknown keys are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            meant = f"did you mean '{near[0]}'? " if near else ""
            raise ConfigError(f"{_child(path, key)}: unknown key; {meant}allowed here: {', '.join(sorted(known))}")
    values = {key: _convert(value, hints[key], _child(path, key)) for key, value in data.items()}
    return cls(**values)


def parse_config(data: Any) -> Config:
    """Validate a loaded YAML document into a :class:`Config`."""
    if isinstance(data, dict):  # top-level x-... keys hold YAML anchors for the cameras to share, as in Compose
        data = {key: value for key, value in data.items() if not (isinstance(key, str) and key.startswith("x-"))}
    if isinstance(data, dict) and isinstance(data.get("cameras"), list):
        # A camera's detector section overrides only the keys it names. The shared one is checked first, so
        # its mistakes are named where they were written (detector.min_score, not cameras[0].detector.min_score).
        base_detector = data.get("detector") or {}
        from_dict(DetectorConfig, base_detector, "detector").check("detector")
        for camera in data["cameras"]:
            if isinstance(camera, dict) and isinstance(base_detector, dict):
                override = camera.get("detector") or {}
                if isinstance(override, dict):
                    camera["detector"] = {**base_detector, **override}
    config = from_dict(Config, data, "")
    check_config(config)
    return config


def check_config(config: Config) -> None:
    """Cross-field checks: camera ids, value ranges, the age grouping."""
    if not config.cameras:
        raise ConfigError("cameras: at least one camera is needed (or pass --source)")
    seen: set[str] = set()
    for index, camera in enumerate(config.cameras):
        path = f"cameras[{index}]"
        if not camera.source.strip():
            raise ConfigError(f"{path}.source: missing; give a file, rtsp:// URL, webcam index or 'demo'")
        if (encoding := credentials_need_encoding(camera.source)) is not None:
            raise ConfigError(f"{path}.source: {without_password(camera.source)}: {encoding}")
        if names_no_server(camera.source):
            raise ConfigError(
                f"{path}.source: {without_password(camera.source)} names no camera address; "
                "give one like rtsp://192.168.1.20:554/stream1"
            )
        if not camera.id or not camera.id.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{path}.id: '{camera.id}' must be a non-empty name of letters, digits, - and _")
        if camera.id in seen:
            raise ConfigError(f"{path}.id: duplicate camera id '{camera.id}'; ids must be unique")
        seen.add(camera.id)
        check_ranges(camera, path)
        camera.detector.check(f"{path}.detector")
        if camera.max_backoff_s < camera.reconnect_backoff_s:
            raise ConfigError(
                f"{path}.max_backoff_s: {camera.max_backoff_s:g} is below reconnect_backoff_s "
                f"({camera.reconnect_backoff_s:g}); set it to at least that"
            )
        for key in camera.labels:
            if not key.isidentifier() or key.startswith("__") or key in ("camera", "site", "instance", "job"):
                raise ConfigError(f"{path}.labels.{key}: not a usable Prometheus label name")
        if camera.recorded_at is not None and (source_kind(camera.source) != "file" or camera.loop):
            raise ConfigError(
                f"{path}.recorded_at: only for a video file played once; a live camera's visits carry the time "
                "they are seen"
            )
        if camera.line is not None:
            camera.line.check(f"{path}.line")
        for mask_index, mask in enumerate(camera.masks):
            check_polygon(f"{path}.masks[{mask_index}]", mask, "mask")
        zone_names = set()
        for zone_index, zone in enumerate(camera.zones):
            zone.check(f"{path}.zones[{zone_index}]")
            if zone.name in zone_names:
                raise ConfigError(f"{path}.zones[{zone_index}].name: duplicate zone name '{zone.name}'")
            zone_names.add(zone.name)
    config.detector.check("detector")
    config.tracker.check("tracker")
    config.face_check.check("face_check")
    config.sampler.check("sampler")
    config.attributes.check("attributes")
    config.classifier.check("classifier")
    config.footfall.check("footfall")
    config.metrics.check("metrics")
    config.health.check("health")
    config.zmq.check("zmq")
    config.web.check("web")
    config.mqtt.check("mqtt")
    if config.site:
        check_site("site", config.site)
    for index, camera in enumerate(config.cameras):
        if camera.site is not None:
            check_site(f"cameras[{index}].site", camera.site)
    check_ranges(config, "")
    if 0 < config.status_interval_s < 1:
        raise ConfigError(f"status_interval_s: {config.status_interval_s:g} must be 0 (never) or 1..3600 seconds")
    for name, items in config.age_groupings.items():
        parse_grouping(name, items)
    config.grouping()


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping.

    YAML forbids it, but PyYAML keeps the last silently: a second ``detector:``
    block pasted below the first would quietly undo it.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden key by key; that is what it is for
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    problem=f"'{key}' appears twice in one mapping; keep one and merge what they say",
                    problem_mark=key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give the config file (e.g. {path / 'site.yaml'})")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = read_utf8(path)
    except NotUtf8Error as error:
        if error.binary:  # a video given to -c, or text saved as UTF-16
            raise ConfigError(
                f"{path}: not a text file; give the YAML config (e.g. configs/store-entrance.yaml), saved as UTF-8"
            ) from None
        # e.g. a camera named Tür, saved as Latin-1
        raise ConfigError(f"{path} line {error.line}: not UTF-8 text; save the config as UTF-8") from None
    return config_from_text(text, path)


def config_from_text(text: str, path: Path) -> Config:
    """Parse and validate the YAML text of config file ``path``; errors are named as the loader names them."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    try:
        return parse_config(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
