"""The run report (``--report``), the live status lines and the final table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from analyzer.core.age_groups import AgeGrouping
from analyzer.core.visits import DIRECTIONS, Visit
from analyzer.service.console import how_many

REPORT_SCHEMA = "footfall-report/1"


def in_age_order(keys: Iterable[str], age_groups: Sequence[str]) -> list[str]:
    """``keys`` youngest group first, as ``age_groups`` lists them; anything else (``unknown``) after.

    Group names sort wrongly as text ("3-9" after "20-29", "young" after
    "old"). A ``group|gender`` key ranks by its group, then by gender.
    """
    rank = {name: index for index, name in enumerate(age_groups)}
    return sorted(keys, key=lambda key: (rank.get(key.partition("|")[0], len(rank)), key))


@dataclass
class Tally:
    """Visitors counted, overall and by age group, gender, both and line direction.

    Kept as visits come, so the running totals (summaries, the final table)
    do not need every visit of a long run kept in memory.
    """

    visitors: int = 0
    by_age_group: Counter[str] = field(default_factory=Counter)
    by_gender: Counter[str] = field(default_factory=Counter)
    by_age_group_gender: Counter[str] = field(default_factory=Counter)
    by_direction: Counter[str] = field(default_factory=Counter)

    def count(self, age_group: str, gender: str, direction: str | None) -> None:
        """One more visitor."""
        self.visitors += 1
        self.by_age_group[age_group] += 1
        self.by_gender[gender] += 1
        self.by_age_group_gender[f"{age_group}|{gender}"] += 1
        if direction is not None:
            self.by_direction[direction] += 1

    def add(self, visit: Visit) -> None:
        """Count ``visit``."""
        self.count(visit.attributes.age_group, visit.attributes.gender, visit.direction)

    def headline(self, lined: bool) -> str:
        """``5 visitors``, with ``(in 3, out 1)`` on a camera with a counting line: the status line's and preview's."""
        crossed = f" (in {self.by_direction['in']}, out {self.by_direction['out']})" if lined else ""
        return f"{how_many(self.visitors, 'visitor')}{crossed}"

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.visitors + other.visitors,
            self.by_age_group + other.by_age_group,
            self.by_gender + other.by_gender,
            self.by_age_group_gender + other.by_age_group_gender,
            self.by_direction + other.by_direction,
        )

    def to_dict(self, age_groups: Sequence[str] = ()) -> dict[str, object]:
        """The ``totals`` of the report and of summary messages, age groups in ``age_groups``' order."""
        result: dict[str, object] = {
            "visitors": self.visitors,
            "by_age_group": {group: self.by_age_group[group] for group in in_age_order(self.by_age_group, age_groups)},
            "by_gender": dict(sorted(self.by_gender.items())),
            "by_age_group_gender": {
                key: self.by_age_group_gender[key] for key in in_age_order(self.by_age_group_gender, age_groups)
            },
        }
        if self.by_direction:
            result["by_direction"] = dict(sorted(self.by_direction.items()))
        return result


VisitDocument = dict[str, object]  # one visit as the report writes it (and reads it back from a day's file)


def visit_document(visit: Visit) -> VisitDocument:
    """A visit as the report lists it: the ZeroMQ message's fields, with its camera."""
    return {"camera": visit.camera, **visit.to_dict()}


