"""What a camera's source names: a video file, a live stream's URL, or a webcam.

Light on purpose (no OpenCV): the config check and the command line need it
before any video library is loaded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

LIVE_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


def webcam_index(source: str) -> int | None:
    """The webcam a source names, or None for other sources.

    An index (``0``), a Linux device (``/dev/video0``), or a stable name that
    links to one (``/dev/v4l/by-id/usb-...-video-index0``), which keeps naming
    the same camera when USB ports are swapped.
    """
    if source.isdigit():
        return int(source)
    device = re.fullmatch(r"/dev/video(\d+)", os.path.realpath(source) if source.startswith("/dev/") else source)
    return int(device.group(1)) if device else None


def source_kind(source: str) -> str:
    """``file``, ``live`` (URL) or ``webcam``."""
    if webcam_index(source) is not None:
        return "webcam"
    if source.lower().startswith(LIVE_PREFIXES):
        return "live"
    return "file"


def file_path(source: str) -> Path:
    """A file source's path, as a user would mean it.

    ``~`` is the home folder (a config is not a shell), and a ``file://`` URL
    (as file managers copy one) is the file it names.
    """
    if source.lower().startswith("file://"):
        return Path(url2pathname(urlsplit(source).path))
    return Path(source).expanduser()
