"""TensorRT backend: everything that can be checked without a GPU.

Engine naming and staleness, profile shapes, per-version build choices,
backend selection (only the availability probe is faked), error text, real
CUDA error checking through cuda-python, and every TensorRT API name our code
touches checked against the real bindings of TensorRT 10.13 and 11.4.
"""

from __future__ import annotations

import ast
import gc
import importlib.machinery
import json
import re
import subprocess
import sys
import threading
import time
import weakref
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from analyzer.backends.cuda_memory import GpuInfo, available_provider, gpu_probe
from analyzer.backends.selection import choose_backend, create_backend, tensorrt_probe
from analyzer.backends.tensorrt import (
    EngineRecipe,
    ProfileShapes,
    TensorRTBackend,
    _use_timing_cache,
    build_engine,
    build_source,
    gpu_slug,
    make_recipe,
    tensorrt_logger,
    why_rebuild,
)
from analyzer.config import ClassifierConfig, parse_config
from analyzer.core.model_meta import AGE_OUTPUT, GENDER_OUTPUT, INPUT_NAME, ModelMetadata, open_session
from analyzer.errors import ConfigError, ModelError

REPO = Path(__file__).resolve().parents[1]
ENGINE_MODULE = REPO / "analyzer" / "backends" / "tensorrt.py"
RTX = GpuInfo("NVIDIA GeForce RTX 3060", (8, 6), 12288)
ORIN = GpuInfo("Orin (nvgpu)", (8, 7), 7620)


@pytest.fixture()
def model_pair(tmp_path: Path) -> Path:
    """A stand-in FP32 + FP16 ONNX pair: naming and staleness only look at the bytes."""
    model = tmp_path / "agegender.onnx"
    model.write_bytes(b"fp32 network bytes")
    (tmp_path / "agegender.fp16.onnx").write_bytes(b"fp16 network bytes")
    return model


def _recipe(model: Path, gpu: GpuInfo = RTX, version: str = "10.13.0.35", max_batch: int = 64) -> EngineRecipe:
    return make_recipe(model, gpu, version, 64, max_batch, 8, 1024)


def _pretend_built(recipe: EngineRecipe, engine_dir: Path) -> Path:
    """What build_engine leaves behind: the plan and its sidecar."""
    engine_dir.mkdir(parents=True, exist_ok=True)
    plan = engine_dir / recipe.plan_name()
    plan.write_bytes(b"serialized engine")
    plan.with_suffix(".json").write_text(json.dumps(recipe.sidecar()))
    return plan


# --- naming, staleness, profiles -------------------------------------------


def test_plan_name_is_keyed_by_model_hash_gpu_and_version(model_pair: Path) -> None:
    recipe = _recipe(model_pair)
    assert re.fullmatch(
        r"agegender-[0-9a-f]{8}-nvidia-geforce-rtx-3060-trt10\.13\.0\.35-fp16\.plan", recipe.plan_name()
    )
    assert recipe.source_sha256.startswith(recipe.plan_name().split("-")[1])
    assert _recipe(model_pair, ORIN).plan_name() != recipe.plan_name()
    assert "trt11.4.0.106" in _recipe(model_pair, version="11.4.0.106").plan_name()
    assert gpu_slug("Orin (nvgpu)") == "orin-nvgpu"


@pytest.mark.parametrize("version", ["10.13.0.35", "11.4.0.106"])
def test_both_versions_build_strongly_typed_from_the_fp16_onnx(model_pair: Path, version: str) -> None:
    fp16 = model_pair.with_name("agegender.fp16.onnx")
    assert build_source(model_pair, version) == (fp16, "strongly-typed")
    # The FP16 file is what is hashed, so a new FP16 export means a new engine.
    before = _recipe(model_pair, version=version).plan_name()
    fp16.write_bytes(b"re-exported fp16 bytes")
    assert _recipe(model_pair, version=version).plan_name() != before
    fp16.unlink()
    only_fp16 = rf"agegender\.fp16\.onnx: TensorRT {re.escape(version)} builds FP16 engines only"
    with pytest.raises(ModelError, match=only_fp16):
        build_source(model_pair, version)
    with pytest.raises(ModelError, match=r"TensorRT 8\.6\.1 is not supported"):
        build_source(model_pair, "8.6.1")


