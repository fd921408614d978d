"""``analyzer check``: watch every camera a few seconds and say whether it is set up to count."""

from __future__ import annotations

import argparse

from analyzer.commands.arguments import command_parser, output_file
from analyzer.commands.cameras import add_camera_arguments, cameras_config, checked_config, ensure_detector_models
from analyzer.errors import ConfigError
from analyzer.service.atomic_files import write_json
from analyzer.service.console import log_line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer check``."""
    parser = command_parser(
        subparsers,
        "check",
        "Watch every camera for a few seconds and say whether it is set up to count: stream, fps, face sizes, "
        "and whether people cross the counting line and enter the zones.",
        ["analyzer check -c configs/store-entrance.yaml", "analyzer check --source rtsp://user:pass@10.0.0.12/stream1"],
    )
    add_camera_arguments(parser)
    parser.add_argument(
        "--seconds", type=float, default=10.0, metavar="S", help="how long to watch the cameras (all at once)"
    )
    parser.add_argument("--json", type=output_file, metavar="FILE", help="also write the figures as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Exit 1 when a camera gives no frame; advice alone does not fail."""
    from analyzer.pipeline.appearance import FaceLikeness
    from analyzer.service.cores import threads_for_cameras
    from analyzer.tools.site_check import check_cameras, check_table

    if not 0.5 <= args.seconds <= 600:
        raise ConfigError(f"--seconds {args.seconds:g}: watch each camera between 0.5 and 600 seconds")
    config = checked_config(cameras_config(args))
    ensure_detector_models()
    likeness = FaceLikeness.for_tracker(config.tracker)
    threads_for_cameras()  # all cameras at once, as a run watches them
    checks = check_cameras(config, args.seconds, likeness, log=log_line)
    print(check_table(checks))
    if args.json:
        write_json(args.json, [check.to_dict() for check in checks])
    return 1 if any(check.failed for check in checks) else 0