def report_document(
    grouping: AgeGrouping,
    visits: dict[str, list[VisitDocument]],
    per_camera: dict[str, dict[str, object]] | None = None,
    tallies: dict[str, Tally] | None = None,
    **header: object,
) -> dict[str, object]:
    """A ``footfall-report/1`` document: each camera's visits and totals, then the totals of all.

    Built from visit documents, so a day's file can count the visits an
    earlier run left in it (read back as JSON) with this run's own.
    ``per_camera`` adds fields to a camera's entry, ``header`` to the top;
    ``tallies`` gives a camera's totals when its list holds only its latest visits.
    """
    cameras: dict[str, object] = {}
    everyone = Tally()
    for camera, documents in visits.items():
        tally = Tally()
        for visit in documents:
            direction = visit.get("direction")
            tally.count(str(visit["age_group"]), str(visit["gender"]), None if direction is None else str(direction))
        if tallies is not None and camera in tallies:
            tally = tallies[camera]
        everyone += tally
        totals = tally.to_dict(grouping.names)
        cameras[camera] = {"visits": documents, "totals": totals, **(per_camera or {}).get(camera, {})}
    return {
        "schema": REPORT_SCHEMA,
        "age_grouping": grouping.name,
        **header,
        "cameras": cameras,
        "totals": everyone.to_dict(grouping.names),
    }


def site_header(sites: set[str]) -> dict[str, object]:
    """``{"site": name}`` for a report whose cameras all count for one shop; {} otherwise (each camera says)."""
    return {"site": next(iter(sites))} if len(sites) == 1 else {}


@dataclass
class CameraStats:
    """Health of one camera over the last status interval."""

    camera: str
    fps: float = 0.0
    faces_in_view: int = 0
    fixtures_in_view: int = 0  # faces as still as a photo (posters): never visitors
    faces_seen: int = 0  # tracked faces summed over frames (what a per-frame classifier would run on)
    frames: int = 0
    dropped: int = 0
    state: str = "starting"
    reconnects: int = 0  # times the stream went down and was opened again
    motionless: int = 0  # frames the motion gate let skip the detector


