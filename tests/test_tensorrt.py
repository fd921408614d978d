"""TensorRT backend: everything that can be checked without a GPU.

Engine naming and staleness, profile shapes, per-version build choices,
backend selection (only the availability probe is faked), error text, real
CUDA error checking through cuda-python, and every TensorRT API name our code
touches checked against the real bindings of TensorRT 10.13 and 11.4.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from analyzer.classify import choose_backend, create_backend, tensorrt_probe
from analyzer.config import ClassifierConfig, parse_config
from analyzer.cuda_memory import GpuInfo, available_provider, gpu_probe
from analyzer.errors import ConfigError, ModelError
from analyzer.tensorrt_engine import (
    EngineRecipe,
    ProfileShapes,
    build_source,
    gpu_slug,
    make_recipe,
    why_rebuild,
)

REPO = Path(__file__).resolve().parents[1]
ENGINE_MODULE = REPO / "analyzer" / "tensorrt_engine.py"
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


def test_each_version_builds_from_the_right_onnx(model_pair: Path) -> None:
    assert build_source(model_pair, "10.13.0.35") == (model_pair, "fp16-flag")
    fp16 = model_pair.with_name("agegender.fp16.onnx")
    assert build_source(model_pair, "11.4.0.106") == (fp16, "strongly-typed")
    # TensorRT 11 hashes the FP16 file it parses, so a new FP16 export means a new engine.
    before = _recipe(model_pair, version="11.4.0.106").plan_name()
    fp16.write_bytes(b"re-exported fp16 bytes")
    assert _recipe(model_pair, version="11.4.0.106").plan_name() != before
    fp16.unlink()
    with pytest.raises(ModelError, match=r"agegender\.fp16\.onnx: TensorRT 11\.4\.0\.106 builds FP16 engines only"):
        build_source(model_pair, "11.4.0.106")
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
    return True, "TensorRT 10.13.0.35 imports and NVIDIA GeForce RTX 3060 is present"


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
        [sys.executable, "-m", "analyzer", "run", "--backend", "tensorrt", "--fast", "--metrics-port", "0"],
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
    from analyzer.cuda_memory import CudaError, CudaPythonProvider

    provider = CudaPythonProvider()
    with pytest.raises(CudaError, match=r"CUDA cudaMalloc failed: cudaError\w+ \(.+\)"):
        provider.device_alloc(1024)
    with pytest.raises(CudaError, match=r"CUDA cudaStreamCreate failed"):
        provider.stream()
    gpu, reason = gpu_probe()
    assert gpu is None and "cudaGetDeviceCount failed" in reason


# --- every TensorRT name we use exists in the version that uses it ---------

BINDINGS = {10: "tensorrt-cu11-bindings==10.13.0.35", 11: "tensorrt-cu13-bindings==11.4.0.106"}
# Variables holding TensorRT objects (roots) and attributes of ours that hold them (markers).
TRT_ROOTS = {"trt", "builder", "network", "config", "parser", "profile", "engine", "context", "timing_cache"}
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
    from analyzer.assets import cache_dir

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
    assert {"BuilderFlag", "FP16"} <= used["trt10"] and "STRONGLY_TYPED" in used["trt11"]
    missing = {
        version: sorted(
            name
            for name in used["common"] | used[f"trt{version}"]
            if not _present(name, tensorrt_apis[version])
        )
        for version in (10, 11)
    }  # fmt: skip
    assert missing == {10: [], 11: []}


def test_the_name_check_can_fail(tensorrt_apis: dict) -> None:
    """TensorRT 11 removed the FP16 builder flag: the check must see that, or it checks nothing."""
    assert _present("FP16", tensorrt_apis[10]) and not _present("FP16", tensorrt_apis[11])
    assert not _present("execute_async_v9", tensorrt_apis[10])
