"""End to end: a real video through the real pipeline, checked three ways."""

import json
import socket
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import cv2
import pytest
import zmq
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.config import parse_config
from analyzer.errors import ConfigError
from analyzer.outputs.metrics import Metrics, serve
from analyzer.outputs.publisher import ZmqPublisher
from analyzer.pipeline.runner import Pipeline, RunOptions
from tests.harness import NO_SERVERS, LiveRun, collect, free_port, own_lines, run_cli, wait_for


def test_report_metrics_and_zmq_agree_and_are_right(walkers_clip: tuple[Path, int], shipped_model: Path) -> None:
    """Two cameras (one with a counting line) on one publisher: the report, /metrics and ZeroMQ say the same."""
    clip, true_visitors = walkers_clip
    metrics_port = free_port()
    config = parse_config(
        {
            "cameras": [
                {"id": "door", "source": str(clip), "realtime": False, "line": {}},
                {"id": "till", "source": str(clip), "realtime": False},
            ],
            "classifier": {"model": str(shipped_model)},
            "zmq": {"bind": "tcp://127.0.0.1:*", "summary_interval_s": 1.0},
            "metrics": {"port": metrics_port},
            "status_interval_s": 0,
        }
    )
    context = zmq.Context()
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    publisher = ZmqPublisher(config.zmq.bind, context=context)
    server = serve(registry, "127.0.0.1", metrics_port)
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.LINGER, 0)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    subscriber.connect(publisher.endpoint)
    received: list = []
    done = threading.Event()
    listener = threading.Thread(target=collect, args=(subscriber, received, done))
    listener.start()
    time.sleep(0.5)  # let the SUB connect before the first message (ZeroMQ slow joiner)
    try:
        report = Pipeline(
            config, OnnxRuntimeBackend(shipped_model), metrics, publisher, RunOptions(log=lambda _: None)
        ).run(threading.Event())
        time.sleep(0.5)
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    finally:
        done.set()
        listener.join()
        server.shutdown()
        server.server_close()
        publisher.close()
        subscriber.close()
        context.term()

    document = report.to_dict()
    # the series a dashboard sums, scraped over HTTP and parsed as Prometheus does: no Prometheus binary needed
    scraped_visitors = Counter(
        {
            (
                sample.labels["camera"],
                sample.labels["age_group"],
                sample.labels["gender"],
                sample.labels["direction"],
            ): sample.value
            for family in text_string_to_metric_families(scraped)
            if family.name == "footfall_visitors"
            for sample in family.samples
            if sample.name == "footfall_visitors_total"
        }
    )
    reported_visitors = Counter(
        (camera, visit["age_group"], visit["gender"], visit.get("direction", ""))
        for camera, entry in document["cameras"].items()
        for visit in entry["visits"]
    )
    assert +scraped_visitors == reported_visitors  # every label of every visitor, zero series aside
    assert {camera for camera, _, _, direction in scraped_visitors if direction} == {"door"}  # only it has a line
    for camera in ("door", "till"):
        visit_messages = [body for topic, body in received if topic == f"visit.{camera}"]
        assert document["cameras"][camera]["totals"]["visitors"] == true_visitors == len(visit_messages)
        assert {body["visit_id"] for body in visit_messages} == {
            v["visit_id"] for v in document["cameras"][camera]["visits"]
        }
        for body in visit_messages:
            assert body["schema"] == "footfall/1" and body["camera"] == camera
            assert body["dwell_s"] >= config.footfall.min_duration_s
            assert body["samples"] >= 1 and body["gender"] in ("female", "male")
            assert abs(sum(body["age_group_p"].values()) - 1) < 0.01
            assert ("direction" in body) == (camera == "door")
        by_gender = document["cameras"][camera]["totals"]["by_gender"]
        assert sum(by_gender.values()) == true_visitors
        assert any(topic == f"summary.{camera}" for topic, _ in received)
        assert any(topic == f"status.{camera}" and body["state"] == "up" for topic, body in received)
    seqs = [body["seq"] for _, body in received]  # one publisher for both cameras: one sequence, no gap
    assert seqs == list(range(1, len(seqs) + 1)), "seq gaps or repeats in the ZeroMQ feed"


