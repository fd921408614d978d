"""Counting lines and zones, in frame fractions (0..1), shared by live counting and the simulator.

A line runs from ``start`` to ``end``; crossing it from its left-hand side
to its right-hand side (as seen in the image, walking from start to end) is
``in``, the other way ``out``. Hysteresis: a point must be at least
``hysteresis`` (fraction of the frame) off the line before its side counts,
so a face jittering on the line is counted once, not every frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True)
class CountingLine:
    """A directional line segment; the right-hand side of start→end is inside.

    Example:
        >>> door = CountingLine(start=(0.5, 1.0), end=(0.5, 0.0))  # walking up the image: right is +x
        >>> door.crossings([(0.3, 0.5), (0.7, 0.5)], [0.0, 1.0], hysteresis=0.05)
        [('in', 1.0)]
    """

    start: Point
    end: Point

    def signed_distance(self, point: Point) -> float:
        """Distance from the line, positive on the inside (right-hand) side."""
        vx, vy = self.end[0] - self.start[0], self.end[1] - self.start[1]
        px, py = point[0] - self.start[0], point[1] - self.start[1]
        return (vx * py - vy * px) / max(float(np.hypot(vx, vy)), 1e-9)

    def spans(self, point: Point, margin: float = 0.05) -> bool:
        """Whether ``point`` projects onto the segment (not beyond its ends)."""
        vx, vy = self.end[0] - self.start[0], self.end[1] - self.start[1]
        along = ((point[0] - self.start[0]) * vx + (point[1] - self.start[1]) * vy) / max(vx * vx + vy * vy, 1e-12)
        return -margin <= along <= 1 + margin

    def crossings(self, points: Sequence[Point], times: Sequence[float], hysteresis: float) -> list[tuple[str, float]]:
        """Every crossing of a whole path, as (direction, time)."""
        state = LineState(self, hysteresis)
        found = []
        for point, t in zip(points, times, strict=True):
            direction = state.update(point)
            if direction:
                found.append((direction, t))
        return found

    def to_dict(self) -> dict[str, list[float]]:
        """``{"start": [x, y], "end": [x, y]}``."""
        return {"start": list(self.start), "end": list(self.end)}

    @classmethod
    def across(
        cls, paths: Sequence[tuple[Point, Point]], margin: float = 0.1, min_walk: float = 0.1
    ) -> tuple[CountingLine, Point] | None:
        """A line across the way people walked, through the middle of their paths; None if no one walked.

        ``paths`` are (first, last) positions. The walking axis is the principal
        direction of the walks at least ``min_walk`` long (people walking in and
        people walking out share it), turned the way most of them walked:
        crossing the line that way is ``in``. The line spans the paths' spread
        across that axis plus ``margin``, within the frame.

        Returns:
            The line (rounded to 0.01) and the walking axis as a unit vector.
        """
        walks = [(np.asarray(first, float), np.asarray(last, float)) for first, last in paths]
        walks = [(first, last) for first, last in walks if np.hypot(*(last - first)) >= min_walk]
        if not walks:
            return None
        moves = np.array([last - first for first, last in walks])
        moves /= np.linalg.norm(moves, axis=1, keepdims=True)
        axis = np.linalg.eigh(moves.T @ moves)[1][:, -1]
        if np.sum(moves @ axis > 0) < np.sum(moves @ axis < 0):
            axis = -axis
        middle = np.median([(first + last) / 2 for first, last in walks], axis=0)
        across = np.array([axis[1], -axis[0]])  # start -> end: walking along the axis goes from its left to its right
        spread = np.array([point - middle for walk in walks for point in walk]) @ across
        start = np.clip(middle + across * (spread.min() - margin), 0.0, 1.0).round(2)
        end = np.clip(middle + across * (spread.max() + margin), 0.0, 1.0).round(2)
        if np.array_equal(start, end):
            return None
        return cls((float(start[0]), float(start[1])), (float(end[0]), float(end[1]))), (float(axis[0]), float(axis[1]))


class LineState:
    """One track's side of a line, updated point by point."""

    def __init__(self, line: CountingLine, hysteresis: float) -> None:
        self.line = line
        self.hysteresis = hysteresis
        self.side = 0  # -1 outside, +1 inside, 0 not yet known
        self.first_side = 0  # the first side known, before any crossing
        self._first_confirmed: Point | None = None
        self._last_confirmed: Point | None = None

    def update(self, point: Point) -> str | None:
        """``in``/``out`` when this point completes a crossing, else None."""
        distance = self.line.signed_distance(point)
        if abs(distance) < self.hysteresis:
            return None
        side = 1 if distance > 0 else -1
        if not self.first_side:
            self.first_side, self._first_confirmed = side, point
        previous, self.side = self.side, side
        last, self._last_confirmed = self._last_confirmed, point
        if previous == 0 or previous == side or last is None:
            return None
        midpoint = ((last[0] + point[0]) / 2, (last[1] + point[1]) / 2)
        if not self.line.spans(midpoint):
            return None
        return "in" if side > 0 else "out"

    def continue_with(self, later: LineState) -> str | None:
        """Go on from ``later``'s state (the same person on a new track); the crossing made while unseen, if any."""
        crossing = None
        if self.side and later.first_side and self.side != later.first_side:
            last, first = self._last_confirmed, later._first_confirmed
            if last is not None and first is not None:
                midpoint = ((last[0] + first[0]) / 2, (last[1] + first[1]) / 2)
                if self.line.spans(midpoint):
                    crossing = "in" if later.first_side > 0 else "out"
        if later.side:
            self.side, self._last_confirmed = later.side, later._last_confirmed
        return crossing


@dataclass(frozen=True)
class Zone:
    """A named polygon; dwell is the time a track's anchor spends inside it."""

    name: str
    polygon: tuple[Point, ...]

    def contains(self, point: Point) -> bool:
        """Ray casting point-in-polygon."""
        x, y = point
        inside = False
        vertices = self.polygon
        for (x1, y1), (x2, y2) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside

    def area(self) -> float:
        """Area enclosed, in squared frame fractions (shoelace formula)."""
        vertices = self.polygon
        twice = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(vertices, vertices[1:] + vertices[:1], strict=True))
        return 0.5 * abs(twice)

    def crossed_sides(self) -> tuple[int, int] | None:
        """The first two sides that cross, by the index of their first corner; None for a simple outline.

        Corners listed out of order around a zone (top left, top right, bottom
        left, bottom right) make a bow-tie whose middle is outside the zone.
        """
        vertices = self.polygon
        count = len(vertices)
        for first in range(count):
            for second in range(first + 2, count):
                if first == 0 and second == count - 1:
                    continue  # neighbours: they share the first corner
                a, b = vertices[first], vertices[(first + 1) % count]
                c, d = vertices[second], vertices[(second + 1) % count]
                if _turn(a, b, c) * _turn(a, b, d) < 0 and _turn(c, d, a) * _turn(c, d, b) < 0:
                    return first, second
        return None

    def dwell(self, points: Sequence[Point], times: Sequence[float]) -> float:
        """Seconds inside over a whole path (each interval counted by its start point)."""
        total = 0.0
        for index in range(len(points) - 1):
            if self.contains(points[index]):
                total += times[index + 1] - times[index]
        return total

    def to_dict(self) -> dict[str, object]:
        """``{"name": ..., "polygon": [[x, y], ...]}``."""
        return {"name": self.name, "polygon": [list(point) for point in self.polygon]}


def _turn(a: Point, b: Point, c: Point) -> float:
    """Positive when a→b→c turns one way, negative the other, 0 when they are on one line."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
