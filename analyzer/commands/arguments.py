"""What every command's options share: its parser with examples and checked output paths."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path


def command_parser(
    subparsers: argparse._SubParsersAction, name: str, summary: str, examples: Sequence[str]
) -> argparse.ArgumentParser:
    """A subcommand's parser whose help ends with worked examples (each command's help shows how to use it)."""
    epilog = "examples:\n" + "\n".join(f"  $ {example}" for example in examples)
    return subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def output_file(text: str) -> Path:
    """A file a command writes (an argparse type), checked before any work: a long run must not end on a bad path."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give the name of a file in it")
    return _writable(text, path)


def output_folder(text: str) -> Path:
    """A folder a command writes into (an argparse type), made later if need be; checked before any work."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    return _writable(text, path)


def _writable(text: str, path: Path) -> Path:
    """``path`` if it can be written: its nearest existing folder is a folder this user may write in."""
    existing = next(folder for folder in (path.parent, *path.parent.parents) if folder.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied; pick a folder you can write to")
    return path


def mp4_file(text: str) -> Path:
    """An output video (an argparse type): OpenCV writes mp4 only, and silently nothing to other names."""
    path = output_file(text)
    if path.suffix.lower() != ".mp4":
        raise argparse.ArgumentTypeError(f"{text}: give a .mp4 file name, e.g. {path.with_suffix('.mp4').name}")
    return path


def whole_number(text: str, low: int, high: int | None = None) -> int | None:
    """``text`` as a whole number from ``low`` to ``high`` (None: no limit), else None."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= low and (high is None or value <= high) else None


def frame_size(smallest: tuple[int, int], largest: tuple[int, int]) -> Callable[[str], tuple[int, int]]:
    """An argparse type for ``WIDTHxHEIGHT`` frames from ``smallest`` to ``largest``: ``1280x720`` → (1280, 720)."""

    def parse(text: str) -> tuple[int, int]:
        try:
            width, height = (int(part) for part in text.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT, e.g. 1280x720") from None
        if not (smallest[0] <= width <= largest[0] and smallest[1] <= height <= largest[1]):
            raise argparse.ArgumentTypeError(f"{text}: give {smallest[0]}x{smallest[1]} to {largest[0]}x{largest[1]}")
        return width, height

    return parse


def add_engine_arguments(parser: argparse.ArgumentParser, max_batch: int, typical_batch: int) -> None:
    """``--model`` and its TensorRT engine's profile: ``--max-batch``, ``--typical-batch``, ``--workspace-mb``."""
    from analyzer.config import ClassifierConfig

    defaults = ClassifierConfig()
    parser.add_argument("--model", type=Path, default=Path(defaults.model), metavar="ONNX", help="FP32 ONNX")
    parser.add_argument(
        "--max-batch", type=int, default=max_batch, metavar="N", help=f"profile max batch ({max_batch})"
    )
    parser.add_argument(
        "--typical-batch", type=int, default=typical_batch, metavar="N", help=f"profile optimum batch ({typical_batch})"
    )
    parser.add_argument("--workspace-mb", type=int, default=defaults.workspace_mb, metavar="MB", help="builder memory")