def test_cli_run_on_a_video_writes_the_report(walkers_clip: tuple[Path, int], tmp_path: Path) -> None:
    clip, true_visitors = walkers_clip
    report_path = tmp_path / "r.json"
    preview = tmp_path / "preview.mp4"
    result = run_cli(
        "run",
        "--source",
        str(clip),
        "--report",
        str(report_path),
        "--fast",
        *NO_SERVERS,
        "--preview",
        str(preview),
        "--recorded-at",
        "2026-11-30T09:00:00+01:00",
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING: debug preview is ON" in result.stderr
    # Only our own lines: LiteRT's start-up and shutdown chatter (INFO: ... DestroyAccelerator) is silenced.
    # Left: MediaPipe's one-off note, mid-run and now and then, that a tensor it allocated itself is copied
    # for alignment (our input images are 64-byte aligned already); only muting the whole stderr would hide it.
    assert not [line for line in own_lines(result.stderr) if line.startswith(("INFO:", "W0000", "I0000"))]
    frames = int(cv2.VideoCapture(str(preview)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert frames == int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    document = json.loads(report_path.read_text())
    assert document["schema"] == "footfall-report/1"
    assert document["totals"]["visitors"] == true_visitors
    assert "walkers" in document["cameras"]
    assert "TOTAL" in result.stdout
    recorded_at = 1796025600.0  # 2026-11-30 08:00 UTC: the visits happened then, not when the file was played
    visits = document["cameras"]["walkers"]["visits"]
    assert visits
    assert [visit["start"] for visit in visits] == pytest.approx(
        [recorded_at + visit["stream_start"] for visit in visits], abs=0.002
    )


def test_missing_video_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli(
        "run",
        "--source",
        str(tmp_path / "nope.mp4"),
        "--fast",
        *NO_SERVERS,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "nope.mp4" in line and "not found" in line]
    assert len(lines) == 1 and "Traceback" not in result.stderr


def test_missing_likeness_model_is_one_clear_line(walkers_clip: tuple[Path, int], tmp_path: Path) -> None:
    config = tmp_path / "no-likeness.yaml"
    missing = tmp_path / "gone.likeness.onnx"
    config.write_text(f"cameras:\n  - id: door\n    source: {walkers_clip[0]}\ntracker:\n  likeness_model: {missing}\n")
    result = run_cli("run", "-c", str(config), "--fast", *NO_SERVERS)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(missing) in errors[0] and 'likeness_model to ""' in errors[0]
    assert "Traceback" not in result.stderr  # nothing half-built (MediaPipe graphs) is left to fail at exit


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("cameras:\n  - id: door\n    source: demo\n    detector:\n      min_scor: 0.4\n")
    result = run_cli("run", "-c", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "cameras[0].detector.min_scor: unknown key" in result.stderr


def test_detecting_every_second_frame_counts_everyone(walkers_clip: tuple[Path, int], shipped_model: Path) -> None:
    clip, true_visitors = walkers_clip
    camera = {"id": "door", "source": str(clip), "realtime": False, "detector": {"every_n_frames": 2}}
    with LiveRun({"cameras": [camera]}, shipped_model) as run:
        wait_for(lambda: run.report is not None, 120, "the clip to finish")
        report = run.stop()
    frames = report.stats["door"].frames
    detections = run.metric("analyzer_stage_seconds_count", stage="detect")
    assert detections + report.stats["door"].motionless == (frames + 1) // 2  # the gate's frames are looked at
    assert report.to_dict()["cameras"]["door"]["totals"]["visitors"] == true_visitors


@pytest.mark.parametrize(
    ("host", "key", "advice"),
    [
        ("192.0.2.1", "metrics.host", "give an address of this box"),  # TEST-NET-1: never this box's
        ("no-such-host.invalid", "metrics.host", "give an address of this box"),
        ("127.0.0.1", "metrics.port", "pick a free port"),  # taken below
    ],
)
def test_a_metrics_address_that_cannot_serve_names_the_key_to_change(host: str, key: str, advice: str) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        with pytest.raises(ConfigError) as error:
            serve(CollectorRegistry(), host, busy)
    message = str(error.value)
    assert message.startswith(f"{key}: cannot listen on {host}:{busy} (") and advice in message


def test_cameras_share_one_detector_graph_per_core_per_model_and_score() -> None:
    """Not a 37 MB graph per camera: five cameras on two cores make two graphs, a camera set apart its own one."""
    from analyzer.config import CameraConfig
    from analyzer.pipeline.runner import shared_graphs

    cameras = [CameraConfig(id=f"door{index}", source="demo") for index in range(5)]
    cameras[4].detector.min_score = 0.6
    graphs = shared_graphs(cameras, cores=2)
    try:
        assert {key: len(made) for key, made in graphs.items()} == {("full_range", 0.5): 2, ("full_range", 0.6): 1}
    finally:
        for made in graphs.values():
            made.close()


@pytest.mark.parametrize(("cameras", "threads"), [(1, 0), (2, 1)])
def test_a_box_with_a_camera_per_core_decodes_each_camera_on_one_thread(
    walkers_clip: tuple[Path, int], shipped_model: Path, monkeypatch: pytest.MonkeyPatch, cameras: int, threads: int
) -> None:
    import analyzer.pipeline.runner as runner
    from analyzer.pipeline.capture import CaptureWorker

    opened: list[int] = []
    real_open = CaptureWorker._open

    def spied_open(worker: CaptureWorker) -> cv2.VideoCapture | None:
        opened.append(worker.decoder_threads)
        return real_open(worker)

    monkeypatch.setattr(runner, "usable_cores", lambda: 2)
    monkeypatch.setattr(CaptureWorker, "_open", spied_open)
    clip, _ = walkers_clip
    document = {"cameras": [{"id": f"door{index}", "source": str(clip), "realtime": False} for index in range(cameras)]}
    with LiveRun(document, shipped_model) as run:
        wait_for(lambda: run.report is not None, 120, "the clip to finish")
        run.stop()
    assert opened == [threads] * cameras