@dataclass
class RunReport:
    """Everything counted in a run, per camera.

    A service runs for months: each visit is counted in ``tallies`` (totals,
    summaries, the table) and listed in ``visits`` only as far as
    ``keep_visits`` allows: None lists every one (a file's run, or one day's
    with ``{date}``, whose finished days are let go), 0 none (no report
    asked for), N the latest N per camera, the older ones counted in
    ``left_out``.
    """

    cameras: list[str]
    grouping: AgeGrouping
    visits: dict[str, list[Visit]] = field(default_factory=dict)
    stats: dict[str, CameraStats] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    tallies: dict[str, Tally] = field(default_factory=dict)  # every visit of the run, counted
    lined: set[str] = field(default_factory=set)  # cameras with a counting line: in/out shown from the start
    keep_visits: int | None = None
    left_out: dict[str, int] = field(default_factory=dict)  # visits counted but no longer listed, per camera
    sites: dict[str, str] = field(default_factory=dict)  # the shop each camera counts for (docs/FLEET.md)

    def __post_init__(self) -> None:
        for camera in self.cameras:
            self.visits.setdefault(camera, [])
            self.stats.setdefault(camera, CameraStats(camera))
            self.tallies.setdefault(camera, Tally())
            self.left_out.setdefault(camera, 0)

    def add(self, visit: Visit) -> None:
        """Record one counted visit."""
        self.tallies[visit.camera].add(visit)
        listed = self.visits[visit.camera]
        listed.append(visit)
        if self.keep_visits is not None and len(listed) > self.keep_visits:
            del listed[0]
            self.left_out[visit.camera] += 1

    def to_dict(self) -> dict[str, object]:
        """The ``footfall-report/1`` document, with each camera's frames and problem (and visits left out)."""
        health = {
            camera: {
                "frames": self.stats[camera].frames,
                "frames_dropped": self.stats[camera].dropped,
                **({"frames_motionless": self.stats[camera].motionless} if self.stats[camera].motionless else {}),
                **({"site": self.sites[camera]} if camera in self.sites else {}),
                **({"problem": self.problems[camera]} if camera in self.problems else {}),
                **({"visits_left_out": self.left_out[camera]} if self.left_out[camera] else {}),
            }
            for camera in self.visits
        }
        visits = {camera: [visit_document(visit) for visit in visits] for camera, visits in self.visits.items()}
        counted = {camera: self.tallies[camera] for camera, left_out in self.left_out.items() if left_out}
        shops = set(self.sites.values())
        return report_document(self.grouping, visits, health, tallies=counted, **site_header(shops))

    def status_line(self, camera: str) -> str:
        """One line of live status for a camera."""
        stats = self.stats[camera]
        fixtures = f" ({how_many(stats.fixtures_in_view, 'fixture')} ignored)" if stats.fixtures_in_view else ""
        return (
            f"[{camera}] {stats.state:<8} {stats.fps:5.1f} fps | {how_many(stats.faces_in_view, 'face')} in view"
            f"{fixtures} | {self.headline(camera)} | {how_many(stats.dropped, 'frame')} dropped"
        )

    def has_line(self, camera: str) -> bool:
        """Whether ``camera`` counts line crossings: configured so (``lined``), or its visits crossed one."""
        tally = self.tallies.get(camera)  # (the web page asks of cameras an earlier run left in today's file too)
        return camera in self.lined or bool(tally and tally.by_direction)

    def summary(self, camera: str) -> dict[str, object]:
        """A ``summary.<camera>`` message's counts and health.

        On a camera with a line ``by_direction`` is there from the start with
        ``in``, ``out`` and ``none``, zeros included, so a subscriber can
        read ``by_direction["out"]`` before anyone has left.
        """
        stats, tally = self.stats[camera], self.tallies[camera]
        totals = tally.to_dict(self.grouping.names)
        crossed = {way: tally.by_direction[way] for way in DIRECTIONS}
        return {
            "visitors": totals["visitors"],
            "by_age_group": totals["by_age_group"],
            "by_gender": totals["by_gender"],
            **({"by_direction": crossed} if self.has_line(camera) else {}),
            "faces_in_view": stats.faces_in_view,
            "fixtures_in_view": stats.fixtures_in_view,
            "fps": round(stats.fps, 2),
            "frames_dropped": stats.dropped,
        }

    def headline(self, camera: str) -> str:
        """What ``camera`` has counted so far, in/out included where it has a line (status line, preview)."""
        return self.tallies[camera].headline(self.has_line(camera))

    def service_status(self) -> str:
        """One line for ``systemctl status``: which cameras deliver, and the visitors counted so far."""
        down = [camera for camera in self.cameras if self.stats[camera].state != "up"]
        visitors = sum(tally.visitors for tally in self.tallies.values())
        cameras = f"cameras up: {len(self.cameras) - len(down)} of {len(self.cameras)}"
        return cameras + (f" (not up: {', '.join(down)})" if down else "") + f"; visitors: {visitors}"

    def table(self) -> str:
        """The final summary table: visitors per camera by age group and gender, and by line direction.

        The ``in``/``out`` columns appear when a camera has a counting line;
        ``-`` marks a camera without one.
        """
        rows = [*self.tallies.items(), ("TOTAL", sum(self.tallies.values(), Tally()))]
        groups = in_age_order(rows[-1][1].by_age_group, self.grouping.names)
        lined = {camera for camera in self.tallies if self.has_line(camera)}
        lined |= {"TOTAL"} if lined else set()
        header = f"{'camera':<14}{'visitors':>9}{'female':>8}{'male':>7}{'unknown':>8}"
        header += f"{'in':>6}{'out':>6}" if lined else ""
        header += "  " + "  ".join(groups)
        lines = [header, "-" * len(header)]
        for camera, tally in rows:
            gender, age, direction = tally.by_gender, tally.by_age_group, tally.by_direction
            line = f"{camera:<14}{tally.visitors:>9}{gender['female']:>8}{gender['male']:>7}{gender['unknown']:>8}"
            if lined:
                line += f"{direction['in']:>6}{direction['out']:>6}" if camera in lined else f"{'-':>6}{'-':>6}"
            lines.append(line + "  " + "  ".join(f"{age[group]:>{len(group)}}" for group in groups))
        for camera, problem in self.problems.items():
            lines.append(f"{camera}: {problem}")
        return "\n".join(lines)
