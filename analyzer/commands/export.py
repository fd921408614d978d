"""``analyzer export``: trained runs to FP32 and FP16 ONNX files with their metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from analyzer.commands.arguments import command_parser, output_file
from analyzer.commands.train import missing_train_extra
from analyzer.service.console import how_many


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer export``."""
    parser = command_parser(
        subparsers,
        "export",
        "Export trained runs to <name>.onnx (FP32) and <name>.fp16.onnx with embedded metadata; "
        "several --run make one ensemble that averages them.",
        [
            "analyzer export --run runs/utk80 --out engines/agegender",
            "analyzer export --run runs/utk64c --run runs/utk64d --out engines/agegender",
            "analyzer export --run runs/mine --out /tmp/mine --version mine-1",
        ],
    )
    parser.add_argument(
        "--run",
        type=Path,
        required=True,
        action="append",
        metavar="DIR",
        help="run folder from analyzer train; repeat to export an ensemble",
    )
    parser.add_argument("--out", type=output_file, required=True, metavar="PREFIX", help="output path without .onnx")
    parser.add_argument("--version", default=None, help="version string stored in the model (default: name + hash)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export and report the files written."""
    try:
        from analyzer.train.export import export_run
    except ImportError as error:
        raise missing_train_extra(error) from None

    exported = export_run(args.run, args.out, args.version)
    fp32, fp16, runs = exported.fp32_path, exported.fp16_path, exported.runs
    likeness = exported.likeness_path
    print(
        f"wrote {fp32} ({fp32.stat().st_size:,} B), {fp16} ({fp16.stat().st_size:,} B) and the tracker's "
        f"face likeness {likeness} ({likeness.stat().st_size:,} B)"
    )
    print(
        f"ONNX Runtime matches PyTorch; {runs} x {exported.parameters_per_run / 1e6:.2f} M parameters, "
        f"{exported.macs_per_pass / 1e6:.0f} M multiply-adds per pass at {exported.input_size} px (the graph runs "
        f"{2 * runs} passes: the chip and its mirror through each of {how_many(runs, 'run')})"
    )
    return 0
