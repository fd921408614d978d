"""The day at a glance: what the web page shows, counted from the report's own visit documents.

The totals are :class:`~analyzer.outputs.report.Tally` sums, as the report's
are, so the page and ``--report`` agree to the visitor. The page shows one
day: the day of the newest visit (a recording played with ``recorded_at``
shows its own day), or today before anyone came. Earlier days come from
this run's memory and from the daily report files (``--report
'report-{date}.json'``). Only counts, times and attributes are kept: no
image, no position, no visit id beyond the latest few listed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from analyzer.core.age_groups import AgeGrouping
from analyzer.outputs.report import Tally, VisitDocument

#: Visits the page lists as they come.
LATEST_VISITS = 20
#: Days of history on the page, today included.
DAYS_SHOWN = 7
#: Upper edges (seconds) of the dwell histogram's bars; the last bar takes the rest.
DWELL_EDGES_S = (10, 30, 60, 120, 300, 900)
#: A page that cannot keep up with this many events is dropped; it reconnects and reads the day anew.
EVENTS_QUEUED = 256

DayTotals = dict[str, object]  # a report's ``totals`` (Tally.to_dict)


def local_day(timestamp: float) -> date:
    """The box's calendar day of a Unix time: a visit's day, as the daily report files file it."""
    return datetime.fromtimestamp(timestamp).date()


@dataclass
class _CameraDay:
    """One camera's visits of one day: counted as the report counts them, by hour, with their dwell."""

    tally: Tally = field(default_factory=Tally)
    by_hour: np.ndarray = field(default_factory=lambda: np.zeros(24, np.int64))
    in_by_hour: np.ndarray = field(default_factory=lambda: np.zeros(24, np.int64))
    out_by_hour: np.ndarray = field(default_factory=lambda: np.zeros(24, np.int64))
    dwell_s: list[float] = field(default_factory=list)

    def add(self, visit: VisitDocument) -> None:
        direction = visit.get("direction")
        self.tally.count(str(visit["age_group"]), str(visit["gender"]), None if direction is None else str(direction))
        hour = datetime.fromtimestamp(float(visit["end"])).hour  # type: ignore[arg-type]
        self.by_hour[hour] += 1
        if direction == "in":
            self.in_by_hour[hour] += 1
        elif direction == "out":
            self.out_by_hour[hour] += 1
        self.dwell_s.append(float(visit["dwell_s"]))  # type: ignore[arg-type]

    def merged(self, other: _CameraDay) -> _CameraDay:
        return _CameraDay(
            self.tally + other.tally,
            self.by_hour + other.by_hour,
            self.in_by_hour + other.in_by_hour,
            self.out_by_hour + other.out_by_hour,
            self.dwell_s + other.dwell_s,
        )

    def to_dict(self, age_groups: Sequence[str], lined: bool) -> dict[str, object]:
        dwell = np.asarray(self.dwell_s, float)
        counts = np.bincount(np.searchsorted(DWELL_EDGES_S, dwell, side="right"), minlength=len(DWELL_EDGES_S) + 1)
        totals = self.tally.to_dict(age_groups)
        return {
            "totals": totals,
            # every configured group, youngest first, zeros included: the chart keeps its axis all day
            "by_age_group": {
                group: self.tally.by_age_group[group]
                for group in [*age_groups, *(key for key in self.tally.by_age_group if key not in age_groups)]
            },
            "lined": lined,
            "by_hour": self.by_hour.tolist(),
            "in_by_hour": self.in_by_hour.tolist(),
            "out_by_hour": self.out_by_hour.tolist(),
            "dwell": {
                "median_s": round(float(np.median(dwell)), 1) if len(dwell) else None,
                "mean_s": round(float(dwell.mean()), 1) if len(dwell) else None,
                "edges_s": list(DWELL_EDGES_S),
                "counts": counts.tolist(),
            },
        }


