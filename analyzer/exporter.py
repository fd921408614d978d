"""Prometheus metrics (see docs/METRICS.md) and their HTTP exporter.

All metrics live on an injected ``CollectorRegistry``, so tests read a fresh
registry and two pipelines in one process never share counters. Business
metrics start with ``footfall_``, health metrics with ``analyzer_``; labels
are bounded (camera, age_group, gender, stage, reason), never a track id.
"""

from __future__ import annotations

import errno

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from analyzer.errors import ConfigError

STAGES = ("decode", "detect", "track", "sample", "classify", "publish", "end_to_end")
DWELL_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """Every metric the analyzer exports, declared once on ``registry``.

    Example:
        >>> metrics = Metrics(CollectorRegistry())
        >>> metrics.frames.labels(camera="door").inc()
    """

    def __init__(self, registry: CollectorRegistry, camera_label_names: tuple[str, ...] = ()) -> None:
        self.registry = registry
        self.camera_label_names = camera_label_names
        self.camera_info = Gauge(
            "analyzer_camera_info",
            "Always 1 per camera; labels from the camera's config (join on camera)",
            ["camera", *camera_label_names],
            registry=registry,
        )
        self.visitors = Counter(
            "footfall_visitors",
            "Visitors counted (finished visits)",
            ["camera", "age_group", "gender"],
            registry=registry,
        )
        self.faces_in_view = Gauge(
            "footfall_faces_in_view", "Tracked faces visible in the latest frame", ["camera"], registry=registry
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
        self.frames = Counter("analyzer_frames", "Frames read from the source", ["camera"], registry=registry)
        self.frames_dropped = Counter(
            "analyzer_frames_dropped", "Frames not processed, by reason", ["camera", "reason"], registry=registry
        )
        self.stream_up = Gauge(
            "analyzer_stream_up", "1 while the camera delivers frames", ["camera"], registry=registry
        )
        self.stream_reconnects = Counter(
            "analyzer_stream_reconnects", "Reconnect attempts of a live stream", ["camera"], registry=registry
        )
        self.stage_seconds = Histogram(
            "analyzer_stage_seconds", "Time per frame (per batch for classify) spent in each stage", ["stage"],
            buckets=STAGE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.inference_batch = Histogram(
            "analyzer_inference_batch_size", "Faces per classifier call", buckets=BATCH_BUCKETS, registry=registry
        )
        self.classified_faces = Counter(
            "analyzer_classified_faces", "Face chips run through the classifier", registry=registry
        )
        self.zmq_messages = Counter(
            "analyzer_zmq_messages", "ZeroMQ messages offered, by outcome", ["outcome"], registry=registry
        )
        self.build_info = Gauge(
            "analyzer_build_info",
            "Always 1; labels say what is running",
            ["version", "backend", "model"],
            registry=registry,
        )


def serve(registry: CollectorRegistry, host: str, port: int) -> object:
    """Start the ``/metrics`` HTTP server in a daemon thread; returns the server."""
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        if error.errno in (errno.EADDRINUSE, errno.EACCES):
            advice = "pick a free port with --metrics-port" + (" (above 1023)" if error.errno == errno.EACCES else "")
            raise ConfigError(f"metrics.port: cannot listen on {host}:{port} ({error.strerror}); {advice}") from None
        raise ConfigError(  # a name that does not resolve, or an address this box does not have
            f"metrics.host: cannot listen on {host}:{port} ({error.strerror}); give an address of this box: "
            "127.0.0.1 (this box only) or 0.0.0.0 (every interface)"
        ) from None
    return server
