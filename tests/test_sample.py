import itertools

import numpy as np

from analyzer.core.tracks import Tracks
from analyzer.pipeline.sample import Sampler, face_quality


def frontal_keypoints(x: float, y: float, size: float, turn: float = 0.0) -> np.ndarray:
    """Eyes, nose, mouth, ears of a face box at (x, y); ``turn`` shifts the nose sideways."""
    points = np.array([[0.3, 0.35], [0.7, 0.35], [0.5 + turn, 0.55], [0.5, 0.75], [0.05, 0.45], [0.95, 0.45]])
    return (points * size + [x, y]).astype(np.float32)


def one_track(track_id: int, size: float, score: float = 0.9, turn: float = 0.0, left: float = 100) -> Tracks:
    box = np.array([[left, 100, left + size, 100 + size]], np.float32)
    return Tracks(
        np.array([track_id]),
        box,
        np.array([score], np.float32),
        frontal_keypoints(left, 100, size, turn)[None],
        np.array([True]),
        np.array([True]),
    )


def test_quality_prefers_big_frontal_confident_faces() -> None:
    big = face_quality(frontal_keypoints(0, 0, 100)[None], np.array([100.0]), np.array([0.9]))
    small = face_quality(frontal_keypoints(0, 0, 40)[None], np.array([40.0]), np.array([0.9]))
    turned = face_quality(frontal_keypoints(0, 0, 100, turn=0.15)[None], np.array([100.0]), np.array([0.9]))
    assert big[0] > small[0] and big[0] > turned[0]


def test_sampler_takes_at_most_k_spaced_samples() -> None:
    sampler = Sampler(chip_size=48, samples_per_track=3, interval_s=0.2)
    frame = np.zeros((400, 400, 3), np.uint8)
    taken_at = []
    for frame_index in range(60):
        t = frame_index / 15
        for sample in sampler.select("door", frame, one_track(1, 90), t, 0.0):
            assert sample.chip.shape == (48, 48, 3)
            taken_at.append(t)
    assert len(taken_at) == 3
    assert all(b - a >= 0.2 - 1e-9 for a, b in itertools.pairwise(taken_at))


def test_sampler_skips_small_faces_and_naive_takes_everything() -> None:
    sampler = Sampler(chip_size=48, min_face_px=28)
    frame = np.zeros((400, 400, 3), np.uint8)
    assert sampler.select("door", frame, one_track(1, 20), 0.0, 0.0) == []
    naive = [len(sampler.select("door", frame, one_track(2, 90), i / 15, 0.0, every_face=True)) for i in range(20)]
    assert sum(naive) == 20


def test_forget_bounds_state() -> None:
    sampler = Sampler(chip_size=48, samples_per_track=1)
    frame = np.zeros((400, 400, 3), np.uint8)
    assert len(sampler.select("door", frame, one_track(5, 90), 0.0, 0.0)) == 1
    sampler.forget([5])
    assert len(sampler.select("door", frame, one_track(5, 90), 1.0, 0.0)) == 1


def test_faces_cut_by_the_frame_edge_are_not_sampled() -> None:
    sampler = Sampler(chip_size=48)
    frame = np.zeros((400, 400, 3), np.uint8)
    assert sampler.select("door", frame, one_track(1, 90, left=340), 0.0, 0.0) == []  # a third out on the right
    assert sampler.select("door", frame, one_track(2, 90, left=-30), 0.0, 0.0) == []  # a third out on the left
    assert len(sampler.select("door", frame, one_track(3, 90, left=308), 0.0, 0.0)) == 1  # 2 px out: jitter
    # a third out on the left as MediaPipe gives it: the box clamped to x = 0 at its full width
    clamped = one_track(4, 90, left=-30)
    clamped.boxes[:] = [[0, 100, 90, 190]]
    assert sampler.select("door", frame, clamped, 0.0, 0.0) == []


def test_sampler_aligns_with_refined_keypoints_and_falls_back_without_them() -> None:
    from analyzer.core.preprocess import align_face

    frame = np.random.default_rng(0).integers(0, 255, (400, 400, 3)).astype(np.uint8)
    refined = frontal_keypoints(110, 95, 90)
    calls = []

    def refine(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        calls.append(box.copy())
        return refined if len(calls) == 1 else None

    sampler = Sampler(chip_size=48, samples_per_track=2, interval_s=0.0, refine=refine)
    (first,) = sampler.select("door", frame, one_track(1, 90), 0.0, 0.0)
    (second,) = sampler.select("door", frame, one_track(1, 90), 0.1, 0.0)
    assert sampler.select("door", frame, one_track(1, 90), 0.2, 0.0) == []  # K reached: refine not called
    assert len(calls) == 2 and np.allclose(calls[0], [100, 100, 190, 190])
    assert np.array_equal(first.chip, align_face(frame, refined, 48))
    assert np.array_equal(second.chip, align_face(frame, frontal_keypoints(100, 100, 90), 48))


def test_a_face_growing_closer_replaces_its_poor_early_samples_up_to_the_call_limit() -> None:
    sampler = Sampler(chip_size=48, samples_per_track=2, interval_s=0.19, max_classified_per_track=4)
    frame = np.zeros((400, 400, 3), np.uint8)
    classified_sizes = []
    for frame_index in range(45):  # a walker coming closer: the face grows from 30 to 74 px over 3 s
        size = 30 + frame_index
        taken = sampler.select("door", frame, one_track(1, size), frame_index / 15, 0.0)
        classified_sizes += [size] * len(taken)
    assert len(classified_sizes) == 4  # K = 2 first, then two better ones until the call limit
    assert classified_sizes == [30, 33, 36, 39]  # one candidate per 3 frames, each better than the worst kept
    steady = Sampler(chip_size=48, samples_per_track=2, interval_s=0.2, max_classified_per_track=4)
    same_face = [len(steady.select("door", frame, one_track(1, 60), i / 15, 0.0)) for i in range(45)]
    assert sum(same_face) == 2  # a crop no better than the worst kept one earns no call
