"""``analyzer accuracy``: simulate, run and score the fixed clip set; write docs/ACCURACY.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analyzer.commands.arguments import command_parser, output_file, output_folder
from analyzer.core.shipped import shipped_path
from analyzer.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer accuracy``."""
    parser = command_parser(
        subparsers,
        "accuracy",
        "Simulate, run and score the fixed clip set (all scenarios, 200+ visitors); write docs/ACCURACY.md.",
        [
            "analyzer accuracy --faces ../shared/data/utkface --out docs/ACCURACY.md",
            "analyzer accuracy --faces ../shared/data/utkface --real-clips ../shared/data/real-clips",
        ],
    )
    parser.add_argument("--faces", type=Path, required=True, metavar="DIR", help="labelled face crops")
    parser.add_argument(
        "--out", type=output_file, default=Path("docs/ACCURACY.md"), metavar="MD", help="table to write"
    )
    parser.add_argument("--work", type=output_folder, default=Path("runs/accuracy"), metavar="DIR", help="clip cache")
    parser.add_argument("-c", "--config", type=Path, default=shipped_path("configs/simulated.yaml"), metavar="YAML")
    parser.add_argument(
        "--real-clips",
        type=Path,
        metavar="DIR",
        help="also run and judge the real clips in DIR against its truth.json (the Real footage table)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the accuracy set."""
    from analyzer.tools.accuracy import run_accuracy

    if args.real_clips is not None and not (args.real_clips / "truth.json").is_file():
        raise ConfigError(f"--real-clips {args.real_clips}: no truth.json in it; give the folder of the real clips")
    result = run_accuracy(args.faces, args.work, args.out, args.config, real_clips=args.real_clips)
    total = result["total"]
    print(json.dumps(total, indent=2))
    print(f"table written to {args.out}")
    return 0
