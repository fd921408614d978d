"""ZeroMQ contract: schema, analyzer listen, gaps."""

import json
import select
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import zmq

from analyzer.outputs import messages
from analyzer.outputs.publisher import ZmqPublisher
from analyzer.tools.listen import GapCounter, describe, listen
from tests.harness import counting_run, free_port

SCHEMA = json.loads(resources.files("analyzer.outputs").joinpath("schemas/footfall-1.json").read_text())


def validate(topic: str, body: dict) -> None:
    jsonschema.validate(body, SCHEMA)
    kind = topic.split(".")[0]
    jsonschema.validate(body, {**SCHEMA["$defs"][kind], "$defs": SCHEMA["$defs"]})
    assert topic == f"{kind}.{body['camera']}"


@pytest.mark.parametrize(
    ("seqs", "missed", "gaps"),
    [([1, 2, 3], 0, 0), ([1, 2, 5, 6], 2, 1), ([4, 7, 9], 3, 2), ([5, 6, 1, 2], 0, 0)],  # last: publisher restarted
)
def test_gap_counter(seqs: list[int], missed: int, gaps: int) -> None:
    counter = GapCounter()
    for seq in seqs:
        counter.see(seq)
    assert (counter.missed, counter.gaps) == (missed, gaps)


def test_listen_prints_messages_and_reports_a_gap() -> None:
    context = zmq.Context()
    publisher = ZmqPublisher("tcp://127.0.0.1:*", context=context)
    lines: list[str] = []
    result: list[GapCounter] = []
    thread = threading.Thread(
        target=lambda: result.append(listen(publisher.endpoint, count=3, seconds=10, out=lines.append, context=context))
    )
    thread.start()
    time.sleep(0.5)
    status = {"state": "up", "detail": "connected", "reconnects": 0}
    publisher.publish("status", "door", status)
    publisher.seq += 2  # two messages lost on the way
    publisher.publish("status", "door", {**status, "state": "down", "detail": "stream stopped"})
    publisher.publish("status", "door", status)
    thread.join(timeout=10)
    publisher.close()
    context.term()
    assert result and result[0].missed == 2
    assert lines[0].endswith("status  door up: connected")
    assert lines[1] == "GAP: 2 messages missed before seq 4"
    assert "down: stream stopped" in lines[2]


