"""One analyzer per output file: a second run given the same ``--report`` or ``--preview`` is refused at its start.

Two runs writing one report (a test run started by hand beside the
service, or a copied unit file) would each rewrite it with their own visits
only, and every rewrite would silently drop the other's. Each output is
claimed with an exclusive ``flock`` on a hidden ``.<name>.lock`` beside it,
held for the run's life. The kernel lets go of a claim when its process dies
however it dies (a crash, ``kill -9``, a watchdog abort), so a stale lock
file never blocks the next start; a run that ends cleanly removes its lock
file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from analyzer.errors import ConfigError


class OutputClaim:
    """This process's claim on one output file.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> claim = OutputClaim("--report", folder / "report.json")
        >>> claim.lock_path.name
        '.report.json.lock'
        >>> claim.release()
    """

    def __init__(self, option: str, path: Path) -> None:
        self.option = option
        self.path = path
        self.lock_path = path.with_name(f".{path.name}.lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._descriptor = self._lock()
        except OSError as error:
            message = f"{option} {path}: cannot claim it ({error.strerror}); pick a folder you can write to"
            raise ConfigError(message) from None
        with contextlib.suppress(OSError):  # the pid only names the holder in the next run's refusal
            os.ftruncate(self._descriptor, 0)
            os.write(self._descriptor, f"{os.getpid()}\n".encode())

    def _lock(self) -> int:
        """Open and lock the lock file, the one that is at its name once locked."""
        while True:
            descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _pid_in(descriptor)
                os.close(descriptor)
                by = f"another analyzer (pid {holder})" if holder else "another analyzer"
                raise ConfigError(
                    f"{self.option} {self.path} is being written by {by}; give each run its own file"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.lock_path).st_ino == os.fstat(descriptor).st_ino:
                    return descriptor
            os.close(descriptor)  # its holder removed it between our open and our lock: claim the new one

    def release(self) -> None:
        """Remove the lock file, then let go of it (in that order, so no one locks a removed file and goes on)."""
        with contextlib.suppress(OSError):
            self.lock_path.unlink()
        os.close(self._descriptor)


def _pid_in(descriptor: int) -> int | None:
    try:
        return int(os.pread(descriptor, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def claimed(outputs: Sequence[tuple[str, Path]]) -> Iterator[None]:
    """Claim every ``(option, path)`` for the block; none if any one is another run's."""
    with contextlib.ExitStack() as claims:
        for option, path in outputs:
            claims.callback(OutputClaim(option, path).release)
        yield
