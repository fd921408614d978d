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