def test_listen_receives_what_run_publishes_and_all_of_it_fits_the_schema(
    walkers_clip: tuple[Path, int], tmp_path: Path
) -> None:
    clip, true_visitors = walkers_clip
    port = free_port()
    listener = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "analyzer",
            "listen",
            "--connect",
            f"tcp://127.0.0.1:{port}",
            "--json",
            "--seconds",
            "60",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    report = tmp_path / "r.json"
    run = subprocess.run(
        counting_run(clip, report, f"tcp://127.0.0.1:{port}"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    time.sleep(1.0)
    listener.terminate()
    out, _ = listener.communicate(timeout=10)
    received = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert received, "listen printed nothing"
    for message in received:
        topic = message.pop("topic")
        validate(topic, message)
    visits = [m for m in received if "visit_id" in m]
    assert len(visits) == json.loads(report.read_text())["totals"]["visitors"] == true_visitors
    seqs = [m["seq"] for m in received]
    assert seqs == list(range(1, len(seqs) + 1))


def test_describe_a_visit_line() -> None:
    body = {
        "ts": 0,
        "visit_id": "0123456789ab",
        "gender": "female",
        "age_group": "30-39",
        "gender_p": {"female": 0.93, "male": 0.07},
        "age_group_p": {"30-39": 0.7},
        "dwell_s": 4.25,
        "samples": 3,
        "direction": "in",
    }
    line = describe("visit.door", body)
    assert "visit   door 0123456789ab female (p 0.93) 30-39 (p 0.70) dwell 4.2 s in samples 3" in line
    unsure = {**body, "gender": "unknown", "gender_p": {"female": 0.53, "male": 0.47}}
    assert "0123456789ab unknown (female? p 0.53) 30-39 (p 0.70)" in describe("visit.door", unsure)
    never_classified = {**body, "gender": "unknown", "age_group": "unknown", "gender_p": {}, "age_group_p": {}}
    assert "0123456789ab unknown unknown dwell" in describe("visit.door", never_classified)
    covered = {
        **body,
        "gender": "unknown",
        "age_group": "unknown",
        "gender_p": {"female": 0.09, "male": 0.91},
        "face_covered": True,
    }
    assert "unknown (face covered; male? p 0.91) unknown (face covered; 30-39? p 0.70)" in describe(
        "visit.door", covered
    )


def test_describe_a_summary_line_with_the_line_s_in_and_out() -> None:
    body = {
        "ts": 0,
        "visitors": 7,
        "by_direction": {"in": 5, "none": 1, "out": 1},
        "faces_in_view": 2,
        "fps": 15.0,
        "frames_dropped": 0,
        "by_gender": {"female": 4, "male": 3},
        "by_age_group": {"3-9": 1, "20-29": 6},
    }
    line = describe("summary.door", body)
    assert "door visitors 7 (in 5 none 1 out 1) | faces 2 fps 15.0 dropped 0 | female 4 male 3 | 3-9 1 20-29 6" in line
    del body["by_direction"]  # a camera without a counting line
    assert "summary door visitors 7 | faces 2 fps" in describe("summary.door", body)
    assert "| faces 2 (fixtures 1) fps" in describe("summary.door", {**body, "fixtures_in_view": 1})


def test_a_slow_subscriber_s_drops_are_counted_by_the_publisher_exactly_as_the_subscriber_sees_them() -> None:
    """The publisher never blocks: with tiny queues and a subscriber that does not read, messages are dropped.

    A plain PUB socket drops them inside libzmq and the publisher said "sent 5000, dropped 0".
    """
    context = zmq.Context()
    publisher = ZmqPublisher("tcp://127.0.0.1:*", context=context, send_hwm=2)
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.RCVHWM, 2)
    subscriber.setsockopt(zmq.LINGER, 0)
    subscriber.setsockopt(zmq.SUBSCRIBE, b"")
    subscriber.connect(publisher.endpoint)
    time.sleep(0.5)
    started = time.monotonic()
    dropped = []
    for _ in range(5000):
        if not publisher.publish("status", "door", {"state": "up", "detail": "x" * 200, "reconnects": 0}):
            dropped.append(publisher.seq)
    assert time.monotonic() - started < 10  # never waited for the subscriber
    time.sleep(0.3)
    gaps = GapCounter()
    received, seen = 0, []
    while subscriber.poll(200):
        body = json.loads(subscriber.recv_multipart()[1])
        gaps.see(body["seq"])
        seen.append(body["seq"])
        received += 1
    subscriber.close()
    publisher.close()
    context.term()
    assert 0 < received < 5000
    assert gaps.missed > 0 and gaps.gaps >= 1
    assert (publisher.seq, publisher.sent, publisher.dropped) == (5000, received, 5000 - received)
    assert set(range(1, 5001)) - set(seen) == set(dropped)  # the very messages it dropped, and no other


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--connect", "garbage"], "--connect garbage: not an address ZeroMQ can connect to"),  # was a ZMQError
        (["--connect", "tcp://"], "give the analyzer's zmq.bind, e.g. tcp://"),
        (["--count", "-1"], "--count and --seconds must be 0 (no limit) or more"),  # was: listen forever
    ],
)
def test_listen_refuses_what_it_cannot_do_in_one_line(
    capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    from analyzer.cli import main

    assert main(["listen", *options, "--seconds", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_listen_ends_when_its_reader_goes_away() -> None:
    context = zmq.Context()
    publisher = ZmqPublisher("tcp://127.0.0.1:*", context=context)
    listener = subprocess.Popen(  # `analyzer listen | head -1`
        [sys.executable, "-m", "analyzer", "listen", "--connect", publisher.endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    status = {"state": "up", "detail": "connected", "reconnects": 0}
    try:
        assert listener.stdout is not None
        first = ""
        deadline = time.monotonic() + 60
        while not first and time.monotonic() < deadline:  # the subscription takes a moment to reach us
            publisher.publish("status", "door", status)
            if select.select([listener.stdout], [], [], 0.2)[0]:
                first = listener.stdout.readline()
        assert first.rstrip().endswith("status  door up: connected")
        listener.stdout.close()
        for _ in range(50):  # lines nobody will read
            publisher.publish("status", "door", status)
            time.sleep(0.05)
        assert listener.wait(timeout=10) == 0  # was a BrokenPipeError traceback; then would listen forever
        assert "Traceback" not in listener.stderr.read()  # type: ignore[union-attr]
    finally:
        listener.kill()
        publisher.close()
        context.term()


@pytest.mark.parametrize("key", ["seq", "camera", "schema", "ts"])
def test_a_message_s_own_fields_cannot_replace_what_the_publisher_sets(key: str) -> None:
    # a field named seq or camera silently replaced the publisher's: gap counts and topic filters went wrong
    with pytest.raises(ValueError, match=f"may not set {key}: the publisher does"):
        messages.encode("visit", "door", 7, 0.0, {"visit_id": "ab12", key: 1})