def test_a_matching_cached_engine_is_used(model_pair: Path, tmp_path: Path) -> None:
    recipe = _recipe(model_pair)
    _pretend_built(recipe, tmp_path / "engines")
    assert why_rebuild(recipe, tmp_path / "engines") is None


def test_stale_and_foreign_engines_are_rebuilt(model_pair: Path, tmp_path: Path) -> None:
    engines = tmp_path / "engines"
    built = _recipe(model_pair)
    plan = _pretend_built(built, engines)
    # Another GPU or TensorRT version looks for another file: the one on disk is never loaded.
    assert why_rebuild(_recipe(model_pair, ORIN), engines).startswith("no cached engine")
    assert why_rebuild(_recipe(model_pair, version="10.14.1.48"), engines).startswith("no cached engine")
    # Same name, different profile.
    assert "profile" in why_rebuild(_recipe(model_pair, max_batch=32), engines)
    # A plan whose sidecar says it came from other bytes (copied in by hand, or a hash prefix clash).
    sidecar = json.loads(plan.with_suffix(".json").read_text())
    sidecar["source_sha256"] = "0" * 64
    plan.with_suffix(".json").write_text(json.dumps(sidecar))
    assert "source_sha256" in why_rebuild(built, engines)
    plan.with_suffix(".json").write_text("{not json")
    assert "unreadable" in why_rebuild(built, engines)
    plan.with_suffix(".json").unlink()
    assert "has no" in why_rebuild(built, engines)


def test_profile_shapes_come_from_the_config() -> None:
    config = parse_config(
        {"classifier": {"max_batch": 64, "typical_batch": 16}, "cameras": [{"id": "door", "source": "demo"}]}
    )
    shapes = ProfileShapes.for_batches(64, config.classifier.max_batch, config.classifier.typical_batch)
    assert shapes == ProfileShapes((1, 3, 64, 64), (16, 3, 64, 64), (64, 3, 64, 64))
    with pytest.raises(ConfigError, match=r"classifier\.typical_batch"):
        parse_config(
            {"classifier": {"max_batch": 8, "typical_batch": 16}, "cameras": [{"id": "door", "source": "demo"}]}
        )
    with pytest.raises(ConfigError, match=r"classifier\.typical_batch"):
        ProfileShapes.for_batches(64, 8, 9)


# --- backend selection -----------------------------------------------------


def _available() -> tuple[bool, str]:
    return True, "TensorRT 10.13.0.35 starts on NVIDIA GeForce RTX 3060"


def _unavailable() -> tuple[bool, str]:
    return False, "TensorRT is not installed"


def test_auto_picks_tensorrt_only_when_it_can_run() -> None:
    assert choose_backend("auto", _available) == ("tensorrt", _available()[1])
    assert choose_backend("auto", _unavailable) == ("onnxruntime", "TensorRT is not installed")
    assert choose_backend("onnxruntime", _available)[0] == "onnxruntime"
    assert choose_backend("tensorrt", _available)[0] == "tensorrt"


def test_tensorrt_requested_where_it_cannot_run_is_an_error_not_a_fallback() -> None:
    with pytest.raises(ConfigError) as error:
        choose_backend("tensorrt", _unavailable)
    assert str(error.value) == (
        "classifier.backend: tensorrt was requested but TensorRT is not installed; use --backend onnxruntime"
    )


def test_auto_logs_which_backend_and_why(shipped_model: Path) -> None:
    lines: list[str] = []
    backend = create_backend(ClassifierConfig(model=str(shipped_model)), log=lines.append, probe=_unavailable)
    assert backend.name == "onnxruntime"
    assert lines == ["classifier backend: onnxruntime on CPU (auto: TensorRT is not installed)"]


