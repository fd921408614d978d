"""One report file per day, for runs that count for months: ``--report 'report-{date}.json'``.

A plain ``--report`` is written once, when the run stops, from every visit
kept in memory: a service that counts for months grows with every visitor,
and a crash or a power cut loses the whole report. With ``{date}`` in the
name, each visit goes to the file of the day it ended (this box's local date;
a recording's own date with ``recorded_at``). A day's file is rewritten
whole while its visits come (every ``rewrite_every_s``) and once more at the
stop, so a crash loses at most that long of the report. A day that ended
``release_after_s`` before the newest visit lets its visits go from memory.
A day's file that is there already (an earlier run today, or a day let go
that still gets a visit) is added to, never replaced. While a day's file is
being written it is claimed (``output_claims.py``), so a run given that
day's name (``--report report-2026-12-04.json``) cannot write it too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from analyzer.core.age_groups import AgeGrouping
from analyzer.core.visits import Visit
from analyzer.errors import AnalyzerError
from analyzer.outputs.report import (
    REPORT_SCHEMA,
    RunReport,
    VisitDocument,
    report_document,
    site_header,
    visit_document,
)
from analyzer.service.atomic_files import write_json
from analyzer.service.console import log_line
from analyzer.service.output_locks import OutputClaim

DATE_FIELD = "{date}"


def is_daily(path: Path) -> bool:
    """Does this ``--report`` name ask for one file per day?"""
    return DATE_FIELD in path.name


class DailyReportFiles:
    """Writes each day's visits to its own file and lets finished days go from memory.

    Example:
        >>> from analyzer.core.age_groups import builtin_grouping
        >>> files = DailyReportFiles(Path("report-{date}.json"), builtin_grouping("fairface9"))
        >>> files.path_of(date(2026, 12, 3)).name
        'report-2026-12-03.json'
    """

    def __init__(
        self,
        template: Path,
        grouping: AgeGrouping,
        rewrite_every_s: float = 60.0,
        release_after_s: float = 3600.0,
        log: Callable[[str], None] = log_line,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.template = template
        self.grouping = grouping
        self.rewrite_every_s = rewrite_every_s
        self.release_after_s = release_after_s
        self.log = log
        self.clock = clock
        self._next_write = clock() + rewrite_every_s
        self._earlier: dict[date, dict[str, list[VisitDocument]]] = {}  # per day: what its file held before us
        self._written: dict[date, int] = {}  # per day: how many of this run's visits its file holds
        self._claims: dict[date, OutputClaim] = {}  # per day being written: no other run may write its file
        self._newest_end = float("-inf")
        self._sites: dict[str, str] = {}  # the shop of each camera, for the files' header
        self._totals_read: dict[date, tuple[tuple[int, int], dict[str, object] | None]] = {}  # by file stamp

    def path_of(self, day: date) -> Path:
        """The file of ``day``."""
        return self.template.with_name(self.template.name.replace(DATE_FIELD, day.isoformat()))

    def due(self) -> bool:
        """Time to write the days that got visits (called from the run's publishing loop)."""
        return self.clock() >= self._next_write

    def write(self, report: RunReport, final: bool = False) -> list[Path]:
        """Rewrite every day that got visits since the last write; let go of days long over.

        A file that cannot be written (a full disk, or another run writing
        that day's file by its own name) is one log line and is tried again
        at the next write, so counting goes on; at the final write it is an
        error. The final write lets go of every day's file.
        """
        self._next_write = self.clock() + self.rewrite_every_s
        self._sites = report.sites
        days = self._visits_by_day(report)
        written = []
        try:
            for day, visits in sorted(days.items()):
                count = sum(len(camera_visits) for camera_visits in visits.values())
                if self._written.get(day) == count:
                    continue
                path = self.path_of(day)
                try:
                    if day not in self._claims:
                        self._claims[day] = OutputClaim("--report", path)
                    if day not in self._earlier:
                        self._earlier[day] = self._read_earlier(path)
                    self._write_day(path, day, visits)
                except AnalyzerError as error:
                    if final:
                        raise
                    self.log(f"{error}; trying again in {self.rewrite_every_s:g} s")
                    continue
                self._written[day] = count
                written.append(path)
        finally:
            if final:
                self._let_go(set(self._claims))
        self._release(report, days)
        return written

    def _visits_by_day(self, report: RunReport) -> dict[date, dict[str, list[Visit]]]:
        days: dict[date, dict[str, list[Visit]]] = {}
        for camera, visits in report.visits.items():
            for visit in visits:
                days.setdefault(_day_of(visit), {}).setdefault(camera, []).append(visit)
                self._newest_end = max(self._newest_end, visit.end)
        return days

    def _document(self, path: Path) -> dict[str, object]:
        """A day's file as a report of this run's age grouping; ValueError (or OSError) says why it is not one."""
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("schema") != REPORT_SCHEMA:
            raise ValueError(f"not a {REPORT_SCHEMA} document")
        if document.get("age_grouping") != self.grouping.name:
            raise ValueError(
                f"a report of {document.get('age_grouping')!r} age groups, this run counts in {self.grouping.name!r}"
            )
        return document

    def saved_day(self, day: date) -> dict[str, object] | None:
        """``day``'s file as written (the web page's day at start); None when there is none or it is not one."""
        try:
            return self._document(self.path_of(day))
        except (OSError, ValueError):
            return None

    def saved_totals(self, day: date) -> dict[str, object] | None:
        """The ``totals`` of ``day``'s file (the web page's days before), read again only when the file changed.

        A busy day's file holds every visit: the page asks for six days at every visit it shows.
        """
        path = self.path_of(day)
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._totals_read.get(day)
        if cached is None or cached[0] != stamp:
            document = self.saved_day(day)
            totals = document.get("totals") if document is not None else None
            cached = self._totals_read[day] = (stamp, totals if isinstance(totals, dict) else None)
        return cached[1]

    def _read_earlier(self, path: Path) -> dict[str, list[VisitDocument]]:
        """The visits a day's file already holds; a file that is not such a report is moved aside, not lost."""
        if not path.exists():
            return {}
        try:
            document = self._document(path)
            return {str(camera): list(body["visits"]) for camera, body in document["cameras"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            aside = path.with_name(f"{path.name}.{int(time.time())}.old")
            try:
                path.replace(aside)
            except OSError as moving:
                raise AnalyzerError(f"cannot move {path} aside ({moving.strerror})") from None
            self.log(f"{path}: not a report this run can add to ({error}); kept as {aside.name}, starting the day anew")
            return {}

    def _write_day(self, path: Path, day: date, visits: dict[str, list[Visit]]) -> None:
        earlier = self._earlier[day]
        documents = {
            camera: [*earlier.get(camera, []), *map(visit_document, visits.get(camera, []))]
            for camera in sorted({*earlier, *visits})
        }
        header = site_header(set(self._sites.values()))
        write_json(path, report_document(self.grouping, documents, date=day.isoformat(), **header))

    def _release(self, report: RunReport, days: dict[date, dict[str, list[Visit]]]) -> None:
        """Drop the visits of written days that ended ``release_after_s`` before the newest visit."""
        over = {
            day
            for day in days
            if self._written.get(day) is not None and self._newest_end - _end_of(day) >= self.release_after_s
        }
        if not over:
            return
        for camera, visits in report.visits.items():
            report.visits[camera] = [visit for visit in visits if _day_of(visit) not in over]
        for day in over:  # a late visit of that day reads its file again
            del self._earlier[day], self._written[day]
        self._let_go(over)

    def _let_go(self, days: set[date]) -> None:
        for day in days & set(self._claims):
            self._claims.pop(day).release()


def _day_of(visit: Visit) -> date:
    return datetime.fromtimestamp(visit.end).date()


def _end_of(day: date) -> float:
    return datetime.combine(day + timedelta(days=1), datetime.min.time()).timestamp()
