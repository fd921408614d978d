"""Is the analyzer still counting? Each worker loop's heartbeat, and the watchdog that reads them.

Capture has its own watchdog: a live stream with no data reconnects. What it
cannot see is one of the analyzer's own loops that stops moving while the
process lives on: a detector or classifier call that never returns (a hung
MediaPipe graph, a GPU driver). Counts would freeze while ``/metrics`` is
still served and systemd sees a running service. Every worker loop wakes at
least twice a second, with work or without (a camera that is down included),
and beats here each turn; a loop whose last beat is older than
``health.stall_after_s`` is stalled. The watchdog then logs where it is stuck,
``/healthz`` answers 503, and under systemd the service is restarted.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from analyzer.service.console import how_many
from analyzer.service.systemd import SystemdNotifier

STACK_FRAMES = 6  # of a stalled loop's stack, the innermost frames logged: where it waits


@dataclass(frozen=True)
class Stall:
    """A loop that has not beaten for ``seconds``, and the code it is stuck in (innermost last)."""

    loop: str
    seconds: float
    stack: tuple[str, ...]

    def summary(self) -> str:
        """``camera door: no progress for 31 s``."""
        return f"{self.loop}: no progress for {self.seconds:.0f} s"


def stalled_line(stalls: list[Stall]) -> str:
    """``stalled: classifier: no progress for 31 s`` (for /healthz and systemd's status line)."""
    return "stalled: " + "; ".join(stall.summary() for stall in stalls)


class Heartbeats:
    """The last time each running loop made a turn.

    Example:
        >>> heartbeats = Heartbeats()
        >>> heartbeats.beat("classifier")
        >>> heartbeats.health(stall_after_s=30)
        (True, 'ok: 1 loop moving')
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}  # loop: (time of its last beat, its thread)

    def beat(self, loop: str) -> None:
        """``loop`` has made a turn (called by the loop's own thread)."""
        with self._lock:
            self._last[loop] = (self._clock(), threading.get_ident())

    def finished(self, loop: str) -> None:
        """``loop`` has ended (a file's camera at its end): no beat is expected from it any more."""
        with self._lock:
            self._last.pop(loop, None)

    def silent_for(self, loop: str) -> float | None:
        """Seconds since ``loop`` last beat; None when it has not started or has finished."""
        with self._lock:
            last = self._last.get(loop)
        return None if last is None else self._clock() - last[0]

    def stalls(self, stall_after_s: float) -> list[Stall]:
        """The loops that have not beaten for more than ``stall_after_s``, with where each is stuck."""
        now = self._clock()
        with self._lock:
            last = dict(self._last)
        frames = sys._current_frames()  # documented in sys, for diagnostics like this one
        stalls = []
        for loop, (beaten_at, thread) in sorted(last.items()):
            if now - beaten_at > stall_after_s:
                frame = frames.get(thread)
                stack = traceback.format_stack(frame)[-STACK_FRAMES:] if frame is not None else ["(its thread ended)"]
                stalls.append(Stall(loop, now - beaten_at, tuple(entry.rstrip() for entry in stack)))
        return stalls

    def health(self, stall_after_s: float) -> tuple[bool, str]:
        """What ``/healthz`` answers: healthy or not, and one line saying so."""
        stalls = self.stalls(stall_after_s)
        if stalls:
            return False, stalled_line(stalls)
        with self._lock:
            moving = len(self._last)
        return True, f"ok: {how_many(moving, 'loop')} moving"


class Watchdog:
    """Reads the heartbeats about once a second and tells the log and systemd.

    While every loop moves it pings systemd (``WATCHDOG=1``). When one stalls
    it logs that once, with the code the loop is stuck in, and tells systemd
    at once (``WATCHDOG=trigger``), which kills the process and, per the unit,
    restarts it; pings stop too, for a systemd too old to know ``trigger``.
    A loop that moves again is logged as such.
    """

    def __init__(
        self,
        heartbeats: Heartbeats,
        stall_after_s: float,
        notifier: SystemdNotifier,
        log: Callable[[str], None],
        status: Callable[[], str] = lambda: "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.heartbeats = heartbeats
        self.stall_after_s = stall_after_s
        self.notifier = notifier
        self.log = log
        self.status = status
        self.clock = clock
        interval = notifier.watchdog_interval_s
        self.check_every_s = min(1.0, interval / 2) if interval else 1.0
        self.stalled: set[str] = set()
        self._last_round: float | None = None
        self._last_status = ""

    def check(self) -> None:
        """One round: judge every loop, log what changed, tell systemd."""
        now = self.clock()
        paused = self._last_round is not None and now - self._last_round > self.check_every_s + self.stall_after_s / 2
        self._last_round = now
        if paused:  # this thread was not run either (SIGSTOP, a frozen VM): give the loops a turn before judging
            return
        stalls = self.heartbeats.stalls(self.stall_after_s)
        stalled_now = {stall.loop for stall in stalls}
        newly_stalled = stalled_now - self.stalled
        for stall in stalls:
            if stall.loop in newly_stalled:
                self.log(
                    f"stalled: {stall.summary()} (health.stall_after_s: {self.stall_after_s:g}); /healthz answers 503"
                    + ("; asking systemd to restart the analyzer" if self.notifier.enabled else "")
                    + ". It is waiting in:\n"
                    + "\n".join(stall.stack)
                )
        for loop in sorted(self.stalled - stalled_now):
            self.log(f"{loop}: moving again")
        self.stalled = stalled_now
        if stalls:
            self._set_status(stalled_line(stalls))
            if newly_stalled:
                self.notifier.trigger()
            return
        self.notifier.ping()
        self._set_status(self.status())

    def _set_status(self, text: str) -> None:
        if text and text != self._last_status:
            self._last_status = text
            self.notifier.status(text)

    def run_until(self, done: threading.Event) -> None:
        """Check every ``check_every_s`` until ``done`` is set (run in a thread of its own)."""
        while not done.wait(self.check_every_s):
            self.check()
