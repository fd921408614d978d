"""Threads are sized to the cores this process may use, not to the machine."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.service.cores import usable_cores
backend = OnnxRuntimeBackend(sys.argv[1])
print(usable_cores(), backend._session.get_session_options().intra_op_num_threads)
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a machine with two or more cores")
def test_a_process_pinned_to_one_core_runs_the_classifier_on_one_thread(shipped_model: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-c", PROBE, str(shipped_model)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown == ["1", "1"]


def test_onnx_runtime_threads_sleep_between_calls(shipped_model: Path) -> None:
    """A spinning intra-op thread would take the core another camera needs to decode."""
    from analyzer.backends.onnxruntime import OnnxRuntimeBackend

    options = OnnxRuntimeBackend(shipped_model)._session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_camera_threads_run_opencv_on_their_own_thread_and_take_the_gil_within_a_millisecond() -> None:
    """Set in a child: the settings are the whole process's (``run``, ``check`` and ``bench`` make them)."""
    probe = (
        "import sys, cv2; from analyzer.service.cores import threads_for_cameras; "
        "print(sys.getswitchinterval()); threads_for_cameras(); print(cv2.getNumThreads(), sys.getswitchinterval())"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["0.005", "1", "0.001"]  # Python's own 5 ms before


@pytest.mark.parametrize(("cameras", "cores", "threads"), [(1, 2, 0), (2, 2, 1), (24, 2, 1), (3, 8, 0), (8, 8, 1)])
def test_with_a_camera_per_core_each_decoder_gets_one_thread_else_ffmpeg_chooses(
    cameras: int, cores: int, threads: int
) -> None:
    from analyzer.service.cores import decoder_threads

    assert decoder_threads(cameras, cores) == threads
