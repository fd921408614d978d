"""``analyzer bench``: how many cameras this box serves in real time, and where the time goes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analyzer.commands.arguments import (
    command_parser,
    frame_size,
    output_file,
    output_folder,
)
from analyzer.commands.cameras import DEFAULT_CONFIG, ensure_detector_models
from analyzer.errors import ConfigError
from analyzer.service.atomic_files import write_json, write_output
from analyzer.service.console import log_line
from analyzer.service.cores import threads_for_cameras


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer bench``."""
    parser = command_parser(
        subparsers,
        "bench",
        "Measure how many simulated cameras this box serves in real time, and where the time goes.",
        [
            "analyzer bench --streams 4 --seconds 20 --json bench.json",
            "analyzer bench --streams 4 --naive --faces ../shared/data/utkface --markdown docs/PERFORMANCE.md",
            "analyzer bench --streams 2 --soak 10 --json soak.json",
        ],
    )
    parser.add_argument("--streams", type=int, default=4, metavar="N", help="try 1..N streams (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0, metavar="S", help="length of each run (default 20)")
    parser.add_argument(
        "--size",
        type=frame_size((64, 64), (7680, 4320)),
        default=(1280, 720),
        metavar="WxH",
        help="frame size (default 1280x720)",
    )
    parser.add_argument("--fps", type=int, default=15, metavar="N", help="camera frame rate (default 15)")
    parser.add_argument("--backend", choices=["auto", "onnxruntime", "tensorrt"], help="classifier backend")
    parser.add_argument("--naive", action="store_true", help="also classify every face in every frame and compare")
    parser.add_argument("--faces", type=Path, metavar="DIR", help="labelled faces for the clip (default: demo walkers)")
    parser.add_argument(
        "--soak", type=float, default=0.0, metavar="MINUTES", help="then soak the largest real-time N this long"
    )
    parser.add_argument(
        "--stalled-classifier",
        action="store_true",
        help="soak with a classifier whose every call hangs: queues stay bounded, memory flat, visits still counted",
    )
    parser.add_argument(
        "--traffic",
        choices=["busy", "shop-day"],
        default="busy",
        help="busy: only the clip of walkers; shop-day: also streams with people 15%% of the time and an empty "
        "doorway the rest, with the motion gate on, up to --shop-day-streams (docs/PERFORMANCE.md)",
    )
    parser.add_argument(
        "--shop-day-streams", type=int, default=32, metavar="N", help="the most shop-day streams tried (32)"
    )
    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, metavar="YAML", help="detector etc.")
    parser.add_argument("--work", type=output_folder, default=Path("runs/bench"), metavar="DIR", help="clip cache")
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write every figure here")
    parser.add_argument("--markdown", type=output_file, metavar="MD", help="write the table here (docs/PERFORMANCE.md)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the bench and print (and write) its figures."""
    from analyzer.backends.selection import create_backend
    from analyzer.config import load_config
    from analyzer.tools.bench import BenchSettings, performance_markdown, run_bench

    if args.streams < 1 or args.seconds < 2 or not 1 <= args.fps <= 120 or args.soak < 0:
        raise ConfigError(
            "bench: --streams must be at least 1, --seconds at least 2, --fps 1 to 120 and --soak 0 (none) or more"
        )
    config = load_config(args.config)
    if args.backend is not None:
        config.classifier.backend = args.backend
    ensure_detector_models()
    threads_for_cameras()
    backend = create_backend(config.classifier, log=log_line)
    if args.stalled_classifier and not args.soak:
        raise ConfigError("bench: --stalled-classifier needs --soak MINUTES: it is how the soak is run")
    settings = BenchSettings(
        args.streams,
        args.seconds,
        args.size,
        args.fps,
        args.naive,
        args.soak,
        args.stalled_classifier,
        shop_day=args.traffic == "shop-day",
        shop_day_streams=args.shop_day_streams,
    )
    result = run_bench(config, backend, settings, args.work, args.faces, log=log_line)
    command = "analyzer " + " ".join(sys.argv[1:])
    table = performance_markdown(result, command)
    print(table)
    if args.json:
        write_json(args.json, result)
        print(f"figures written to {args.json}")
    if args.markdown:
        write_output(args.markdown, table)
        print(f"table written to {args.markdown}")
    return 0
