"""How many CPU cores this process may use.

``os.cpu_count()`` is the machine's; under ``taskset`` or a container's
cpuset the process may run on fewer, and threads sized to the machine then
fight over the few cores it has.
"""

from __future__ import annotations

import os
import sys

#: How long a thread runs Python before one waiting for the GIL gets it (Python's own default is 5 ms).
GIL_SWITCH_INTERVAL_S = 0.001


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it, else the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def decoder_threads(cameras: int, cores: int) -> int:
    """FFmpeg threads for each camera's decoder: 1 once there is a camera per core, else 0 (FFmpeg's choice).

    FFmpeg gives a decoder a thread per core and hands each frame between
    them. With a camera per core or more, the cameras' own decoders already
    keep every core busy: one thread each decodes the same pictures for 5 to
    10% less CPU, with fewer threads to schedule (docs/PERFORMANCE.md). With
    fewer cameras, FFmpeg's threads shorten a frame's decoding on the idle
    cores.
    """
    return 1 if cameras >= cores else 0


def threads_for_cameras() -> None:
    """Process-wide threading for many camera threads; ``run``, ``check`` and ``bench`` call it first.

    OpenCV runs each call on its caller's thread: the cameras' threads are the
    parallelism. Its own pool would split a resize or a colour conversion
    across every core for each camera at once, and the hand-offs cost more
    than they save (about 1 ms of CPU per 720p frame with 7 cameras).

    A frame comes back from C (decoding, MediaPipe, ONNX Runtime) to Python a
    dozen times, and each time waits for the thread running Python to let go
    of the GIL: up to the switch interval. At Python's 5 ms, ten busy streams
    left a quarter of two cores idle and dropped 1.5% of their frames; at 1 ms
    they were held (docs/PERFORMANCE.md).
    """
    import cv2

    cv2.setNumThreads(1)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
