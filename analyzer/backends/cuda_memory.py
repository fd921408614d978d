"""CUDA device buffers, pinned host buffers and streams for the TensorRT backend.

Two providers behind one small interface: ``cuda-python`` (``cuda.bindings``,
preferred, installs from PyPI without a toolkit) and ``pycuda`` (taken only when
it is installed and ``cuda-python`` is not). Every CUDA call's status is
checked; a failure raises :class:`CudaError` naming the call and CUDA's own
explanation, never a silent zero pointer.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from analyzer.errors import AnalyzerError
from analyzer.service.console import how_many


class CudaError(AnalyzerError):
    """A CUDA runtime call failed; the message names the call and the reason."""


class CudaUnavailableError(AnalyzerError):
    """Neither cuda-python nor pycuda can be imported."""


@dataclass(frozen=True)
class GpuInfo:
    """What the engine cache key needs to know about the device."""

    name: str
    compute_capability: tuple[int, int]
    memory_mb: int


class CudaProvider(Protocol):
    """Device memory, pinned host memory and streams, whichever binding provides them."""

    name: str

    def device_count(self) -> int:
        """Number of CUDA devices; raises :class:`CudaError` when the driver cannot be reached."""
        ...

    def gpu(self, device: int = 0) -> GpuInfo:
        """Name, compute capability and memory of one device."""
        ...

    def pinned(self, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
        """A page-locked host array (fast, asynchronous copies)."""
        ...

    def device_alloc(self, nbytes: int) -> int:
        """Device memory; returns its address."""
        ...

    def stream(self) -> int:
        """A new CUDA stream; returns its handle."""
        ...

    def to_device(self, address: int, host: np.ndarray, stream: int) -> None:
        """Asynchronous host → device copy of a contiguous array."""
        ...

    def to_host(self, host: np.ndarray, address: int, stream: int) -> None:
        """Asynchronous device → host copy into a contiguous array."""
        ...

    def synchronize(self, stream: int) -> None:
        """Wait for all work queued on the stream."""
        ...

    def versions(self) -> tuple[str, str]:
        """The CUDA driver's version and the runtime's, as ``"12.6"``."""
        ...

    def gpu_milliseconds(self, stream: int, work: Callable[[], None]) -> float:
        """GPU time of what ``work`` enqueues on ``stream``, between two CUDA events."""
        ...

    def release(self) -> None:
        """Free everything this provider allocated."""
        ...


def _cuda_version(number: int) -> str:
    """CUDA's 12060 → ``"12.6"``."""
    return f"{number // 1000}.{number % 1000 // 10}"


