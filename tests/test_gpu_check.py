"""``analyzer gpu-check``: on this CPU box it says there is no GPU; its checks, run against stand-in GPUs.

The stand-ins answer with ONNX Runtime (a faithful GPU) or break one thing
each (an output row left unwritten past the profile, an FP32 engine, an
answer after close), and each check must catch its fault.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzer.backends.base import FaceAttributes
from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.backends.selection import tensorrt_probe
from analyzer.core.preprocess import chips_to_input
from analyzer.errors import ModelError
from analyzer.tools.gpu_check import NO_GPU_EXIT, GpuBox, gpu_check, public_domain_chips


class StandInGpu:
    """A GPU backend that answers with ONNX Runtime, with one fault if asked."""

    def __init__(self, model: Path, max_batch: int, fault: str | None = None) -> None:
        self._reference = OnnxRuntimeBackend(model)
        self.metadata, self.max_batch, self.fault = self._reference.metadata, max_batch, fault
        self.closed = False

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        if self.closed and self.fault != "answers_after_close":
            raise ModelError("the TensorRT backend is closed")
        result = self._reference.infer(inputs)
        if self.fault == "unwritten_rows" and len(inputs) > self.max_batch:
            result.age_probs[self.max_batch :] = np.nan  # the second slice never copied back
        return result

    def close(self) -> None:
        self.closed = True

    def poison_outputs(self) -> None:
        pass

    def gpu_milliseconds(self, inputs: np.ndarray) -> float:
        return 0.5

    def layer_precisions(self) -> dict[str, int]:
        return {"half": 0, "float": 40, "other": 2} if self.fault == "fp32_engine" else {"half": 40, "float": 2}


@pytest.mark.parametrize(
    ("fault", "failing"),
    [
        (None, []),
        ("unwritten_rows", ["parity"]),
        ("fp32_engine", ["fp16"]),
        ("answers_after_close", ["infer_after_close"]),
    ],
)
def test_each_check_passes_a_faithful_gpu_and_catches_its_fault(
    shipped_model: Path, tmp_path: Path, fault: str | None, failing: list[str]
) -> None:
    plans = iter([tmp_path / "first.plan", tmp_path / "again.plan"])
    box = GpuBox(lambda: {"gpu": "stand-in"}, lambda: next(plans), lambda plan: StandInGpu(shipped_model, 4, fault))
    reference = OnnxRuntimeBackend(shipped_model)
    size = reference.metadata.input_size
    chips = np.random.default_rng(3).integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    code, document = gpu_check(box, reference, chips)
    checks = {check["name"]: check for check in document["checks"]}
    assert list(checks) == ["build", "parity", "threads", "latency", "fp16", "infer_after_close"]
    assert [name for name, check in checks.items() if not check["passed"]] == failing
    assert code == (1 if failing else 0) and document["passed"] is not failing
    assert checks["parity"]["batches"] == [1, 5] and checks["threads"]["largest_difference"] == 0.0
    assert set(checks["latency"]["by_batch"]) == {"1"}  # only batches the profile holds
    json.dumps(document)  # the document is plain JSON


@pytest.mark.skipif(tensorrt_probe()[0], reason="TensorRT and a GPU are present on this machine")
def test_on_a_box_without_a_gpu_it_says_so_and_exits_with_its_own_code(tmp_path: Path) -> None:
    out = tmp_path / "gpu-check.json"
    result = subprocess.run(
        [sys.executable, "-m", "analyzer", "gpu-check", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == NO_GPU_EXIT, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("no usable GPU here: TensorRT is not installed")
    document = json.loads(out.read_text())
    assert document["passed"] is False and document["checks"] == [] and "TensorRT" in document["no_gpu"]


@pytest.mark.skipif(tensorrt_probe()[0], reason="TensorRT and a GPU are present on this machine")
@pytest.mark.parametrize(("required", "outcome"), [("1", "4 errors"), ("0", "4 skipped")])
def test_gpu_tests_fail_instead_of_skipping_when_a_gpu_is_required(required: str, outcome: str) -> None:
    gpu_tests = Path(__file__).with_name("test_tensorrt_gpu.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(gpu_tests)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "FOOTFALL_REQUIRE_GPU": required},
    )
    assert result.stdout.strip().splitlines()[-1].startswith(outcome), result.stdout
    assert (result.returncode != 0) is (required == "1") and "no TensorRT GPU here" in result.stdout, result.stdout


def test_the_public_domain_face_set_is_one_womans_face_cropped_as_a_camera_would(shipped_model: Path) -> None:
    """The set GPU boxes without ../shared check with: 64 different crops that the network reads as a woman."""
    reference = OnnxRuntimeBackend(shipped_model)
    chips = public_domain_chips(reference.metadata.input_size)
    assert chips.shape == (64, reference.metadata.input_size, reference.metadata.input_size, 3)
    assert len({chip.tobytes() for chip in chips}) == 64
    genders = reference.infer(chips_to_input(chips, reference.metadata.normalization)).gender_probs
    female = reference.metadata.gender_labels.index("female")
    assert np.mean(genders.argmax(axis=1) == female) >= 0.9
