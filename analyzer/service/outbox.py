"""Messages waiting for a broker, on disk: a dead uplink or a restart loses none of them, up to a bound.

SQLite (standard library) in WAL mode with full syncs: a message put is on
the disk before :meth:`Outbox.put` returns, so a power cut right after a
visit keeps it. Messages leave in the order they were put (one sequence for
the whole box, so the order per camera holds too) and are removed only once
the broker has acknowledged them: a crash between the two sends one again,
which its ``visit_id`` makes recognisable. The outbox is bounded by count and
age; what it drops, oldest first, is counted by reason and said in the log.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import AnalyzerError

DROP_REASONS = ("full", "expired")
#: While the outbox keeps dropping, the log says so once a minute (with the total), not once a visit.
SAY_DROPS_EVERY_S = 60.0


@dataclass(frozen=True)
class Waiting:
    """One message in the outbox."""

    number: int  # its place in the order of sending
    topic: str
    payload: bytes
    put_at: float  # Unix time it was put


class Outbox:
    """A bounded, durable first-in first-out queue of ``(topic, payload)`` messages.

    Example:
        >>> outbox = Outbox(Path("outbox.sqlite"), max_messages=1000, max_age_s=86400)  # doctest: +SKIP
        >>> outbox.put("footfall/shop/door/visit", b"{...}")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: Path,
        max_messages: int,
        max_age_s: float,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_messages = max_messages
        self.max_age_s = max_age_s
        self.log = log
        self.clock = clock
        self.dropped: Counter[str] = Counter()
        self.on_drop: Callable[[str, int], None] = lambda reason, count: None  # e.g. a metric
        self._said_at: dict[str, float] = {}
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (number INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
                "payload BLOB NOT NULL, put_at REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as error:
            raise AnalyzerError(
                f"mqtt.outbox: cannot open {path} ({error}); give a file in a folder this user may write"
            ) from None
        waiting = len(self)
        if waiting:
            self.log(f"MQTT outbox {path}: {waiting} messages from before wait for the broker")

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def put(self, topic: str, payload: bytes) -> None:
        """Keep one message (on the disk when this returns); the oldest go if the outbox is full."""
        with self._lock:
            self._db.execute(
                "INSERT INTO outbox (topic, payload, put_at) VALUES (?, ?, ?)", (topic, payload, self.clock())
            )
            count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
            over = count - self.max_messages
            if over > 0:
                self._drop("full", "number IN (SELECT number FROM outbox ORDER BY number LIMIT ?)", (over,))

    def expire(self) -> None:
        """Drop what waited longer than ``max_age_s``."""
        with self._lock:
            self._drop("expired", "put_at < ?", (self.clock() - self.max_age_s,))

    def _drop(self, reason: str, where: str, arguments: tuple[object, ...]) -> None:
        gone = self._db.execute(f"DELETE FROM outbox WHERE {where}", arguments).rowcount
        if gone <= 0:
            return
        self.dropped[reason] += gone
        self.on_drop(reason, gone)
        now = self.clock()
        if now - self._said_at.get(reason, float("-inf")) >= SAY_DROPS_EVERY_S:  # a long outage: a line a minute
            self._said_at[reason] = now
            why = f"it holds {self.max_messages} at most" if reason == "full" else f"older than {self.max_age_s:g} s"
            self.log(
                f"MQTT outbox {self.path}: dropping the oldest waiting messages ({why}): {self.dropped[reason]} "
                "dropped so far; is the broker reachable?"
            )

    def oldest(self, count: int = 1) -> list[Waiting]:
        """The next messages to send, oldest first (they stay until :meth:`remove`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT number, topic, payload, put_at FROM outbox ORDER BY number LIMIT ?", (count,)
            ).fetchall()
        return [
            Waiting(int(number), str(topic), bytes(payload), float(put_at)) for number, topic, payload, put_at in rows
        ]

    def remove(self, number: int) -> None:
        """The broker has the message: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE number = ?", (number,))

    def close(self) -> None:
        """Close the file (what waits stays in it for the next run)."""
        with self._lock:
            self._db.close()