@pytest.mark.skipif(tensorrt_probe()[0], reason="TensorRT and a GPU are present on this machine")
def test_the_real_probe_says_why_tensorrt_cannot_run_here() -> None:
    available, reason = tensorrt_probe()
    assert not available
    assert reason.startswith(("TensorRT is not installed", "TensorRT is installed but", "TensorRT ")), reason


@pytest.mark.skipif(tensorrt_probe()[0], reason="TensorRT and a GPU are present on this machine")
def test_run_with_tensorrt_requested_fails_with_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "analyzer",
            "run",
            "--backend",
            "tensorrt",
            "--fast",
            "--metrics-port",
            "0",
            "--web-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and "tensorrt was requested but" in errors[0] and "--backend onnxruntime" in errors[0]


@pytest.mark.skipif(available_provider() != "cuda-python", reason="cuda-python is not installed")
@pytest.mark.skipif(gpu_probe()[0] is not None, reason="a GPU is present on this machine")
def test_cuda_errors_are_checked_not_ignored() -> None:
    """The real cuda-python bindings on a box without a GPU driver: every call's status is checked."""
    from analyzer.backends.cuda_memory import CudaError, CudaPythonProvider

    provider = CudaPythonProvider()
    with pytest.raises(CudaError, match=r"CUDA cudaMalloc failed: cudaError\w+ \(.+\)"):
        provider.device_alloc(1024)
    with pytest.raises(CudaError, match=r"CUDA cudaStreamCreateWithFlags failed"):
        provider.stream()
    gpu, reason = gpu_probe()
    assert gpu is None and "cudaGetDeviceCount failed" in reason


# --- every TensorRT name we use exists in the version that uses it ---------

BINDINGS = {10: "tensorrt-cu11-bindings==10.13.0.35", 11: "tensorrt-cu13-bindings==11.4.0.106"}
# Variables holding TensorRT objects (roots) and attributes of ours that hold them (markers).
TRT_ROOTS = {
    "trt",
    "builder",
    "network",
    "config",
    "parser",
    "profile",
    "engine",
    "context",
    "timing_cache",
    "inspector",
}
TRT_MARKERS = {"_trt", "_engine", "_runtime", "_logger", "context"}


