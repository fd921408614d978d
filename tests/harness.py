"""Running the real pipeline inside a test: ZeroMQ subscriber, metrics registry, report, stop switch."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import zmq
from prometheus_client import CollectorRegistry

from analyzer.backends.base import ClassifierBackend, FaceAttributes
from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.config import Config, parse_config
from analyzer.outputs import messages
from analyzer.outputs.metrics import Metrics
from analyzer.outputs.publisher import ZmqPublisher
from analyzer.outputs.report import RunReport
from analyzer.pipeline.runner import Pipeline, RunOptions
from analyzer.service.liveness import Heartbeats


def own_lines(stderr: str) -> list[str]:
    """The analyzer's stderr lines, without MediaPipe's occasional native alignment note (docs/OPERATIONS.md)."""
    return [line for line in stderr.splitlines() if "memory is not aligned" not in line]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def collect(subscriber: zmq.Socket, into: list, stop: threading.Event) -> None:
    """Append every decoded message until ``stop`` is set and the socket is drained."""
    while not stop.is_set() or subscriber.poll(200):
        if subscriber.poll(100):
            into.append(messages.decode(subscriber.recv_multipart()))


#: ``analyzer run`` options that open no port: no /metrics, no web page, no ZeroMQ.
NO_SERVERS = ("--metrics-port", "0", "--web-port", "0", "--zmq-bind", "")


def counting_run(clip: Path, report: Path, zmq_bind: str) -> list[str]:
    """The command line of ``analyzer run`` on a clip as fast as it decodes, no metrics port, ZeroMQ as given."""
    return [
        sys.executable,
        "-m",
        "analyzer",
        "run",
        "--source",
        str(clip),
        "--fast",
        "--report",
        str(report),
        "--metrics-port",
        "0",
        "--web-port",
        "0",
        "--zmq-bind",
        zmq_bind,
    ]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``analyzer ARGS`` in a child process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll until ``condition`` holds; fail naming ``what`` after ``seconds``. Returns the time it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


class HangingBackend:
    """The real classifier, whose calls hang until released: a GPU driver or runtime that stops answering."""

    def __init__(self, model: Path) -> None:
        self.real = OnnxRuntimeBackend(model)
        self.metadata, self.name = self.real.metadata, self.real.name
        self.entered, self.release = threading.Event(), threading.Event()

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        self.entered.set()
        self.release.wait(300)
        return self.real.infer(inputs)


@contextlib.contextmanager
def hanging_backends() -> Iterator[tuple[Callable[[Path], HangingBackend], list[HangingBackend]]]:
    """A backend maker for :class:`LiveRun` whose backends hang, and the backends made; all released on the way out.

    A failed assertion must not leave a pipeline hung.
    """
    made: list[HangingBackend] = []

    def make(model: Path) -> HangingBackend:
        made.append(HangingBackend(model))
        return made[-1]

    try:
        yield make, made
    finally:
        for backend in made:
            backend.release.set()


class ManualClock:
    """A monotonic clock the test moves on (``clock.now += 31``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LiveRun:
    """The pipeline on its own thread with a real PUB/SUB pair; ``stop()`` ends it like SIGTERM does."""

    def __init__(
        self,
        document: dict,
        model: Path,
        backend: Callable[[Path], ClassifierBackend] = OnnxRuntimeBackend,
        heartbeats: Heartbeats | None = None,
        naive: bool = False,
    ) -> None:
        self.config = self.parse(document, model)
        self.context = zmq.Context()
        self.registry = CollectorRegistry()
        self.publisher = ZmqPublisher(self.config.zmq.bind, context=self.context)
        self.subscriber = self.context.socket(zmq.SUB)
        self.subscriber.setsockopt(zmq.LINGER, 0)
        self.subscriber.setsockopt(zmq.SUBSCRIBE, b"")
        self.subscriber.connect(self.publisher.endpoint)
        self.received: list[tuple[str, dict]] = []
        self.log: list[str] = []
        self.report: RunReport | None = None
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._listener = threading.Thread(target=collect, args=(self.subscriber, self.received, self._listening))
        options = RunOptions(log=self.log.append, heartbeats=heartbeats or Heartbeats(), naive=naive)
        self.pipeline = Pipeline(self.config, backend(model), Metrics(self.registry), self.publisher, options)
        self._thread = threading.Thread(target=self._run, name="pipeline-under-test")

    @staticmethod
    def parse(document: dict, model: Path | None = None) -> Config:
        """A test's config as a run takes it: ZeroMQ on a free port, no status lines."""
        document = {"zmq": {"bind": "tcp://127.0.0.1:*", "summary_interval_s": 60}, "status_interval_s": 0, **document}
        if model is not None:
            document.setdefault("classifier", {"model": str(model)})
        return parse_config(document)

    def _run(self) -> None:
        self.report = self.pipeline.run(self._stop)

    def __enter__(self) -> LiveRun:
        self._listener.start()
        time.sleep(0.3)  # ZeroMQ slow joiner
        self._thread.start()
        return self

    def stop(self, within: float = 10.0) -> RunReport:
        """Stop like a signal does and wait for the final report."""
        self._stop.set()
        self._thread.join(within)
        assert not self._thread.is_alive(), f"pipeline did not stop within {within:g} s"
        time.sleep(0.3)
        assert self.report is not None
        return self.report

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._listening.set()
        self._listener.join()
        self.publisher.close()
        self.subscriber.close()
        self.context.term()

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample's current value from the run's registry."""
        return self.registry.get_sample_value(name, labels)

    def statuses(self, camera: str) -> list[dict]:
        """Bodies of the ``status.<camera>`` messages so far."""
        return [body for topic, body in list(self.received) if topic == f"status.{camera}"]

    def visits(self, camera: str) -> list[dict]:
        """Bodies of the ``visit.<camera>`` messages so far."""
        return [body for topic, body in list(self.received) if topic == f"visit.{camera}"]


CLAIM_AND_WAIT = """
import sys
from pathlib import Path
from analyzer.service.output_locks import OutputClaim
OutputClaim("--report", Path(sys.argv[1]))
print("claimed", flush=True)
sys.stdin.read()
"""


def claimed_elsewhere(path: Path) -> subprocess.Popen[str]:
    """Another process that has claimed ``path`` as a run's report, until its stdin closes or it is killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_WAIT, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "claimed\n"
    return holder
