"""Prometheus metrics (see docs/METRICS.md) and their HTTP exporter.

All metrics live on an injected ``CollectorRegistry``, so tests read a fresh
registry and two pipelines in one process never share counters. Business
metrics start with ``footfall_``, health metrics with ``analyzer_``; labels
are bounded (camera, age_group, gender, stage, reason), never a track id.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer

from analyzer.errors import ConfigError

STAGES = ("decode", "detect", "track", "face_check", "sample", "classify", "publish", "end_to_end")
DWELL_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
#: Why frames are not processed: the box fell behind, the frame was damaged, processing it failed.
DROP_REASONS = ("behind", "corrupt", "error")
#: Why face samples are not classified: the classifier's queue was full, its call failed, or it hung.
SAMPLE_DROP_REASONS = ("classifier_behind", "classifier_error", "classifier_stalled")


class Metrics:
    """Every metric the analyzer exports, declared once on ``registry``.

    Example:
        >>> metrics = Metrics(CollectorRegistry())
        >>> metrics.frames.labels(camera="door").inc()
    """

    def __init__(self, registry: CollectorRegistry, camera_label_names: tuple[str, ...] = ()) -> None:
        # prometheus_client's `*_created` series (one per counter and histogram series) are a third of a box's
        # series and nothing reads them; the switch is the library's, for the whole process
        disable_created_metrics()
        self.registry = registry
        self.camera_label_names = camera_label_names
        self._declare_footfall()
        self._declare_health()

    def _declare_footfall(self) -> None:
        """What each camera is (``analyzer_camera_info``) and what it counted (the ``footfall_*`` metrics)."""
        registry = self.registry
        self.camera_info = Gauge(
            "analyzer_camera_info",
            "Always 1 per camera; labels from the camera's config (join on camera)",
            ["camera", *self.camera_label_names],
            registry=registry,
        )
        self.visitors = Counter(
            "footfall_visitors",
            "Visitors counted (finished visits); direction: which way they first crossed the camera's counting line "
            "(in, out, none), empty on a camera without one",
            ["camera", "age_group", "gender", "direction"],
            registry=registry,
        )
        self.faces_in_view = Gauge(
            "footfall_faces_in_view",
            "People's faces visible in the latest frame (backs of heads and fixtures left out)",
            ["camera"],
            registry=registry,
        )
        self.fixtures_in_view = Gauge(
            "footfall_fixtures_in_view",
            "Faces in view that are as still as a photo since first seen (posters, screens' stills): never visitors",
            ["camera"],
            registry=registry,
        )
        self.dwell = Histogram(
            "footfall_dwell_seconds",
            "Time from first to last sight of a visitor",
            ["camera"],
            buckets=DWELL_BUCKETS,
            registry=registry,
        )
        self.line_crossings = Counter(
            "footfall_line_crossings",
            "Visits by the direction they first crossed the counting line (none: never crossed)",
            ["camera", "direction"],
            registry=registry,
        )
        self.zone_dwell = Histogram(
            "footfall_zone_dwell_seconds",
            "Time a visitor spent inside a zone (visitors who entered it)",
            ["camera", "zone"],
            buckets=DWELL_BUCKETS,
            registry=registry,
        )

    def _declare_health(self) -> None:
        """The health metrics (``analyzer_*``): streams, stages, the classifier, the outputs."""
        registry = self.registry
        self.frames = Counter("analyzer_frames", "Frames read from the source", ["camera"], registry=registry)
        self.frames_dropped = Counter(
            "analyzer_frames_dropped", "Frames not processed, by reason", ["camera", "reason"], registry=registry
        )
        self.frames_motionless = Counter(
            "analyzer_frames_motionless",
            "Frames the motion gate let skip the detector: nothing moved and no one was followed",
            ["camera"],
            registry=registry,
        )
        self.stream_up = Gauge(
            "analyzer_stream_up", "1 while the camera delivers frames", ["camera"], registry=registry
        )
        self.loops_stalled = Gauge(
            "analyzer_loops_stalled",
            "Worker loops (a camera's processing, the classifier, publishing) with no progress for "
            "health.stall_after_s; above 0, counting has stopped",
            registry=registry,
        )
        self.stream_reconnects = Counter(
            "analyzer_stream_reconnects", "Reconnect attempts of a live stream", ["camera"], registry=registry
        )
        self.stage_seconds = Histogram(
            "analyzer_stage_seconds",
            "Time per frame (per batch for classify) spent in each stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.inference_batch = Histogram(
            "analyzer_inference_batch_size", "Faces per classifier call", buckets=BATCH_BUCKETS, registry=registry
        )
        self.classified_faces = Counter(
            "analyzer_classified_faces", "Face chips run through the classifier", registry=registry
        )
        self.classifier_errors = Counter(
            "analyzer_classifier_errors",
            "Classifier calls that raised; their faces vote nothing, their visits still count",
            registry=registry,
        )
        self.samples_dropped = Counter(
            "analyzer_samples_dropped",
            "Face samples not classified, by reason (classifier_behind: its queue was full; classifier_error: the "
            "call failed; classifier_stalled: it hung and its visits were finished without it)",
            ["camera", "reason"],
            registry=registry,
        )
        self.zmq_messages = Counter(
            "analyzer_zmq_messages", "ZeroMQ messages offered, by outcome", ["outcome"], registry=registry
        )
        self._declare_mqtt()
        self.build_info = Gauge(
            "analyzer_build_info",
            "Always 1; labels say what is running",
            ["version", "backend", "model"],
            registry=registry,
        )

    def _declare_mqtt(self) -> None:
        """MQTT out and its outbox (docs/FLEET.md): at zero while MQTT is off."""
        registry = self.registry
        self.mqtt_connected = Gauge(
            "analyzer_mqtt_connected", "1 while connected to the MQTT broker", registry=registry
        )
        self.mqtt_messages = Counter(
            "analyzer_mqtt_messages",
            "MQTT messages by outcome (delivered: the broker acknowledged it; not_sent: a summary or status while "
            "disconnected, not kept)",
            ["outcome"],
            registry=registry,
        )
        self.mqtt_outbox_messages = Gauge(
            "analyzer_mqtt_outbox_messages", "Visits waiting in the MQTT outbox for the broker", registry=registry
        )
        self.mqtt_outbox_dropped = Counter(
            "analyzer_mqtt_outbox_dropped",
            "Visits the MQTT outbox dropped unsent, oldest first (full: at mqtt.outbox_max_messages; expired: older "
            "than mqtt.outbox_max_age_s)",
            ["reason"],
            registry=registry,
        )

    def start_camera(
        self,
        camera: str,
        age_groups: Sequence[str],
        genders: Sequence[str],
        directions: Sequence[str],
        zones: Sequence[str] = (),
    ) -> None:
        """Create every series a camera can ever increment, at zero, before it counts anything.

        Prometheus takes a series' first sample as its baseline: a counter
        that first appears at 1 loses that visitor in ``increase()`` and
        ``rate()``, so each new age group, gender and direction would drop
        one visitor from the dashboards. ``directions`` is ``("",)`` for a
        camera without a counting line.
        """
        for age_group in age_groups:
            for gender in genders:
                for direction in directions:
                    self.visitors.labels(camera=camera, age_group=age_group, gender=gender, direction=direction)
        for direction in directions:
            if direction:
                self.line_crossings.labels(camera=camera, direction=direction)
        self.dwell.labels(camera=camera)
        self.frames_motionless.labels(camera=camera)
        for zone in zones:
            self.zone_dwell.labels(camera=camera, zone=zone)
        self.frames.labels(camera=camera)
        for reason in DROP_REASONS:
            self.frames_dropped.labels(camera=camera, reason=reason)
        for reason in SAMPLE_DROP_REASONS:
            self.samples_dropped.labels(camera=camera, reason=reason)
        self.stream_reconnects.labels(camera=camera)
        self.stream_up.labels(camera=camera).set(0)
        self.faces_in_view.labels(camera=camera).set(0)
        self.fixtures_in_view.labels(camera=camera).set(0)


Health = Callable[[], tuple[bool, str]]  # healthy or not, and one line saying why


class _QuietHandler(WSGIRequestHandler):
    """A scrape every 15 s must not write a log line each."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


