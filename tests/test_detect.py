"""Real MediaPipe BlazeFace on a real face photo."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzer.core.faces import Faces, non_max_suppression
from analyzer.pipeline.detect import FaceDetector, PhotoFaceFinder, Region, pyramid_regions, tile_regions
from analyzer.tools.demo import ASTRONAUT_FACE


def test_full_range_finds_the_astronaut(astronaut: np.ndarray) -> None:
    detector = FaceDetector("full_range", min_score=0.5)
    faces = detector.detect(astronaut, timestamp_ms=0)
    detector.close()
    assert len(faces) == 1
    x, y, w, h = ASTRONAUT_FACE
    x1, y1, x2, y2 = faces.boxes[0]
    assert abs((x1 + x2) / 2 - (x + w / 2)) < 15 and abs((y1 + y2) / 2 - (y + h / 2)) < 20
    right_eye, left_eye, nose, mouth = faces.keypoints[0, :4]
    assert right_eye[0] < nose[0] < left_eye[0]  # subject's right eye on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]


def _unaligned(image: np.ndarray) -> np.ndarray:
    """A copy of ``image`` one byte off any 64-byte boundary: the detector must copy it to search it."""
    copy = np.empty(image.nbytes + 64, np.uint8)
    offset = (-copy.ctypes.data % 64 + 1) % 64
    copy = copy[offset : offset + image.nbytes].reshape(image.shape)
    np.copyto(copy, image)
    return copy


def test_one_buffer_serves_every_frame_and_a_larger_frame_grows_it(astronaut: np.ndarray) -> None:
    """Frames are copied into one aligned buffer (a fresh one per frame costs its page faults)."""
    detector = FaceDetector("full_range", min_score=0.5)
    astronaut, small = _unaligned(astronaut), _unaligned(astronaut[:256, :256])  # copied for the search
    found = [detector.detect(frame, timestamp_ms=40 * index) for index, frame in enumerate([astronaut, small])]
    again = [detector.detect(frame, timestamp_ms=200 + 40 * index) for index, frame in enumerate([astronaut, small])]
    buffer = detector._frames[0]._buffer
    detector.detect(_unaligned(np.zeros((720, 1280, 3), np.uint8)), timestamp_ms=400)
    grown = detector._frames[0]._buffer
    detector.detect(astronaut, timestamp_ms=440)
    detector.close()
    assert buffer.nbytes == astronaut.nbytes + 64 and grown.nbytes == 720 * 1280 * 3 + 64
    assert detector._frames[0]._buffer is grown  # kept, not made again for the smaller frame
    for first, second in zip(found, again, strict=True):
        assert len(first) == len(second) == 1
        assert np.allclose(first.boxes, second.boxes, atol=1) and first.boxes[0, 0] < 256


def test_a_frame_converted_for_the_search_is_searched_where_it_lies_and_finds_the_same_face(
    astronaut: np.ndarray,
) -> None:
    """The decoded (BGR) frame is made RGB straight into an aligned buffer that MediaPipe reads as it is: one pass
    over the frame instead of two, and the same face, to the last bit, as from a frame copied for the search."""
    bgr = np.ascontiguousarray(astronaut[..., ::-1])
    detector = FaceDetector("full_range", min_score=0.5)
    try:
        rgb = detector.rgb(bgr)
        assert np.array_equal(rgb, astronaut) and rgb.ctypes.data % 64 == 0
        converted = detector.detect(rgb, timestamp_ms=0)
        assert detector._frames[0]._buffer.nbytes == 0  # searched where it lies
        copied = detector.detect(_unaligned(astronaut), timestamp_ms=40)
        assert detector._frames[0]._buffer.nbytes == astronaut.nbytes + 64
    finally:
        detector.close()
    assert len(converted) == 1
    for field in ("boxes", "scores", "keypoints"):
        assert np.array_equal(getattr(converted, field), getattr(copied, field)), field


def test_a_face_cut_by_the_left_edge_comes_back_clamped_to_it(astronaut: np.ndarray) -> None:
    # what analyzer.core.faces.cut_by_frame relies on: the box starts at 0 at its full width, the ear lies beyond
    detector = FaceDetector("full_range", min_score=0.5)
    shifted = np.zeros_like(astronaut)
    shifted[:, :-190] = astronaut[:, 190:]  # the face (x 173..276) now reaches 17 px past the left edge
    faces = detector.detect(shifted, timestamp_ms=0)
    detector.close()
    assert len(faces) == 1
    x1, _, x2, _ = faces.boxes[0]
    assert x1 == 0 and x2 > 276 - 190 + 10 and faces.keypoints[0, :, 0].min() < 0


def _frame_with_heads(
    astronaut: np.ndarray, scale: float, size: tuple[int, int], spots: list[tuple[int, int]]
) -> tuple[np.ndarray, tuple[int, int]]:
    """A grey frame of ``size`` (width, height) with the astronaut's head, scaled, at each spot; and the head's size."""
    import cv2

    x, y, w, h = ASTRONAUT_FACE
    head = astronaut[y - 40 : y + h + 30, x - 35 : x + w + 35]
    small = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((size[1], size[0], 3), 120, np.uint8)
    for left, top in spots:
        frame[top : top + small.shape[0], left : left + small.shape[1]] = small
    return frame, (small.shape[1], small.shape[0])


def _found_near_each(faces: Faces, spots: list[tuple[int, int]], head: tuple[int, int]) -> bool:
    centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    return all(
        np.min(np.linalg.norm(centres - np.array([left + head[0] / 2, top + head[1] / 2]), axis=1)) < 40
        for left, top in spots
    )


def _faces_found(frame: np.ndarray, tiles: int) -> Faces:
    detector = FaceDetector("full_range", min_score=0.5, tiles=tiles)
    faces = detector.detect(frame, 0)
    detector.close()
    return faces


def test_tiles_find_small_faces_once_each(astronaut: np.ndarray) -> None:
    spots = [(300, 200), (1400, 650), (930, 480)]  # the last one straddles the tile overlap
    frame, head = _frame_with_heads(astronaut, 0.55, (1920, 1080), spots)
    found_whole, found_tiled = _faces_found(frame, 1), _faces_found(frame, 2)
    assert len(found_tiled) == len(spots)
    assert len(found_tiled) >= len(found_whole)
    assert _found_near_each(found_tiled, spots, head)


def test_three_grids_find_the_smallest_faces_once_each(astronaut: np.ndarray) -> None:
    """25 px faces at 720p (the simulator's far end): 2x2 tiles miss about half, 3x3 on top find them all."""
    spots = [(100, 80), (500, 80), (950, 80), (100, 560), (950, 560), (1100, 300)]
    frame, head = _frame_with_heads(astronaut, 0.25, (1280, 720), spots)
    found_coarse, found_fine = _faces_found(frame, 2), _faces_found(frame, 3)
    assert len(found_fine) == len(spots)
    assert _found_near_each(found_fine, spots, head)
    assert len(found_coarse) < len(spots)


def test_roi_limits_the_search(astronaut: np.ndarray) -> None:
    detector = FaceDetector("full_range", roi=Region(0.6, 0.0, 1.0, 1.0))
    assert len(detector.detect(astronaut, 0)) == 0
    detector.close()


def test_photo_finder_handles_a_tight_crop(astronaut: np.ndarray) -> None:
    x, y, w, h = ASTRONAUT_FACE
    crop = np.ascontiguousarray(astronaut[y : y + h, x : x + w])
    finder = PhotoFaceFinder()
    faces = finder.find(crop)
    finder.close()
    assert len(faces) == 1
    assert faces.boxes[0, 0] > -20 and faces.boxes[0, 2] < w + 20


def test_tile_regions_cover_the_roi_with_overlap() -> None:
    regions = tile_regions(2, 0.2, Region(0.1, 0.2, 0.9, 1.0))
    assert len(regions) == 4
    assert min(r.x1 for r in regions) == pytest.approx(0.1) and max(r.x2 for r in regions) == pytest.approx(0.9)
    assert regions[0].x2 > regions[1].x1  # neighbours overlap


def test_pyramid_is_the_roi_then_each_grid() -> None:
    roi = Region(0.1, 0.2, 0.9, 1.0)
    regions = pyramid_regions(3, 0.2, roi)
    assert len(regions) == 1 + 4 + 9
    assert regions[0] == roi
    assert max(r.x2 for r in regions[5:]) == pytest.approx(0.9) and max(r.y2 for r in regions[5:]) == pytest.approx(1.0)


def test_nms_keeps_best_of_duplicates() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    faces = Faces(boxes, np.array([0.6, 0.9, 0.8], np.float32), np.zeros((3, 6, 2), np.float32))
    kept = non_max_suppression(faces, 0.3)
    assert sorted(kept.scores.tolist()) == pytest.approx([0.8, 0.9])


def test_refined_keypoints_of_small_faces_are_closer_to_the_truth(utkface: Path) -> None:
    """Faces pasted at 48 px into a frame: short-range on the face's crop finds eyes, nose, mouth better."""
    import cv2

    from analyzer.datasets.face_photos import read_rgb
    from analyzer.datasets.labels import read_labels
    from analyzer.pipeline.detect import KeypointRefiner

    finder, refiner = PhotoFaceFinder(), KeypointRefiner()
    detector = FaceDetector("full_range", min_score=0.5, tiles=2)
    rng = np.random.default_rng(0)
    whole_errors, refined_errors = [], []
    for index, face in enumerate(read_labels(utkface)[:40:4]):
        photo = read_rgb(face.path)
        reference = finder.find(photo)
        if not len(reference):
            continue
        size, left, top = 48, 300 + 60 * index, 250
        frame = rng.integers(90, 140, (720, 1280, 3)).astype(np.uint8)
        frame[top : top + size, left : left + size] = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        found = detector.detect(frame, 1000 * (index + 1))
        if not len(found):
            continue
        truth = reference.keypoints[0, :4] * size / photo.shape[1] + [left, top]
        nearest = int(np.argmin(np.linalg.norm((found.boxes[:, :2] + found.boxes[:, 2:]) / 2 - truth.mean(0), axis=1)))
        refined = refiner.refine(frame, found.boxes[nearest])
        assert refined is not None and refined.shape == (6, 2)
        whole_errors.append(np.linalg.norm(found.keypoints[nearest, :4] - truth, axis=1).mean() / size)
        refined_errors.append(np.linalg.norm(refined[:4] - truth, axis=1).mean() / size)
    for closable in (finder, refiner, detector):
        closable.close()
    assert len(refined_errors) >= 6
    assert np.mean(refined_errors) < 0.06
    assert np.mean(refined_errors) < 0.8 * np.mean(whole_errors)


def test_refiner_ignores_a_neighbour_and_gives_none_where_there_is_no_face() -> None:
    from analyzer.pipeline.detect import KeypointRefiner

    refiner = KeypointRefiner()
    blank = np.full((400, 400, 3), 128, np.uint8)
    assert refiner.refine(blank, np.array([150, 150, 230, 230], np.float32)) is None
    refiner.close()


def test_silencing_mediapipe_s_chatter_does_not_silence_another_thread_s_log_line() -> None:
    # closing the detectors pointed the whole process's stderr at /dev/null while other threads might log
    script = (
        "import os, sys\n"
        "from analyzer.service.console import apart_from_native_stderr\n"
        "from analyzer.service.console import quiet_native_stderr\n"
        "sys.stderr = apart_from_native_stderr(sys.stderr)\n"  # as the console script does
        "with quiet_native_stderr():\n"
        "    print('[door] stream down: a log line from a camera thread', file=sys.stderr)\n"
        "    os.write(2, b'DestroyAccelerator: native chatter\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert result.stderr == "[door] stream down: a log line from a camera thread\n"


def test_cameras_sharing_graphs_find_what_their_own_graphs_find(astronaut: np.ndarray) -> None:
    """Two cameras' threads searching at once through two shared IMAGE-mode graphs: the same faces as VIDEO mode."""
    import threading

    from analyzer.pipeline.detect import SharedGraphs, model_file

    frames = [astronaut, np.ascontiguousarray(astronaut[:, ::-1]), np.roll(astronaut, 120, axis=1)]
    own = FaceDetector("full_range", min_score=0.5, tiles=2)
    expected = [own.detect(frame, timestamp_ms=40 * index) for index, frame in enumerate(frames)]
    own.close()
    graphs = SharedGraphs(model_file("full_range"), 0.5, count=2)
    found: dict[int, list[Faces]] = {0: [], 1: [], 2: []}

    def camera(number: int) -> None:
        detector = FaceDetector("full_range", min_score=0.5, tiles=2, graphs=graphs)
        for repeat in range(4):
            for index, frame in enumerate(frames):
                found[number].append(detector.detect(frame, timestamp_ms=40 * (repeat * 3 + index)))

    threads = [threading.Thread(target=camera, args=(number,)) for number in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    graphs.close()
    assert len(graphs) == 0 and all(len(faces) for faces in expected)
    for results in found.values():
        assert len(results) == 12
        for index, faces in enumerate(results):
            assert np.array_equal(faces.boxes, expected[index % 3].boxes)
            assert np.array_equal(faces.scores, expected[index % 3].scores)


def test_shared_graphs_of_another_model_or_score_are_refused() -> None:
    from analyzer.pipeline.detect import SharedGraphs, model_file

    graphs = SharedGraphs(model_file("full_range"), 0.5, count=1)
    with pytest.raises(ValueError, match="shared for"):
        FaceDetector("full_range", min_score=0.6, graphs=graphs)
    graphs.close()


def test_a_graph_searches_on_the_searching_thread_and_finds_what_mediapipes_own_thread_finds(
    astronaut: np.ndarray,
) -> None:
    """mediapipe 1.2 runs each graph's calls on a thread of that graph; ours run on the camera's thread (no hand-off
    per search), with the same boxes, scores and keypoints to the last bit."""
    import threading

    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from analyzer.pipeline.detect import _create, model_file

    def executor_threads() -> int:
        return sum(thread.name.startswith("ThreadPoolExecutor") for thread in threading.enumerate())

    frames = [astronaut, np.ascontiguousarray(astronaut[:, ::-1]), np.roll(astronaut, 120, axis=1)]
    before = executor_threads()
    ours = _create(model_file("full_range"), video=False, min_score=0.5)
    found = [ours.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame)) for frame in frames]
    threads_of_ours = executor_threads() - before
    options = vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_path=str(model_file("full_range"))),
        running_mode=vision.RunningMode.IMAGE,
        min_detection_confidence=0.5,
    )
    theirs = vision.FaceDetector.create_from_options(options)
    expected = [theirs.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame)) for frame in frames]
    threads_of_theirs = executor_threads() - before - threads_of_ours
    ours.close()
    theirs.close()
    assert threads_of_ours == 0 and threads_of_theirs == 1
    assert [len(result.detections) for result in found] == [1, 1, 1]
    assert found == expected