def _bindings_api(version: int, cache: Path) -> tuple[set[str], str, str]:
    """Strings of the real ``tensorrt.so`` of one version (and its ``__init__.py``), from PyPI."""
    wheels = list(cache.glob(f"{BINDINGS[version].split('==')[0].replace('-', '_')}-*.whl"))
    if not wheels:
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), BINDINGS[version]],
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            pytest.skip(f"cannot download {BINDINGS[version]} from PyPI: {error}")
        wheels = list(cache.glob(f"{BINDINGS[version].split('==')[0].replace('-', '_')}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        library = wheel.read("tensorrt_bindings/tensorrt.so")
        init = wheel.read("tensorrt_bindings/__init__.py").decode()
    strings = {match.decode() for match in re.findall(rb"[\x20-\x7e]{2,}", library)}
    return strings, "\n".join(strings), init


def _present(name: str, api: tuple[set[str], str, str]) -> bool:
    """Registered by pybind11 (a C string, possibly tail-merged into a longer identifier) or set in __init__.py."""
    strings, joined, init = api
    if name in strings:
        return True
    if re.search(rf"[A-Za-z0-9_]{re.escape(name)}$", joined, re.MULTILINE):
        return True
    return re.search(rf"^{re.escape(name)}\s*=|^def {re.escape(name)}\b", init, re.MULTILINE) is not None


def _chain(node: ast.AST) -> tuple[str | None, list[str]]:
    """``worker.context.set_input_shape(...)`` → ("worker", ["context", "set_input_shape"])."""
    names: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            break
    return (node.id if isinstance(node, ast.Name) else None), names[::-1]


def _used_names(tree: ast.Module) -> dict[str, set[str]]:
    """TensorRT names used by code for TensorRT 10 only, 11 only, or both (``common``)."""
    used: dict[str, set[str]] = {"trt10": set(), "trt11": set(), "common": set()}
    for function in tree.body:
        scope = "common"
        if isinstance(function, ast.FunctionDef) and function.name.endswith(("_trt10", "_trt11")):
            scope = function.name[-5:]
        for node in ast.walk(function):
            if isinstance(node, ast.ClassDef) and any("IProgressMonitor" in ast.unparse(b) for b in node.bases):
                used[scope] |= {item.name for item in node.body if isinstance(item, ast.FunctionDef)} - {"__init__"}
            if not isinstance(node, ast.Attribute) or isinstance(getattr(node, "parent", None), ast.Attribute):
                continue
            root, names = _chain(node)
            if root in TRT_ROOTS:
                used[scope] |= set(names)
            else:
                marked = [index for index, name in enumerate(names) if name in TRT_MARKERS]
                if marked:
                    used[scope] |= set(names[marked[0] + 1 :])
    return used


@pytest.fixture(scope="module")
def tensorrt_apis(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[set[str], str, str]]:
    from analyzer.service.model_assets import cache_dir

    cache = cache_dir() / "tensorrt-bindings"
    cache.mkdir(parents=True, exist_ok=True)
    return {version: _bindings_api(version, cache) for version in BINDINGS}


def test_every_tensorrt_name_we_use_exists_in_its_version(tensorrt_apis: dict) -> None:
    tree = ast.parse(ENGINE_MODULE.read_text())
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child.parent = node  # type: ignore[attr-defined]
    used = _used_names(tree)
    # The scan must see the calls that matter, or it proves nothing.
    assert {"execute_async_v3", "set_tensor_address", "set_input_shape", "build_serialized_network"} <= used["common"]
    assert "STRONGLY_TYPED" in used["common"] and "FP16" not in used["common"]  # one path, no deprecated flag
    assert {"create_timing_cache", "set_timing_cache", "get_tensor_shape"} <= used["common"]
    assert {"ProfilingVerbosity", "DETAILED", "create_engine_inspector", "get_engine_information"} <= used["common"]
    missing = {
        version: sorted(
            name for name in used["common"] | used[f"trt{version}"] if not _present(name, tensorrt_apis[version])
        )
        for version in (10, 11)
    }
    assert missing == {10: [], 11: []}


def test_the_name_check_can_fail(tensorrt_apis: dict) -> None:
    """TensorRT 11 removed the FP16 builder flag: the check must see that, or it checks nothing."""
    assert _present("FP16", tensorrt_apis[10]) and not _present("FP16", tensorrt_apis[11])
    assert not _present("execute_async_v9", tensorrt_apis[10])


# --- the TensorRT and CUDA boundary, faked: what our code does around it ---


def _fake_tensorrt(runtime: Callable[[object], object], version: str = "10.13.0.35") -> ModuleType:
    """A ``tensorrt`` module as far as the probe and the backend touch it; ``runtime(logger)`` makes a runtime."""
    trt = ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version
    loggers: list[object] = []

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            loggers.append(self)

    trt.Logger = Logger  # type: ignore[attr-defined]
    trt.loggers = loggers  # type: ignore[attr-defined]
    trt.Runtime = runtime  # type: ignore[attr-defined]
    trt.TensorIOMode = SimpleNamespace(INPUT="input", OUTPUT="output")  # type: ignore[attr-defined]
    trt.DataType = SimpleNamespace(FLOAT="float", HALF="half")  # type: ignore[attr-defined]
    return trt


def _nullptr(logger: object) -> object:
    raise TypeError("pybind11::init(): factory function returned nullptr")


@pytest.fixture()
def with_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("analyzer.backends.cuda_memory.gpu_probe", lambda: (RTX, "1 GPU via cuda-python"))


def test_a_driver_too_old_for_tensorrt_falls_back_to_onnxruntime(
    monkeypatch: pytest.MonkeyPatch, with_gpu: None
) -> None:
    """TensorRT imports and the GPU answers, but a runtime cannot start (NVIDIA/TensorRT#2913): auto takes CPU."""
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(_nullptr))
    available, reason = tensorrt_probe()
    assert not available and "cannot start on NVIDIA GeForce RTX 3060" in reason and "returned nullptr" in reason
    assert choose_backend("auto", tensorrt_probe) == ("onnxruntime", reason)
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(lambda logger: object()))
    assert tensorrt_probe() == (True, "TensorRT 10.13.0.35 starts on NVIDIA GeForce RTX 3060")


