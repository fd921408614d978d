"""TensorRT on a real GPU: build, cache, parity with ONNX Runtime, every batch size, throughput.

They need no ../shared: without it the faces are the astronaut's own set.
These run only where TensorRT 10/11 imports and starts on a CUDA GPU; elsewhere
each is skipped with the probe's reason. Nothing here is faked.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from analyzer.backends.base import classify_chips, largest_difference
from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.backends.selection import tensorrt_probe
from analyzer.config import ClassifierConfig
from analyzer.core.age_groups import BUILTIN_GROUPINGS, FINE_AGE_EDGES
from analyzer.tools.evaluation import agreement
from analyzer.tools.gpu_check import public_domain_chips, validation_chips
from tests.conftest import UTKFACE

AVAILABLE, REASON = tensorrt_probe()
#: On a GPU box, FOOTFALL_REQUIRE_GPU=1 makes a TensorRT that cannot run a failure, not a skip.
REQUIRED = os.environ.get("FOOTFALL_REQUIRE_GPU") == "1"
pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True, scope="module")
def _a_gpu() -> None:
    if not AVAILABLE:
        (pytest.fail if REQUIRED else pytest.skip)(f"no TensorRT GPU here: {REASON}")


@pytest.fixture(scope="module")
def settings(shipped_model: Path, tmp_path_factory: pytest.TempPathFactory) -> ClassifierConfig:
    engines = tmp_path_factory.mktemp("engines")
    return ClassifierConfig(
        model=str(shipped_model), backend="tensorrt", max_batch=64, typical_batch=8, engine_dir=str(engines)
    )


@pytest.fixture(scope="module")
def built(settings: ClassifierConfig) -> tuple[Path, OnnxRuntimeBackend]:
    from analyzer.backends.tensorrt import engine_for

    reference = OnnxRuntimeBackend(settings.model_path())
    return engine_for(settings, reference.metadata), reference


def test_engine_is_built_once_then_reused(settings: ClassifierConfig, built: tuple) -> None:
    from analyzer.backends.tensorrt import engine_for

    plan, reference = built
    stamp = plan.stat().st_mtime_ns
    lines: list[str] = []
    assert engine_for(settings, reference.metadata, lines.append) == plan
    assert plan.stat().st_mtime_ns == stamp and lines[-1].endswith("(cached)")


def test_every_batch_size_in_the_profile_matches_onnxruntime(settings: ClassifierConfig, built: tuple) -> None:
    from analyzer.backends.tensorrt import TensorRTBackend

    plan, reference = built
    backend = TensorRTBackend(plan, reference.metadata)
    try:
        assert largest_difference(backend, reference, [1, 7, 8, 64, 100]) < 0.02
    finally:
        backend.close()


def _faces(size: int) -> np.ndarray:
    """The validation faces beside the repo, or (on a GPU box without ../shared) the astronaut's own set."""
    return validation_chips(UTKFACE, size) if (UTKFACE / "labels.csv").is_file() else public_domain_chips(size)


def test_tensorrt_agrees_with_onnxruntime_on_validation_faces(built: tuple) -> None:
    from analyzer.backends.tensorrt import TensorRTBackend

    plan, reference = built
    chips = _faces(reference.metadata.input_size)
    backend = TensorRTBackend(plan, reference.metadata)
    try:
        ours, theirs = classify_chips(backend, chips, 64), classify_chips(reference, chips, 64)
    finally:
        backend.close()
    result = agreement(
        theirs.age_probs,
        theirs.gender_probs,
        ours.age_probs,
        ours.gender_probs,
        FINE_AGE_EDGES,
        BUILTIN_GROUPINGS["fairface9"],
    )
    assert result["gender"] >= 0.995 and result["fairface9"] >= 0.99, result
    ages = reference.metadata.age_bin_values
    assert np.abs(ours.age_probs @ ages - theirs.age_probs @ ages).max() <= 1.0  # expected age, in years


def test_throughput_at_max_batch_is_measured(built: tuple, record_property: pytest.RecordProperty) -> None:
    """Records faces/s for the bench table; asserts only that max-batch output is right while timing it."""
    from analyzer.backends.tensorrt import TensorRTBackend

    plan, reference = built
    backend = TensorRTBackend(plan, reference.metadata)
    chips = np.random.default_rng(1).integers(
        0, 256, (64, reference.metadata.input_size, reference.metadata.input_size, 3), dtype=np.uint8
    )
    try:
        expected = classify_chips(reference, chips, 64)
        classify_chips(backend, chips, 64)
        started = time.perf_counter()
        for _ in range(20):
            result = classify_chips(backend, chips, 64)
        faces_per_second = 20 * 64 / (time.perf_counter() - started)
    finally:
        backend.close()
    record_property("tensorrt_faces_per_second_batch64", round(faces_per_second))
    assert np.abs(result.gender_probs - expected.gender_probs).max() < 0.02
