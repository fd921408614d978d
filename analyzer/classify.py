"""Classifier backends: aligned face chips in, age and gender probabilities out.

Every backend (ONNX Runtime here, TensorRT on GPU boxes) honours the same
contract, :class:`ClassifierBackend`, so the pipeline and ``analyzer evaluate``
cannot tell them apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from analyzer.attributes import TrackAttributes
from analyzer.console import ErrorTally, log_line
from analyzer.cores import usable_cores
from analyzer.errors import ConfigError, ModelError
from analyzer.footfall import VisitEnded
from analyzer.model_meta import AGE_OUTPUT, GENDER_OUTPUT, INPUT_NAME, ModelMetadata, check_model_file, open_session
from analyzer.preprocess import chips_to_input
from analyzer.sample import Sample

if TYPE_CHECKING:
    from analyzer.attributes import AttributeVoter
    from analyzer.config import ClassifierConfig
    from analyzer.exporter import Metrics


@dataclass(frozen=True)
class FaceAttributes:
    """Network outputs for N faces.

    Attributes:
        age_probs: (N, B) float32, probability per fine age bin; rows sum to 1.
        gender_probs: (N, 2) float32, ordered as the model's ``gender_labels``.
    """

    age_probs: np.ndarray
    gender_probs: np.ndarray

    def __post_init__(self) -> None:
        if self.age_probs.ndim != 2 or self.gender_probs.shape != (len(self.age_probs), 2):
            raise ValueError(
                f"age_probs (N, B) and gender_probs (N, 2) must agree, got "
                f"{self.age_probs.shape} and {self.gender_probs.shape}"
            )

    def __len__(self) -> int:
        return len(self.age_probs)

    def expected_age(self, bin_values: np.ndarray) -> np.ndarray:
        """Expected age in years, (N,) float."""
        return self.age_probs @ bin_values


class ClassifierBackend(Protocol):
    """What the pipeline needs from an inference engine."""

    metadata: ModelMetadata
    name: str

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        """Run float32 NCHW inputs (see :func:`chips_to_input`) through the network."""
        ...


def classify_chips(backend: ClassifierBackend, chips: np.ndarray, max_batch: int = 64) -> FaceAttributes:
    """Classify uint8 RGB chips (N, S, S, 3) in batches of at most ``max_batch``."""
    size = backend.metadata.input_size
    if len(chips) and chips.shape[1:3] != (size, size):
        raise ValueError(f"chips are {chips.shape[1:3]}, the model takes {size}x{size}")
    ages, genders = [], []
    for start in range(0, len(chips), max_batch):
        result = backend.infer(chips_to_input(chips[start : start + max_batch], backend.metadata.normalization))
        ages.append(result.age_probs)
        genders.append(result.gender_probs)
    if not ages:
        bins = len(backend.metadata.age_bin_edges)
        return FaceAttributes(np.zeros((0, bins), np.float32), np.zeros((0, 2), np.float32))
    return FaceAttributes(np.concatenate(ages), np.concatenate(genders))


class OnnxRuntimeBackend:
    """CPU (or any ONNX Runtime provider) backend; the reference for parity tests.

    Example:
        >>> backend = OnnxRuntimeBackend(Path("engines/agegender.onnx"))  # doctest: +SKIP
        >>> backend.metadata.input_size  # doctest: +SKIP
        80
    """

    name = "onnxruntime"

    def __init__(self, model_path: Path, threads: int = 0, providers: list[str] | None = None) -> None:
        model_path = Path(model_path)
        check_model_file(model_path)
        self._session = open_session(model_path, threads or min(usable_cores(), 4), providers)
        props = self._session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(dict(props), model_path)
        self.path = model_path
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = {tensor.name: tensor for tensor in self._session.get_inputs()}
        outputs = {tensor.name for tensor in self._session.get_outputs()}
        if INPUT_NAME not in inputs or {AGE_OUTPUT, GENDER_OUTPUT} - outputs:
            raise ModelError(
                f"{self.path}: expects input '{INPUT_NAME}' and outputs '{AGE_OUTPUT}', "
                f"'{GENDER_OUTPUT}'; found inputs {list(inputs)} and outputs {sorted(outputs)}"
            )
        shape = inputs[INPUT_NAME].shape
        size = self.metadata.input_size
        if len(shape) != 4 or list(shape[1:]) != [3, size, size]:
            raise ModelError(
                f"{self.path}: input shape {shape} does not match metadata input size [N, 3, {size}, {size}]"
            )
        self._input_type = np.float16 if "float16" in inputs[INPUT_NAME].type else np.float32

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        """Run one batch."""
        age_probs, gender_probs = self._session.run(
            [AGE_OUTPUT, GENDER_OUTPUT], {INPUT_NAME: inputs.astype(self._input_type, copy=False)}
        )
        return FaceAttributes(np.asarray(age_probs, dtype=np.float32), np.asarray(gender_probs, dtype=np.float32))


@dataclass(frozen=True)
class CameraDone:
    """Marker: a camera has sent its last sample and visit."""

    camera: str


class ClassifierStage:
    """Classifies batches of samples, votes per track, and finishes visits.

    Samples of a track that is already confident are skipped (unless ``naive``),
    so a clear face costs two or three classifier calls, not K.

    A backend that raises (a bad batch, a CUDA or ONNX Runtime error) costs
    that batch's votes, never a visit: the visits in it are finished with the
    votes their tracks already had (``unknown`` if none), the failure is
    counted (``analyzer_classifier_errors_total``) and the next batch is tried.
    A backend that hangs is taken over from another thread with
    :meth:`take_over`, which finishes the visits the stuck call holds and
    those still waiting; when the call returns, its late answer is dropped.
    """

    def __init__(
        self,
        backend: ClassifierBackend,
        voter: AttributeVoter,
        metrics: Metrics,
        naive: bool = False,
        labels: dict[tuple[str, int], str] | None = None,
        log: Callable[[str], None] = log_line,
    ) -> None:
        self.backend = backend
        self.log = log
        self.voter = voter
        self.metrics = metrics
        self.naive = naive
        self.labels = labels
        self.calls = 0
        self.faces = 0
        self.skipped = 0
        self.errors = ErrorTally()
        self._lock = threading.Lock()  # the voter and the batch in flight: the classifier thread and take_over
        self._in_flight: list[object] = []
        self._taken_over = False

    def process(self, items: list[object]) -> list[object]:
        """Run one batch; return visits and pass-through markers in arrival order."""
        samples = [item for item in items if isinstance(item, Sample)]
        with self._lock:
            wanted = [s for s in samples if self.naive or not self.voter.is_confident((s.camera, s.track_id))]
            self._in_flight, self._taken_over = items, False
        self.skipped += len(samples) - len(wanted)
        result = self._classify(wanted) if wanted else None
        with self._lock:
            self._in_flight = []
            if self._taken_over:
                return []  # its visits were finished while this call hung; its answer comes too late
            if result is not None:
                self._vote(wanted, result)
            return self._finish(items)

    def take_over(self, waiting: list[object]) -> list[object]:
        """Finish the visits of the batch in flight and of ``waiting`` (taken from the queue) without classifying.

        For a classifier that hangs: called from another thread, it returns
        their visits (with the votes they had) and markers, in order; their
        samples are dropped and counted.
        """
        with self._lock:
            items, self._in_flight = [*self._in_flight, *waiting], []
            self._taken_over = True
            for item in items:
                if isinstance(item, Sample):
                    self.metrics.samples_dropped.labels(camera=item.camera, reason="classifier_stalled").inc()
            return self._finish(items)

    def salvage(self, items: list[object]) -> list[object]:
        """After :meth:`process` itself failed on ``items``: their visits with unknown attributes, and the markers."""
        outputs: list[object] = []
        with self._lock:
            self._in_flight = []
            for item in items:
                if isinstance(item, VisitEnded):
                    self.voter.discard([(item.camera, track_id) for track_id in item.track_ids])
                    if item.counted:
                        outputs.append(item.visit(TrackAttributes.unknown()))
                elif not isinstance(item, Sample):
                    outputs.append(item)
        return outputs

    def _classify(self, wanted: list[Sample]) -> FaceAttributes | None:
        """The backend's answer for ``wanted``, or None (counted and noted) when it raises."""
        started = time.perf_counter()
        try:
            result = classify_chips(self.backend, np.stack([sample.chip for sample in wanted]), max_batch=len(wanted))
        except Exception as error:  # any backend failure: this batch votes nothing, the next one is tried
            self.metrics.classifier_errors.inc()
            for sample in wanted:
                self.metrics.samples_dropped.labels(camera=sample.camera, reason="classifier_error").inc()
            if self.errors.add(f"{type(error).__name__}: {error}"):
                self.log(
                    f"classifier failed: {type(error).__name__}: {error}; the faces of this batch are not classified "
                    "and its visits count with the votes they have (unknown if none); trying the next batch"
                )
            return None
        self.metrics.stage_seconds.labels(stage="classify").observe(time.perf_counter() - started)
        self.metrics.inference_batch.observe(len(wanted))
        self.metrics.classified_faces.inc(len(wanted))
        self.calls += 1
        self.faces += len(wanted)
        return result

    def _vote(self, wanted: list[Sample], result: FaceAttributes) -> None:
        finished = time.monotonic()
        for index, sample in enumerate(wanted):
            key = (sample.camera, sample.track_id)
            self.voter.add(
                key, result.age_probs[index], result.gender_probs[index], sample.quality, sample.face_presence
            )
            self.metrics.stage_seconds.labels(stage="end_to_end").observe(finished - sample.captured_at)
            if self.labels is not None:
                self.labels[key] = self.voter.peek_label(key)

    def _finish(self, items: list[object]) -> list[object]:
        """The visits ended among ``items`` with their attributes, and the other markers, in order."""
        outputs: list[object] = []
        for item in items:
            if isinstance(item, VisitEnded):
                keys = [(item.camera, track_id) for track_id in item.track_ids]
                if self.labels is not None:
                    for key in keys:
                        self.labels.pop(key, None)
                if item.counted:
                    outputs.append(item.visit(self.voter.finish(keys)))
                else:
                    self.voter.discard(keys)
            elif not isinstance(item, Sample):
                outputs.append(item)
        return outputs


