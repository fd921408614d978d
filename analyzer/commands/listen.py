"""``analyzer listen``: print an analyzer's ZeroMQ feed and report gaps in it."""

from __future__ import annotations

import argparse
import sys

from analyzer.commands.arguments import command_parser
from analyzer.errors import ConfigError
from analyzer.service.console import how_many, reader_left


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer listen``."""
    parser = command_parser(
        subparsers,
        "listen",
        "Subscribe to an analyzer's ZeroMQ feed and print each message; report gaps in seq.",
        [
            "analyzer listen",
            "analyzer listen --connect tcp://192.168.1.50:5556 --topic visit.",
            "analyzer listen --json --count 10 > messages.jsonl",
        ],
    )
    parser.add_argument("--connect", default="tcp://127.0.0.1:5556", metavar="ADDR", help="publisher address")
    parser.add_argument("--topic", default="", metavar="PREFIX", help="topic prefix, e.g. visit. or summary.entrance")
    parser.add_argument("--json", action="store_true", help="print JSON lines (with the topic) instead of text")
    parser.add_argument("--count", type=int, default=0, metavar="N", help="stop after N messages (0 = never)")
    parser.add_argument("--seconds", type=float, default=0.0, metavar="S", help="stop after S seconds (0 = never)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Listen until stopped."""
    from analyzer.tools.listen import listen

    if args.count < 0 or args.seconds < 0:
        raise ConfigError("listen: --count and --seconds must be 0 (no limit) or more")
    try:
        gaps = listen(args.connect, args.topic, args.json, args.count, args.seconds, out=_print_line)
    except (KeyboardInterrupt, _ReaderLeftError):
        return 0
    if gaps.gaps:
        print(f"{how_many(gaps.missed, 'message')} missed in {how_many(gaps.gaps, 'gap')}", file=sys.stderr)
    return 0


class _ReaderLeftError(Exception):
    """Whoever read the lines went away (``analyzer listen | head``): nothing is left to listen for."""


def _print_line(line: str) -> None:
    print(line, flush=True)
    if reader_left(sys.stdout):
        raise _ReaderLeftError
