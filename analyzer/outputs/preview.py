"""Annotated video for a person to look at: boxes, track ids, current attributes, the counting line and zones.

Writes frames with faces in them, so it is a debug tool the operator turns on
explicitly (``--preview FILE`` / ``--show``), and the CLI says so loudly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from analyzer.core.tracks import Tracks
from analyzer.core.zones import CountingLine, Zone

LINE_COLOUR = (0, 255, 255)  # BGR yellow: the counting line and its 'in' arrow
ZONE_COLOUR = (255, 160, 0)  # BGR light blue: zone outlines
MASK_COLOUR = (40, 40, 200)  # BGR dark red: masks, where no face is looked for
NOT_A_FACE_COLOUR = (150, 150, 150)  # grey: a track the face check turned away (a back of a head)
FIXTURE_COLOUR = (255, 0, 255)  # magenta: a face as still as a photo (a poster)


def annotate(
    frame_bgr: np.ndarray,
    camera: str,
    tracks: Tracks,
    captions: dict[tuple[str, int], str],
    counted: str,
    line: CountingLine | None = None,
    zones: Sequence[Zone] = (),
    masks: Sequence[Zone] = (),
) -> np.ndarray:
    """A copy of the frame with tracked faces (``captions``: the vote so far per track), the line, zones and masks.

    ``counted`` goes in the header.

    The line, zones and masks are drawn where the counter sees them, so an
    installer can check their placement (and which way is ``in``) on the
    preview. A track the face check turned away is drawn grey (``not a face``),
    a fixture magenta (``fixture``): neither is a visitor.
    """
    canvas = frame_bgr.copy()
    height, width = canvas.shape[:2]
    for mask in masks:  # darkened: nothing is looked for there
        outline = np.array([(x * width, y * height) for x, y in mask.polygon], dtype=np.int32)
        shade = np.zeros_like(canvas)
        cv2.fillPoly(shade, [outline], MASK_COLOUR)
        inside = shade.any(axis=2)
        canvas[inside] = (0.5 * canvas[inside] + 0.5 * shade[inside]).astype(np.uint8)
        cv2.polylines(canvas, [outline], isClosed=True, color=MASK_COLOUR, thickness=2, lineType=cv2.LINE_AA)
        _label(canvas, "mask", (int(outline[:, 0].min()) + 4, int(outline[:, 1].min()) + 18), MASK_COLOUR)
    for zone in zones:
        outline = np.array([(x * width, y * height) for x, y in zone.polygon], dtype=np.int32)
        cv2.polylines(canvas, [outline], isClosed=True, color=ZONE_COLOUR, thickness=2, lineType=cv2.LINE_AA)
        _label(canvas, zone.name, (int(outline[:, 0].min()) + 4, int(outline[:, 1].min()) + 18), ZONE_COLOUR)
    if line is not None:
        _draw_line(canvas, line)
    people, fixtures = tracks.people, tracks.fixtures
    for row in range(len(tracks)):
        if not tracks.confirmed[row]:
            continue
        x1, y1, x2, y2 = (int(v) for v in tracks.boxes[row])
        colour = (0, 200, 0) if tracks.matched[row] else (0, 160, 255)
        verdict = captions.get((camera, int(tracks.ids[row])), "")
        if fixtures[row]:
            colour, verdict = FIXTURE_COLOUR, "fixture"
        elif not people[row]:
            colour, verdict = NOT_A_FACE_COLOUR, "not a face"
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        text = f"#{int(tracks.ids[row])} {verdict}".strip()
        _label(canvas, text, (x1, max(y1 - 8, 14)), colour)
        if tracks.matched[row]:
            for x, y in tracks.keypoints[row, :4]:
                cv2.circle(canvas, (int(x), int(y)), 2, (255, 255, 0), -1)
    cv2.putText(
        canvas, f"{camera}: {counted}", (12, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA
    )
    return canvas


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)


def _draw_line(canvas: np.ndarray, line: CountingLine) -> None:
    """The line, and an arrow from its middle to the side a visitor crosses to when walking ``in``."""
    height, width = canvas.shape[:2]
    start = np.array([line.start[0] * width, line.start[1] * height])
    end = np.array([line.end[0] * width, line.end[1] * height])
    cv2.line(canvas, _pixel(start), _pixel(end), LINE_COLOUR, 2, cv2.LINE_AA)
    along = end - start
    inward = np.array([-along[1], along[0]]) / max(float(np.hypot(*along)), 1e-9)  # image y points down
    middle = (start + end) / 2
    tip = middle + inward * 0.06 * min(width, height)
    cv2.arrowedLine(canvas, _pixel(middle), _pixel(tip), LINE_COLOUR, 2, cv2.LINE_AA, tipLength=0.3)
    _label(canvas, "in", _pixel(tip + inward * 14 - np.array([8.0, -6.0])), LINE_COLOUR)


def _pixel(point: np.ndarray) -> tuple[int, int]:
    return round(float(point[0])), round(float(point[1]))


def preview_paths(path: Path, cameras: list[str]) -> dict[str, Path]:
    """Each camera's video: ``path`` itself for one camera, ``<stem>-<camera>.mp4`` beside it for several."""
    if len(cameras) == 1:
        return {cameras[0]: path}
    return {camera: path.with_name(f"{path.stem}-{camera}{path.suffix or '.mp4'}") for camera in cameras}