def tensorrt_probe() -> tuple[bool, str]:
    """Whether the TensorRT backend can run here: TensorRT 10/11 imports, a CUDA GPU answers and a runtime starts.

    Says why not. Only creating a runtime finds a driver too old for the
    TensorRT wheel (NVIDIA/TensorRT#2913); without it ``auto`` would pick
    TensorRT and fail instead of falling back to ONNX Runtime.
    """
    import importlib
    import importlib.util

    from analyzer.cuda_memory import gpu_probe
    from analyzer.tensorrt_engine import SUPPORTED_MAJOR_VERSIONS, major_version, tensorrt_logger

    if importlib.util.find_spec("tensorrt") is None:
        return False, (
            "TensorRT is not installed (pip install 'footfall-analyzer[gpu-cu12]' or '[gpu-cu13]' on a GPU box, "
            "see docs/GPU.md)"
        )
    try:
        trt = importlib.import_module("tensorrt")
    except Exception as error:  # a broken install raises ImportError, OSError or RuntimeError
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return False, f"TensorRT is installed but does not import ({detail})"
    version = str(getattr(trt, "__version__", "unknown"))
    try:
        supported = major_version(version) in SUPPORTED_MAJOR_VERSIONS
    except ModelError:
        supported = False
    if not supported:
        return False, f"TensorRT {version} is not supported (10.x and 11.x are)"
    gpu, why = gpu_probe()
    if gpu is None:
        return False, f"TensorRT {version} imports but there is no usable GPU ({why})"
    try:  # a driver too old for the wheel shows only here: "TypeError: ... returned nullptr"
        runtime = trt.Runtime(tensorrt_logger(trt))
    except Exception as error:
        runtime, detail = None, (str(error).strip().splitlines() or [type(error).__name__])[0]
    else:
        detail = "no runtime"
    if runtime is None:
        return False, (
            f"TensorRT {version} imports but cannot start on {gpu.name} ({detail}); the NVIDIA driver may be "
            "older than this TensorRT needs (docs/GPU.md)"
        )
    del runtime
    return True, f"TensorRT {version} starts on {gpu.name}"


