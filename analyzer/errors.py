"""Exceptions for problems a user can fix.

Library code raises these with a message that names the file, key or value at
fault and what to do; only ``analyzer.cli.main`` turns them into one ``error:`` line and
an exit code.
"""


class AnalyzerError(Exception):
    """A problem the user can fix; the message says what and how."""

    exit_code = 1


class ConfigError(AnalyzerError):
    """Invalid configuration: the message names the key path."""

    exit_code = 2


class DataError(AnalyzerError):
    """A labelled data folder or one of its rows is unusable."""


class ModelError(AnalyzerError):
    """A model file is missing, corrupt or inconsistent with its metadata."""


class AssetError(AnalyzerError):
    """A model asset (MediaPipe or baseline file) is missing or failed to fetch."""


class MissingExtraError(AnalyzerError):
    """An optional dependency group is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this command needs the Python package '{module}', which is in the "
            f"'{extra}' extra: pip install 'footfall-analyzer[{extra}]' "
            f"(from a clone: pip install -e '.[{extra}]')"
        )


def ctrl_c_in_import(error: ImportError) -> bool:
    """A Ctrl-C while a native library (onnxruntime, torch, cv2) initialises comes out as its ImportError."""
    return isinstance(error.__cause__, KeyboardInterrupt)
