"""``analyzer check``: is each camera set up to count, before the installer leaves the shop?

A camera that streams is not yet a camera that counts: faces must be big
enough to classify, and the stream fast enough to follow a walker. This
watches each camera for a few seconds with the run's own capture worker and
face detector, and says what to change. It keeps only numbers (frame counts,
face widths), never an image.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from analyzer.camera_url import without_password
from analyzer.capture import CaptureWorker, EndOfStream, LatestFrameSlot, StreamStatus
from analyzer.config import CameraConfig, DetectorConfig
from analyzer.detect import FaceDetector

COUNTING_FACE_PX = 40  # docs/ACCURACY.md measures counting on faces at least this wide for a second
LOW_FPS = 8.0  # a walker crosses a door in about a second: fewer frames than this and tracks break


@dataclass(frozen=True)
class CameraCheck:
    """What a few seconds of one camera showed, and what to change."""

    camera: str
    source: str  # without the URL's password
    problem: str  # why no frame came ("" when frames came)
    seconds: float
    frames: int
    fps: float
    width: int
    height: int
    frames_searched: int
    detections: int  # faces found, summed over the frames searched (one walker counts in many frames)
    face_px: list[float] = field(default_factory=list)  # 10th, 50th and 90th percentile face width; [] if none
    advice: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """No frame came: nothing can be counted on this camera as configured."""
        return bool(self.problem)

    def to_dict(self) -> dict[str, object]:
        """For ``--json``."""
        return {**asdict(self), "failed": self.failed}


def advice_for(fps: float, face_widths: np.ndarray, seconds: float, min_face_px: int, tiles: int) -> list[str]:
    """What to change so that this camera counts well; [] when nothing."""
    advice = []
    if fps < LOW_FPS:
        advice.append(f"{fps:.1f} fps is low: a walker crosses the door in about a second; set the stream to 10-15 fps")
    if not len(face_widths):
        advice.append(
            f"no face seen in {seconds:.0f} s: check while people walk in, and that the camera sees faces "
            "from the front, not the tops of heads"
        )
        return advice
    median = float(np.median(face_widths))
    if median < min_face_px:
        advice.append(
            f"faces are {median:.0f} px wide (median): below {min_face_px} px (sampler.min_face_px) they are not "
            "classified; zoom in, mount the camera closer to the door, or use its higher-resolution stream"
        )
    elif median < COUNTING_FACE_PX:
        advice.append(
            f"faces are {median:.0f} px wide (median): counts are measured on faces of {COUNTING_FACE_PX} px and more; "
            + ("set detector.tiles: 2 to find more small faces, or zoom in" if tiles < 2 else "zoom in")
        )
    return advice


def check_camera(
    camera: CameraConfig, seconds: float, min_face_px: int, detector: Callable[[DetectorConfig], FaceDetector]
) -> CameraCheck:
    """Watch one camera for ``seconds`` (a file: until it ends, at its own speed) and sum up what it showed."""
    slot, stop = LatestFrameSlot(), threading.Event()
    statuses: list[StreamStatus] = []
    read_at: list[float] = []  # when each frame was read: the stream's rate, whatever the connection took

    def on_frame(camera_id: str, dropped: bool, decode_seconds: float) -> None:
        read_at.append(time.monotonic())

    worker = CaptureWorker(
        camera.id, camera.source, slot, statuses.append, on_frame, stop, realtime=True, loop=False,
        reconnect_backoff_s=camera.reconnect_backoff_s, max_backoff_s=camera.max_backoff_s,
        read_timeout_s=camera.read_timeout_s,
    )  # fmt: skip
    faces_detector = detector(camera.detector)
    widths: list[np.ndarray] = []
    searched, size = 0, (0, 0)
    started = time.monotonic()
    worker.start()
    try:
        while time.monotonic() - started < seconds:
            item = slot.get(timeout=0.2)
            if isinstance(item, EndOfStream):
                break
            if item is None:
                continue
            size = (item.image.shape[1], item.image.shape[0])
            found = faces_detector.detect(cv2.cvtColor(item.image, cv2.COLOR_BGR2RGB), int(item.timestamp * 1000))
            widths.append(found.boxes[:, 2] - found.boxes[:, 0])
            searched += 1
    finally:
        stop.set()
        worker.join(timeout=camera.read_timeout_s + 5)
        faces_detector.close()
    watched = time.monotonic() - started
    last = statuses[-1] if statuses else None
    problem = ""
    if not read_at:
        # the cause without the retry note: the check does not go on retrying
        problem = last.cause if last and last.state in ("failed", "down") else f"no frame within {seconds:g} s"
    face_widths = np.concatenate(widths) if widths else np.empty(0)
    fps = (len(read_at) - 1) / (read_at[-1] - read_at[0]) if len(read_at) > 1 and read_at[-1] > read_at[0] else 0.0
    return CameraCheck(
        camera=camera.id,
        source=without_password(camera.source),
        problem=problem,
        seconds=round(watched, 1),
        frames=len(read_at),
        fps=round(fps, 1),
        width=size[0],
        height=size[1],
        frames_searched=searched,
        detections=len(face_widths),
        face_px=[round(float(value), 1) for value in np.percentile(face_widths, [10, 50, 90])]
        if len(face_widths)
        else [],
        advice=[] if problem else advice_for(fps, face_widths, watched, min_face_px, camera.detector.tiles),
    )


def check_table(checks: list[CameraCheck]) -> str:
    """The installer's summary: one row per camera, then what to change."""
    header = f"{'camera':<14}{'stream':>11}{'fps':>7}{'detections':>12}  {'face width p10/median/p90':<27}verdict"
    lines = [header, "-" * len(header)]
    for check in checks:
        stream = f"{check.width}x{check.height}" if check.frames else "-"
        widths = " / ".join(f"{value:.0f}" for value in check.face_px) + " px" if check.face_px else "-"
        verdict = "FAILED" if check.failed else ("change" if check.advice else "ok")
        lines.append(f"{check.camera:<14}{stream:>11}{check.fps:>7.1f}{check.detections:>12}  {widths:<27}{verdict}")
    for check in checks:
        if check.failed:
            lines.append(f"[{check.camera}] {check.problem}")
        lines += [f"[{check.camera}] {line}" for line in check.advice]
    return "\n".join(lines)
