"""How many CPU cores this process may use.

``os.cpu_count()`` is the machine's; under ``taskset`` or a container's
cpuset the process may run on fewer, and threads sized to the machine then
fight over the few cores it has.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it, else the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def one_thread_per_opencv_call() -> None:
    """OpenCV runs each call on its caller's thread: the cameras' threads are the parallelism.

    Its own pool would split a resize or a colour conversion across every core
    for each camera at once, and the hand-offs cost more than they save (about
    1 ms of CPU per 720p frame with 7 cameras, docs/PERFORMANCE.md).
    """
    import cv2

    cv2.setNumThreads(1)
