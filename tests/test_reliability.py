"""Faults injected into real runs: live streams that die, hang and stall; bad media beside a good camera."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import pytest
import yaml
import zmq
from prometheus_client.parser import text_string_to_metric_families

from analyzer.backends.base import FaceAttributes
from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.tools.bench import open_descriptors, rss_mb
from tests.harness import LiveRun, collect, counting_run, free_port, hanging_backends, run_cli, wait_for
from tests.stream_server import MjpegServer, RtspCamera, RtspDoor, jpeg_frames

LIVE = {"read_timeout_s": 1.5, "reconnect_backoff_s": 0.2, "max_backoff_s": 0.8}


@pytest.fixture(scope="module")
def live_frames(walkers_clip: tuple[Path, int]) -> list[bytes]:
    return jpeg_frames(walkers_clip[0])


def _live_camera(kind: str, frames: list[bytes]) -> tuple[MjpegServer | RtspCamera, str]:
    """A camera on loopback and the URL a config gives for it: MJPEG over HTTP, or H.264/H.265 RTSP with a password."""
    if kind == "mjpeg":
        server = MjpegServer(frames).start()
        return server, server.url
    camera = RtspCamera(frames, codec=kind.removeprefix("rtsp-")).start()
    return camera, camera.url(camera.user, quote(camera.password, safe=""))


@pytest.mark.parametrize("kind", ["mjpeg", "rtsp-h264", "rtsp-h265"])
def test_stream_dies_and_comes_back_and_nothing_counted_is_lost(
    kind: str, live_frames: list[bytes], shipped_model: Path
) -> None:
    server, url = _live_camera(kind, live_frames)
    camera = {"id": "door", "source": url, **LIVE}
    try:
        with LiveRun({"cameras": [camera]}, shipped_model) as run:
            wait_for(lambda: run.metric("analyzer_stream_up", camera="door") == 1, 20, "the stream to come up")
            wait_for(lambda: len(run.visits("door")) >= 1, 60, "a first visit")
            counted_before = [visit["visit_id"] for visit in run.visits("door")]

            server.stop()
            wait_for(lambda: run.metric("analyzer_stream_up", camera="door") == 0, 5, "stream_up to drop to 0")
            wait_for(lambda: run.metric("analyzer_stream_reconnects_total", camera="door") >= 4, 10, "4 retries")
            server.start()
            wait_for(lambda: run.metric("analyzer_stream_up", camera="door") == 1, 5, "stream_up back to 1")
            report = run.stop()
            statuses = run.statuses("door")
    finally:
        server.stop()

    states = [status["state"] for status in statuses]
    assert states[0] == "up" and "down" in states and states[-1] == "up", states
    retries = [float(m.group(1)) for s in statuses if (m := re.search(r"in ([\d.]+) s$", s["detail"]))]
    assert retries and max(retries) == LIVE["max_backoff_s"], f"backoff not capped: {retries}"
    assert statuses[-1]["reconnects"] == run.metric("analyzer_stream_reconnects_total", camera="door") >= 4
    reported = {visit["visit_id"] for visit in report.to_dict()["cameras"]["door"]["visits"]}
    assert set(counted_before) <= reported, "visits counted before the outage were lost"
    assert len(reported) == len(run.visits("door"))


def test_damaged_frames_from_a_camera_are_skipped_without_dropping_the_stream(
    live_frames: list[bytes], shipped_model: Path
) -> None:
    # an MJPEG camera on a bad link: one frame in 10 arrives cut short or garbled. Each used to count as the stream
    # breaking: "down", a reconnect and a second lost, and the tracks of everyone in view ended
    frames = list(live_frames)
    for index in range(5, len(frames), 10):
        frames[index] = frames[index][: len(frames[index]) // 3] if index % 20 == 5 else b"\xff\xd8garbled" * 40
    server = MjpegServer(frames).start()
    try:
        with LiveRun({"cameras": [{"id": "door", "source": server.url, **LIVE}]}, shipped_model) as run:
            wait_for(
                lambda: (run.metric("analyzer_frames_dropped_total", camera="door", reason="corrupt") or 0) >= 4,
                30,
                "four damaged frames skipped",
            )
            frames_seen = run.metric("analyzer_frames_total", camera="door")
            run.stop()
    finally:
        server.stop()
    assert [status["state"] for status in run.statuses("door")][:1] == ["up"]
    assert "down" not in [status["state"] for status in run.statuses("door")]
    assert not run.metric("analyzer_stream_reconnects_total", camera="door")  # None: never counted
    assert frames_seen and frames_seen >= 30


def test_watchdog_catches_a_server_that_hangs_or_a_stream_that_freezes(
    live_frames: list[bytes], shipped_model: Path
) -> None:
    server = MjpegServer(live_frames).start()
    server.mode = "hang"  # accepts the connection, never answers
    camera = {"id": "door", "source": server.url, **LIVE}
    try:
        with LiveRun({"cameras": [camera]}, shipped_model) as run:
            wait_for(lambda: len(run.statuses("door")) >= 1, LIVE["read_timeout_s"] + 3, "the hung open to time out")
            assert "no answer within 1.5 s" in run.statuses("door")[0]["detail"]
            server.mode = "stall"  # 20 frames per connection, then silence with the socket open
            wait_for(lambda: any(s["state"] == "up" for s in run.statuses("door")), 10, "a connection")
            took = wait_for(
                lambda: any("no frame for 1.5 s (watchdog)" in s["detail"] for s in run.statuses("door")),
                server.stall_after / server.fps + LIVE["read_timeout_s"] + 3,
                "the watchdog to notice the frozen stream",
            )
            wait_for(lambda: run.statuses("door")[-1]["state"] == "up", 5, "the reconnect after the freeze")
            run.stop()
    finally:
        server.stop()
    assert took < server.stall_after / server.fps + LIVE["read_timeout_s"] + 3
    assert server.connections >= 3


def _bad_media(folder: Path, clip: Path) -> dict[str, str]:
    """Every kind of bad source an operator can configure, each with the words its error must contain."""
    (folder / "empty.mp4").write_bytes(b"")
    data = clip.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (folder / "garbage.mp4").write_bytes(bytes(range(256)) * 400)
    (folder / "notes.txt").write_text("this is not a video\n" * 50)
    cv2.imwrite(str(folder / "photo.jpg"), np.full((120, 160, 3), 128, np.uint8))
    with wave.open(str(folder / "sound.wav"), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 8000)
    return {
        str(folder / "missing.mp4"): "not found",
        str(folder / "empty.mp4"): "empty (0 bytes)",
        str(folder / "truncated.mp4"): "cut off before its index was written",
        str(folder / "garbage.mp4"): "cannot open",
        str(folder / "notes.txt"): "text file",
        str(folder / "photo.jpg"): "still image",
        str(folder / "sound.wav"): "cannot open",
        "7": "webcam 7 not found",
    }


def test_bad_media_fails_alone_and_the_good_camera_counts_everyone(
    walkers_clip: tuple[Path, int], shipped_model: Path, tmp_path: Path
) -> None:
    clip, true_visitors = walkers_clip
    expected = _bad_media(tmp_path, clip)
    cameras = [{"id": "good", "source": str(clip), "realtime": False}]
    cameras += [{"id": f"bad{index}", "source": source} for index, source in enumerate(expected)]
    with LiveRun({"cameras": cameras}, shipped_model) as run:
        wait_for(lambda: run.report is not None, 240, "the run to finish on its own")
        report = run.stop()
    document = report.to_dict()
    assert document["cameras"]["good"]["totals"]["visitors"] == true_visitors
    for index, (source, words) in enumerate(expected.items()):
        statuses = run.statuses(f"bad{index}")
        assert [status["state"] for status in statuses] == ["failed"], (source, statuses)
        assert words in statuses[0]["detail"] and source in statuses[0]["detail"], (words, statuses[0]["detail"])
        assert statuses[0]["detail"].count("\n") == 0


def test_a_camera_refusing_its_password_is_one_clean_line_per_retry_without_the_password(
    shipped_model: Path, tmp_path: Path
) -> None:
    door = RtspDoor().start()
    report, source = tmp_path / "r.json", door.url("admin", "Wr0ngPass")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "analyzer",
            "run",
            "--source",
            source,
            "--report",
            str(report),
            "--metrics-port",
            str(free_port()),
            "--zmq-bind",
            f"tcp://127.0.0.1:{free_port()}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: sum(agent.startswith("Lavf") for agent, _, _ in door.answers) >= 4, 60, "two open attempts")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        door.stop()
    assert process.returncode == 0, stderr
    down = [line for line in stderr.splitlines() if "stream down" in line]
    assert down and all("refused the user name or password (401 Unauthorized)" in line for line in down), stderr
    assert source.replace("Wr0ngPass", "***") in down[0]
    assert "Wr0ngPass" not in stdout + stderr + report.read_text()
    # FFmpeg and OpenCV say it too, in their own words, on every retry ("[rtsp @ 0x..] method DESCRIBE failed: 401
    # Unauthorized", "[ WARN:0@1.4] global cap.cpp:212 open VIDEOIO(FFMPEG) ..."): silenced
    assert not [line for line in stderr.splitlines() if line.startswith(("[rtsp @", "[tcp @", "[ WARN", "[OPENCV"))]


# --- signals and ports ------------------------------------------------------


def _start_run(clip: Path, report: Path, metrics_port: int, zmq_port: int) -> subprocess.Popen[str]:
    """``analyzer run`` on ``clip`` played in a loop, so the run is still going whenever the test signals it.

    Played once, a 12 s clip can end first on a slow box, and a run that ended by itself shows nothing
    about signals.
    """
    config = report.with_name("looping.yaml")
    camera = {"id": "walkers", "source": str(clip), "realtime": True, "loop": True}
    config.write_text(yaml.safe_dump({"cameras": [camera]}))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "analyzer",
            "run",
            "--config",
            str(config),
            "--report",
            str(report),
            "--metrics-port",
            str(metrics_port),
            "--web-port",
            "0",
            "--zmq-bind",
            f"tcp://127.0.0.1:{zmq_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_hang_up_as_from_a_terminal,
    )


def _hang_up_as_from_a_terminal() -> None:
    """The run starts with SIGHUP's default, as from a terminal, even when the suite runs under nohup (which
    hands down an ignored SIGHUP that the run, rightly, keeps ignoring)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _faces_in_view(port: int) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "footfall_faces_in_view"
    )