class _FakeContext:
    def __init__(self, release: threading.Event | None) -> None:
        self.release = release
        self.started = threading.Event()

    def set_tensor_address(self, name: str, address: int) -> bool:
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        return True

    def execute_async_v3(self, stream: int) -> bool:
        self.started.set()
        if self.release is not None:
            assert self.release.wait(10)
        return True


class _FakeEngine:
    def __init__(self, age_width: int, release: threading.Event | None = None) -> None:
        self.shapes = {INPUT_NAME: (-1, 3, 64, 64), AGE_OUTPUT: (-1, age_width), GENDER_OUTPUT: (-1, 2)}
        self.num_io_tensors = 3
        self.release = release
        self.contexts: list[weakref.ref] = []

    def get_tensor_name(self, index: int) -> str:
        return list(self.shapes)[index]

    def get_tensor_mode(self, name: str) -> str:
        return "input" if name == INPUT_NAME else "output"

    def get_tensor_dtype(self, name: str) -> str:
        return "float"

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def get_tensor_profile_shape(self, name: str, profile: int) -> tuple[tuple[int, ...], ...]:
        return (1, 3, 64, 64), (8, 3, 64, 64), (16, 3, 64, 64)

    def create_execution_context(self) -> _FakeContext:
        context = _FakeContext(self.release)
        self.contexts.append(weakref.ref(context))
        return context