def _cudart_module() -> ModuleType:
    """``cuda.bindings.runtime`` (cuda-python ≥ 12.6), else the older ``cuda.cudart``."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return importlib.import_module("cuda.cudart")


class CudaPythonProvider:
    """NVIDIA's ``cuda-python`` runtime bindings: every call returns ``(status, *values)``."""

    name = "cuda-python"

    def __init__(self, cudart: ModuleType | None = None) -> None:
        self._cudart = cudart or _cudart_module()
        self._host: list[int] = []
        self._device: list[int] = []
        self._streams: list[Any] = []

    def _check(self, call: str, result: tuple[Any, ...]) -> Any:
        """Raise on a non-success status; return the call's value (or values)."""
        status, *values = result
        if status != self._cudart.cudaError_t.cudaSuccess:
            _, name = self._cudart.cudaGetErrorName(status)
            _, text = self._cudart.cudaGetErrorString(status)
            raise CudaError(f"CUDA {call} failed: {name.decode()} ({text.decode()})")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def device_count(self) -> int:
        """Devices the driver reports."""
        return int(self._check("cudaGetDeviceCount", self._cudart.cudaGetDeviceCount()))

    def gpu(self, device: int = 0) -> GpuInfo:
        """From ``cudaGetDeviceProperties``."""
        properties = self._check("cudaGetDeviceProperties", self._cudart.cudaGetDeviceProperties(device))
        name = properties.name
        if isinstance(name, bytes):
            name = name.split(b"\0", 1)[0].decode(errors="replace")
        return GpuInfo(
            str(name), (int(properties.major), int(properties.minor)), int(properties.totalGlobalMem) // 2**20
        )

    def pinned(self, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
        """``cudaMallocHost`` wrapped as a numpy array (no copy)."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        address = int(self._check("cudaMallocHost", self._cudart.cudaMallocHost(nbytes)))
        self._host.append(address)
        buffer = (ctypes.c_byte * nbytes).from_address(address)
        return np.frombuffer(buffer, dtype=dtype).reshape(shape)

    def device_alloc(self, nbytes: int) -> int:
        """``cudaMalloc``."""
        address = int(self._check("cudaMalloc", self._cudart.cudaMalloc(nbytes)))
        self._device.append(address)
        return address

    def stream(self) -> int:
        """``cudaStreamCreateWithFlags(cudaStreamNonBlocking)``: never serialised behind the legacy default stream."""
        stream = self._check(
            "cudaStreamCreateWithFlags", self._cudart.cudaStreamCreateWithFlags(self._cudart.cudaStreamNonBlocking)
        )
        self._streams.append(stream)
        return int(stream)

    def to_device(self, address: int, host: np.ndarray, stream: int) -> None:
        """``cudaMemcpyAsync`` host to device."""
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(
            "cudaMemcpyAsync(host→device)",
            self._cudart.cudaMemcpyAsync(address, host.ctypes.data, host.nbytes, kind, stream),
        )

    def to_host(self, host: np.ndarray, address: int, stream: int) -> None:
        """``cudaMemcpyAsync`` device to host."""
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(
            "cudaMemcpyAsync(device→host)",
            self._cudart.cudaMemcpyAsync(host.ctypes.data, address, host.nbytes, kind, stream),
        )

    def synchronize(self, stream: int) -> None:
        """``cudaStreamSynchronize``."""
        self._check("cudaStreamSynchronize", self._cudart.cudaStreamSynchronize(stream))

    def versions(self) -> tuple[str, str]:
        """``cudaDriverGetVersion`` and ``cudaRuntimeGetVersion``."""
        driver = int(self._check("cudaDriverGetVersion", self._cudart.cudaDriverGetVersion()))
        runtime = int(self._check("cudaRuntimeGetVersion", self._cudart.cudaRuntimeGetVersion()))
        return _cuda_version(driver), _cuda_version(runtime)

    def gpu_milliseconds(self, stream: int, work: Callable[[], None]) -> float:
        """``cudaEventRecord`` before and after ``work``, then ``cudaEventElapsedTime``."""
        start = self._check("cudaEventCreate", self._cudart.cudaEventCreate())
        end = self._check("cudaEventCreate", self._cudart.cudaEventCreate())
        try:
            self._check("cudaEventRecord", self._cudart.cudaEventRecord(start, stream))
            work()
            self._check("cudaEventRecord", self._cudart.cudaEventRecord(end, stream))
            self._check("cudaEventSynchronize", self._cudart.cudaEventSynchronize(end))
            return float(self._check("cudaEventElapsedTime", self._cudart.cudaEventElapsedTime(start, end)))
        finally:
            self._cudart.cudaEventDestroy(start)
            self._cudart.cudaEventDestroy(end)

    def release(self) -> None:
        """Free in reverse order of need: streams, device, host; every one, whatever fails.

        A free that fails does not stop the others; the failures are raised
        together once all were tried.
        """
        calls = [("cudaStreamDestroy", self._cudart.cudaStreamDestroy, stream) for stream in self._streams]
        calls += [("cudaFree", self._cudart.cudaFree, address) for address in self._device]
        calls += [("cudaFreeHost", self._cudart.cudaFreeHost, address) for address in self._host]
        self._streams, self._device, self._host = [], [], []
        failures = []
        for call, free, handle in calls:
            try:
                self._check(call, free(handle))
            except CudaError as error:
                failures.append(str(error))
        if failures:
            raise CudaError(f"{how_many(len(failures), 'CUDA free')} failed: {'; '.join(failures)}")


#: ``CU_STREAM_NON_BLOCKING``, the flag pycuda's ``Stream(flags)`` passes to ``cuStreamCreate``.
PYCUDA_STREAM_NON_BLOCKING = 1


class PyCudaProvider:
    """``pycuda``: raises its own ``pycuda.driver.Error`` on failure, which we re-raise as :class:`CudaError`.

    pycuda needs its context current in the calling thread, so every call
    pushes the device's primary context and pops it again.
    """

    name = "pycuda"

    def __init__(self, device: int = 0) -> None:
        import pycuda.driver as driver

        self._driver = driver
        self._call("cuInit", driver.init)
        self._device_index = device
        self._context: Any = None
        self._keep: list[Any] = []

    def _call(self, call: str, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except self._driver.Error as error:
            raise CudaError(f"CUDA {call} failed: {error}") from None

    def _in_context(self, call: str, function: Any, *args: Any) -> Any:
        if self._context is None:
            device = self._call("cuDeviceGet", self._driver.Device, self._device_index)
            self._context = self._call("cuDevicePrimaryCtxRetain", device.retain_primary_context)
        self._call("cuCtxPushCurrent", self._context.push)
        try:
            return self._call(call, function, *args)
        finally:
            self._driver.Context.pop()

    def device_count(self) -> int:
        """``cuDeviceGetCount``."""
        return int(self._call("cuDeviceGetCount", self._driver.Device.count))

    def gpu(self, device: int = 0) -> GpuInfo:
        """Name, compute capability, memory."""
        handle = self._call("cuDeviceGet", self._driver.Device, device)
        return GpuInfo(str(handle.name()), tuple(handle.compute_capability()), int(handle.total_memory()) // 2**20)  # type: ignore[arg-type]

    def pinned(self, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
        """``pagelocked_empty``."""
        array = self._in_context("cuMemHostAlloc", self._driver.pagelocked_empty, shape, dtype)
        self._keep.append(array)
        return array

    def device_alloc(self, nbytes: int) -> int:
        """``mem_alloc``."""
        allocation = self._in_context("cuMemAlloc", self._driver.mem_alloc, nbytes)
        self._keep.append(allocation)
        return int(allocation)

    def stream(self) -> int:
        """``Stream(flags=CU_STREAM_NON_BLOCKING)``."""
        stream = self._in_context("cuStreamCreate", self._driver.Stream, PYCUDA_STREAM_NON_BLOCKING)
        self._keep.append(stream)
        return int(stream.handle)

    def _stream(self, handle: int) -> Any:
        return next(kept for kept in self._keep if isinstance(kept, self._driver.Stream) and kept.handle == handle)

    def to_device(self, address: int, host: np.ndarray, stream: int) -> None:
        """``memcpy_htod_async``."""
        self._in_context("cuMemcpyHtoDAsync", self._driver.memcpy_htod_async, address, host, self._stream(stream))

    def to_host(self, host: np.ndarray, address: int, stream: int) -> None:
        """``memcpy_dtoh_async``."""
        self._in_context("cuMemcpyDtoHAsync", self._driver.memcpy_dtoh_async, host, address, self._stream(stream))

    def synchronize(self, stream: int) -> None:
        """``Stream.synchronize``."""
        self._in_context("cuStreamSynchronize", self._stream(stream).synchronize)

    def versions(self) -> tuple[str, str]:
        """``get_driver_version`` and pycuda's CUDA ``get_version``."""
        driver = int(self._call("cuDriverGetVersion", self._driver.get_driver_version))
        runtime = ".".join(str(part) for part in self._driver.get_version()[:2])
        return _cuda_version(driver), runtime

    def gpu_milliseconds(self, stream: int, work: Callable[[], None]) -> float:
        """Two ``Event``s recorded around ``work``, then ``Event.time_since``."""
        start, end = (
            self._in_context("cuEventCreate", self._driver.Event),
            self._in_context("cuEventCreate", self._driver.Event),
        )
        self._in_context("cuEventRecord", start.record, self._stream(stream))
        work()
        self._in_context("cuEventRecord", end.record, self._stream(stream))
        self._in_context("cuEventSynchronize", end.synchronize)
        return float(end.time_since(start))

    def release(self) -> None:
        """Drop our references (pycuda frees on collection) and the primary context."""
        self._keep.clear()
        if self._context is not None:
            self._context.detach()
            self._context = None


def available_provider() -> str | None:
    """Which binding :func:`open_provider` would use: cuda-python first, pycuda only without it."""
    if importlib.util.find_spec("cuda") is not None:
        try:
            _cudart_module()
            return "cuda-python"
        except ImportError:
            pass
    if importlib.util.find_spec("pycuda") is not None:
        return "pycuda"
    return None


def open_provider() -> CudaProvider:
    """The CUDA binding to use, or :class:`CudaUnavailableError` saying how to get one."""
    which = available_provider()
    if which == "cuda-python":
        return CudaPythonProvider()
    if which == "pycuda":
        return PyCudaProvider()
    raise CudaUnavailableError(
        "no CUDA Python binding: pip install 'footfall-analyzer[gpu-cu12]' or '[gpu-cu13]' (brings cuda-python), "
        "or install pycuda"
    )


def gpu_probe() -> tuple[GpuInfo | None, str]:
    """The first GPU, or None and why there is none (no binding, no driver, no device)."""
    try:
        provider = open_provider()
        count = provider.device_count()
        if count < 1:
            return None, "the CUDA driver reports no GPU"
        return provider.gpu(0), f"{how_many(count, 'GPU')} via {provider.name}"
    except (CudaUnavailableError, CudaError) as error:
        return None, str(error)
