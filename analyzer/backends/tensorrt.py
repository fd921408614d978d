"""TensorRT FP16 engine: build from our ONNX, cache on disk, run on a CUDA stream.

Written against the documented Python API of TensorRT 10 and 11, with one
path for both: a strongly typed network parsed from ``<model>.fp16.onnx``,
whose weights and compute are already float16. (TensorRT 11 removed weak
typing; TensorRT 10.12 deprecated the ``FP16`` builder flag for it, and
strong typing exists since 9.) ``tests/test_tensorrt.py`` checks every
TensorRT name used here against the real bindings of each version.

A cached engine is used only when its sidecar JSON says it was built from the
same ONNX bytes, for the same GPU, TensorRT version and profile; anything
else is rebuilt, never loaded.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.backends.base import FaceAttributes
from analyzer.backends.cuda_memory import CudaError, CudaProvider, GpuInfo, open_provider
from analyzer.core.model_meta import AGE_OUTPUT, GENDER_OUTPUT, INPUT_NAME, ModelMetadata, check_model_file
from analyzer.errors import ConfigError, ModelError
from analyzer.service.atomic_files import whole_file, write_json
from analyzer.service.console import how_many
from analyzer.service.model_assets import file_sha256

if TYPE_CHECKING:
    from analyzer.config import ClassifierConfig

SUPPORTED_MAJOR_VERSIONS = (10, 11)
SIDECAR_SCHEMA = "footfall-trt-engine/1"
#: How long ``close`` waits for calls in flight before it leaves their memory to the process's exit.
CLOSE_WAIT_S = 5.0


@functools.cache
def tensorrt_logger(trt: ModuleType) -> Any:
    """The process's one TensorRT logger: the builder, every runtime and the probe share it, as TensorRT asks."""
    return trt.Logger(trt.Logger.WARNING)


@dataclass(frozen=True)
class ProfileShapes:
    """The optimisation profile of the input: batch 1..max, tuned for the typical batch."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    @classmethod
    def for_batches(cls, input_size: int, max_batch: int, typical_batch: int) -> ProfileShapes:
        """Shapes for ``chips`` (N, 3, S, S)."""
        if max_batch < 1:
            raise ConfigError(f"classifier.max_batch: {max_batch} must be at least 1")
        if not 1 <= typical_batch <= max_batch:
            raise ConfigError(
                f"classifier.typical_batch: {typical_batch} must be between 1 and classifier.max_batch ({max_batch})"
            )
        chip = (3, input_size, input_size)
        return cls((1, *chip), (typical_batch, *chip), (max_batch, *chip))


@dataclass(frozen=True)
class EngineRecipe:
    """Everything that decides what engine gets built; a cached plan must match all of it."""

    model_name: str
    source: str  # the ONNX file TensorRT parses
    source_sha256: str
    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    precision_mode: str  # "strongly-typed": the FP16 ONNX's own types
    profile: ProfileShapes
    workspace_mb: int

    @property
    def major_version(self) -> int:
        """TensorRT major version."""
        return major_version(self.tensorrt_version)

    def plan_name(self) -> str:
        """``<model>-<sha8>-<gpu-name>-trt<version>-fp16.plan``."""
        gpu = gpu_slug(self.gpu_name)
        return f"{self.model_name}-{self.source_sha256[:8]}-{gpu}-trt{self.tensorrt_version}-fp16.plan"

    def sidecar(self) -> dict[str, Any]:
        """What is written beside the plan and compared on load."""
        recipe = asdict(self)
        recipe["compute_capability"] = list(self.compute_capability)
        recipe["profile"] = {key: list(value) for key, value in asdict(self.profile).items()}
        return {"schema": SIDECAR_SCHEMA, **recipe}


def major_version(version: str) -> int:
    """``"10.13.0.35"`` → 10."""
    match = re.match(r"(\d+)\.", version)
    if not match:
        raise ModelError(f"unrecognised TensorRT version '{version}'")
    return int(match.group(1))


def gpu_slug(name: str) -> str:
    """A GPU name fit for a file name: ``NVIDIA GeForce RTX 3060`` → ``nvidia-geforce-rtx-3060``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def fp16_sibling(model: Path) -> Path:
    """``engines/agegender.onnx`` → ``engines/agegender.fp16.onnx``."""
    return model.with_name(model.name.removesuffix(".onnx") + ".fp16.onnx")


