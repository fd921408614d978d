"""``analyzer gpu-check``: prove the TensorRT path once on a GPU box, or say plainly that there is none.

Someone with a new kind of GPU box runs it once and sends us the JSON. It
builds the engine (then again from the timing cache, timing both), compares
every batch size from 1 to one past the profile's maximum with ONNX Runtime
FP32 on the same chips, with the engine's output buffers filled with NaN
first so that an answer TensorRT did not write shows; runs several threads
against one thread's answers; times the GPU alone (CUDA events) and whole
calls beside ONNX Runtime on the CPU; asks the engine inspector whether the
layers really run in half precision; and checks that a closed backend
refuses calls cleanly.

Exit codes: 0 every check passed, 1 a check failed, ``NO_GPU_EXIT`` (3)
there is no usable GPU here, so nothing was checked.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from analyzer.backends.base import FaceAttributes
from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.core.age_groups import BUILTIN_GROUPINGS
from analyzer.core.model_meta import ModelMetadata
from analyzer.core.preprocess import align_face, chips_to_input
from analyzer.errors import ModelError
from analyzer.tools.evaluation import agreement

SCHEMA = "footfall-gpu-check/1"
NO_GPU_EXIT = 3
THREADS = 4
CALLS_PER_THREAD = 50
LATENCY_BATCHES = (1, 8, 64)
LATENCY_CALLS = 20
#: What FP16 may change beside ONNX Runtime FP32 (measured FP16 vs FP32 through ONNX Runtime: 99.95% same
#: gender, 100% same fairface9 group; engines/MODEL_CARD.md).
MIN_GENDER_AGREEMENT = 0.995
MIN_GROUP_AGREEMENT = 0.99
MAX_EXPECTED_AGE_DIFFERENCE_YEARS = 1.0
MAX_PROBABILITY_DIFFERENCE = 0.05
#: Threads must give exactly what one thread gives, but for float noise.
MAX_THREAD_DIFFERENCE = 1e-3


class GpuBackend(Protocol):
    """What the check needs of a GPU backend (:class:`~analyzer.backends.tensorrt.TensorRTBackend`)."""

    metadata: ModelMetadata
    max_batch: int

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        """Probabilities for float32 NCHW chips."""
        ...

    def close(self) -> None:
        """Free the GPU memory; later calls are refused."""
        ...

    def poison_outputs(self) -> None:
        """NaN in the calling thread's output buffers."""
        ...

    def gpu_milliseconds(self, inputs: np.ndarray) -> float:
        """GPU time of one execution."""
        ...

    def layer_precisions(self) -> dict[str, int]:
        """Layer outputs by precision, from the engine inspector."""
        ...


@dataclass
class GpuBox:
    """The GPU side of the check: the real TensorRT and CUDA (:func:`this_box`), or stand-ins in tests."""

    describe: Callable[[], dict[str, object]]
    build: Callable[[], Path]  # a fresh engine each call; the second starts from the first's timing cache
    open: Callable[[Path], GpuBackend]


def this_box(
    model: Path, metadata: ModelMetadata, max_batch: int, typical_batch: int, workspace_mb: int, engine_dir: Path
) -> GpuBox:
    """TensorRT and CUDA as they are installed here (check ``tensorrt_probe`` first)."""
    from analyzer.backends.cuda_memory import open_provider
    from analyzer.backends.tensorrt import TensorRTBackend, engine_for
    from analyzer.config import ClassifierConfig

    settings = ClassifierConfig(
        model=str(model),
        backend="tensorrt",
        max_batch=max_batch,
        typical_batch=typical_batch,
        workspace_mb=workspace_mb,
        engine_dir=str(engine_dir),
    )
    settings.check("gpu-check")

    def describe() -> dict[str, object]:
        import tensorrt as trt

        provider = open_provider()
        gpu = provider.gpu(0)
        driver, runtime = provider.versions()
        return {
            "gpu": gpu.name,
            "compute_capability": ".".join(map(str, gpu.compute_capability)),
            "memory_mb": gpu.memory_mb,
            "cuda_driver": driver,
            "cuda_runtime": runtime,
            "cuda_binding": provider.name,
            "tensorrt": trt.__version__,
        }

    return GpuBox(
        describe,
        lambda: engine_for(settings, metadata, log=lambda line: None, force=True),
        lambda plan: TensorRTBackend(plan, metadata),
    )


