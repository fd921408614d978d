"""The ``analyzer`` command line: the subcommands of :mod:`analyzer.commands` behind one parser.

Library code raises :class:`~analyzer.errors.AnalyzerError`; only :func:`main`
turns it into a single ``error:`` line and an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

# Only light modules here, so `--help` answers at once (a Ctrl-C while this
# loads is caught in analyzer.__main__). Each command imports what it needs.
from analyzer import __version__
from analyzer.commands import (
    accuracy,
    bench,
    build_engine,
    check,
    evaluate,
    export,
    fleet_bench,
    gpu_check,
    listen,
    models,
    run,
    score,
    simulate,
    train,
    web_password,
)
from analyzer.errors import AnalyzerError, ctrl_c_in_import
from analyzer.service.console import ReaderMayLeave, apart_from_native_stderr

Handler = Callable[[argparse.Namespace], int]

#: In the order ``analyzer --help`` lists them.
COMMANDS = (
    run,
    check,
    models,
    train,
    export,
    evaluate,
    build_engine,
    gpu_check,
    bench,
    simulate,
    score,
    accuracy,
    listen,
    web_password,
    fleet_bench,
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="analyzer",
        description="Footfall analyzer: entrance cameras in, visitor demographics out (ZeroMQ + Prometheus).",
        epilog="examples:\n  $ analyzer run\n  $ analyzer models fetch\n"
        "  $ analyzer evaluate --model engines/agegender.onnx --data faces/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``analyzer`` console script."""
    streams = sys.stdout, sys.stderr
    stderr = apart_from_native_stderr(sys.stderr)  # our log lines are never silenced with MediaPipe's chatter
    sys.stdout, sys.stderr = ReaderMayLeave(sys.stdout), ReaderMayLeave(stderr)  # type: ignore[assignment]
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = streams


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        from analyzer.pipeline.capture import quiet_video_library_logs

        quiet_video_library_logs()  # before anything opens a video: FFmpeg reads its log level once
        handler: Handler = args.handler
        return handler(args)
    except AnalyzerError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # the machine's, not ours: a full disk, a file system gone read-only, a lost mount
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ImportError) as error:
        if isinstance(error, ImportError) and not ctrl_c_in_import(error):
            raise
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
