"""Start a training run from an exported model file (``analyzer train --init engines/agegender.onnx``).

A clone of the repository carries the exported network, not the run folders
it was exported from, so fine-tuning the shipped network needs its weights
back from the ONNX file. Export folds each BatchNorm into the convolution
before it; :func:`networks_from_export` reads the folded convolutions back and
checks that the rebuilt networks give the file's own outputs, and
:func:`unfold_batchnorm` then sets each BatchNorm so that train-mode batch
statistics reproduce the folded function instead of disturbing it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.core.age_groups import FINE_AGE_EDGES
from analyzer.errors import DataError, ModelError
from analyzer.train.model import AgeGenderNet, HeadOutline, exportable_model

if TYPE_CHECKING:
    import onnx

_MATCH_TOLERANCE = 1e-4  # FP32 export and PyTorch agree to ~1e-7; anything near this is another network


def is_export(init: str) -> bool:
    """True when ``--init`` names an exported ``.onnx`` file rather than a run folder."""
    return init.lower().endswith(".onnx")


def _conv_batchnorm_pairs(net: AgeGenderNet) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Every convolution with the BatchNorm after it, in the order the forward pass runs them."""
    batchnorm_after: dict[nn.Conv2d, nn.BatchNorm2d] = {}
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            children = list(module.children())
            for conv, batchnorm in itertools.pairwise(children):
                if isinstance(conv, nn.Conv2d) and isinstance(batchnorm, nn.BatchNorm2d):
                    batchnorm_after[conv] = batchnorm
    return [(conv, batchnorm_after[conv]) for conv in net.modules() if isinstance(conv, nn.Conv2d)]


def _identity_statistics(batchnorm: nn.BatchNorm2d) -> None:
    """Running statistics that make eval mode pass its input through (scale 1 keeps the folded function)."""
    batchnorm.running_mean.zero_()
    batchnorm.running_var.fill_(1.0 - batchnorm.eps)


def _remedy(option: str) -> str:
    """What to pass instead, for the flag that named a file that is not a usable export."""
    return "pass an .onnx file `analyzer export` wrote" + (", or a run folder" if option == "--init" else "")


def networks_from_export(
    path: Path, widths: tuple[int, ...], blocks: tuple[int, ...], option: str = "--init"
) -> tuple[list[AgeGenderNet], int]:
    """The networks of every run in an exported FP32 file, and the file's input size.

    A head-outline mask in the graph (a Mul by a chip-sized constant) comes
    back as the networks' ``HeadOutline``. BatchNorms come back as identities
    after the folded convolutions (exact in eval mode); call
    :func:`unfold_batchnorm` before training them. ``option`` names the
    command-line flag that gave ``path``, in error messages.
    """
    import onnx
    from onnx import numpy_helper

    if not path.is_file():
        raise DataError(f"{option} {path}: no such file; {_remedy(option)}")
    try:
        backend = OnnxRuntimeBackend(path)
    except ModelError as error:
        raise DataError(f"{option} {path}: {error}") from None
    if backend.metadata.precision != "fp32":
        raise DataError(f"{option} {path}: a {backend.metadata.precision} file; use the FP32 .onnx next to it")
    graph = onnx.load(str(path)).graph
    weights = {tensor.name: numpy_helper.to_array(tensor).astype(np.float32) for tensor in graph.initializer}
    for node in graph.node:  # export shares tensors that are equal (two runs of the same weights) via Identity
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    # execution order: each run's convolutions, then its two heads (export may share identical tensors)
    conv_nodes = [node for node in graph.node if node.op_type == "Conv" and len(node.input) == 3]
    convolutions = [node.input[1:3] for node in conv_nodes]
    heads = [node.input[1:3] for node in graph.node if node.op_type == "Gemm" and len(node.input) == 3]
    per_net = len(_conv_batchnorm_pairs(AgeGenderNet(len(FINE_AGE_EDGES), widths=widths, blocks=blocks)))
    runs = len(convolutions) // per_net
    if runs == 0 or len(convolutions) != per_net * runs or len(heads) != 2 * runs:
        raise DataError(
            f"{option} {path}: {len(convolutions)} convolutions and {len(heads)} linear layers do not make runs of "
            f"this architecture (widths {list(widths)}, blocks {list(blocks)}: {per_net} convolutions and 2 "
            f"heads each); {_remedy(option)}"
        )
    chip_shape = (1, 1, backend.metadata.input_size, backend.metadata.input_size)
    producer = {output: node for node in graph.node for output in node.output}
    masks = [_masks_before(producer, weights, conv_nodes[index * per_net], chip_shape) for index in range(runs)]
    if any(len(run_masks) > 1 for run_masks in masks):
        raise DataError(f"{option} {path}: more than one head-outline mask before a run; {_remedy(option)}")
    outlines = [HeadOutline(torch.from_numpy(run_masks[0])) if run_masks else None for run_masks in masks]
    nets = [AgeGenderNet(len(FINE_AGE_EDGES), widths=widths, blocks=blocks, outline=outline) for outline in outlines]
    try:
        with torch.no_grad():
            for index, net in enumerate(nets):
                pairs = _conv_batchnorm_pairs(net)
                for (conv, batchnorm), (weight, bias) in zip(
                    pairs, convolutions[index * per_net : (index + 1) * per_net], strict=True
                ):
                    conv.weight.copy_(torch.from_numpy(weights[weight]))
                    batchnorm.weight.fill_(1.0)
                    batchnorm.bias.copy_(torch.from_numpy(weights[bias]))
                    _identity_statistics(batchnorm)
                for weight, bias in heads[2 * index : 2 * index + 2]:
                    layer = net.gender_head if weights[weight].shape[0] == 2 else net.age_head
                    layer.weight.copy_(torch.from_numpy(weights[weight]))
                    layer.bias.copy_(torch.from_numpy(weights[bias]))
    except (RuntimeError, KeyError, ValueError) as error:
        raise DataError(
            f"{option} {path}: its weights do not fit this architecture ({type(error).__name__}); {_remedy(option)}"
        ) from None
    _check_outputs(path, backend, nets, option)
    return [net.eval() for net in nets], backend.metadata.input_size


