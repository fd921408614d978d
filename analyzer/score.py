"""``analyzer score``: how right a run's counts are, against simulated ground truth.

Counted visits are matched one-to-one to true visitors by time overlap and by
where the face was when the visit started and ended (Hungarian matching).
A visit left over that still fits an already matched visitor is a double
count (one person split into two visits); any other left-over visit is a
false count. A countable visitor without a visit is a miss.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from analyzer.age_groups import builtin_grouping
from analyzer.errors import DataError

#: A visit and a visitor can be the same person only if the visitor was seen
#: during at least this fraction of the visit, and the face positions at the
#: visit's start and end are on average within this distance (frame fractions).
MIN_OVERLAP = 0.3
MAX_DISTANCE = 0.15


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


def match(visits: Sequence[dict], visitors: Sequence[dict]) -> tuple[list[Match], list[dict], list[dict]]:
    """Pairs, visits that fit a matched visitor again (double counts), visits that fit nobody."""
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
        (doubles if np.any(cost[row] < 1e6) else extras).append(visit)
    return matches, doubles, extras


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def score(truth: dict, report: dict, camera: str | None = None) -> dict[str, object]:
    """The ``score --json`` document for one clip's truth and the run's report."""
    cameras = report.get("cameras", {})
    if camera is None:
        if len(cameras) != 1:
            raise DataError(f"the report has cameras {sorted(cameras)}; say which one with --camera")
        camera = next(iter(cameras))
    if camera not in cameras:
        raise DataError(f"camera '{camera}' is not in the report (it has {sorted(cameras)})")
    grouping = builtin_grouping(report.get("age_grouping", "fairface9"))
    visits = cameras[camera]["visits"]
    visitors = truth["visitors"]
    matches, doubles, extras = match(visits, visitors)
    countable = [visitor for visitor in visitors if visitor["countable"]]
    matched_ids = {m.visitor["id"] for m in matches}
    misses = [visitor for visitor in countable if visitor["id"] not in matched_ids]
    bonus = sum(1 for m in matches if not m.visitor["countable"])
    counted = len(visits) - bonus
    classified = [m for m in matches if m.visit["gender"] != "unknown"]
    crossing = [m for m in matches if m.visitor["direction"] is not None and "direction" in m.visit]
    true_groups = Counter(grouping.names[grouping.index_of(v["age"])] for v in countable)
    true_genders = Counter(v["gender"] for v in countable)
    counted_visits = [m.visit for m in matches if m.visitor["countable"]] + doubles + extras
    return {
        "true_visitors": len(countable),
        "counted_visitors": counted,
        "count_error": _ratio(counted - len(countable), len(countable)),
        "misses": len(misses),
        "double_counts": len(doubles),
        "false_counts": len(extras),
        "hard_visitors_counted": bonus,
        "gender_accuracy": _ratio(sum(m.visit["gender"] == m.visitor["gender"] for m in classified), len(classified)),
        "age_group_accuracy": _ratio(
            sum(m.visit["age_group"] == grouping.names[grouping.index_of(m.visitor["age"])] for m in classified),
            len(classified),
        ),
        "age_grouping": grouping.name,
        "direction_accuracy": _ratio(
            sum(m.visit["direction"] == m.visitor["direction"] for m in crossing), len(crossing)
        ),
        "crossings": len(crossing),
        "dwell_error_s": float(np.mean([abs(m.visit["dwell_s"] - m.visitor["seen_s"]) for m in matches]))
        if matches
        else None,
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
    }


def combine(scores: Sequence[dict[str, object]]) -> dict[str, object]:
    """Pool several clips' scores (sums of counts, accuracies weighted by their counts)."""
    if not scores:
        raise DataError("no scores to combine")

    def total(key: str) -> int:
        return int(sum(int(s[key]) for s in scores))  # type: ignore[call-overload]

    def weighted(key: str, weight_key: str) -> float | None:
        pairs = [(s[key], s[weight_key]) for s in scores if s[key] is not None]
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
        "gender_accuracy": weighted("gender_accuracy", "classified"),
        "age_group_accuracy": weighted("age_group_accuracy", "classified"),
        "direction_accuracy": weighted("direction_accuracy", "crossings"),
        "crossings": total("crossings"),
        "classified": total("classified"),
        "dwell_error_s": weighted("dwell_error_s", "true_visitors"),
    }
