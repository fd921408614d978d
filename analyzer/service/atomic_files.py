"""Files written whole or not at all: a report, a resume point, a cache of aligned faces.

A full disk, a killed process or a power cut must leave the last complete
file in place, never half of a new one nor an empty one.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from analyzer.errors import AnalyzerError


@contextmanager
def whole_file(path: Path) -> Iterator[Path]:
    """Yield a temporary file beside ``path`` to write; it replaces ``path`` only when the block succeeds.

    A ``path`` that is a symlink is replaced where it points. A file replaced
    keeps its permission bits: an operator who made a report readable by the
    dashboard's group, or private, must not find it back at the default mode
    after the next run. The temporary name carries the process id, so two
    processes writing one file never share it. The new file is on the disk
    before it takes the old one's name, and the name change is on the disk
    before this returns: a shop's box loses power without warning, and a
    rename the disk saw before the data leaves an empty file behind.
    """
    path = path.resolve() if path.is_symlink() else path
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        if path.exists():
            partial.chmod(stat.S_IMODE(path.stat().st_mode))
        _to_disk(partial)
        partial.replace(path)
        with contextlib.suppress(OSError):  # some file systems cannot sync a folder; the file itself is safe
            _to_disk(path.parent)
    finally:
        partial.unlink(missing_ok=True)


def _to_disk(path: Path) -> None:
    """Wait until the file's (or folder's) contents are on the disk, not only in the page cache."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json(path: Path, document: object) -> None:
    """Write a document as indented JSON (see :func:`write_output`)."""
    write_output(path, json.dumps(document, indent=2) + "\n")


def write_output(path: Path, text: str) -> None:
    """Write an output file whole or not at all, making its folder if need be.

    A full disk must not leave half a report in place of the last good one, nor end in a traceback.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with whole_file(path) as partial:
            partial.write_text(text)
    except OSError as error:
        raise AnalyzerError(f"cannot write {path} ({error.strerror}); free some space or pick another file") from None