def no_gpu(reason: str) -> tuple[int, dict[str, Any]]:
    """The exit code and JSON document of a box without a usable GPU: nothing checked, and why."""
    return NO_GPU_EXIT, {
        "schema": SCHEMA,
        "checked_at": _now(),
        "box": None,
        "no_gpu": reason,
        "passed": False,
        "checks": [],
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def gpu_check(box: GpuBox, reference: OnnxRuntimeBackend, chips: np.ndarray) -> tuple[int, dict[str, Any]]:
    """Every check against ``reference`` on uint8 ``chips``; the exit code and the JSON document."""
    document: dict[str, Any] = {"schema": SCHEMA, "checked_at": _now(), "box": box.describe()}
    checks: list[dict[str, Any]] = []
    started = time.perf_counter()
    box.build()
    built_s = time.perf_counter() - started
    started = time.perf_counter()
    plan = box.build()
    checks.append(
        {
            "name": "build",
            "passed": True,
            "first_build_s": round(built_s, 1),
            "rebuild_from_timing_cache_s": round(time.perf_counter() - started, 1),
        }
    )
    inputs = chips_to_input(chips, reference.metadata.normalization)
    backend = box.open(plan)
    try:
        checks.append(_parity(backend, reference, inputs))
        checks.append(_threads(backend, inputs))
        checks.append(_latency(backend, reference, inputs))
        checks.append(_half_precision(backend))
    finally:
        checks.append(_closed(backend, inputs[:1]))
    document["checks"] = checks
    document["passed"] = all(check["passed"] for check in checks)
    return (0 if document["passed"] else 1), document


def public_domain_chips(size: int, count: int = 64, seed: int = 0) -> np.ndarray:
    """``count`` chips of scikit-image's public-domain astronaut: a face set every install has.

    Each is aligned from keypoints moved a little (as a detector misplaces
    them), lit differently, and every other one mirrored, so the chips differ
    as a camera's crops of one face do. For boxes without a labelled folder.
    """
    from skimage import data

    from analyzer.pipeline.detect import PhotoFaceFinder

    photo = data.astronaut()
    finder = PhotoFaceFinder()
    try:
        found = finder.find(photo)
    finally:
        finder.close()
    if not len(found):
        raise ModelError("the face detector found no face in the astronaut photo; check the detector models")
    keypoints = found.keypoints[0]
    eye_distance = float(np.linalg.norm(keypoints[0] - keypoints[1]))
    rng = np.random.default_rng(seed)
    chips = np.empty((count, size, size, 3), np.uint8)
    for index in range(count):
        moved = keypoints + rng.normal(0.0, 0.04 * eye_distance, keypoints.shape)
        chip = align_face(photo, moved.astype(np.float32), size).astype(np.float32)
        chip = chip * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
        chips[index] = np.clip(chip[:, ::-1] if index % 2 else chip, 0, 255).astype(np.uint8)
    return chips


def validation_chips(faces: Path, size: int, limit: int | None = None) -> np.ndarray:
    """Aligned chips of the validation faces in a labelled folder (the network never trained on them)."""
    from analyzer.datasets.face_photos import align_photos
    from analyzer.datasets.labels import read_labels
    from analyzer.errors import DataError
    from analyzer.tools.evaluation import select_split

    if not (faces / "labels.csv").is_file():
        raise DataError(
            f"{faces}: no labels.csv; pass --faces with a labelled face folder (e.g. ../shared/data/utkface)"
        )
    chosen = select_split(read_labels(faces), "validation")[:limit]
    return align_photos([face.path for face in chosen], size, "crop").chips


def _rows(inputs: np.ndarray, count: int) -> np.ndarray:
    """``count`` chips, taking the given ones again from the start when there are fewer."""
    return inputs[np.arange(count) % len(inputs)]


def _parity(backend: GpuBackend, reference: OnnxRuntimeBackend, inputs: np.ndarray) -> dict[str, Any]:
    """Every batch size 1 .. max + 1 against ONNX Runtime FP32; the worst figure over them."""
    grouping = BUILTIN_GROUPINGS["fairface9"]
    edges, ages = reference.metadata.age_bin_edges, reference.metadata.age_bin_values
    worst = {"gender": 1.0, grouping.name: 1.0, "max_abs_prob_diff": 0.0, "expected_age_diff_years": 0.0}
    unwritten: list[int] = []
    for batch in range(1, backend.max_batch + 2):
        batch_inputs = _rows(inputs, batch)
        backend.poison_outputs()
        ours, theirs = backend.infer(batch_inputs), reference.infer(batch_inputs)
        if np.isnan(ours.age_probs).any() or np.isnan(ours.gender_probs).any():
            unwritten.append(batch)
            continue
        figures = agreement(theirs.age_probs, theirs.gender_probs, ours.age_probs, ours.gender_probs, edges, grouping)
        age_gap = float(np.abs(ours.age_probs @ ages - theirs.age_probs @ ages).max())
        worst["gender"] = min(worst["gender"], figures["gender"])
        worst[grouping.name] = min(worst[grouping.name], figures[grouping.name])
        worst["max_abs_prob_diff"] = max(worst["max_abs_prob_diff"], figures["max_abs_prob_diff"])
        worst["expected_age_diff_years"] = max(worst["expected_age_diff_years"], age_gap)
    passed = (
        not unwritten
        and worst["gender"] >= MIN_GENDER_AGREEMENT
        and worst[grouping.name] >= MIN_GROUP_AGREEMENT
        and worst["expected_age_diff_years"] <= MAX_EXPECTED_AGE_DIFFERENCE_YEARS
        and worst["max_abs_prob_diff"] <= MAX_PROBABILITY_DIFFERENCE
    )
    rounded = {key: round(value, 4) for key, value in worst.items()}
    return {
        "name": "parity",
        "passed": passed,
        "batches": [1, backend.max_batch + 1],
        "worst": rounded,
        "batches_with_unwritten_outputs": unwritten,
        "faces": len(inputs),
    }


def _threads(backend: GpuBackend, inputs: np.ndarray) -> dict[str, Any]:
    """THREADS threads of CALLS_PER_THREAD calls each give what one thread gives."""
    batch = _rows(inputs, min(8, backend.max_batch))
    alone = backend.infer(batch)
    differences: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def calls() -> None:
        try:
            for _ in range(CALLS_PER_THREAD):
                result = backend.infer(batch)
                gap = max(
                    float(np.abs(result.age_probs - alone.age_probs).max()),
                    float(np.abs(result.gender_probs - alone.gender_probs).max()),
                )
                with lock:
                    differences.append(gap)
        except Exception as error:  # any failure in a thread fails the check, named
            with lock:
                failures.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=calls, name=f"gpu-check-{index}") for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    largest = max(differences, default=float("inf"))
    passed = not failures and len(differences) == THREADS * CALLS_PER_THREAD and largest <= MAX_THREAD_DIFFERENCE
    return {
        "name": "threads",
        "passed": passed,
        "threads": THREADS,
        "calls_per_thread": CALLS_PER_THREAD,
        "largest_difference": largest if differences else None,
        "failures": failures[:3],
    }