class Today:
    """The shown day's visits per camera, the days before, and the pages listening for new visits.

    Fed by the run's publishing thread (:meth:`add`), read by the web
    server's (:meth:`snapshot`, :meth:`subscribe`): every access takes the lock.

    Args:
        grouping: the age grouping visits are reported in (groups in its order, youngest first).
        cameras: camera ids, in the config's order.
        has_line: whether a camera counts line crossings (the report's own answer, set-up changes included).
        saved_day: a day's report file as a document (None when there is none): today's earlier visits.
        saved_totals: a day's report file's totals (None when there is none): the days before.
        clock: Unix time now.
    """

    def __init__(
        self,
        grouping: AgeGrouping,
        cameras: Sequence[str],
        has_line: Callable[[str], bool],
        saved_day: Callable[[date], dict[str, object] | None] = lambda day: None,
        saved_totals: Callable[[date], dict[str, object] | None] = lambda day: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.grouping = grouping
        self.cameras = list(cameras)
        self.has_line = has_line
        self.saved_totals = saved_totals
        self.clock = clock
        self._lock = threading.Lock()
        self.day = local_day(clock())
        self._cameras = {camera: _CameraDay() for camera in self.cameras}
        self._earlier: dict[date, Tally] = {}  # this run's visits of days before the shown one
        self._latest: list[VisitDocument] = []
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, object] | None]]] = []
        self._count_saved(saved_day(self.day))

    def _count_saved(self, document: dict[str, object] | None) -> None:
        """Count the visits an earlier run today left in today's report file: the page shows the whole day."""
        cameras = document.get("cameras") if document else None
        if not isinstance(cameras, dict):
            return
        for camera, body in cameras.items():
            for visit in body.get("visits", []) if isinstance(body, dict) else []:
                self._cameras.setdefault(str(camera), _CameraDay()).add({"camera": camera, **visit})

    def add(self, visit: VisitDocument) -> None:
        """Count one visit (the report's document of it) and tell the listening pages."""
        day = local_day(float(visit["end"]))  # type: ignore[arg-type]
        with self._lock:
            if day > self.day:
                self._turn_to(day)
            if day < self.day:  # a late visit of an earlier day: counted there
                self._earlier.setdefault(day, Tally()).count(
                    str(visit["age_group"]),
                    str(visit["gender"]),
                    visit.get("direction"),  # type: ignore[arg-type]
                )
            else:
                self._cameras.setdefault(str(visit["camera"]), _CameraDay()).add(visit)
                self._latest = [visit, *self._latest[: LATEST_VISITS - 1]]
            listeners = list(self._listeners)
        for loop, events in listeners:
            loop.call_soon_threadsafe(self._deliver, events, {"visit": _listed(visit)})

    def _turn_to(self, day: date) -> None:
        for camera_day in self._cameras.values():
            self._earlier[self.day] = self._earlier.get(self.day, Tally()) + camera_day.tally
        self.day = day
        self._cameras = {camera: _CameraDay() for camera in self.cameras}
        self._latest = []

    def _deliver(self, events: asyncio.Queue[dict[str, object] | None], event: dict[str, object]) -> None:
        """On the server's loop: queue ``event`` for one page, or drop a page that stopped reading."""
        try:
            events.put_nowait(event)
        except asyncio.QueueFull:
            self._listeners = [listener for listener in self._listeners if listener[1] is not events]
            events.get_nowait()
            events.put_nowait(None)  # the page reconnects and reads the day anew

    def subscribe(self) -> asyncio.Queue[dict[str, object] | None]:
        """A queue of new visits for one page (call on the server's loop); None in it: the page must reconnect."""
        events: asyncio.Queue[dict[str, object] | None] = asyncio.Queue(EVENTS_QUEUED)
        with self._lock:
            self._listeners.append((asyncio.get_running_loop(), events))
        return events

    def unsubscribe(self, events: asyncio.Queue[dict[str, object] | None]) -> None:
        """The page went away."""
        with self._lock:
            self._listeners = [listener for listener in self._listeners if listener[1] is not events]

    def close_listeners(self) -> None:
        """The server stops: every page's stream ends."""
        with self._lock:
            listeners, self._listeners = self._listeners, []
        for loop, events in listeners:
            loop.call_soon_threadsafe(events.put_nowait, None)

    def snapshot(self) -> dict[str, object]:
        """The shown day per camera and in total, the latest visits and the days before."""
        names = self.grouping.names
        with self._lock:
            if local_day(self.clock()) > self.day:
                self._turn_to(local_day(self.clock()))
            cameras = {camera: day.to_dict(names, self.has_line(camera)) for camera, day in self._cameras.items()}
            everyone = _CameraDay()
            for camera_day in self._cameras.values():
                everyone = everyone.merged(camera_day)
            shown, latest, earlier = self.day, list(self._latest), dict(self._earlier)
            lined = any(self.has_line(camera) for camera in self._cameras)
        return {
            "date": shown.isoformat(),
            "age_groups": list(names),
            "cameras": cameras,
            "total": everyone.to_dict(names, lined),
            "latest": [_listed(visit) for visit in latest],
            "days": self._days(shown, everyone.tally, earlier),
        }

    def _days(self, shown: date, today: Tally, earlier: dict[date, Tally]) -> list[dict[str, object]]:
        """Visitors per day, oldest first, the shown day last; a day's file (if any) is its whole count."""
        days = []
        for back in range(DAYS_SHOWN - 1, 0, -1):
            day = shown - timedelta(days=back)
            totals = self.saved_totals(day)
            if totals is not None:
                visitors = int(totals.get("visitors", 0))  # type: ignore[call-overload]
                by_gender = dict(totals.get("by_gender", {}))  # type: ignore[call-overload]
            else:
                tally = earlier.get(day, Tally())
                visitors, by_gender = tally.visitors, dict(tally.by_gender)
            days.append({"date": day.isoformat(), "visitors": visitors, "by_gender": by_gender})
        days.append({"date": shown.isoformat(), "visitors": today.visitors, "by_gender": dict(today.by_gender)})
        return days


def _listed(visit: VisitDocument) -> dict[str, object]:
    """What the page lists of a visit: when, where, who in broad strokes, how long."""
    keys = ("camera", "end", "dwell_s", "age_group", "gender", "direction", "face_covered")
    return {key: visit[key] for key in keys if key in visit}
