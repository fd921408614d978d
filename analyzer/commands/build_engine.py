"""``analyzer build-engine``: the TensorRT FP16 engine for a network, checked against ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from analyzer.commands.arguments import add_engine_arguments, command_parser


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer build-engine``."""
    from analyzer.config import ClassifierConfig

    parser = command_parser(
        subparsers,
        "build-engine",
        "Build (or reuse) the TensorRT FP16 engine for this GPU; needs a 'gpu-cu12' or 'gpu-cu13' install.",
        [
            "analyzer build-engine --model engines/agegender.onnx",
            "analyzer build-engine --model engines/agegender.onnx --max-batch 64 --workspace-mb 2048 --force",
        ],
    )
    defaults = ClassifierConfig()
    add_engine_arguments(parser, defaults.max_batch, defaults.typical_batch)
    parser.add_argument("--engine-dir", type=Path, default=Path(defaults.engine_dir), metavar="DIR", help="plan cache")
    parser.add_argument("--force", action="store_true", help="rebuild even when a matching engine is cached")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the engine, then check it against ONNX Runtime on random chips."""
    from analyzer.backends.onnxruntime import OnnxRuntimeBackend
    from analyzer.backends.selection import tensorrt_probe
    from analyzer.config import ClassifierConfig
    from analyzer.errors import ModelError

    settings = ClassifierConfig(
        model=str(args.model),
        backend="tensorrt",
        max_batch=args.max_batch,
        typical_batch=args.typical_batch,
        workspace_mb=args.workspace_mb,
        engine_dir=str(args.engine_dir),
    )
    settings.check("build-engine")
    available, reason = tensorrt_probe()
    if not available:
        raise ModelError(f"cannot build a TensorRT engine here: {reason}")
    from analyzer.backends.base import largest_difference
    from analyzer.backends.tensorrt import TensorRTBackend, engine_for

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
