"""Clips encoded the way entrance cameras send them, so the bench decodes what a box will decode.

IP cameras send H.264 (or H.265): no B-frames, a keyframe every second or
two, 1-2 Mbit/s at 720p15. H.264 costs about 1.5 ms more CPU to decode per
720p frame than the MPEG-4 Part 2 that OpenCV's own writer makes
(docs/PERFORMANCE.md), so a bench on OpenCV-written clips promises more
cameras than a box holds. PyAV (the ``dev`` extra, which ``make bench``
installs) brings libx264; without it the clips stay MPEG-4 and the bench's
JSON says so.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

#: A camera's keyframe interval, and its bitrate as bits per pixel per frame (2 Mbit/s at 720p15).
CAMERA_KEYFRAME_S, CAMERA_BITS_PER_PIXEL = 2.0, 0.145
CODEC_NAMES = {"h264": "H.264", "mpeg4": "MPEG-4 Part 2"}


def camera_codec() -> str:
    """``h264`` when PyAV can encode it here, else ``mpeg4`` (OpenCV's writer)."""
    try:
        import av
    except ImportError:
        return "mpeg4"
    return "h264" if "libx264" in av.codecs_available else "mpeg4"


class CameraClipWriter:
    """Writes BGR frames to an MP4 file in :func:`camera_codec`'s codec, with a camera's keyframes and bitrate.

    Example:
        >>> with CameraClipWriter(Path("clip.mp4"), 15.0, (1280, 720)) as writer:  # doctest: +SKIP
        ...     writer.write(frame)
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.codec = camera_codec()
        self._opencv: cv2.VideoWriter | None = None
        if self.codec == "mpeg4":
            self._opencv = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            return
        import av

        self._container = av.open(str(path), "w")
        self._stream = self._container.add_stream("libx264", rate=round(fps))
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.bit_rate = int(CAMERA_BITS_PER_PIXEL * size[0] * size[1] * fps)
        self._stream.options = {
            "preset": "veryfast",
            "tune": "zerolatency",  # no B-frames, no lookahead: what a camera's encoder does
            "profile": "main",
            "g": str(max(round(CAMERA_KEYFRAME_S * fps), 1)),
        }

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR frame (H, W, 3) uint8 of the writer's size."""
        if self._opencv is not None:
            self._opencv.write(frame)
            return
        import av

        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._opencv is not None:
            self._opencv.release()
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> CameraClipWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def camera_encoded(clip: Path) -> Path:
    """``clip`` as a camera would send it, written once beside it (``NAME.h264.mp4``); ``clip`` itself without PyAV."""
    codec = camera_codec()
    if codec == "mpeg4":
        return clip
    encoded = clip.with_name(f"{clip.stem}.{codec}.mp4")
    if encoded.is_file():
        return encoded
    source = cv2.VideoCapture(str(clip))
    fps = source.get(cv2.CAP_PROP_FPS) or 15.0
    size = (int(source.get(cv2.CAP_PROP_FRAME_WIDTH)), int(source.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    partial = encoded.with_name(encoded.stem + ".partial.mp4")
    try:
        with CameraClipWriter(partial, fps, size) as writer:
            while True:
                ok, frame = source.read()
                if not ok:
                    break
                writer.write(frame)
    finally:
        source.release()
    partial.replace(encoded)
    return encoded
