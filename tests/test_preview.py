"""The debug preview draws the counting line, which way is 'in', and the zones where the counter has them."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.preview import LINE_COLOUR, ZONE_COLOUR, annotate
from analyzer.track import Tracks
from analyzer.zones import CountingLine, Zone

WIDTH, HEIGHT = 640, 360


def no_tracks() -> Tracks:
    return Tracks(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                  np.zeros((0, 6, 2), np.float32), np.zeros(0, bool), np.zeros(0, bool))  # fmt: skip


def painted(canvas: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """(x, y) fractions of the pixels drawn in ``colour``."""
    ys, xs = np.nonzero(np.all(canvas == colour, axis=2))
    return np.stack([xs / WIDTH, ys / HEIGHT], axis=1)


@pytest.mark.parametrize(
    "line",
    [
        CountingLine((0.5, 1.0), (0.5, 0.0)),  # the shipped door line: 'in' is left to right
        CountingLine((0.5, 0.0), (0.5, 1.0)),  # the same line, start and end swapped: 'in' is right to left
        CountingLine((0.1, 0.8), (0.9, 0.3)),  # slanted
    ],
)
def test_the_line_is_drawn_where_it_counts_with_its_arrow_on_the_in_side(line: CountingLine) -> None:
    canvas = annotate(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "door", no_tracks(), {}, "0 visitors", line)
    drawn = painted(canvas, LINE_COLOUR)
    distances = np.array([line.signed_distance(tuple(point)) for point in drawn])
    on_line = np.abs(distances) < 0.01
    assert on_line.sum() > 0.5 * max(WIDTH, HEIGHT)  # the line itself, end to end
    arrow = drawn[~on_line]  # the arrow and its 'in' label
    assert len(arrow) > 20 and (np.array([line.signed_distance(tuple(point)) for point in arrow]) > 0).all()


def test_zones_are_outlined_and_named_and_the_header_says_what_was_counted() -> None:
    zone = Zone("display", ((0.6, 0.1), (0.95, 0.1), (0.95, 0.9), (0.6, 0.9)))
    blank = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    canvas = annotate(blank, "door", no_tracks(), {}, "5 visitors (in 3, out 1)", zones=[zone])
    outline = painted(canvas, ZONE_COLOUR)
    assert len(outline) > 0.6 * 2 * (0.35 * WIDTH + 0.8 * HEIGHT)  # most of the rectangle's perimeter
    assert (outline[:, 0] > 0.59).all() and (outline[:, 1] > 0.09).all() and (outline[:, 1] < 0.91).all()
    header = annotate(blank, "door", no_tracks(), {}, "5 visitors (in 3, out 1)")[:40]
    shorter = annotate(blank, "door", no_tracks(), {}, "5 visitors")[:40]
    assert (header > 0).sum() > (shorter > 0).sum() > 0  # the in and out are written too
