"""``analyzer fleet-bench``: what simulated shops put on a central VictoriaMetrics and an MQTT broker."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analyzer.commands.arguments import command_parser, output_file
from analyzer.errors import ConfigError
from analyzer.service.atomic_files import write_json
from analyzer.service.console import log_line


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text}: give HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer fleet-bench``."""
    parser = command_parser(
        subparsers,
        "fleet-bench",
        "Write simulated shops' metrics to a VictoriaMetrics and their visits to an MQTT broker; measure both "
        "(docs/FLEET.md). Use a store and broker of their own: the shops' series stay in it.",
        [
            "analyzer fleet-bench --victoria http://127.0.0.1:8428 --shops 1000 --scrapes 8",
            "analyzer fleet-bench --victoria http://127.0.0.1:8428 --mqtt 127.0.0.1:1883 --json runs/fleet.json",
        ],
    )
    parser.add_argument("--victoria", required=True, metavar="URL", help="the VictoriaMetrics to write to")
    parser.add_argument("--shops", type=int, default=100, metavar="N", help="simulated shops (default 100)")
    parser.add_argument("--cameras", type=int, default=4, metavar="N", help="cameras per shop (default 4)")
    parser.add_argument("--scrapes", type=int, default=8, metavar="N", help="scrapes of each shop, 15 s apart")
    parser.add_argument("--mqtt", type=_address, metavar="HOST:PORT", help="also publish visits to this broker")
    parser.add_argument("--mqtt-shops", type=int, default=50, metavar="N", help="shops publishing at once (50)")
    parser.add_argument("--visits", type=int, default=100, metavar="N", help="visits each of them sends (100)")
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write every figure here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the load and print its figures."""
    from analyzer.tools.fleet_load import fleet_load

    for name in ("shops", "cameras", "scrapes", "mqtt_shops", "visits"):
        if getattr(args, name) < (0 if name == "cameras" else 1):
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(args, name)}: give a positive number")
    try:
        load = fleet_load(
            args.victoria.rstrip("/"),
            args.shops,
            args.scrapes,
            cameras=args.cameras,
            mqtt_address=args.mqtt,
            mqtt_shops=args.mqtt_shops,
            visits_per_shop=args.visits,
            log=log_line,
        )
    except OSError as error:
        raise ConfigError(f"cannot reach the store or the broker: {error}; is it running at that address?") from None
    print(json.dumps(load.to_dict(), indent=2))
    if args.json:
        write_json(Path(args.json), load.to_dict())
    return 0
