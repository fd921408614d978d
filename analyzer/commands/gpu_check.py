"""``analyzer gpu-check``: proves the TensorRT path on a GPU box (:mod:`analyzer.tools.gpu_check`)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from analyzer.commands.arguments import add_engine_arguments, command_parser


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer gpu-check``."""
    parser = command_parser(
        subparsers,
        "gpu-check",
        "Prove the TensorRT FP16 path on this GPU box once: build, parity with ONNX Runtime at every batch size, "
        "threads, GPU latency, FP16 layers, a clean close; one JSON. Exit 3 when there is no usable GPU.",
        [
            "analyzer gpu-check",
            "analyzer gpu-check --faces ../shared/data/utkface --json gpu-check.json",
            "analyzer gpu-check --faces ../shared/data/utkface --max-batch 64 --typical-batch 8",
        ],
    )
    add_engine_arguments(parser, max_batch=64, typical_batch=8)
    parser.add_argument(
        "--faces",
        type=Path,
        metavar="DIR",
        help="labelled faces (labels.csv) whose validation split is compared; without it, 64 crops of "
        "scikit-image's public-domain astronaut photo",
    )
    parser.add_argument("--limit", type=int, default=512, metavar="N", help="at most N faces (default 512)")
    parser.add_argument("--json", type=Path, default=Path("gpu-check.json"), metavar="PATH", help="where to write")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check, print one line per check, write the JSON; exit 0 (passed), 1 (a check failed) or 3 (no GPU)."""
    from analyzer.backends.onnxruntime import OnnxRuntimeBackend
    from analyzer.backends.selection import tensorrt_probe
    from analyzer.config import ClassifierConfig
    from analyzer.service.atomic_files import write_json
    from analyzer.tools.gpu_check import gpu_check, no_gpu, public_domain_chips, this_box, validation_chips

    model = ClassifierConfig(model=str(args.model)).model_path()
    available, reason = tensorrt_probe()
    if not available:
        code, document = no_gpu(reason)
        write_json(args.json, document)
        print(f"no usable GPU here: {reason}; nothing was checked ({args.json})", file=sys.stderr)
        return code
    reference = OnnxRuntimeBackend(model)
    size = reference.metadata.input_size
    chips = validation_chips(args.faces, size, args.limit) if args.faces else public_domain_chips(size)
    with tempfile.TemporaryDirectory(prefix="gpu-check-engines-") as engines:
        box = this_box(model, reference.metadata, args.max_batch, args.typical_batch, args.workspace_mb, Path(engines))
        code, document = gpu_check(box, reference, chips)
    write_json(args.json, document)
    print(", ".join(f"{key} {value}" for key, value in document["box"].items()))
    for check in document["checks"]:
        figures = {key: value for key, value in check.items() if key not in ("name", "passed")}
        print(f"{'pass' if check['passed'] else 'FAIL'}  {check['name']}: {figures}")
    print(f"{'all checks passed' if code == 0 else 'a check failed'}; written to {args.json}")
    return code