Window = Callable[[str, np.ndarray], None]  # shows one camera's latest frame in its window


def show_in_window(camera: str, frame_bgr: np.ndarray) -> None:
    """OpenCV's window for ``camera`` (HighGUI is not thread-safe: call it from one thread only)."""
    cv2.imshow(camera, frame_bgr)
    cv2.waitKey(1)


#: Frames buffered to learn a camera's rate before its video file is opened.
RATE_FRAMES = 10
FALLBACK_FPS = 15.0


class PreviewSink:
    """Writes annotated frames to mp4 (one file per camera) at each camera's own rate, and/or shows them.

    A video file's rate is fixed when it is opened; a camera's is known only
    from its frames (25 fps, 10 fps, or fewer with ``every_n_frames``), so
    the first frames' times set it and the video plays at the speed the
    camera saw. Camera threads hand frames in with :meth:`write`; windows are
    drawn by whichever single thread calls :meth:`show_latest`.
    """

    def __init__(self, path: Path | None, show: bool, cameras: list[str], window: Window = show_in_window) -> None:
        self.show = show
        self.paths = preview_paths(path, cameras) if path is not None else {}
        self.window = window
        self._writers: dict[str, cv2.VideoWriter] = {}
        self._waiting: dict[str, list[tuple[float, np.ndarray]]] = {camera: [] for camera in self.paths}
        self._latest: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def write(self, camera: str, frame_bgr: np.ndarray, timestamp: float) -> None:
        """Add one annotated frame of ``camera``, taken at ``timestamp`` (its stream's seconds)."""
        if camera in self.paths:
            writer = self._writers.get(camera)
            if writer is not None:
                writer.write(frame_bgr)
            else:
                waiting = self._waiting[camera]
                waiting.append((timestamp, frame_bgr))
                if len(waiting) >= RATE_FRAMES:
                    self._open(camera)
        if self.show:
            with self._lock:
                self._latest[camera] = frame_bgr

    def show_latest(self) -> None:
        """Draw each camera's newest frame in its window; call from one thread."""
        with self._lock:
            latest, self._latest = self._latest, {}
        for camera, frame_bgr in latest.items():
            self.window(camera, frame_bgr)

    def _open(self, camera: str) -> None:
        """Open ``camera``'s video at the rate its buffered frames came at, and write them."""
        waiting = self._waiting.pop(camera)
        self.paths[camera].parent.mkdir(parents=True, exist_ok=True)
        height, width = waiting[0][1].shape[:2]
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        fps = frame_rate([timestamp for timestamp, _ in waiting])
        writer = self._writers[camera] = cv2.VideoWriter(str(self.paths[camera]), fourcc, fps, (width, height))
        for _, frame_bgr in waiting:
            writer.write(frame_bgr)

    def close(self) -> None:
        """Finish the files (a short stream's too) and close windows."""
        for camera in [camera for camera, waiting in self._waiting.items() if waiting]:
            self._open(camera)
        for writer in self._writers.values():
            writer.release()
        if self.show:
            cv2.destroyAllWindows()


def frame_rate(timestamps: Sequence[float]) -> float:
    """Frames per second from frame times: one over the median gap (a dropped frame does not slow it)."""
    gaps = np.diff(np.asarray(timestamps, dtype=np.float64))
    gaps = gaps[gaps > 0]
    if not len(gaps):
        return FALLBACK_FPS
    return float(min(max(1.0 / np.median(gaps), 1.0), 120.0))
