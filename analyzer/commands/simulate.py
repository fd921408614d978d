"""``analyzer simulate``: a synthetic entrance clip from labelled face photos, with its ground truth."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from analyzer.commands.arguments import command_parser, frame_size, mp4_file, output_file
from analyzer.errors import ConfigError

MAX_VISITORS_PER_SECOND = 2  # a busy doorway; the crowd clips of make accuracy have 0.6


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer simulate``."""
    parser = command_parser(
        subparsers,
        "simulate",
        "Make a synthetic entrance clip from labelled face photos, with ground truth.",
        [
            "analyzer simulate --faces ../shared/data/utkface --out clip.mp4 --truth truth.json",
            "analyzer simulate --faces ../shared/data/utkface --out crowd.mp4 --truth crowd.json "
            "--scenario crowd --visitors 40 --seconds 90 --seed 3",
        ],
    )
    parser.add_argument(
        "--faces", type=Path, required=True, metavar="DIR", help="folder with labels.csv and face crops"
    )
    parser.add_argument("--out", type=mp4_file, required=True, metavar="MP4", help="clip to write")
    parser.add_argument("--truth", type=output_file, required=True, metavar="JSON", help="ground truth to write")
    parser.add_argument("--visitors", type=int, default=20, metavar="N", help="people in the clip (default 20)")
    parser.add_argument("--seconds", type=float, default=60.0, metavar="S", help="clip length (default 60)")
    parser.add_argument(
        "--size",
        type=frame_size((160, 120), (4096, 2160)),
        default=(1280, 720),
        metavar="WxH",
        help="frame size (default 1280x720)",
    )
    parser.add_argument("--fps", type=int, default=15, help="frames per second (default 15)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same clip (default 0)")
    parser.add_argument(
        "--scenario",
        choices=["entrance", "pass-by", "queue", "crowd", "cafe"],
        default="entrance",
        help="who does what (default entrance; cafe: most sit at a table for one to four minutes)",
    )
    parser.add_argument(
        "--wall-faces",
        action="store_true",
        help="hang two posters and a signage screen with faces on the wall: faces that never visit",
    )
    parser.add_argument(
        "--split",
        choices=["all", "train", "validation"],
        default="all",
        help="take faces from one side of the md5 split (validation: faces the network never trained on)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Render a clip and its truth."""
    from analyzer.service.console import progress_bar
    from analyzer.tools.simulate import simulate

    if not 1 <= args.fps <= 120:
        raise ConfigError(f"--fps {args.fps}: give 1 to 120 frames a second, as cameras record")
    if args.visitors < 1 or args.seconds <= 0:
        raise ConfigError("--visitors must be 1 or more and --seconds above 0")
    if args.visitors > MAX_VISITORS_PER_SECOND * args.seconds:
        raise ConfigError(
            f"--visitors {args.visitors} in {args.seconds:g} s is more than a door passes ({MAX_VISITORS_PER_SECOND} "
            f"a second); give --seconds {math.ceil(args.visitors / MAX_VISITORS_PER_SECOND)} or more"
        )
    with progress_bar(total=int(args.seconds * args.fps), desc="rendering", unit="frame") as bar:
        truth = simulate(
            args.faces,
            args.out,
            args.truth,
            args.visitors,
            args.seconds,
            args.size,
            args.fps,
            args.seed,
            args.scenario,
            progress=bar.update,
            split=args.split,
            wall_faces=args.wall_faces,
        )
    countable = sum(visitor["countable"] for visitor in truth["visitors"])
    print(f"wrote {args.out} and {args.truth}: {len(truth['visitors'])} visitors, {countable} countable")
    return 0
