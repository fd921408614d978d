"""The run report (``--report``), the live status lines and the final table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from analyzer.footfall import Visit

REPORT_SCHEMA = "footfall-report/1"


def totals(visits: list[Visit]) -> dict[str, object]:
    """Visitors overall and by age group, gender and both."""
    by_age = Counter(visit.attributes.age_group for visit in visits)
    by_gender = Counter(visit.attributes.gender for visit in visits)
    by_both = Counter(f"{visit.attributes.age_group}|{visit.attributes.gender}" for visit in visits)
    by_direction = Counter(visit.direction for visit in visits if visit.direction is not None)
    result: dict[str, object] = {
        "visitors": len(visits),
        "by_age_group": dict(sorted(by_age.items())),
        "by_gender": dict(sorted(by_gender.items())),
        "by_age_group_gender": dict(sorted(by_both.items())),
    }
    if by_direction:
        result["by_direction"] = dict(sorted(by_direction.items()))
    return result


@dataclass
class CameraStats:
    """Health of one camera over the last status interval."""

    camera: str
    fps: float = 0.0
    faces_in_view: int = 0
    faces_seen: int = 0  # tracked faces summed over frames (what a per-frame classifier would run on)
    frames: int = 0
    dropped: int = 0
    state: str = "starting"


@dataclass
class RunReport:
    """Everything counted in a run, per camera."""

    cameras: list[str]
    grouping: str
    visits: dict[str, list[Visit]] = field(default_factory=dict)
    stats: dict[str, CameraStats] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for camera in self.cameras:
            self.visits.setdefault(camera, [])
            self.stats.setdefault(camera, CameraStats(camera))

    def add(self, visit: Visit) -> None:
        """Record one counted visit."""
        self.visits[visit.camera].append(visit)

    def to_dict(self) -> dict[str, object]:
        """The ``footfall-report/1`` document."""
        return {
            "schema": REPORT_SCHEMA,
            "age_grouping": self.grouping,
            "cameras": {
                camera: {
                    "visits": [{"camera": camera, **visit.to_dict()} for visit in visits],
                    "totals": totals(visits),
                    "frames": self.stats[camera].frames,
                    "frames_dropped": self.stats[camera].dropped,
                    **({"problem": self.problems[camera]} if camera in self.problems else {}),
                }
                for camera, visits in self.visits.items()
            },
            "totals": totals([visit for visits in self.visits.values() for visit in visits]),
        }

    def status_line(self, camera: str) -> str:
        """One line of live status for a camera."""
        stats = self.stats[camera]
        return (
            f"[{camera}] {stats.state:<8} {stats.fps:5.1f} fps | {stats.faces_in_view} faces in view | "
            f"{len(self.visits[camera])} visitors | {stats.dropped} frames dropped"
        )

    def service_status(self) -> str:
        """One line for ``systemctl status``: which cameras deliver, and the visitors counted so far."""
        down = [camera for camera in self.cameras if self.stats[camera].state != "up"]
        visitors = sum(len(visits) for visits in self.visits.values())
        cameras = f"cameras up: {len(self.cameras) - len(down)} of {len(self.cameras)}"
        return cameras + (f" (not up: {', '.join(down)})" if down else "") + f"; visitors: {visitors}"

    def table(self) -> str:
        """The final summary table: visitors per camera by age group and gender, and by line direction.

        The ``in``/``out`` columns appear when a camera has a counting line;
        ``-`` marks a camera without one.
        """
        groups = sorted({v.attributes.age_group for visits in self.visits.values() for v in visits})
        rows = [*self.visits.items(), ("TOTAL", [v for vs in self.visits.values() for v in vs])]
        lined = {camera for camera, visits in rows if any(visit.direction is not None for visit in visits)}
        header = f"{'camera':<14}{'visitors':>9}{'female':>8}{'male':>7}{'unknown':>8}"
        header += f"{'in':>6}{'out':>6}" if lined else ""
        header += "  " + "  ".join(groups)
        lines = [header, "-" * len(header)]
        for camera, visits in rows:
            gender = Counter(v.attributes.gender for v in visits)
            age = Counter(v.attributes.age_group for v in visits)
            direction = Counter(v.direction for v in visits)
            line = f"{camera:<14}{len(visits):>9}{gender['female']:>8}{gender['male']:>7}{gender['unknown']:>8}"
            if lined:
                line += f"{direction['in']:>6}{direction['out']:>6}" if camera in lined else f"{'-':>6}{'-':>6}"
            lines.append(line + "  " + "  ".join(f"{age[group]:>{len(group)}}" for group in groups))
        for camera, problem in self.problems.items():
            lines.append(f"{camera}: {problem}")
        return "\n".join(lines)
