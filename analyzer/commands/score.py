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
        "Compare a run's report with a simulated clip's ground truth, or real clips' by-eye truth.",
        [
            "analyzer score --truth truth.json --report report.json",
            "analyzer score --truth ../shared/data/real-clips/truth.json --report one-by-one-backview.json",
            "analyzer score --truth truth.json --report report.json --mistakes",
            "analyzer score --truth truth.json --report report.json --json",
        ],
    )
    parser.add_argument(
        "--truth",
        type=Path,
        required=True,
        metavar="JSON",
        help="from analyzer simulate, or a real clips' truth.json (footfall-real-truth/1: the report's cameras "
        "named after its clips, as --source CLIP names them)",
    )
    parser.add_argument("--report", type=Path, required=True, metavar="JSON", help="from analyzer run --report")
    parser.add_argument("--camera", help="camera id in the report (needed if it has several)")
    parser.add_argument("--json", action="store_true", help="print the score, with its mistakes, as JSON")
    parser.add_argument(
        "--mistakes",
        action="store_true",
        help="also list every miss, double count, false count and wrong attribute or direction, with when it "
        "happened in the clip",
    )
    parser.set_defaults(handler=run)


def _read_json(path: Path, what: str, key: str | None, written_by: str) -> dict:
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
    if not isinstance(document, dict) or (key is not None and key not in document):
        raise DataError(f"{path}: not a {what} (no '{key}' in it); pass the file {written_by} wrote")
    return document


def run(args: argparse.Namespace) -> int:
    """Score and print."""
    from analyzer.tools.real_score import REAL_TRUTH_SCHEMA
    from analyzer.tools.score import mistake_line, outcome

    truth = _read_json(args.truth, "truth file", None, "analyzer simulate --truth")
    if truth.get("schema") != REAL_TRUTH_SCHEMA:
        _read_json(args.truth, "truth file", "visitors", "analyzer simulate --truth")  # one line if it is neither
    report = _read_json(args.report, "report", "cameras", "analyzer run --report")
    if truth.get("schema") == REAL_TRUTH_SCHEMA:
        return _score_real(args, truth, report)
    scored = outcome(truth, report, args.camera)
    result = scored.score()
    if args.json:
        print(json.dumps({**result, "mistakes": scored.mistakes()}, indent=2))
        return 0

    def percent(value: object) -> str:
        return "n/a" if value is None else f"{100 * float(value):.1f}%"  # type: ignore[arg-type]

    print(
        f"visitors: true {result['true_visitors']}, counted {result['counted_visitors']} "
        f"(error {percent(result['count_error'])})"
    )
    on_wall = f" ({result['fixture_counts']} of them faces on the wall)" if result["fixture_counts"] else ""
    print(
        f"misses {result['misses']}, double counts {result['double_counts']}, false counts {result['false_counts']}"
        f"{on_wall}"
    )
    print(
        f"gender accuracy {percent(result['gender_accuracy'])}, {result['age_grouping']} accuracy "
        f"{percent(result['age_group_accuracy'])}, direction {percent(result['direction_accuracy'])} "
        f"of {result['crossings']} crossings"
    )
    if args.mistakes:
        for mistake in scored.mistakes():
            print(mistake_line(mistake))
    return 0


def _score_real(args: argparse.Namespace, truth: dict, report: dict) -> int:
    """Each real clip of the report against its by-eye truth; exit 1 when one fails."""
    from analyzer.tools.real_score import score_line, score_report

    scores = score_report(args.truth, truth, report)
    if args.json:
        print(json.dumps({"clips": [score.to_dict() for score in scores]}, indent=2))
    else:
        for score in scores:
            print(score_line(score))
            for line in score.wrong if args.mistakes else []:
                print(f"  {line}")
    return 0 if all(score.passes for score in scores) else 1
