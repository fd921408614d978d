"""A loop of the analyzer that stops moving is found, named and reported (log, /healthz, systemd's watchdog)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from analyzer.core.age_groups import builtin_grouping
from analyzer.core.faces import Faces
from analyzer.outputs.metrics import serve
from analyzer.outputs.report import RunReport
from analyzer.pipeline.detect import FaceDetector
from analyzer.service.liveness import Heartbeats, Watchdog
from analyzer.service.systemd import SystemdNotifier
from tests.harness import LiveRun, ManualClock, free_port, hanging_backends, wait_for

FAIRFACE9 = builtin_grouping("fairface9")


class NotifySocket:
    """What systemd listens on for a ``Type=notify`` service: a Unix datagram socket, read as messages arrive."""

    def __init__(self, address: str) -> None:
        self.name = address
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind("\0" + address[1:] if address.startswith("@") else address)
        self.socket.settimeout(0.1)
        self.received: list[str] = []
        self._read = 0
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._receive, daemon=True)
        self._reader.start()

    def _receive(self) -> None:
        while not self._closing.is_set():
            try:
                self.received.append(self.socket.recv(4096).decode())
            except TimeoutError:
                continue

    def messages(self) -> list[str]:
        """Everything received since the last call (after a moment for datagrams on their way)."""
        time.sleep(0.3)
        new, self._read = self.received[self._read :], len(self.received)
        return new

    def close(self) -> None:
        self._closing.set()
        self._reader.join()
        self.socket.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    listener = NotifySocket(f"@footfall-test-{os.getpid()}-{time.monotonic_ns()}")  # abstract: no file to clean up
    yield listener
    listener.close()


def _healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_hung_classifier_call_is_named_with_where_it_waits_and_nothing_counted_is_lost(
    walkers_clip: tuple[Path, int], shipped_model: Path, notify_socket: NotifySocket
) -> None:
    clip, true_visitors = walkers_clip
    clock = ManualClock()
    heartbeats = Heartbeats(clock)
    log: list[str] = []
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": notify_socket.name, "WATCHDOG_USEC": "60000000"})
    watchdog = Watchdog(heartbeats, 30, notifier, log.append, lambda: "cameras up: 1 of 1", clock=clock)
    camera = {"id": "door", "source": str(clip), "realtime": False}
    port = free_port()
    servers = []
    try:
        with (
            hanging_backends() as (hanging, backends),
            LiveRun({"cameras": [camera]}, shipped_model, backend=hanging, heartbeats=heartbeats) as run,
        ):
            servers.append(serve(run.registry, "127.0.0.1", port, lambda: heartbeats.health(30)))
            (backend,) = backends
            wait_for(backend.entered.is_set, 60, "the classifier's first call")
            watchdog.check()
            assert notify_socket.messages() == ["WATCHDOG=1", "STATUS=cameras up: 1 of 1"]
            status, text = _healthz(port)
            assert status == 200 and re.fullmatch(r"ok: [23] loops moving\n", text), text  # the camera's may have ended

            for _ in range(31):  # half a minute passes, checked each second; every loop but the hung one turns
                clock.now += 1
                time.sleep(0.05)
                watchdog.check()
            assert [stall.loop for stall in heartbeats.stalls(30)] == ["classifier"]
            (stalled,) = log
            assert stalled.startswith("stalled: classifier: no progress for 31 s (health.stall_after_s: 30)")
            assert "asking systemd to restart" in stalled
            assert "in infer" in stalled and "self.release.wait(300)" in stalled, stalled  # where it hangs: report it
            sent = notify_socket.messages()
            assert sent[-2:] == ["STATUS=stalled: classifier: no progress for 31 s", "WATCHDOG=trigger"]
            assert set(sent[:-2]) == {"WATCHDOG=1"}  # pinged while it was not yet a stall
            assert _healthz(port) == (503, "stalled: classifier: no progress for 31 s\n")
            assert run.metric("analyzer_loops_stalled") == 1  # for Prometheus: alert AnalyzerStalled
            watchdog.check()  # still stalled: said once, and no ping that would keep systemd from acting
            assert len(log) == 1 and notify_socket.messages() == []

            backend.release.set()
            wait_for(lambda: not heartbeats.stalls(30), 10, "the classifier to move again")
            watchdog.check()
            assert log[-1] == "classifier: moving again" and "WATCHDOG=1" in notify_socket.messages()
            assert _healthz(port)[0] == 200 and run.metric("analyzer_loops_stalled") == 0
            wait_for(lambda: run.statuses("door") and run.statuses("door")[-1]["state"] == "ended", 60, "the end")
            report = run.stop()
    finally:
        for server in servers:
            server.shutdown()
    visits = report.to_dict()["cameras"]["door"]["visits"]
    assert len(visits) == true_visitors  # nothing counted is lost
    # the visits that ended while it hung were published without it, after health.stall_after_s
    assert any(line.startswith("classifier has not answered for 3") for line in run.log), run.log


def test_a_paused_process_is_not_taken_for_a_stall_but_a_loop_that_stays_still_then_is() -> None:
    clock = ManualClock()
    heartbeats = Heartbeats(clock)
    log: list[str] = []
    watchdog = Watchdog(heartbeats, 30, SystemdNotifier.from_environment({}), log.append, clock=clock)
    heartbeats.beat("camera door")
    heartbeats.beat("classifier")
    watchdog.check()
    clock.now += 100  # the whole process was frozen (SIGSTOP, a suspended VM): nobody beat, the watchdog neither
    watchdog.check()
    assert log == []  # the loops get a turn before being judged
    heartbeats.beat("camera door")  # its turn came; the classifier's did not
    clock.now += 1
    watchdog.check()
    assert len(log) == 1 and log[0].startswith("stalled: classifier: no progress for 101 s")
    assert "asking systemd" not in log[0]  # outside systemd the log and /healthz say it, nobody is asked


def test_a_loop_that_ended_is_not_stalled_and_one_whose_thread_died_says_so() -> None:
    clock = ManualClock()
    heartbeats = Heartbeats(clock)
    heartbeats.beat("camera door")
    heartbeats.finished("camera door")  # its file ended
    died = threading.Thread(target=heartbeats.beat, args=("classifier",))
    died.start()
    died.join()  # it beat once, then its thread was gone without saying it finished
    clock.now += 31
    (stall,) = heartbeats.stalls(30)
    assert stall.loop == "classifier" and stall.stack == ("(its thread ended)",)
    assert heartbeats.health(30) == (False, "stalled: classifier: no progress for 31 s")


def test_the_notifier_reads_what_systemd_sets_and_never_fails_the_run(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    listener = NotifySocket(str(path))  # a socket file, as systemd's own /run/systemd/notify
    try:
        notifier = SystemdNotifier.from_environment(
            {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
        )
        assert notifier.enabled and notifier.watchdog_interval_s == 20
        notifier.status("cameras up: 1 of 2\n(not up: street)")
        notifier.stopping()
        notifier.stopping()
        assert listener.messages() == ["STATUS=cameras up: 1 of 2 (not up: street)", "STOPPING=1"]
    finally:
        listener.close()
    notifier.ping()  # systemd gone: nothing raised, the run goes on
    notifier.close()
    for environ in (
        {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"},  # meant for another process
        {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "20000000"},  # no socket to ping
    ):
        assert SystemdNotifier.from_environment(environ).watchdog_interval_s is None, environ
    assert not SystemdNotifier.from_environment({}).enabled


def test_run_tells_systemd_it_is_ready_alive_and_stopping(notify_socket: NotifySocket, tmp_path: Path) -> None:
    """The exact protocol a Type=notify unit with WatchdogSec= expects, from `analyzer run` itself."""
    port = free_port()
    environ = {**os.environ, "NOTIFY_SOCKET": notify_socket.name, "WATCHDOG_USEC": "1000000"}
    command = [
        sys.executable,
        "-m",
        "analyzer",
        "run",
        "--metrics-port",
        str(port),
        "--web-port",
        "0",
        "--zmq-bind",
        "",
    ]
    run = subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "READY=1" in notify_socket.received, 120, "READY=1")
        wait_for(lambda: notify_socket.received.count("WATCHDOG=1") >= 3, 10, "three pings, one each 0.5 s")
        status, text = _healthz(port)
        assert status == 200 and text.startswith("ok: "), text
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    sent = notify_socket.messages()
    assert run.returncode == 0, stderr
    assert sent[0] == "READY=1" and "STOPPING=1" in sent and "WATCHDOG=trigger" not in sent  # ready before any ping
    assert any(message.startswith("STATUS=cameras up: 1 of 1; visitors: ") for message in sent)
    assert "(and /healthz)" in stderr


def test_the_service_status_names_the_cameras_that_are_not_up() -> None:
    report = RunReport(["door", "street", "yard"], FAIRFACE9)
    report.stats["door"].state = "up"
    report.stats["yard"].state = "down"  # reconnecting; street is still starting
    assert report.service_status() == "cameras up: 1 of 3 (not up: street, yard); visitors: 0"


def test_a_hung_detector_stalls_its_own_camera_alone(
    walkers_clip: tuple[Path, int], shipped_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MediaPipe stuck on one camera's frame: that camera is named; the other camera and the rest keep moving."""
    clock = ManualClock()
    heartbeats = Heartbeats(clock)
    hung, release = threading.Event(), threading.Event()
    real_detect = FaceDetector.detect

    def detect(detector: FaceDetector, frame: np.ndarray, timestamp_ms: int) -> Faces:
        if threading.current_thread().name == "camera-door" and timestamp_ms > 1000:
            hung.set()
            release.wait(120)  # a graph that stops answering a second into the clip
        return real_detect(detector, frame, timestamp_ms)

    monkeypatch.setattr(FaceDetector, "detect", detect)
    cameras = [{"id": name, "source": str(walkers_clip[0]), "loop": True} for name in ("door", "street")]
    try:
        with LiveRun({"cameras": cameras}, shipped_model, heartbeats=heartbeats):
            wait_for(hung.is_set, 60, "the door camera's detector to hang")
            wait_for(lambda: heartbeats.health(30)[1] == "ok: 4 loops moving", 10, "all four loops")
            clock.now += 31
            wait_for(lambda: not heartbeats.health(30)[0], 10, "a verdict")
            time.sleep(1.0)  # every loop that moves has had two turns
            assert heartbeats.health(30) == (False, "stalled: camera door: no progress for 31 s")
            release.set()
            wait_for(lambda: heartbeats.health(30)[0], 10, "the door camera to move again")
    finally:
        release.set()
