"""``analyzer export``: trained runs to self-describing FP32 and FP16 ONNX files.

Several runs of the same input size export as one ensemble graph that
averages their probabilities.

The FP16 file keeps float32 inputs and outputs (casts at the edges) while all
weights and compute inside are float16, which is what a TensorRT strongly typed
network builds from; ONNX Runtime on CPU runs it too, for parity checks here.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from analyzer import __version__
from analyzer.core.age_groups import FINE_AGE_EDGES
from analyzer.core.model_meta import AGE_OUTPUT, GENDER_OUTPUT, INPUT_NAME, LIKENESS_PROPS, ModelMetadata
from analyzer.core.preprocess import ALIGNMENT_TEMPLATE
from analyzer.datasets.labels import GENDERS
from analyzer.errors import DataError
from analyzer.pipeline.appearance import LIKENESS_INPUT, LIKENESS_OUTPUT, LIKENESS_SIZE
from analyzer.train.loop import TrainConfig, load_checkpoint
from analyzer.train.model import LikenessModel, ProbabilityEnsemble, ProbabilityModel, exportable_model, model_size

OPSET = 17


def _set_metadata(model: object, metadata: ModelMetadata) -> None:
    import onnx

    onnx.helper.set_model_props(model, metadata.to_props())


def _sort_nodes(graph: object) -> None:
    """Put nodes in topological order (the FP16 converter appends its input casts last)."""
    available = {tensor.name for tensor in graph.input} | {tensor.name for tensor in graph.initializer}  # type: ignore[attr-defined]
    available.add("")
    pending = list(graph.node)  # type: ignore[attr-defined]
    ordered = []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise DataError("exported graph has a cycle or an undefined tensor; cannot sort it")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [node for node in pending if node not in ready]
    del graph.node[:]  # type: ignore[attr-defined]
    graph.node.extend(ordered)  # type: ignore[attr-defined]


def _describe_training_data(data: str) -> str:
    folder = Path(data)
    readme = folder.parent / "README.md"
    name = folder.name
    if name.lower() == "utkface":
        return "UTKFace aligned & cropped (non-commercial research licence), split by md5"
    return f"labelled folder '{name}'" + (f" (see {readme})" if readme.is_file() else "")


def load_runs(run_dirs: list[Path]) -> tuple[ProbabilityModel | ProbabilityEnsemble, list[TrainConfig]]:
    """The exportable model of one run, or the ensemble of several, and their configs."""
    if not run_dirs:
        raise DataError("export needs at least one --run")
    loaded = [load_checkpoint(run_dir) for run_dir in run_dirs]
    configs = [config for _, config in loaded]
    for run_dir, config in zip(run_dirs, configs, strict=True):
        if (config.input_size, config.normalization) != (configs[0].input_size, configs[0].normalization):
            raise DataError(
                f"{run_dir}: input size {config.input_size} / {config.normalization} differs from {run_dirs[0]} "
                f"({configs[0].input_size} / {configs[0].normalization}); an ensemble's runs must share both"
            )
    return exportable_model([net for net, _ in loaded]), configs


def _describe_ensemble(configs: list[TrainConfig]) -> str:
    if len(configs) == 1:
        return ""
    return f"; ensemble of {len(configs)} runs (seeds {', '.join(str(config.seed) for config in configs)})"


@dataclass(frozen=True)
class ExportedModel:
    """The files written, and the size of one run's pass (what ``analyzer export`` prints)."""

    fp32_path: Path
    fp16_path: Path
    likeness_path: Path
    runs: int
    input_size: int
    parameters_per_run: int
    macs_per_pass: int


