"""``analyzer train``: our age and gender network from a labelled face folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from analyzer.commands.arguments import command_parser, output_folder
from analyzer.errors import ConfigError, MissingExtraError, ctrl_c_in_import

QUICK_EPOCHS = 8  # the smoke run's length in epochs, not minutes, so a busy box does the same run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer train``."""
    from analyzer.train.augment import AUGMENTATIONS

    parser = command_parser(
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
        "--epochs",
        type=int,
        default=0,
        metavar="N",
        help="train this many whole epochs instead of --minutes: the same run on a fast or a busy box",
    )
    parser.add_argument(
        "--align", choices=["auto", "crop", "detect"], default="auto", help="how faces are located (default auto)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--balance",
        type=float,
        default=0.5,
        metavar="P",
        help="oversample rare age groups by 1/frequency**P (0 = as is, 1 = equally; default 0.5)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        metavar="RUN",
        help="start from this run folder's or exported .onnx file's weights (fine-tune; same --input-size) "
        "instead of random ones",
    )
    parser.add_argument(
        "--init-member",
        type=int,
        default=0,
        metavar="N",
        help="which run of an exported ensemble --init starts from (default 0, the first)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.1,
        metavar="LR",
        help="peak learning rate of the warm-up and cosine decay (default 0.1; ~0.02 to fine-tune)",
    )
    parser.add_argument(
        "--gender-weight",
        type=float,
        default=1.0,
        metavar="W",
        help="weight of the gender loss against the age loss (default 1)",
    )
    parser.add_argument(
        "--augment",
        choices=list(AUGMENTATIONS),
        default="camera",
        help="augmentation recipe: camera (default) or entrance (busier painted backgrounds, small faces "
        "compressed at their own size)",
    )
    parser.add_argument(
        "--head-outline",
        type=float,
        default=0.0,
        metavar="POWER",
        help="mask the chip outside a head outline, a superellipse of this power (2 = inscribed ellipse), "
        "in training and in the exported graph (default 0: none, or what the --init network has)",
    )
    parser.add_argument(
        "--backdrop-consistency",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="see each face on its photo's backdrop and on a painted scene, with the same camera effects, and "
        "add this weight times the divergence of the two predictions to the loss (AugMix uses 12; default 0: off)",
    )
    parser.add_argument(
        "--distill-from",
        type=Path,
        metavar="ONNX",
        help="a frozen teacher: an exported .onnx (e.g. engines/agegender.onnx) that sees each face clean, "
        "while the network learns its answers on the same face as the camera sees it",
    )
    parser.add_argument(
        "--distill-weight",
        type=float,
        default=1.0,
        metavar="W",
        help="weight of the divergence from the teacher's answers (default 1: as much as the labels)",
    )
    parser.add_argument(
        "--distill-member",
        type=int,
        metavar="N",
        help="only run N of the --distill-from ensemble teaches (e.g. the run --init-member starts from, so "
        "each run of a new ensemble keeps its own errors; default: the whole ensemble)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run in --out from its last epoch, with the settings it was started with",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny subset, 64 px, {QUICK_EPOCHS} epochs or --epochs (~25 s): a smoke test",
    )
    parser.set_defaults(handler=run)


def missing_train_extra(error: ImportError) -> MissingExtraError:
    """Torch is not installed; unless the ImportError is a Ctrl-C (main says "interrupted")."""
    if ctrl_c_in_import(error):
        raise error
    return MissingExtraError(error.name or "torch", "train")


def run(args: argparse.Namespace) -> int:
    """Train and print the final validation metrics."""
    try:
        from analyzer.train.loop import TrainConfig, resume_training, train
    except ImportError as error:
        raise missing_train_extra(error) from None
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
            data=str(args.data),
            input_size=64,
            epochs=args.epochs or QUICK_EPOCHS,
            subset=600,
            align=args.align,
            seed=args.seed,
            init=str(args.init or ""),
            init_member=args.init_member,
            augment=args.augment,
            head_outline=args.head_outline,
            backdrop_consistency=args.backdrop_consistency,
            distill_from=str(args.distill_from or ""),
            distill_weight=args.distill_weight,
            distill_member=distill_member,
        )
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
