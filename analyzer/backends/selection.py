"""Which backend runs here: TensorRT where it starts on a GPU, else ONNX Runtime, always saying why."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from analyzer.backends.base import ClassifierBackend
from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from analyzer.config import ClassifierConfig


def tensorrt_probe() -> tuple[bool, str]:
    """Whether the TensorRT backend can run here: TensorRT 10/11 imports, a CUDA GPU answers and a runtime starts.

    Says why not. Only creating a runtime finds a driver too old for the
    TensorRT wheel (NVIDIA/TensorRT#2913); without it ``auto`` would pick
    TensorRT and fail instead of falling back to ONNX Runtime.
    """
    import importlib
    import importlib.util

    from analyzer.backends.cuda_memory import gpu_probe
    from analyzer.backends.tensorrt import SUPPORTED_MAJOR_VERSIONS, major_version, tensorrt_logger

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
    from analyzer.backends.tensorrt import TensorRTBackend, engine_for

    log(f"classifier backend: tensorrt ({settings.backend}: {reason})")
    return TensorRTBackend(engine_for(settings, reference.metadata, log), reference.metadata)
