"""``analyzer score``: how right a run's counts are, against simulated ground truth.

Counted visits are matched one-to-one to true visitors by time overlap and by
where the face was when the visit started and ended (Hungarian matching).
A visit left over that still fits an already matched visitor is a double
count (one person split into two visits); any other left-over visit is a
false count. A countable visitor without a visit is a miss.
``Outcome.mistakes`` lists each of them, and each wrong attribute or direction, with its time in
the clip, so they can be found and watched.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from analyzer.core.age_groups import BUILTIN_GROUPINGS, AgeGrouping
from analyzer.errors import DataError

#: A visit and a visitor can be the same person only if the visitor was seen
#: during at least this fraction of the visit, and the face positions at the
#: visit's start and end are on average within this distance (frame fractions).
MIN_OVERLAP = 0.3
MAX_DISTANCE = 0.15
#: A face hidden longer than this (the simulated config's ``reentry_window_s``) cannot be known to be the same
#: person when it shows again: a seated customer behind a nearer one. Dwell is also scored without such visitors.
HIDDEN_TOO_LONG_S = 5.0


@dataclass(frozen=True)
class Match:
    """One counted visit paired with one true visitor."""

    visit: dict
    visitor: dict


def _position_at(visitor: dict, t: float) -> tuple[float, float]:
    path = visitor["path"]
    times = [point[0] for point in path]
    return (
        float(np.interp(t, times, [point[1] for point in path])),
        float(np.interp(t, times, [point[2] for point in path])),
    )


def _fit(visit: dict, visitor: dict) -> float | None:
    """Matching cost of a visit and a visitor, or None if they cannot be the same person."""
    if visitor["start_s"] is None or not visitor["path"]:
        return None
    start, end = visit["stream_start"], visit["stream_end"]
    overlap = min(end, visitor["end_s"]) - max(start, visitor["start_s"])
    duration = max(end - start, 1e-3)
    if overlap < 0 or (overlap / duration < MIN_OVERLAP and overlap < 0.5):
        return None
    distances = [
        np.hypot(*np.subtract(_position_at(visitor, t), position))
        for t, position in ((start, visit["first_position"]), (end, visit["last_position"]))
    ]
    distance = float(np.mean(distances))
    if distance > MAX_DISTANCE:
        return None
    return (1.0 - min(overlap / duration, 1.0)) + distance


def match(visits: Sequence[dict], visitors: Sequence[dict]) -> tuple[list[Match], list[Match], list[dict]]:
    """Pairs, double counts and visits that fit nobody.

    A double count is a visit that fits an already matched visitor again; it
    is paired with the visitor it fits best.
    """
    if not visits or not visitors:
        return [], [], list(visits)
    cost = np.full((len(visits), len(visitors)), 1e6)
    for row, visit in enumerate(visits):
        for column, visitor in enumerate(visitors):
            fit = _fit(visit, visitor)
            if fit is not None:
                cost[row, column] = fit
    rows, columns = linear_sum_assignment(cost)
    pairs = [(r, c) for r, c in zip(rows, columns, strict=True) if cost[r, c] < 1e6]
    matched_rows = {r for r, _ in pairs}
    matches = [Match(visits[r], visitors[c]) for r, c in pairs]
    doubles, extras = [], []
    for row, visit in enumerate(visits):
        if row in matched_rows:
            continue
        if np.any(cost[row] < 1e6):
            doubles.append(Match(visit, visitors[int(np.argmin(cost[row]))]))
        else:
            extras.append(visit)
    return matches, doubles, extras


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True)
class Outcome:
    """One camera's visits matched against the truth: what ``score`` counts and ``mistakes`` lists."""

    visits: list[dict]
    countable: list[dict]  # true visitors a run is expected to count
    matches: list[Match]
    doubles: list[Match]  # the second visit of a matched visitor, with that visitor
    extras: list[dict]  # visits that fit nobody
    misses: list[dict]  # countable visitors without a visit
    grouping: AgeGrouping
    fixtures: list[dict] = field(default_factory=list)  # the truth's faces that never visit (posters, a screen)
    fps: float = 15.0  # the clip's, for the truth's per-frame boxes

    @property
    def fixture_counts(self) -> list[dict]:
        """False counts of a face on the wall: visits first seen inside a fixture's box."""
        boxes = [fixture["box"] for fixture in self.fixtures]
        return [visit for visit in self.extras if any(_inside(visit["first_position"], box) for box in boxes)]

    def true_group(self, visitor: dict) -> str:
        """The visitor's true age group in the report's grouping."""
        return self.grouping.names[self.grouping.index_of(visitor["age"])]

    @property
    def classified(self) -> list[Match]:
        """Matches whose visit has a gender (not ``unknown``): gender accuracy is over these."""
        return [m for m in self.matches if m.visit["gender"] != "unknown"]

    @property
    def aged(self) -> list[Match]:
        """Matches whose visit has an age group (not ``unknown``): age group accuracy is over these."""
        return [m for m in self.matches if m.visit["age_group"] != "unknown"]

    @property
    def crossing(self) -> list[Match]:
        """Matches of visitors who crossed the line, on a camera that has one (direction accuracy)."""
        return [m for m in self.matches if m.visitor["direction"] is not None and "direction" in m.visit]

    def score(self) -> dict[str, object]:
        """The ``score --json`` document (without the mistakes)."""
        grouping, matches, countable = self.grouping, self.matches, self.countable
        bonus = sum(1 for m in matches if not m.visitor["countable"])
        counted = len(self.visits) - bonus
        classified, aged, crossing = self.classified, self.aged, self.crossing
        in_view = [m for m in matches if _longest_hidden_s(m.visitor, self.fps) <= HIDDEN_TOO_LONG_S]
        true_groups = Counter(self.true_group(v) for v in countable)
        true_genders = Counter(v["gender"] for v in countable)
        counted_visits = (
            [m.visit for m in matches if m.visitor["countable"]] + [m.visit for m in self.doubles] + self.extras
        )
        return {
            "true_visitors": len(countable),
            "counted_visitors": counted,
            "count_error": _ratio(counted - len(countable), len(countable)),
            "misses": len(self.misses),
            "double_counts": len(self.doubles),
            "false_counts": len(self.extras),
            "fixture_counts": len(self.fixture_counts),
            "hard_visitors_counted": bonus,
            "gender_accuracy": _ratio(
                sum(m.visit["gender"] == m.visitor["gender"] for m in classified), len(classified)
            ),
            "age_group_accuracy": _ratio(
                sum(m.visit["age_group"] == self.true_group(m.visitor) for m in aged), len(aged)
            ),
            "age_grouping": grouping.name,
            "direction_accuracy": _ratio(
                sum(m.visit["direction"] == m.visitor["direction"] for m in crossing), len(crossing)
            ),
            "crossings": len(crossing),
            "dwell_error_s": float(np.mean([abs(m.visit["dwell_s"] - m.visitor["seen_s"]) for m in matches]))
            if matches
            else None,
            # the same as a share of the time in view (a seated customer's minutes, a walker's seconds)
            "dwell_error_share": float(np.mean([_dwell_share(m) for m in matches])) if matches else None,
            # the same over the visitors whose face was never hidden longer than a re-entry window
            "dwell_error_share_in_view": float(np.mean([_dwell_share(m) for m in in_view])) if in_view else None,
            "hidden_too_long": len(matches) - len(in_view),
            "by_age_group": {
                name: {"true": true_groups[name], "counted": sum(v["age_group"] == name for v in counted_visits)}
                for name in grouping.names
            },
            "by_gender": {
                gender: {"true": true_genders[gender], "counted": sum(v["gender"] == gender for v in counted_visits)}
                for gender in ("female", "male")
            },
            "classified": len(classified),
            "unclassified": len(matches) - len(classified),
            "with_age_group": len(aged),
            "matched": len(matches),
            "gender_unknown": len(matches) - len(classified),
            "age_group_unknown": len(matches) - len(aged),
        }

    def mistakes(self) -> list[dict[str, object]]:
        """Every miss, double count, false count and wrong attribute or direction, in clip time order.

        Each has ``kind``, ``from_s`` and ``to_s`` (clip seconds: where to look),
        the ``visitor`` id and ``visit`` id it concerns (None where there is
        none), and for a wrong attribute or direction what was ``true`` and what
        was ``counted``.
        """

        def entry(kind: str, visit: dict | None, visitor: dict | None, **more: object) -> dict[str, object]:
            timed = visit if visit is not None else {"stream_start": visitor["start_s"], "stream_end": visitor["end_s"]}
            return {
                "kind": kind,
                "from_s": round(float(timed["stream_start"]), 2),
                "to_s": round(float(timed["stream_end"]), 2),
                "visitor": None if visitor is None else visitor["id"],
                "visit": None if visit is None else visit.get("visit_id"),
                **more,
            }

        found = [entry("miss", None, visitor) for visitor in self.misses]
        found += [entry("double count", m.visit, m.visitor) for m in self.doubles]
        found += [entry("false count", visit, None) for visit in self.extras]
        for m in self.matches:
            if m.visit["gender"] not in ("unknown", m.visitor["gender"]):
                found.append(entry("gender", m.visit, m.visitor, true=m.visitor["gender"], counted=m.visit["gender"]))
            if m.visit["age_group"] not in ("unknown", self.true_group(m.visitor)):
                found.append(
                    entry(
                        "age group", m.visit, m.visitor, true=self.true_group(m.visitor), counted=m.visit["age_group"]
                    )
                )
        for m in self.crossing:
            if m.visit["direction"] != m.visitor["direction"]:
                found.append(
                    entry("direction", m.visit, m.visitor, true=m.visitor["direction"], counted=m.visit["direction"])
                )
        return sorted(found, key=lambda mistake: (mistake["from_s"], mistake["kind"]))


