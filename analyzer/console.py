"""The process's console: its output, and progress bars drawn only where someone watches.

stdout and stderr may lose their reader (``analyzer run 2>&1 | head``, a log pipe that dies).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm


def how_many(count: int, noun: str) -> str:
    """``1 camera``, ``2 cameras``: what the console says, never ``1 camera(s)``."""
    return f"{count} {noun if count == 1 else noun + 's'}"


class ReaderMayLeave:
    """stdout or stderr whose reader may go away (``analyzer run 2>&1 | head``): later writes are dropped.

    A run must go on counting, and write its report, when nobody reads its log any more.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        """Write, or drop the text once the reader is gone."""
        if not self.gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._leave()
        return len(text)

    def flush(self) -> None:
        """Flush, unless the reader is gone."""
        if not self.gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._leave()

    def _leave(self) -> None:
        self.gone = True
        # Python flushes the stream once more at exit; let that go nowhere instead of failing
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            nowhere = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(nowhere, self._stream.fileno())
            finally:
                os.close(nowhere)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def log_line(line: str) -> None:
    """One line of the run's log, on stderr (what systemd's journal keeps), written at once."""
    print(line, file=sys.stderr, flush=True)


def reader_left(stream: object) -> bool:
    """Whether ``stream`` (``sys.stdout`` under :func:`analyzer.cli.main`) has lost its reader."""
    return isinstance(stream, ReaderMayLeave) and stream.gone


def progress_bar(iterable: Iterable[Any] | None = None, **options: Any) -> tqdm:
    """A tqdm bar on a terminal, and none in a log or a pipe, where every redraw would be more noise.

    A service's journal, ``nohup.out`` or a CI log would otherwise get a
    carriage-return redraw per frame, image or batch.
    """
    from tqdm import tqdm  # not at import: the console script starts without it

    return tqdm(iterable, disable=None, **options)