def metrics_app(registry: CollectorRegistry, health: Health | None = None) -> Callable[..., Iterable[bytes]]:
    """``/healthz`` (200 or 503 and one line) when ``health`` is given; the metrics at every other path."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if health is None or environ.get("PATH_INFO") != "/healthz":
            return metrics(environ, start_response)
        healthy, line = health()
        body = (line + "\n").encode()
        start_response(
            "200 OK" if healthy else "503 Service Unavailable",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app


def serve(registry: CollectorRegistry, host: str, port: int, health: Health | None = None) -> WSGIServer:
    """Start ``/metrics`` (and ``/healthz``) in a daemon thread; returns the server (``.shutdown()`` stops it)."""
    try:
        family, *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})  # IPv6 hosts too
        server = make_server(str(address[0]), port, metrics_app(registry, health), server_class, _QuietHandler)
    except OSError as error:
        if error.errno in (errno.EADDRINUSE, errno.EACCES):
            advice = "pick a free port with --metrics-port" + (" (above 1023)" if error.errno == errno.EACCES else "")
            raise ConfigError(f"metrics.port: cannot listen on {host}:{port} ({error.strerror}); {advice}") from None
        raise ConfigError(  # a name that does not resolve, or an address this box does not have
            f"metrics.host: cannot listen on {host}:{port} ({error.strerror}); give an address of this box: "
            "127.0.0.1 (this box only) or 0.0.0.0 (every interface)"
        ) from None
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