def _masks_before(
    producer: dict[str, onnx.NodeProto],
    weights: dict[str, np.ndarray],
    first_conv: onnx.NodeProto,
    chip_shape: tuple[int, ...],
) -> list[np.ndarray]:
    """Every head-outline mask (a Mul by a chip-sized constant) on the way to one run's first convolution.

    Each run of an ensemble carries its own mask or none, so a file mixing
    masked and unmasked runs gives each run back as it was trained. ``producer``
    maps each tensor to the node that computes it.
    """
    masks: list[np.ndarray] = []
    pending, seen = [first_conv.input[0]], set()
    while pending:
        node = producer.get(pending.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type == "Mul":
            masks += [weights[name] for name in node.input if name in weights and weights[name].shape == chip_shape]
        pending += [name for name in node.input if name not in weights]
    return masks


def _check_outputs(path: Path, backend: OnnxRuntimeBackend, nets: list[AgeGenderNet], option: str) -> None:
    """The rebuilt networks must compute what the file computes, or they are not its weights."""
    size = backend.metadata.input_size
    probe = np.random.default_rng(0).normal(size=(8, 3, size, size)).astype(np.float32)
    expected = backend.infer(probe)
    with torch.no_grad():
        age, gender = exportable_model(nets)(torch.from_numpy(probe))
    difference = max(
        float(np.abs(age.numpy() - expected.age_probs).max()),
        float(np.abs(gender.numpy() - expected.gender_probs).max()),
    )
    if difference > _MATCH_TOLERANCE:
        raise DataError(
            f"{option} {path}: the rebuilt network differs from the file by {difference:.2g}; it was not exported "
            f"from this architecture (mirror-averaged runs); {_remedy(option)}"
        )


@torch.no_grad()
def unfold_batchnorm(net: AgeGenderNet, inputs: torch.Tensor) -> None:
    """Give each identity BatchNorm of :func:`networks_from_export` the statistics of its input on ``inputs``.

    With scale sqrt(var + eps) and shift mean + folded bias, eval mode still
    computes exactly the folded network, and train mode (batch statistics of
    batches like ``inputs``) nearly does, so fine-tuning starts where the file is.
    """
    statistics: dict[nn.BatchNorm2d, tuple[torch.Tensor, torch.Tensor]] = {}

    def recorder(batchnorm: nn.BatchNorm2d) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def record(module: nn.Module, args: object, output: torch.Tensor) -> None:
            statistics[batchnorm] = (output.mean(dim=(0, 2, 3)), output.var(dim=(0, 2, 3), unbiased=False))

        return record

    pairs = _conv_batchnorm_pairs(net)
    for _, batchnorm in pairs:  # identity again, even if a train-mode pass has moved the running statistics
        _identity_statistics(batchnorm)
    hooks = [conv.register_forward_hook(recorder(batchnorm)) for conv, batchnorm in pairs]
    try:
        was_training = net.training
        net.eval()(inputs)
        net.train(was_training)
    finally:
        for hook in hooks:
            hook.remove()
    for batchnorm, (mean, variance) in statistics.items():
        batchnorm.weight.copy_(torch.sqrt(variance + batchnorm.eps))
        batchnorm.bias.add_(mean)
        batchnorm.running_mean.copy_(mean)
        batchnorm.running_var.copy_(variance)
