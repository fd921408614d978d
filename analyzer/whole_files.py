"""Files written whole or not at all: a report, a resume point, a cache of aligned faces.

A full disk or a killed process must leave the last complete file in place,
never half of a new one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def whole_file(path: Path) -> Iterator[Path]:
    """Yield a temporary file beside ``path`` to write; it replaces ``path`` only when the block succeeds.

    A ``path`` that is a symlink is replaced where it points. A file replaced
    keeps its permission bits: an operator who made a report readable by the
    dashboard's group, or private, must not find it back at the default mode
    after the next run. The temporary name carries the process id, so two
    processes writing one file never share it.
    """
    path = path.resolve() if path.is_symlink() else path
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        if path.exists():
            partial.chmod(stat.S_IMODE(path.stat().st_mode))
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