def export_run(run_dirs: Path | list[Path], out_prefix: Path, version: str | None = None) -> ExportedModel:
    """Write ``<out_prefix>.onnx`` (FP32), ``<out_prefix>.fp16.onnx`` and the first run's ``.likeness.onnx``."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model, configs = load_runs([run_dirs] if isinstance(run_dirs, Path) else list(run_dirs))
    config = configs[0]
    out_prefix = Path(out_prefix)
    if out_prefix.suffix == ".onnx":
        out_prefix = out_prefix.with_suffix("")
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    fp32_path = out_prefix.with_name(out_prefix.name + ".onnx")
    fp16_path = out_prefix.with_name(out_prefix.name + ".fp16.onnx")
    _to_onnx(model, config.input_size, fp32_path, INPUT_NAME, (AGE_OUTPUT, GENDER_OUTPUT))
    weights_digest = hashlib.sha256(fp32_path.read_bytes()).hexdigest()[:12]
    metadata = ModelMetadata(
        input_size=config.input_size,
        normalization=config.normalization,
        age_bin_edges=FINE_AGE_EDGES,
        gender_labels=GENDERS,
        version=version or f"{out_prefix.name}-{weights_digest} (analyzer {__version__})",
        training_data=_describe_training_data(config.data) + _describe_ensemble(configs),
    )
    fp32 = onnx.load(str(fp32_path))
    fp32.doc_string = "footfall analyzer age and gender network; see engines/MODEL_CARD.md"
    _set_metadata(fp32, metadata)
    onnx.checker.check_model(fp32)
    onnx.save(fp32, str(fp32_path))

    fp16 = convert_float_to_float16(fp32, keep_io_types=True)
    _sort_nodes(fp16.graph)
    _set_metadata(fp16, ModelMetadata(**{**metadata.__dict__, "precision": "fp16"}))
    onnx.checker.check_model(fp16)
    onnx.save(fp16, str(fp16_path))
    _check_round_trip(model, fp32_path, config.input_size)
    first_net = (model.members[0] if isinstance(model, ProbabilityEnsemble) else model).net
    likeness_path = out_prefix.with_name(out_prefix.name + ".likeness.onnx")
    export_likeness(first_net, config, likeness_path, metadata.version)
    parameters, macs = model_size(first_net, config.input_size)
    return ExportedModel(fp32_path, fp16_path, likeness_path, len(configs), config.input_size, parameters, macs)


def _to_onnx(
    model: torch.nn.Module, input_size: int, path: Path, input_name: str, output_names: tuple[str, ...]
) -> None:
    """Trace ``model`` to ONNX with a dynamic batch axis."""
    example = torch.zeros(2, 3, input_size, input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_axes={name: {0: "batch"} for name in (input_name, *output_names)},
            opset_version=OPSET,
            dynamo=False,
        )


def export_likeness(net: torch.nn.Module, config: TrainConfig, path: Path, version: str) -> None:
    """Write the tracker's face likeness model: one run's trunk, FP32 (it runs on the CPU next to the tracker)."""
    import onnx

    model = LikenessModel(net).eval()
    _to_onnx(model, config.input_size, path, LIKENESS_INPUT, (LIKENESS_OUTPUT,))
    with torch.no_grad():
        size = int(model(torch.zeros(1, 3, config.input_size, config.input_size)).shape[1])
    if size != LIKENESS_SIZE:
        raise DataError(f"{path}: the trunk gives {size} features, the tracker expects {LIKENESS_SIZE}")
    exported = onnx.load(str(path))
    exported.doc_string = "footfall analyzer face likeness (tracker re-finding cue); see docs/ARCHITECTURE.md"
    settings = {
        "input_size": config.input_size,
        "mean": list(config.normalization.mean),
        "std": list(config.normalization.std),
        "size": size,
        "template": ALIGNMENT_TEMPLATE.tolist(),
        "version": version,
    }
    onnx.helper.set_model_props(exported, {LIKENESS_PROPS: json.dumps(settings)})
    onnx.checker.check_model(exported)
    onnx.save(exported, str(path))
    _check_round_trip(model, path, config.input_size, LIKENESS_INPUT, (LIKENESS_OUTPUT,))


def _check_round_trip(
    model: torch.nn.Module,
    path: Path,
    size: int,
    input_name: str = INPUT_NAME,
    output_names: tuple[str, ...] = (AGE_OUTPUT, GENDER_OUTPUT),
) -> None:
    """ONNX Runtime must reproduce PyTorch on random input, or the export is refused."""
    import onnxruntime as ort

    inputs = np.random.default_rng(0).normal(size=(3, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        outputs = model(torch.from_numpy(inputs))
    expected = [outputs.numpy()] if isinstance(outputs, torch.Tensor) else [tensor.numpy() for tensor in outputs]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    produced = session.run(list(output_names), {input_name: inputs})
    for name, want, got in zip(output_names, expected, produced, strict=True):
        if not np.allclose(want, got, atol=1e-4):
            raise DataError(
                f"{path}: ONNX Runtime output {name} differs from PyTorch by "
                f"{np.abs(want - got).max():.2e}; export is broken"
            )
