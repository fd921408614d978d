"""``analyzer score``: a run's report against a simulated clip's ground truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analyzer.commands.arguments import command_parser


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer score``."""
    parser = command_parser(
        subparsers,
        "score",
        "Compare a run's report with a simulated clip's ground truth.",
        [
            "analyzer score --truth truth.json --report report.json",
            "analyzer score --truth truth.json --report report.json --mistakes",
            "analyzer score --truth truth.json --report report.json --json",
        ],
    )
    parser.add_argument("--truth", type=Path, required=True, metavar="JSON", help="from analyzer simulate")
    parser.add_argument("--report", type=Path, required=True, metavar="JSON", help="from analyzer run --report")
    parser.add_argument("--camera", help="camera id in the report (needed if it has several)")
    parser.add_argument("--json", action="store_true", help="print the score, with its mistakes, as JSON")
    parser.add_argument(
        "--mistakes", action="store_true",
        help="also list every miss, double count, false count and wrong attribute or direction, with when it "
        "happened in the clip",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def _read_json(path: Path, what: str, key: str, written_by: str) -> dict:
    """A JSON document one of our commands wrote, known by its ``key``: a swapped or foreign file is one line."""
    from analyzer.errors import DataError

    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the {what} ({error.strerror})") from None
    if not isinstance(document, dict) or key not in document:
        raise DataError(f"{path}: not a {what} (no '{key}' in it); pass the file {written_by} wrote")
    return document


def run(args: argparse.Namespace) -> int:
    """Score and print."""
    from analyzer.score import mistake_line, outcome

    truth = _read_json(args.truth, "truth file", "visitors", "analyzer simulate --truth")
    report = _read_json(args.report, "report", "cameras", "analyzer run --report")
    scored = outcome(truth, report, args.camera)
    result = scored.score()
    if args.json:
        print(json.dumps({**result, "mistakes": scored.mistakes()}, indent=2))
        return 0

    def percent(value: object) -> str:
        return "n/a" if value is None else f"{100 * float(value):.1f}%"  # type: ignore[arg-type]

    print(f"visitors: true {result['true_visitors']}, counted {result['counted_visitors']} "
          f"(error {percent(result['count_error'])})")  # fmt: skip
    print(f"misses {result['misses']}, double counts {result['double_counts']}, false counts {result['false_counts']}")
    print(f"gender accuracy {percent(result['gender_accuracy'])}, {result['age_grouping']} accuracy "
          f"{percent(result['age_group_accuracy'])}, direction {percent(result['direction_accuracy'])} "
          f"of {result['crossings']} crossings")  # fmt: skip
    if args.mistakes:
        for mistake in scored.mistakes():
            print(mistake_line(mistake))
    return 0
