"""Text files people write by hand or save from a spreadsheet: a config, a ``labels.csv``.

Either may start with a byte-order mark (an editor's, or a spreadsheet's "CSV
UTF-8"), and either may have been saved in another encoding, which its reader
must be told by line.
"""

from __future__ import annotations

from pathlib import Path


class NotUtf8Error(ValueError):
    """A file that is not UTF-8 text."""

    def __init__(self, line: int, binary: bool) -> None:
        super().__init__(f"line {line}: not UTF-8 text")
        self.line = line  # the first line that is not
        self.binary = binary  # a NUL byte: no text at all (a video, or text saved as UTF-16)


def read_utf8(path: Path) -> str:
    """The file's text; a leading byte-order mark is dropped, where it would glue itself to the first word."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise NotUtf8Error(raw[: error.start].count(b"\n") + 1, b"\0" in raw) from None
