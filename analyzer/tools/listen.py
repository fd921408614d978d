"""``analyzer listen``: subscribe to the ZeroMQ feed and print it, noticing gaps.

A readable line per message (or the JSON itself with ``--json``). ``seq``
increases by one per message a publisher offers, so a jump means messages
were lost (a slow subscriber, a restart); each jump is reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from analyzer.errors import ConfigError
from analyzer.outputs import messages
from analyzer.service.console import how_many


@dataclass
class GapCounter:
    """Tracks ``seq`` per publisher connection and counts missing messages."""

    last_seq: int | None = None
    missed: int = 0
    gaps: int = 0

    def see(self, seq: int) -> int:
        """Register a seq; return how many messages were skipped before it (0 if none)."""
        skipped = 0
        if self.last_seq is not None:
            if seq <= self.last_seq:  # the publisher restarted: its count begins again
                skipped = 0
            elif seq > self.last_seq + 1:
                skipped = seq - self.last_seq - 1
                self.missed += skipped
                self.gaps += 1
        self.last_seq = seq
        return skipped


def describe(topic: str, body: dict) -> str:
    """One readable line for a message."""
    clock = time.strftime("%H:%M:%S", time.localtime(float(body.get("ts", 0))))
    kind, _, camera = topic.partition(".")
    if kind == "visit":
        extra = f" {body['direction']}" if "direction" in body else ""
        gender, age_group = _verdict(body, "gender"), _verdict(body, "age_group")
        return (  # each verdict with its own probability: a sure gender and an unsure age group read apart
            f"{clock} visit   {camera} {body['visit_id']} {gender} {age_group} "
            f"dwell {body['dwell_s']:.1f} s{extra} samples {body['samples']}"
        )
    if kind == "summary":
        genders = " ".join(f"{name} {count}" for name, count in body.get("by_gender", {}).items())
        groups = " ".join(f"{name} {count}" for name, count in body.get("by_age_group", {}).items())
        directions = " ".join(f"{name} {count}" for name, count in body.get("by_direction", {}).items())
        visitors = f"visitors {body['visitors']}" + (f" ({directions})" if directions else "")
        fixtures = f" (fixtures {body['fixtures_in_view']})" if body.get("fixtures_in_view") else ""
        return (
            f"{clock} summary {camera} {visitors} | faces {body['faces_in_view']}{fixtures} "
            f"fps {body['fps']:.1f} dropped {body['frames_dropped']} | {genders} | {groups}"
        )
    if kind == "status":
        return f"{clock} status  {camera} {body['state']}: {body['detail']}"
    return f"{clock} {topic} {json.dumps(body)}"


def _verdict(body: dict, key: str) -> str:
    """``female (p 0.93)``; an unsure one says what it leaned to: ``unknown (female? p 0.53)``.

    A covered face says so (``unknown (face covered; female? p 0.91)``): there the vote's sureness means nothing.
    """
    probabilities: dict = body.get(f"{key}_p") or {}
    answer = body.get(key, "unknown")
    if answer != "unknown":
        return f"{answer} (p {probabilities.get(answer, 0.0):.2f})"
    if not probabilities:
        return "unknown"
    leaning = max(probabilities, key=probabilities.get)
    covered = "face covered; " if body.get("face_covered") else ""
    return f"unknown ({covered}{leaning}? p {probabilities[leaning]:.2f})"


def listen(
    connect: str,
    topic: str = "",
    as_json: bool = False,
    count: int = 0,
    seconds: float = 0.0,
    out: Callable[[str], None] = print,
    context: zmq.Context | None = None,
) -> GapCounter:
    """Print messages until ``count`` were received or ``seconds`` passed (0 = forever)."""
    context = context or zmq.Context.instance()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
    try:
        socket.connect(connect)
    except zmq.ZMQError as error:
        socket.close()
        raise ConfigError(
            f"--connect {connect}: not an address ZeroMQ can connect to ({error.strerror}); "
            "give the analyzer's zmq.bind, e.g. tcp://192.168.1.50:5556"
        ) from None
    gaps = GapCounter()
    received = 0
    deadline = time.monotonic() + seconds if seconds else None
    try:
        while not count or received < count:
            wait_ms = 200 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if deadline is not None and wait_ms == 0:
                break
            if not socket.poll(min(wait_ms, 200)):
                continue
            name, body = messages.decode(socket.recv_multipart())
            received += 1
            skipped = gaps.see(int(body.get("seq", 0)))
            if skipped:
                out(f"GAP: {how_many(skipped, 'message')} missed before seq {body['seq']}")
            out(json.dumps({"topic": name, **body}) if as_json else describe(name, body))
    finally:
        socket.close()
    return gaps
