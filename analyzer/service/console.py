"""The process's console: its output, and progress bars drawn only where someone watches.

stdout and stderr may lose their reader (``analyzer run 2>&1 | head``, a log pipe that dies).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterable, Iterator
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


def apart_from_native_stderr(stream: TextIO) -> TextIO:
    """``stream`` (the process's stderr) writing through its own duplicate of file descriptor 2.

    Native libraries (LiteRT, FFmpeg) write to descriptor 2 itself, and
    MediaPipe's start-up and shutdown chatter is silenced by pointing that
    descriptor at /dev/null for a moment (:mod:`analyzer.pipeline.detect`). Python's
    own log lines, from any thread, go through the duplicate and are never
    silenced with it.
    """
    try:
        if stream.fileno() != 2:
            return stream
        duplicate = os.dup(2)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # no real descriptor (a test's capture)
        return stream
    return open(duplicate, "w", encoding=stream.encoding, errors=stream.errors, buffering=1, closefd=True)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence the LiteRT/TFLite chatter that goes straight to file descriptor 2.

    LiteRT logs when a MediaPipe graph or a LiteRT interpreter starts
    (``Created TensorFlow Lite XNNPACK delegate``) and when a graph is
    closed (one ``DestroyAccelerator`` line per accelerator). This points
    descriptor 2 at /dev/null for the moment it takes. The console script
    writes Python's own lines through a duplicate of it
    (:func:`apart_from_native_stderr`), so another thread's log line in that
    moment is not lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def log_line(line: str) -> None:
    """One line of the run's log, on stderr (what systemd's journal keeps), written at once."""
    print(line, file=sys.stderr, flush=True)


class ErrorTally:
    """Failures of one kind, for a log that says the first at once and then, now and then, how many since.

    A camera or a classifier that fails on every frame must neither write a
    line per frame nor go quiet after the first.

    Example:
        >>> errors = ErrorTally()
        >>> errors.add("ValueError: bad frame"), errors.add("ValueError: worse")
        (True, False)
        >>> errors.take_unreported()
        (1, 'ValueError: worse')
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.unreported = 0
        self.last = ""

    def add(self, detail: str) -> bool:
        """Count one failure; True for the first (to be logged at once)."""
        with self._lock:
            self.total += 1
            self.last = detail
            if self.total == 1:
                return True
            self.unreported += 1
            return False

    def take_unreported(self) -> tuple[int, str]:
        """How many failed since the last call (the first not included) and the latest of them; resets the count."""
        with self._lock:
            count, self.unreported = self.unreported, 0
            return count, self.last


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
