"""The MQTT outbox: on disk, in order, bounded by count and age, and saying what it dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.errors import AnalyzerError
from analyzer.service.outbox import Outbox
from tests.harness import ManualClock


def _outbox(path: Path, clock: ManualClock, lines: list[str], max_messages: int = 5, max_age_s: float = 600) -> Outbox:
    return Outbox(path, max_messages=max_messages, max_age_s=max_age_s, log=lines.append, clock=clock)


def test_at_its_bound_the_outbox_drops_the_oldest_counts_them_and_says_so_once_a_minute(tmp_path: Path) -> None:
    clock, lines, dropped = ManualClock(), [], []
    outbox = _outbox(tmp_path / "outbox.sqlite", clock, lines)
    outbox.on_drop = lambda reason, count: dropped.append((reason, count))
    for number in range(8):
        outbox.put("footfall/shop/door/visit", f"visit {number}".encode())
    assert len(outbox) == 5 and outbox.oldest(1)[0].payload == b"visit 3"
    assert outbox.dropped["full"] == 3 and dropped == [("full", 1)] * 3
    assert len(lines) == 1 and "dropping the oldest waiting messages (it holds 5 at most): 1 dropped" in lines[0]
    clock.now += 61
    outbox.put("footfall/shop/door/visit", b"visit 8")
    assert len(lines) == 2 and "4 dropped so far" in lines[1]


def test_what_waited_too_long_expires_and_what_is_left_keeps_its_order_across_a_restart(tmp_path: Path) -> None:
    clock, lines = ManualClock(), []
    path = tmp_path / "state" / "outbox.sqlite"  # its folder is made
    outbox = _outbox(path, clock, lines, max_messages=100, max_age_s=50)
    for number in range(3):
        outbox.put("a", f"old {number}".encode())
    clock.now += 100
    for number in range(2):
        outbox.put("b", f"new {number}".encode())
    outbox.expire()
    assert outbox.dropped["expired"] == 3 and "older than 50 s" in lines[-1]
    first = outbox.oldest(1)[0]
    outbox.remove(first.number)  # the broker acknowledged it
    outbox.close()
    again = _outbox(path, clock, lines, max_messages=100)
    assert [(message.topic, message.payload) for message in again.oldest(10)] == [("b", b"new 1")]
    assert "1 messages from before wait for the broker" in lines[-1]
    again.put("c", b"newer")
    assert [message.payload for message in again.oldest(10)] == [b"new 1", b"newer"]


def test_an_outbox_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(AnalyzerError, match=r"mqtt.outbox: cannot open .*a-file/outbox.sqlite"):
        Outbox(blocker / "outbox.sqlite", 10, 60)
