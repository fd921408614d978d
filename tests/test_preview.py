"""The debug preview: the counting line, its 'in' side and the zones drawn where the counter has them; each
camera's video at its own rate; windows drawn from one thread."""

from __future__ import annotations

import threading
from pathlib import Path
from threading import get_ident

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.config import parse_config
from analyzer.core.tracks import Tracks
from analyzer.core.zones import CountingLine, Zone
from analyzer.outputs.metrics import Metrics
from analyzer.outputs.preview import LINE_COLOUR, ZONE_COLOUR, PreviewSink, annotate
from analyzer.pipeline.runner import Pipeline, RunOptions

WIDTH, HEIGHT = 640, 360


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
    canvas = annotate(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "door", Tracks.empty(), {}, "0 visitors", line)
    drawn = painted(canvas, LINE_COLOUR)
    distances = np.array([line.signed_distance(tuple(point)) for point in drawn])
    on_line = np.abs(distances) < 0.01
    assert on_line.sum() > 0.5 * max(WIDTH, HEIGHT)  # the line itself, end to end
    arrow = drawn[~on_line]  # the arrow and its 'in' label
    assert len(arrow) > 20 and (np.array([line.signed_distance(tuple(point)) for point in arrow]) > 0).all()


def test_zones_are_outlined_and_named_and_the_header_says_what_was_counted() -> None:
    zone = Zone("display", ((0.6, 0.1), (0.95, 0.1), (0.95, 0.9), (0.6, 0.9)))
    blank = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    canvas = annotate(blank, "door", Tracks.empty(), {}, "5 visitors (in 3, out 1)", zones=[zone])
    outline = painted(canvas, ZONE_COLOUR)
    assert len(outline) > 0.6 * 2 * (0.35 * WIDTH + 0.8 * HEIGHT)  # most of the rectangle's perimeter
    assert (outline[:, 0] > 0.59).all() and (outline[:, 1] > 0.09).all() and (outline[:, 1] < 0.91).all()
    header = annotate(blank, "door", Tracks.empty(), {}, "5 visitors (in 3, out 1)")[:40]
    shorter = annotate(blank, "door", Tracks.empty(), {}, "5 visitors")[:40]
    assert (header > 0).sum() > (shorter > 0).sum() > 0  # the in and out are written too


@pytest.mark.parametrize("fps", [10.0, 25.0])
def test_each_camera_s_preview_plays_at_the_rate_its_frames_came(tmp_path: Path, fps: float) -> None:
    # the writer was always 15 fps: a 25 fps camera's preview ran at 0.6x, a 10 fps one's at 1.5x
    sink = PreviewSink(tmp_path / "preview.mp4", show=False, cameras=["door", "till"])
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for index in range(30):
        sink.write("door", frame, index / fps)
        if index % 3 != 2:  # a frame dropped now and then does not make the video slower
            sink.write("till", frame, index / 15.0)
    sink.close()
    for camera, expected in (("door", fps), ("till", 15.0)):
        video = cv2.VideoCapture(str(tmp_path / f"preview-{camera}.mp4"))
        assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(expected, rel=0.02)
        video.release()


def test_a_short_stream_s_preview_is_written_too(tmp_path: Path) -> None:
    sink = PreviewSink(tmp_path / "preview.mp4", show=False, cameras=["door"])
    for index in range(3):  # fewer frames than it takes to learn the rate
        sink.write("door", np.zeros((HEIGHT, WIDTH, 3), np.uint8), index / 12.0)
    sink.close()
    video = cv2.VideoCapture(str(tmp_path / "preview.mp4"))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 3 and video.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0, rel=0.02)


def test_show_draws_every_camera_s_window_from_one_thread(walkers_clip: tuple[Path, int], shipped_model: Path) -> None:
    # OpenCV's windows are not thread-safe: with several cameras each camera thread called imshow itself
    drawn: list[tuple[str, int]] = []
    config = parse_config(
        {
            "cameras": [{"id": name, "source": str(walkers_clip[0]), "realtime": False} for name in ("door", "till")],
            "classifier": {"model": str(shipped_model)},
            "zmq": {"bind": ""},
            "status_interval_s": 0,
        }
    )
    options = RunOptions(show=True, log=lambda _: None, window=lambda camera, _: drawn.append((camera, get_ident())))
    pipeline = Pipeline(config, OnnxRuntimeBackend(shipped_model), Metrics(CollectorRegistry()), None, options)
    pipeline.run(threading.Event())
    assert {camera for camera, _ in drawn} == {"door", "till"}
    assert {thread for _, thread in drawn} == {get_ident()}  # the thread that ran the pipeline, and no other