def outcome(truth: dict, report: dict, camera: str | None = None) -> Outcome:
    """Match the report's visits of ``camera`` (the only one when None) to the truth's visitors."""
    cameras = report.get("cameras", {})
    if camera is None:
        if len(cameras) != 1:
            raise DataError(f"the report has cameras {sorted(cameras)}; say which one with --camera")
        camera = next(iter(cameras))
    if camera not in cameras:
        raise DataError(f"camera '{camera}' is not in the report (it has {sorted(cameras)})")
    searched, behind = cameras[camera].get("frames"), cameras[camera].get("frames_dropped", 0)
    played = None if searched is None else searched + behind  # a run that fell behind skipped frames it read
    clip_frames = _clip_frames(truth)
    if played is not None and clip_frames is not None and played != clip_frames:
        raise DataError(
            f"camera '{camera}' of the report played {played} frames, the truth's clip has {clip_frames}: score the "
            f"report of a run over that whole clip ({truth.get('clip', 'analyzer simulate --out')})"
        )
    visits = cameras[camera]["visits"]
    visitors = truth["visitors"]
    matches, doubles, extras = match(visits, visitors)
    countable = [visitor for visitor in visitors if visitor["countable"]]
    matched_ids = {m.visitor["id"] for m in matches}
    misses = [visitor for visitor in countable if visitor["id"] not in matched_ids]
    grouping_name = report.get("age_grouping", "fairface9")
    if grouping_name not in BUILTIN_GROUPINGS:
        raise DataError(
            f"the report counts age groups of '{grouping_name}', its run's own grouping, which score cannot read "
            f"back; run the clip with a shipped one ({', '.join(BUILTIN_GROUPINGS)}) in footfall.age_grouping"
        )
    return Outcome(
        visits,
        countable,
        matches,
        doubles,
        extras,
        misses,
        BUILTIN_GROUPINGS[grouping_name],
        truth.get("fixtures", []),
        float(truth.get("fps") or 15.0),
    )