def _someone_inside_for(port: int, seconds: float) -> bool:
    """A face has been in view for ``seconds`` (past min_duration_s): that visit counts once closed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _faces_in_view(port) == 0:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])  # systemd stopping it; its terminal closing
def test_sigterm_closes_open_visits_publishes_them_and_writes_the_report(
    walkers_clip: tuple[Path, int], tmp_path: Path, stop: signal.Signals
) -> None:
    clip, _ = walkers_clip
    metrics_port, zmq_port = free_port(), free_port()
    context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"visit.")
    subscriber.setsockopt(zmq.LINGER, 0)
    subscriber.connect(f"tcp://127.0.0.1:{zmq_port}")
    received: list = []
    listening = threading.Event()
    listener = threading.Thread(target=collect, args=(subscriber, received, listening))
    listener.start()
    process = _start_run(clip, tmp_path / "r.json", metrics_port, zmq_port)
    try:
        wait_for(lambda: _someone_inside_for(metrics_port, 2.0), 120, "a visitor in view for 2 s")
        before = len(received)
        process.send_signal(stop)
        signalled = time.monotonic()
        stdout, stderr = process.communicate(timeout=30)
        took = time.monotonic() - signalled
    finally:
        process.kill()
        time.sleep(0.5)
        listening.set()
        listener.join()
        subscriber.close()
        context.term()
    assert process.returncode == 0, stderr
    assert took <= 5.0, f"exit took {took:.1f} s after {stop.name}"
    assert f"{stop.name}: finishing open visits" in stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(received) > before, "visits open at SIGTERM were not published"
    assert report["totals"]["visitors"] == len(received)
    assert "TOTAL" in stdout


def test_a_second_signal_exits_at_once(walkers_clip: tuple[Path, int], tmp_path: Path) -> None:
    metrics_port = free_port()
    process = _start_run(walkers_clip[0], tmp_path / "r.json", metrics_port, free_port())
    try:
        wait_for(lambda: _faces_in_view(metrics_port) > 0, 120, "the run to be under way")
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130 and "second signal: exiting now" in stderr, stderr


@pytest.mark.parametrize("which", ["metrics", "zmq", "web"])
def test_a_busy_port_is_a_config_error_before_any_camera_starts(which: str, walkers_clip: tuple[Path, int]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        ports = {
            "metrics": ["--metrics-port", str(busy), "--web-port", "0", "--zmq-bind", ""],
            "zmq": ["--metrics-port", "0", "--web-port", "0", "--zmq-bind", f"tcp://127.0.0.1:{busy}"],
            "web": ["--metrics-port", "0", "--web-port", str(busy), "--zmq-bind", ""],
        }[which]
        result = run_cli("run", "--source", str(walkers_clip[0]), "--fast", *ports)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2
    key = {"metrics": "metrics.port", "zmq": "zmq.bind", "web": "web.port"}[which]
    assert len(errors) == 1 and errors[0].startswith(f"error: {key}: cannot") and str(busy) in errors[0]
    assert "stream up" not in result.stderr and "Traceback" not in result.stderr


# --- a classifier that fails or hangs --------------------------------------


class FailingBackend:
    """The real classifier, whose calls raise as ``fails(call_number)`` says: a CUDA or ONNX Runtime error."""

    def __init__(self, model: Path, fails: Callable[[int], bool]) -> None:
        self.real = OnnxRuntimeBackend(model)
        self.metadata, self.name = self.real.metadata, self.real.name
        self.fails = fails
        self.calls = 0

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        self.calls += 1
        if self.fails(self.calls):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.real.infer(inputs)


@pytest.mark.parametrize("failing", ["first call", "every call"])
def test_a_classifier_that_raises_costs_its_votes_never_a_visit(
    failing: str, walkers_clip: tuple[Path, int], shipped_model: Path
) -> None:
    # one exception used to end the classifier thread: the run never returned, the queue grew, a report never came
    clip, true_visitors = walkers_clip
    backends: list[FailingBackend] = []

    def failing_backend(model: Path) -> FailingBackend:
        backends.append(FailingBackend(model, (lambda call: call == 1) if failing == "first call" else bool))
        return backends[-1]

    camera = {"id": "door", "source": str(clip), "realtime": False}
    with LiveRun({"cameras": [camera]}, shipped_model, backend=failing_backend) as run:
        wait_for(lambda: run.statuses("door") and run.statuses("door")[-1]["state"] == "ended", 60, "the clip's end")
        report = run.stop(within=5)
        published = run.visits("door")
        errors = run.metric("analyzer_classifier_errors_total")
        dropped = run.metric("analyzer_samples_dropped_total", camera="door", reason="classifier_error")
    (backend,) = backends
    visits = report.to_dict()["cameras"]["door"]["visits"]
    assert len(visits) == true_visitors == len(published)  # every visit counted and published
    failed_lines = [line for line in run.log if line.startswith("classifier failed: RuntimeError: CUDA error")]
    assert len(failed_lines) == 1, run.log  # the first at once, and not a line per failure
    genders = [visit["gender"] for visit in visits]
    if failing == "every call":
        assert errors == backend.calls > 1 and dropped and dropped >= backend.calls
        assert genders == ["unknown"] * true_visitors
        assert any(line.startswith(f"classifier: {backend.calls - 1} more calls failed since") for line in run.log)
    else:
        assert errors == 1 and backend.calls > 1
        assert genders.count("unknown") <= 1  # the others voted with the calls that worked


def test_a_hung_classifier_does_not_hold_the_report_after_a_stop(
    walkers_clip: tuple[Path, int], shipped_model: Path
) -> None:
    camera = {"id": "door", "source": str(walkers_clip[0]), "realtime": True, "loop": True}
    with (
        hanging_backends() as (hanging, backends),
        LiveRun({"cameras": [camera]}, shipped_model, backend=hanging) as run,
    ):
        (backend,) = backends
        wait_for(backend.entered.is_set, 60, "the classifier's first call")
        wait_for(lambda: (run.metric("footfall_faces_in_view", camera="door") or 0) > 0, 30, "a face in view")
        time.sleep(3)  # long enough to be a visit, open or ended, waiting for the classifier
        stopped = time.monotonic()
        report = run.stop(within=5)  # what SIGTERM does; a hung call used to keep the run from ever returning
        took = time.monotonic() - stopped
        published = {visit["visit_id"] for visit in run.visits("door")}
        dropped = run.metric("analyzer_samples_dropped_total", camera="door", reason="classifier_stalled")
    reported = {visit["visit_id"] for visit in report.to_dict()["cameras"]["door"]["visits"]}
    assert took < 5 and reported and reported == published  # the visit open at the stop included
    assert dropped and dropped >= 1
    assert any(line.startswith("classifier has not answered for ") for line in run.log), run.log


def test_a_stalled_classifier_keeps_queues_and_memory_bounded_and_visits_flowing(
    walkers_clip: tuple[Path, int], shipped_model: Path
) -> None:
    """Every face of every frame offered (--naive) to a classifier that never answers, for 18 s."""
    document = {
        "cameras": [{"id": "door", "source": str(walkers_clip[0]), "realtime": True, "loop": True}],
        "classifier": {"model": str(shipped_model), "max_batch": 2, "typical_batch": 2},  # at most 32 samples wait
        "health": {"stall_after_s": 5},
    }
    sizes: list[tuple[int, int, int]] = []
    memory: list[float] = []
    with hanging_backends() as (hanging, _), LiveRun(document, shipped_model, backend=hanging, naive=True) as run:
        pipeline = run.pipeline
        for _ in range(9):
            time.sleep(2)
            waiting = pipeline.classify_queue
            sizes.append((waiting.samples, len(waiting), pipeline.output_queue.qsize()))
            memory.append(rss_mb())
        report = run.stop(within=5)
        behind = run.metric("analyzer_samples_dropped_total", camera="door", reason="classifier_behind")
        stalled = run.metric("analyzer_samples_dropped_total", camera="door", reason="classifier_stalled")
        published = len(run.visits("door"))
    assert max(samples for samples, _, _ in sizes) <= 32, sizes  # the bound held
    assert max(waiting for _, waiting, _ in sizes[4:]) <= 40 and max(out for _, _, out in sizes) <= 5, sizes
    assert behind and stalled  # the first seconds filled the queue; after 5 s the visits went out without it
    warm = memory[4]  # 10 s in: taken over, queues settled
    assert memory[-1] <= warm * 1.05, f"RSS grew {warm} -> {memory[-1]} MB: {memory}"
    assert published >= 3 and published == report.to_dict()["totals"]["visitors"]  # visits kept flowing
    assert not pipeline.classifier.voter._votes  # and nothing of theirs stays behind


# --- soak -------------------------------------------------------------------


@pytest.mark.slow
def test_soak_with_reconnects_keeps_memory_and_descriptors_flat(live_frames: list[bytes], shipped_model: Path) -> None:
    """A live camera for 20 s, cut off every 7 s: RSS and open descriptors must not creep.

    ``analyzer bench --soak`` runs the same for as long as asked (docs/PERFORMANCE.md).
    """
    server = MjpegServer(live_frames).start()
    camera = {"id": "door", "source": server.url, **LIVE}
    samples: list[tuple[float, int]] = []
    try:
        with LiveRun({"cameras": [camera]}, shipped_model) as run:
            wait_for(lambda: run.metric("analyzer_stream_up", camera="door") == 1, 20, "the stream to come up")
            for _ in range(3):
                time.sleep(6)
                samples.append((rss_mb(), open_descriptors()))
                server.stop()
                wait_for(lambda: run.metric("analyzer_stream_up", camera="door") == 0, 5, "the cut to be seen")
                server.start()
                wait_for(lambda: run.metric("analyzer_stream_up", camera="door") == 1, 5, "the reconnect")
            report = run.stop()
    finally:
        server.stop()
    (warm_rss, warm_fds), (end_rss, end_fds) = samples[1], samples[-1]
    assert end_rss <= warm_rss * 1.05, f"RSS grew {warm_rss} -> {end_rss} MB over 7 s: {samples}"
    assert end_fds <= warm_fds + 2, f"open descriptors grew {warm_fds} -> {end_fds}: {samples}"
    assert report.to_dict()["cameras"]["door"]["frames"] > 150
    assert run.metric("analyzer_stream_reconnects_total", camera="door") >= 3


def test_a_run_under_nohup_keeps_ignoring_the_hang_up(capfd: pytest.CaptureFixture[str]) -> None:
    from analyzer.commands.run import _install_signal_handlers

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {signum: signal.getsignal(signum) for signum in signals}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup hands down
        _install_signal_handlers(threading.Event(), on_stop=lambda: None)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # a run started by hand in a terminal
        stop, told = threading.Event(), threading.Event()
        _install_signal_handlers(stop, on_stop=told.set)  # systemd hears STOPPING=1 at once
        signal.raise_signal(signal.SIGHUP)
        assert stop.is_set() and told.is_set() and "SIGHUP: finishing open visits" in capfd.readouterr().err
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_a_signal_that_lands_inside_a_status_print_still_stops_the_run(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # A status line blocked on a full stderr pipe: the handler runs inside that print, in the same thread.
    from analyzer.commands.run import _install_signal_handlers

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    stop = threading.Event()

    class SignalMidWrite(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            if not stop.is_set():
                signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # type: ignore[operator]
            return len(data)

    try:
        _install_signal_handlers(stop, on_stop=lambda: None)
        monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BufferedWriter(SignalMidWrite()), line_buffering=True))
        print("[door] up 15.0 fps | 1 face in view", file=sys.stderr)
        assert stop.is_set()
        assert "SIGTERM: finishing open visits" in capfd.readouterr().err
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_a_run_whose_log_reader_goes_away_counts_on_and_writes_its_report(
    walkers_clip: tuple[Path, int], tmp_path: Path
) -> None:
    clip, true_visitors = walkers_clip
    report = tmp_path / "r.json"
    process = subprocess.Popen(  # `analyzer run ... 2>&1 | head -1`
        counting_run(clip, report, zmq_bind=""),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        process.stdout.close()  # was: the run died at its next log line (exit 1), without its report
        assert process.wait(timeout=120) == 0
    finally:
        process.kill()
    assert json.loads(report.read_text())["totals"]["visitors"] == true_visitors


def test_a_signal_handled_inside_the_first_one_s_handler_is_the_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM then SIGINT at once: Python may run the SIGINT handler inside the SIGTERM one, before the stop is set."""
    from analyzer.commands import run as run_command

    class ExitCalledError(Exception):
        pass

    def exit_now(code: int) -> None:
        raise ExitCalledError(code)

    class StopWithASignalInside(threading.Event):
        arrived = False

        def set(self) -> None:  # the second signal lands after the first handler looked, before it set the stop
            if not self.arrived:
                self.arrived = True
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
            super().set()

    monkeypatch.setattr(run_command.os, "_exit", exit_now)
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    stop = StopWithASignalInside()
    try:
        run_command._install_signal_handlers(stop, lambda: None)
        with pytest.raises(ExitCalledError) as exited:
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert exited.value.args == (130,)