class _FakeCuda:
    """Host buffers as numpy arrays, device addresses as numbers; ``release`` notes whether contexts were alive."""

    def __init__(self, engine: _FakeEngine, released: list[int]) -> None:
        self.engine, self.released = engine, released

    def pinned(self, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
        return np.zeros(shape, dtype)

    def device_alloc(self, nbytes: int) -> int:
        return nbytes

    def stream(self) -> int:
        return 1

    def to_device(self, address: int, host: np.ndarray, stream: int) -> None:
        pass

    def to_host(self, host: np.ndarray, address: int, stream: int) -> None:
        pass

    def synchronize(self, stream: int) -> None:
        pass

    def release(self) -> None:
        self.released.append(sum(ref() is not None for ref in self.engine.contexts))


def _fake_backend(
    monkeypatch: pytest.MonkeyPatch, shipped_model: Path, age_width: int | None = None, hold: bool = False
) -> tuple[TensorRTBackend, _FakeEngine, list[int], threading.Event]:
    props = open_session(shipped_model, 1).get_modelmeta().custom_metadata_map
    metadata = ModelMetadata.from_props(props, shipped_model)
    release = threading.Event()
    engine = _FakeEngine(age_width or len(metadata.age_bin_edges), release if hold else None)
    runtime = SimpleNamespace(deserialize_cuda_engine=lambda plan: engine)
    trt = _fake_tensorrt(lambda logger: runtime)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    released: list[int] = []
    monkeypatch.setattr("analyzer.backends.tensorrt.open_provider", lambda: _FakeCuda(engine, released))
    plan = shipped_model.parent / "no-such.plan"
    monkeypatch.setattr(Path, "read_bytes", lambda self: b"plan" if self == plan else Path.read_bytes(self))
    return TensorRTBackend(plan, metadata), engine, released, release


def test_close_waits_for_calls_in_flight_drops_contexts_then_frees_and_refuses_later_calls(
    monkeypatch: pytest.MonkeyPatch, shipped_model: Path
) -> None:
    backend, engine, released, release = _fake_backend(monkeypatch, shipped_model, hold=True)
    chips = np.zeros((2, 3, 64, 64), np.float32)
    calls = [threading.Thread(target=backend.infer, args=(chips,)) for _ in range(2)]  # a context per thread
    for call in calls:
        call.start()
    assert _wait(lambda: len(engine.contexts) == 2)
    closing = threading.Thread(target=backend.close)
    closing.start()
    time.sleep(0.3)
    assert released == [] and closing.is_alive()  # the kernels in flight still use the buffers
    release.set()
    for thread in (*calls, closing):
        thread.join(10)
    gc.collect()
    assert released == [0, 0]  # each worker's memory freed once, after every context was gone
    with pytest.raises(ModelError, match=r"the TensorRT backend is closed"):
        backend.infer(chips)
    backend.close()  # a second close is nothing
    assert released == [0, 0]
    assert len(sys.modules["tensorrt"].loggers) == 1  # type: ignore[attr-defined]


def _wait(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_an_engine_of_another_model_is_refused_at_load(monkeypatch: pytest.MonkeyPatch, shipped_model: Path) -> None:
    with pytest.raises(ModelError, match=r"output 'age_probs' has shape \(-1, 7\), but model .* gives \d+ values"):
        _fake_backend(monkeypatch, shipped_model, age_width=7)


class _FakeBuilderConfig:
    def __init__(self, accepts: bool = True) -> None:
        self.accepts = accepts
        self.used: list[bytes] = []

    def create_timing_cache(self, serialized: bytes) -> bytes:
        if serialized.startswith(b"corrupt"):
            raise RuntimeError("Failed to deserialize the timing cache")
        return serialized

    def set_timing_cache(self, cache: bytes, ignore_mismatch: bool) -> bool:
        if cache and not self.accepts:
            return False
        self.used.append(cache)
        return True


@pytest.mark.parametrize(
    ("saved", "accepts", "used", "said"),
    [
        (b"timings", True, [b"timings"], False),
        (b"corrupt bytes", True, [b""], True),  # unreadable: build without it
        (b"timings of another GPU", False, [b""], True),  # refused: build without it
        (None, True, [b""], False),  # first build
    ],
)
def test_a_bad_timing_cache_costs_time_not_the_build(
    tmp_path: Path, saved: bytes | None, accepts: bool, used: list[bytes], said: bool
) -> None:
    path = tmp_path / "rtx-trt10.timing.cache"
    if saved is not None:
        path.write_bytes(saved)
    config, lines = _FakeBuilderConfig(accepts), []
    _use_timing_cache(config, path, lines.append)
    assert config.used == used
    assert bool(lines) is said and all("cannot use this timing cache" in line for line in lines)


def test_every_cuda_buffer_is_freed_even_when_one_free_fails() -> None:
    from analyzer.backends.cuda_memory import CudaError, CudaPythonProvider

    freed: list[tuple[str, int]] = []
    success, failure = SimpleNamespace(name="success"), SimpleNamespace(name="failure")

    def free(call: str, failing: int) -> Callable[[int], tuple[object]]:
        return lambda handle: (freed.append((call, handle)) or (failure if handle == failing else success),)

    cudart = SimpleNamespace(
        cudaError_t=SimpleNamespace(cudaSuccess=success),
        cudaGetErrorName=lambda status: (success, b"cudaErrorInvalidValue"),
        cudaGetErrorString=lambda status: (success, b"invalid argument"),
        cudaStreamNonBlocking=1,
        cudaStreamCreateWithFlags=lambda flags: (success, 70 + flags),
        cudaStreamDestroy=free("stream", -1),
        cudaFree=free("device", 11),
        cudaFreeHost=free("host", -1),
        cudaMalloc=lambda nbytes: (success, 10 + len(freed) + nbytes),
    )
    provider = CudaPythonProvider(cudart)  # type: ignore[arg-type]
    assert provider.stream() == 71  # created non-blocking
    provider._device = [11, 12]
    provider._host = [21]
    with pytest.raises(CudaError, match=r"1 CUDA free failed: CUDA cudaFree failed: cudaErrorInvalidValue"):
        provider.release()
    assert freed == [("stream", 71), ("device", 11), ("device", 12), ("host", 21)]


@pytest.mark.parametrize("version", ["10.13.0.35", "11.4.0.106"])
def test_a_build_and_a_runtime_share_one_logger_and_build_strongly_typed(
    monkeypatch: pytest.MonkeyPatch, model_pair: Path, tmp_path: Path, version: str
) -> None:
    trt = _fake_tensorrt(lambda logger: SimpleNamespace(logger=logger), version)
    networks: list[int] = []
    config = _FakeBuilderConfig()
    config.set_memory_pool_limit = lambda pool, size: None  # type: ignore[attr-defined]
    config.add_optimization_profile = lambda profile: None  # type: ignore[attr-defined]
    config.set_flag = lambda flag: pytest.fail(f"a builder flag was set: {flag}")  # type: ignore[attr-defined]
    config.get_timing_cache = lambda: SimpleNamespace(serialize=lambda: b"timings")  # type: ignore[attr-defined]

    class Builder:
        def __init__(self, logger: object) -> None:
            trt.builder_logger = logger  # type: ignore[attr-defined]

        def create_network(self, flags: int) -> object:
            networks.append(flags)
            return object()

        def create_builder_config(self) -> _FakeBuilderConfig:
            return config

        def create_optimization_profile(self) -> object:
            return SimpleNamespace(set_shape=lambda name, low, opt, high: None)

        def build_serialized_network(self, network: object, settings: object) -> bytes:
            return b"serialized plan"

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    trt.Builder = Builder  # type: ignore[attr-defined]
    trt.OnnxParser = lambda network, logger: SimpleNamespace(parse_from_file=lambda path: True)  # type: ignore[attr-defined]
    trt.IProgressMonitor = IProgressMonitor  # type: ignore[attr-defined]
    trt.MemoryPoolType = SimpleNamespace(WORKSPACE=0)  # type: ignore[attr-defined]
    trt.NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=1)  # type: ignore[attr-defined]
    trt.ProfilingVerbosity = SimpleNamespace(DETAILED=2)  # type: ignore[attr-defined]
    plan = build_engine(trt, _recipe(model_pair, version=version), tmp_path / "engines", log=lambda line: None)
    runtime = trt.Runtime(tensorrt_logger(trt))
    assert plan.read_bytes() == b"serialized plan" and networks == [1 << 1]
    assert trt.loggers == [trt.builder_logger] == [runtime.logger]  # type: ignore[attr-defined]


def test_each_gpu_extra_takes_tensorrt_and_cuda_python_for_one_cuda_major() -> None:
    """One extra per CUDA major: TensorRT built for it and cuda-python of that major, nothing that resolves across."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the extras are the same on 3.10
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    gpu_extras = {name: extras[name] for name in extras if name.startswith("gpu")}
    assert set(gpu_extras) == {"gpu-cu12", "gpu-cu13"}
    for name, requirements in gpu_extras.items():
        major = int(name.removeprefix("gpu-cu"))
        tensorrt = [r for r in requirements if r.startswith("tensorrt")]
        cuda = [r for r in requirements if r.startswith("cuda-python")]
        assert len(tensorrt) == 1 and tensorrt[0].startswith(f"tensorrt-cu{major}>="), requirements
        assert ",<12" in tensorrt[0]  # TensorRT 10 or 11, the versions the code is checked against
        assert len(cuda) == 1 and f"<{major + 1}" in cuda[0] and f">={major}" in cuda[0], requirements