def build_source(model: Path, tensorrt_version: str) -> tuple[Path, str]:
    """Which ONNX TensorRT parses and how FP16 is obtained: the FP16 ONNX, strongly typed, on 10 and 11 alike."""
    major = major_version(tensorrt_version)
    if major not in SUPPORTED_MAJOR_VERSIONS:
        raise ModelError(
            f"TensorRT {tensorrt_version} is not supported (10.x and 11.x are); "
            "install one of those or use --backend onnxruntime"
        )
    sibling = fp16_sibling(model)
    if not sibling.is_file():
        raise ModelError(
            f"{sibling}: TensorRT {tensorrt_version} builds FP16 engines only from the FP16 ONNX; "
            f"make it with analyzer export (it writes both)"
        )
    return sibling, "strongly-typed"


def make_recipe(
    model: Path,
    gpu: GpuInfo,
    tensorrt_version: str,
    input_size: int,
    max_batch: int,
    typical_batch: int,
    workspace_mb: int,
) -> EngineRecipe:
    """The recipe for this model on this GPU and TensorRT."""
    check_model_file(model)
    source, precision_mode = build_source(model, tensorrt_version)
    return EngineRecipe(
        model_name=model.name.removesuffix(".onnx"),
        source=str(source),
        source_sha256=file_sha256(source),
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        tensorrt_version=tensorrt_version,
        precision_mode=precision_mode,
        profile=ProfileShapes.for_batches(input_size, max_batch, typical_batch),
        workspace_mb=workspace_mb,
    )


def why_rebuild(recipe: EngineRecipe, engine_dir: Path) -> str | None:
    """Why the cached plan for ``recipe`` cannot be used, or None when it can."""
    plan = engine_dir / recipe.plan_name()
    sidecar = plan.with_suffix(".json")
    if not plan.is_file():
        return f"no cached engine {plan.name}"
    if not sidecar.is_file():
        return f"{plan.name} has no {sidecar.name} saying how it was built"
    try:
        recorded = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return f"{sidecar.name} is unreadable"
    expected = recipe.sidecar()
    expected.pop("source")  # the same bytes may live at another path
    recorded.pop("source", None)
    changed = sorted(key for key in expected if recorded.get(key) != expected[key])
    if changed:
        return f"{plan.name} was built with a different {', '.join(changed)}"
    return None


def _write_whole(path: Path, payload: bytes) -> None:
    """A plan or timing cache, whole or not at all (a power cut mid-write must not leave half an engine)."""
    with whole_file(path) as partial:
        partial.write_bytes(payload)


# --- building --------------------------------------------------------------


def _network_flags(trt: ModuleType) -> int:
    """Strongly typed: float16 comes from the FP16 ONNX itself, no precision flag to set."""
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _use_timing_cache(config: Any, timing_path: Path, log: Callable[[str], None]) -> None:
    """Start from the timing cache of earlier builds; an unreadable or refused one is replaced by an empty one.

    The cache only saves time: a corrupt file (a disk fault, another
    TensorRT's format) must not fail the build. It is rewritten afterwards.
    """
    cache = None
    if timing_path.is_file():
        try:
            cache = config.create_timing_cache(timing_path.read_bytes())
        except Exception:  # TensorRT raises its own RuntimeError or TypeError on bad bytes
            cache = None
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return
        log(f"{timing_path}: TensorRT cannot use this timing cache; building without it (it is rewritten after)")
    if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
        raise ModelError("TensorRT refused an empty timing cache; see its log lines above")