def choose_backend(choice: str, probe: Callable[[], tuple[bool, str]] = tensorrt_probe) -> tuple[str, str]:
    """Backend name for ``choice`` (auto | onnxruntime | tensorrt) and why; never a silent fallback."""
    if choice == "onnxruntime":
        return "onnxruntime", "requested"
    if choice not in ("auto", "tensorrt"):
        raise ConfigError(f"classifier.backend: '{choice}' is not one of auto, onnxruntime, tensorrt")
    available, reason = probe()
    if available:
        return "tensorrt", reason
    if choice == "tensorrt":
        raise ConfigError(f"classifier.backend: tensorrt was requested but {reason}; use --backend onnxruntime")
    return "onnxruntime", reason


def create_backend(
    settings: ClassifierConfig,
    log: Callable[[str], None] = print,
    probe: Callable[[], tuple[bool, str]] = tensorrt_probe,
) -> ClassifierBackend:
    """The configured backend, logging which one and why."""
    name, reason = choose_backend(settings.backend, probe)
    model = settings.model_path()
    reference = OnnxRuntimeBackend(model, settings.threads)  # also validates the model file and its metadata
    if name == "onnxruntime":
        log(f"classifier backend: onnxruntime on CPU ({settings.backend}: {reason})")
        return reference
    from analyzer.tensorrt_engine import TensorRTBackend, engine_for

    log(f"classifier backend: tensorrt ({settings.backend}: {reason})")
    return TensorRTBackend(engine_for(settings, reference.metadata, log), reference.metadata)


def largest_difference(
    backend: ClassifierBackend, reference: ClassifierBackend, batch_sizes: list[int], seed: int = 0
) -> float:
    """Largest absolute probability difference between two backends on random chips of each batch size."""
    rng = np.random.default_rng(seed)
    size = reference.metadata.input_size
    largest = 0.0
    for batch in batch_sizes:
        chips = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        ours, theirs = classify_chips(backend, chips, batch), classify_chips(reference, chips, batch)
        largest = max(
            largest,
            float(np.abs(ours.age_probs - theirs.age_probs).max()),
            float(np.abs(ours.gender_probs - theirs.gender_probs).max()),
        )
    return largest
