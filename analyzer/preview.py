"""Annotated video for a person to look at: boxes, track ids, current attributes.

Writes frames with faces in them, so it is a debug tool the operator turns on
explicitly (``--preview FILE`` / ``--show``), and the CLI says so loudly.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from analyzer.track import Tracks


def annotate(
    frame_bgr: np.ndarray, camera: str, tracks: Tracks, labels: dict[tuple[str, int], str], visitors: int
) -> np.ndarray:
    """A copy of the frame with tracked faces and counts drawn on it."""
    canvas = frame_bgr.copy()
    for row in range(len(tracks)):
        if not tracks.confirmed[row]:
            continue
        x1, y1, x2, y2 = (int(v) for v in tracks.boxes[row])
        colour = (0, 200, 0) if tracks.matched[row] else (0, 160, 255)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        text = f"#{int(tracks.ids[row])} {labels.get((camera, int(tracks.ids[row])), '')}".strip()
        cv2.putText(canvas, text, (x1, max(y1 - 8, 14)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
        if tracks.matched[row]:
            for x, y in tracks.keypoints[row, :4]:
                cv2.circle(canvas, (int(x), int(y)), 2, (255, 255, 0), -1)
    cv2.putText(
        canvas,
        f"{camera}: {visitors} visitors",
        (12, 28),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.8,
        (255, 255, 255),
        2,
        cv2.LINE_AA,
    )
    return canvas


def preview_paths(path: Path, cameras: list[str]) -> dict[str, Path]:
    """Each camera's video: ``path`` itself for one camera, ``<stem>-<camera>.mp4`` beside it for several."""
    if len(cameras) == 1:
        return {cameras[0]: path}
    return {camera: path.with_name(f"{path.stem}-{camera}{path.suffix or '.mp4'}") for camera in cameras}


class PreviewSink:
    """Writes annotated frames to mp4 (one file per camera) and/or shows them in windows."""

    def __init__(self, path: Path | None, show: bool, cameras: list[str], fps: float = 15.0) -> None:
        self.show = show
        self.fps = fps
        self.paths = preview_paths(path, cameras) if path is not None else {}
        self._writers: dict[str, cv2.VideoWriter] = {}

    def write(self, camera: str, frame_bgr: np.ndarray) -> None:
        """Add one annotated frame of ``camera``."""
        if camera in self.paths:
            writer = self._writers.get(camera)
            if writer is None:
                self.paths[camera].parent.mkdir(parents=True, exist_ok=True)
                height, width = frame_bgr.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                size = (width, height)
                writer = self._writers[camera] = cv2.VideoWriter(str(self.paths[camera]), fourcc, self.fps, size)
            writer.write(frame_bgr)
        if self.show:
            cv2.imshow(camera, frame_bgr)
            cv2.waitKey(1)

    def close(self) -> None:
        """Finish the files and close windows."""
        for writer in self._writers.values():
            writer.release()
        if self.show:
            cv2.destroyAllWindows()