def _progress_monitor(trt: ModuleType, log: Callable[[str], None]) -> Any:
    """A TensorRT progress monitor that logs each top-level build phase (building takes minutes)."""

    class BuildProgress(trt.IProgressMonitor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._started = time.monotonic()

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                with self._lock:
                    log(f"  [{time.monotonic() - self._started:5.0f} s] {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            pass

    return BuildProgress()


def build_engine(trt: ModuleType, recipe: EngineRecipe, engine_dir: Path, log: Callable[[str], None] = print) -> Path:
    """Build, save plan + sidecar, update the timing cache; returns the plan path."""
    logger = tensorrt_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(recipe.source):
        errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        raise ModelError(f"{recipe.source}: TensorRT cannot parse this ONNX ({errors[0] if errors else 'no detail'})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, recipe.workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the engine inspector then names each precision
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, recipe.profile.min, recipe.profile.opt, recipe.profile.max)
    config.add_optimization_profile(profile)
    timing_path = engine_dir / f"{gpu_slug(recipe.gpu_name)}-trt{recipe.tensorrt_version}.timing.cache"
    _use_timing_cache(config, timing_path, log)
    monitor = _progress_monitor(trt, log)
    config.progress_monitor = monitor
    log(
        f"building TensorRT {recipe.tensorrt_version} FP16 engine ({recipe.precision_mode}) for {recipe.gpu_name} "
        f"from {recipe.source}, batch 1..{recipe.profile.max[0]}; this takes a few minutes once"
    )
    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{recipe.source}: TensorRT could not build an engine; see its log lines above")
    engine_dir.mkdir(parents=True, exist_ok=True)
    plan = engine_dir / recipe.plan_name()
    _write_whole(plan, bytes(memoryview(serialized)))
    write_json(plan.with_suffix(".json"), recipe.sidecar())  # after the plan: a plan is used only once this says how
    _write_whole(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
    log(f"engine built in {time.monotonic() - started:.0f} s: {plan}")
    return plan


# --- running ---------------------------------------------------------------


@dataclass
class _Worker:
    """One execution context with its own stream and buffers, used by one thread only."""

    context: Any
    cuda: CudaProvider
    stream: int
    host: dict[str, np.ndarray]
    device: dict[str, int]


class TensorRTBackend:
    """Same contract as :class:`~analyzer.backends.onnxruntime.OnnxRuntimeBackend`, on a GPU.

    Each calling thread gets its own execution context, stream and pinned
    buffers sized for the engine's max batch, so classifier workers never
    share mutable TensorRT state.
    """

    name = "tensorrt"

    def __init__(self, plan: Path, metadata: ModelMetadata) -> None:
        import tensorrt as trt

        self._trt = trt
        self.metadata = metadata
        self.path = plan
        self._runtime = trt.Runtime(tensorrt_logger(trt))
        engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if engine is None:
            raise ModelError(f"{plan}: TensorRT cannot load this engine; delete it and run again to rebuild it")
        self._engine = engine
        self._dtypes = self._io_types(engine)
        self._check_output_widths(engine)
        self.max_batch = int(engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])
        self._local = threading.local()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._closed = False

    def _io_types(self, engine: Any) -> dict[str, type[np.generic]]:
        """Numpy type of each of our three tensors; anything else means a wrong engine."""
        trt = self._trt
        names = {engine.get_tensor_name(index) for index in range(engine.num_io_tensors)}
        expected = {INPUT_NAME, AGE_OUTPUT, GENDER_OUTPUT}
        if names != expected:
            raise ModelError(f"{self.path}: engine tensors {sorted(names)} are not {sorted(expected)}")
        if engine.get_tensor_mode(INPUT_NAME) != trt.TensorIOMode.INPUT:
            raise ModelError(f"{self.path}: '{INPUT_NAME}' is not the engine's input")
        numpy_types = {trt.DataType.FLOAT: np.float32, trt.DataType.HALF: np.float16}
        types = {}
        for name in expected:
            kind = engine.get_tensor_dtype(name)
            if kind not in numpy_types:
                raise ModelError(f"{self.path}: tensor '{name}' is {kind}, expected FLOAT or HALF")
            types[name] = numpy_types[kind]
        return types

    def _check_output_widths(self, engine: Any) -> None:
        """The engine's outputs are as wide as the model file's metadata says (an engine of another model is not)."""
        expected = {AGE_OUTPUT: len(self.metadata.age_bin_edges), GENDER_OUTPUT: len(self.metadata.gender_labels)}
        for name, width in expected.items():
            shape = tuple(engine.get_tensor_shape(name))
            if not shape or int(shape[-1]) != width:
                raise ModelError(
                    f"{self.path}: output '{name}' has shape {shape}, but model {self.metadata.version} gives "
                    f"{width} values per face: the engine was built from another model; delete it to rebuild it"
                )

    def _worker(self) -> _Worker:
        worker = getattr(self._local, "worker", None)
        if worker is not None:
            return worker
        context = self._engine.create_execution_context()
        if context is None:
            raise ModelError(f"{self.path}: TensorRT could not create an execution context (GPU memory full?)")
        cuda = open_provider()
        size = self.metadata.input_size
        bins = len(self.metadata.age_bin_edges)
        shapes = {
            INPUT_NAME: (self.max_batch, 3, size, size),
            AGE_OUTPUT: (self.max_batch, bins),
            GENDER_OUTPUT: (self.max_batch, 2),
        }
        host = {name: cuda.pinned(shape, self._dtypes[name]) for name, shape in shapes.items()}
        device = {name: cuda.device_alloc(array.nbytes) for name, array in host.items()}
        for name, address in device.items():
            if not context.set_tensor_address(name, address):
                raise ModelError(f"{self.path}: TensorRT refused the device buffer for '{name}'")
        worker = _Worker(context, cuda, cuda.stream(), host, device)
        self._local.worker = worker
        with self._lock:
            self._workers.append(worker)
        return worker

    def _stage(self, worker: _Worker, inputs: np.ndarray) -> None:
        """Copy ``inputs`` (at most ``max_batch``) to the device and set the execution's input shape."""
        chips = worker.host[INPUT_NAME][: len(inputs)]
        chips[:] = inputs
        if not worker.context.set_input_shape(INPUT_NAME, tuple(inputs.shape)):
            raise ModelError(f"{self.path}: input shape {inputs.shape} is outside the engine's profile")
        worker.cuda.to_device(worker.device[INPUT_NAME], chips, worker.stream)

    def _execute(self, worker: _Worker) -> None:
        if not worker.context.execute_async_v3(worker.stream):
            raise ModelError(f"{self.path}: TensorRT execution failed; see its log lines above")

    def _run(self, worker: _Worker, inputs: np.ndarray) -> FaceAttributes:
        count = len(inputs)
        self._stage(worker, inputs)
        self._execute(worker)
        for name in (AGE_OUTPUT, GENDER_OUTPUT):
            worker.cuda.to_host(worker.host[name][:count], worker.device[name], worker.stream)
        worker.cuda.synchronize(worker.stream)
        return FaceAttributes(
            worker.host[AGE_OUTPUT][:count].astype(np.float32),
            worker.host[GENDER_OUTPUT][:count].astype(np.float32),
        )

    @contextlib.contextmanager
    def _call(self) -> Iterator[_Worker]:
        """The calling thread's worker for one call; refused once closed, and counted so ``close`` waits for it."""
        with self._lock:
            if self._closed:
                raise ModelError(f"{self.path}: the TensorRT backend is closed; create a new one to classify again")
            self._in_flight += 1
        try:
            yield self._worker()
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        """Run float32 NCHW chips, in slices of at most the engine's max batch; a closed backend refuses."""
        with self._call() as worker:
            parts = [
                self._run(worker, inputs[start : start + self.max_batch])
                for start in range(0, len(inputs), self.max_batch)
            ]
        if not parts:
            bins = len(self.metadata.age_bin_edges)
            return FaceAttributes(np.zeros((0, bins), np.float32), np.zeros((0, 2), np.float32))
        return FaceAttributes(
            np.concatenate([part.age_probs for part in parts]), np.concatenate([part.gender_probs for part in parts])
        )

    def poison_outputs(self) -> None:
        """NaN in the calling thread's output buffers: an answer TensorRT did not write then shows (``gpu-check``)."""
        with self._call() as worker:
            for name in (AGE_OUTPUT, GENDER_OUTPUT):
                worker.host[name][:] = np.nan

    def gpu_milliseconds(self, inputs: np.ndarray) -> float:
        """GPU time of one execution of ``inputs`` (at most ``max_batch``), between CUDA events, without copies."""
        with self._call() as worker:
            self._stage(worker, inputs)
            return worker.cuda.gpu_milliseconds(worker.stream, lambda: self._execute(worker))

    def layer_precisions(self) -> dict[str, int]:
        """How many layer outputs the engine inspector reports as half, float or other precision."""
        trt = self._trt
        inspector = self._engine.create_engine_inspector()
        information = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        counts = {"half": 0, "float": 0, "other": 0}
        for layer in information.get("Layers", []):
            for output in layer.get("Outputs", []) if isinstance(layer, dict) else []:
                kind = str(output.get("Format/Datatype", ""))
                precision = "half" if ("Half" in kind or "FP16" in kind) else "float" if "Float" in kind else "other"
                counts[precision] += 1
        return counts

    def close(self) -> None:
        """Stop new calls, wait for those in flight, drop the execution contexts, then free their memory.

        Contexts point at the buffers, so they go first. A call still running
        after ``CLOSE_WAIT_S`` (a hung GPU) keeps its memory: freeing it under
        a running kernel would corrupt it, and the process's exit frees it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout=CLOSE_WAIT_S):
                raise ModelError(
                    f"{self.path}: {how_many(self._in_flight, 'TensorRT call')} still running after "
                    f"{CLOSE_WAIT_S:g} s; its GPU memory is left to the process's exit"
                )
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.context = None
        failures = []
        for worker in workers:
            try:
                worker.cuda.release()
            except CudaError as error:
                failures.append(str(error))
        if failures:
            raise ModelError(f"{self.path}: freeing the TensorRT buffers failed: {'; '.join(failures)}")


def engine_for(
    settings: ClassifierConfig, metadata: ModelMetadata, log: Callable[[str], None] = print, force: bool = False
) -> Path:
    """The plan for this model on this box: the cached one when it matches, else a fresh build."""
    import tensorrt as trt

    engine_dir = settings.engine_dir_path()
    recipe = make_recipe(
        settings.model_path(),
        open_provider().gpu(0),
        trt.__version__,
        metadata.input_size,
        settings.max_batch,
        settings.typical_batch,
        settings.workspace_mb,
    )
    reason = "--force" if force else why_rebuild(recipe, engine_dir)
    if reason is None:
        log(f"TensorRT engine: {engine_dir / recipe.plan_name()} (cached)")
        return engine_dir / recipe.plan_name()
    log(f"TensorRT engine: {reason}; building it")
    return build_engine(trt, recipe, engine_dir, log)