def _latency(backend: GpuBackend, reference: OnnxRuntimeBackend, inputs: np.ndarray) -> dict[str, Any]:
    """GPU-only milliseconds (CUDA events) and whole calls, beside ONNX Runtime on the CPU, per batch size."""
    by_batch: dict[str, dict[str, float]] = {}
    for batch in (size for size in LATENCY_BATCHES if size <= backend.max_batch):
        batch_inputs = _rows(inputs, batch)
        backend.infer(batch_inputs)  # warm up
        gpu_ms = statistics.median(backend.gpu_milliseconds(batch_inputs) for _ in range(LATENCY_CALLS))
        call_s = _median_seconds(lambda inputs=batch_inputs: backend.infer(inputs))
        cpu_s = _median_seconds(lambda inputs=batch_inputs: reference.infer(inputs), calls=5)
        by_batch[str(batch)] = {
            "gpu_ms": round(gpu_ms, 3),
            "call_ms": round(call_s * 1000, 3),
            "faces_per_s": round(batch / call_s),
            "onnxruntime_cpu_faces_per_s": round(batch / cpu_s),
        }
    return {"name": "latency", "passed": True, "by_batch": by_batch}


def _median_seconds(call: Callable[[], object], calls: int = LATENCY_CALLS) -> float:
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return max(statistics.median(timings), 1e-9)


def _half_precision(backend: GpuBackend) -> dict[str, Any]:
    """The engine inspector says layers run in half precision (an FP32 engine would pass parity too)."""
    precisions = backend.layer_precisions()
    return {"name": "fp16", "passed": precisions.get("half", 0) > 0, "layer_outputs": precisions}


def _closed(backend: GpuBackend, inputs: np.ndarray) -> dict[str, Any]:
    """After ``close``, a call is refused with our error, not a crash or an answer from freed memory."""
    backend.close()
    try:
        backend.infer(inputs)
    except ModelError as error:
        return {"name": "infer_after_close", "passed": "closed" in str(error), "error": str(error)}
    except Exception as error:  # anything else is the fault this check is for
        return {"name": "infer_after_close", "passed": False, "error": f"{type(error).__name__}: {error}"}
    return {"name": "infer_after_close", "passed": False, "error": "answered after close"}