def _dwell_share(pair: Match) -> float:
    """How far a visit's dwell is from its visitor's time in view, as a share of that time."""
    seen = max(float(pair.visitor["seen_s"]), 1.0)
    return abs(float(pair.visit["dwell_s"]) - seen) / seen


def _longest_hidden_s(visitor: dict, fps: float) -> float:
    """The longest a simulated visitor's face was out of sight between its first and last sight.

    0 without per-frame boxes, as in real clips' truth.
    """
    frames = [box[0] for box in visitor.get("boxes", [])]
    gaps = [later - earlier - 1 for earlier, later in itertools.pairwise(frames)]
    return max(gaps, default=0) / fps


def _inside(point: Sequence[float], box: Sequence[float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _clip_frames(truth: dict) -> int | None:
    """Frames of the simulated clip the truth describes (None for a truth without its clip's length)."""
    fps, seconds = truth.get("fps"), truth.get("seconds")
    return round(fps * seconds) if isinstance(fps, int | float) and isinstance(seconds, int | float) else None


def score(truth: dict, report: dict, camera: str | None = None) -> dict[str, object]:
    """The ``score --json`` document for one clip's truth and the run's report (``Outcome.score``)."""
    return outcome(truth, report, camera).score()


def mistake_line(mistake: dict[str, object]) -> str:
    """One mistake as a line to read: when in the clip, what, and whom."""
    when = f"{mistake['from_s']:6.1f} s to {mistake['to_s']:6.1f} s"
    visit = f" (visit {mistake['visit']})" if mistake["visit"] else ""
    kind = mistake["kind"]
    if kind == "miss":
        what = f"visitor {mistake['visitor']} was not counted"
    elif kind == "double count":
        what = f"visitor {mistake['visitor']} was counted again{visit}"
    elif kind == "false count":
        what = f"a visit fits no visitor{visit}"
    else:
        what = f"visitor {mistake['visitor']}: {kind} {mistake['true']}, counted {mistake['counted']}{visit}"
    return f"{when}  {kind:<12}  {what}"


def combine(scores: Sequence[dict[str, object]]) -> dict[str, object]:
    """Pool several clips' scores (sums of counts, accuracies weighted by their counts)."""
    if not scores:
        raise DataError("no scores to combine")

    def total(key: str) -> int:
        return int(sum(int(s.get(key, 0)) for s in scores))  # type: ignore[call-overload]

    def weighted(key: str, weight_key: str) -> float | None:
        pairs = [(s[key], s.get(weight_key, 0)) for s in scores if s[key] is not None]
        weight = sum(float(w) for _, w in pairs)  # type: ignore[arg-type]
        return sum(float(v) * float(w) for v, w in pairs) / weight if weight else None  # type: ignore[arg-type]

    true_visitors, counted = total("true_visitors"), total("counted_visitors")
    return {
        "true_visitors": true_visitors,
        "counted_visitors": counted,
        "count_error": _ratio(counted - true_visitors, true_visitors),
        "misses": total("misses"),
        "double_counts": total("double_counts"),
        "false_counts": total("false_counts"),
        "fixture_counts": total("fixture_counts"),
        "gender_accuracy": weighted("gender_accuracy", "classified"),
        "age_group_accuracy": weighted("age_group_accuracy", "with_age_group"),
        "direction_accuracy": weighted("direction_accuracy", "crossings"),
        "crossings": total("crossings"),
        "classified": total("classified"),
        "with_age_group": total("with_age_group"),
        "matched": total("matched"),
        "gender_unknown": total("gender_unknown"),
        "age_group_unknown": total("age_group_unknown"),
        "dwell_error_s": weighted("dwell_error_s", "true_visitors"),
    }
