"""The tracker's appearance cue: colours plus the face likeness model, on real face photos."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from analyzer.core.faces import Faces
from analyzer.core.preprocess import template_keypoints
from analyzer.datasets.labels import read_labels
from analyzer.errors import ModelError
from analyzer.pipeline.appearance import (
    COLOUR_SIZE,
    FEATURE_SIZE,
    HUE_BINS,
    SATURATION_BINS,
    FaceLikeness,
    appearance_features,
    similarity,
)
from analyzer.pipeline.track import ByteTracker
from analyzer.tools.evaluation import select_split

REPO = Path(__file__).resolve().parents[1]
SHIPPED_LIKENESS = REPO / "engines" / "agegender.likeness.onnx"


@pytest.fixture(scope="module")
def likeness() -> FaceLikeness:
    assert SHIPPED_LIKENESS.is_file(), f"{SHIPPED_LIKENESS} missing: `analyzer export` writes it beside the network"
    return FaceLikeness(SHIPPED_LIKENESS)


@pytest.fixture(scope="module")
def validation_faces(utkface: Path) -> list[np.ndarray]:
    """40 validation crops (the networks never trained on them) of adults, RGB 200x200.

    Every 7th adult, as the folder lists several photos of one person one after another.
    """
    faces = [face for face in select_split(read_labels(utkface), "validation") if 20 <= face.age < 60][::7][:40]
    return [cv2.cvtColor(cv2.imread(str(face.path)), cv2.COLOR_BGR2RGB) for face in faces]


def _as_seen_by_a_camera(face: np.ndarray, pixels: int, seed: int) -> np.ndarray:
    """The same photo small, blurred, noisy and JPEG-compressed, back at its own size."""
    rng = np.random.default_rng(seed)
    small = cv2.resize(face, (pixels, pixels), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0.8)
    small = np.clip(small + rng.normal(0, 6, small.shape), 0, 255).astype(np.uint8)
    _, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 40])
    return cv2.resize(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED), face.shape[1::-1], interpolation=cv2.INTER_LINEAR)


def test_a_face_is_more_like_itself_on_camera_than_like_other_faces(
    likeness: FaceLikeness, validation_faces: list[np.ndarray]
) -> None:
    keypoints = template_keypoints(200, 200)[None]
    clean = np.concatenate([likeness.describe(face, keypoints) for face in validation_faces])
    seen = np.concatenate(
        [likeness.describe(_as_seen_by_a_camera(face, 48, n), keypoints) for n, face in enumerate(validation_faces)]
    )
    assert np.allclose(np.linalg.norm(clean, axis=1), 1.0, atol=1e-4)
    cosine = seen @ clean.T
    same = np.diag(cosine)
    others = cosine[~np.eye(len(cosine), dtype=bool)]
    # Its own photo is the most alike for nearly every face, and alike beyond most pairs of different faces.
    assert np.mean(np.argmax(cosine, axis=1) == np.arange(len(cosine))) >= 0.8
    assert np.median(same) > np.quantile(others, 0.95)


def test_similarity_averages_colours_and_faces_where_both_are_known() -> None:
    colours = np.full((1, COLOUR_SIZE), 2 / 12, np.float32)  # both halves uniform, sum 2 each
    with_face, other_face, no_face = (np.zeros((1, FEATURE_SIZE), np.float32) for _ in range(3))
    for features in (with_face, other_face, no_face):
        features[:, :COLOUR_SIZE] = colours
    with_face[0, COLOUR_SIZE] = 1.0
    other_face[0, COLOUR_SIZE + 1] = 1.0
    assert similarity(with_face, with_face)[0, 0] == pytest.approx(1.0)
    assert similarity(with_face, other_face)[0, 0] == pytest.approx(0.5)  # same colours, unlike faces
    assert similarity(with_face, no_face)[0, 0] == pytest.approx(1.0)  # no face known: colours alone decide


def test_colours_put_every_hue_and_saturation_in_its_bin_to_the_pixel() -> None:
    """Hue h (0..179) falls in bin h*8//180, saturation s in s*4//256: the bin edges included, counted per pixel."""
    rng = np.random.default_rng(3)
    hue = np.concatenate([np.arange(180), rng.integers(0, 180, 2000)])
    saturation = np.concatenate([np.arange(256), rng.integers(0, 256, 1924)])
    hsv = np.stack([hue, saturation, np.full(len(hue), 200)], axis=1).astype(np.uint8).reshape(20, -1, 3)
    region = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    seen = cv2.cvtColor(region, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(int)  # the hues a round trip keeps
    expected = np.concatenate(
        [
            np.bincount(seen[:, 0] * HUE_BINS // 180, minlength=HUE_BINS),
            np.bincount(seen[:, 1] * SATURATION_BINS // 256, minlength=SATURATION_BINS),
        ]
    ) / len(seen)
    # The whole frame is one face box; the region below it (the torso) is empty.
    width, height = region.shape[1], region.shape[0]
    big = np.zeros((height * 2, width * 2, 3), np.uint8)
    big[::2, ::2] = region  # the colours are read from every second row and column
    features = appearance_features(big, np.array([[0, 0, 2 * width, 2 * height]], np.float32))
    assert np.array_equal(features[0, : HUE_BINS + SATURATION_BINS], expected.astype(np.float32))


def _scene(face: np.ndarray | None, at: tuple[int, int], side: int) -> np.ndarray:
    """A plain wall with one face photo pasted at ``at`` (its top-left corner), ``side`` px square."""
    frame = np.full((480, 640, 3), (150, 140, 120), np.uint8)
    if face is not None:
        x, y = at
        frame[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return frame


def _ids_of_standing_face_then(
    first: np.ndarray, then: np.ndarray, likeness: FaceLikeness | None
) -> tuple[set[int], set[int]]:
    """Track ids while ``first`` stands in a queue, then (after 0.6 s hidden) ``then`` at the same place."""
    tracker = ByteTracker(min_hits=2, max_lost_s=1.5, min_similarity=0.65)
    at, side = (300, 150), 90
    box = np.array([[at[0], at[1], at[0] + side, at[1] + side]], np.float32)
    keypoints = np.zeros((1, 6, 2), np.float32)
    keypoints[0, :4] = template_keypoints(side, side) + np.array(at)
    ids: tuple[set[int], set[int]] = (set(), set())
    for frame_index in range(40):
        t = frame_index / 15
        hidden = 15 <= frame_index < 24
        person = None if hidden else (first if frame_index < 15 else then)
        frame = _scene(person, at, side)
        found = Faces.empty() if hidden else Faces(box, np.array([0.9], np.float32), keypoints)
        appearance = appearance_features(frame, found.boxes, found.keypoints, likeness)
        update = tracker.update(found, t, (640, 480), appearance)
        seen = update.tracks[update.tracks.matched & update.tracks.confirmed]
        ids[0 if frame_index < 15 else 1].update(int(track_id) for track_id in seen.ids)
    return ids


def test_someone_else_stepping_into_a_hidden_shoppers_place_gets_a_new_track(
    likeness: FaceLikeness, utkface: Path
) -> None:
    # The likeness comes from an age and gender network: it tells a young woman from an old man,
    # not two young women apart (docs/ARCHITECTURE.md), so the test uses people who differ like that.
    faces = select_split(read_labels(utkface), "validation")
    woman = next(face for face in faces if 20 <= face.age < 30 and face.gender == "female")
    man = next(face for face in faces if 60 <= face.age < 80 and face.gender == "male")
    first, other = (cv2.cvtColor(cv2.imread(str(face.path)), cv2.COLOR_BGR2RGB) for face in (woman, man))
    before, after = _ids_of_standing_face_then(first, other, likeness)
    assert before and after and before.isdisjoint(after)
    # The same shopper coming back out from behind someone keeps the track ...
    before, after = _ids_of_standing_face_then(first, first, likeness)
    assert after == before
    # ... and on colours alone (the same wall around both faces) the other face would have taken it over.
    before, after = _ids_of_standing_face_then(first, other, None)
    assert after == before


def test_the_classifier_file_is_not_taken_for_a_likeness_model(shipped_model: Path) -> None:
    with pytest.raises(ModelError, match="not a face likeness model") as error:
        FaceLikeness(shipped_model)
    assert "\n" not in str(error.value)
    with pytest.raises(ModelError, match=r"likeness model not found.*likeness_model"):
        FaceLikeness(shipped_model.with_name("missing.likeness.onnx"))


def test_the_likeness_file_is_not_taken_for_the_classifier() -> None:
    from analyzer.backends.onnxruntime import OnnxRuntimeBackend

    with pytest.raises(ModelError, match=r"a face likeness model \(for tracker.likeness_model\), not the age") as error:
        OnnxRuntimeBackend(SHIPPED_LIKENESS)
    assert "\n" not in str(error.value) and "engines/agegender.onnx" in str(error.value)


def test_a_corrupt_likeness_file_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "agegender.likeness.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model") as error:
        FaceLikeness(broken)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "metadata",
    ['{"size": 256', '{"size": 256, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}', "[]"],
    ids=["not JSON", "keys missing", "not an object"],
)
def test_malformed_likeness_metadata_is_one_clear_error(tmp_path: Path, metadata: str) -> None:
    import onnx

    from analyzer.core.model_meta import LIKENESS_PROPS

    model = onnx.load(str(SHIPPED_LIKENESS))
    for prop in model.metadata_props:
        if prop.key == LIKENESS_PROPS:
            prop.value = metadata
    broken = tmp_path / "agegender.likeness.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(ModelError, match=f"{LIKENESS_PROPS} metadata is malformed.*analyzer export") as error:
        FaceLikeness(broken)
    assert "\n" not in str(error.value)


def test_an_unknown_likeness_leaves_a_tracks_mean_likeness_alone() -> None:
    from analyzer.pipeline.appearance import running_mean

    mean = np.zeros(FEATURE_SIZE, np.float32)
    mean[:COLOUR_SIZE], mean[COLOUR_SIZE] = 1 / 6, 1.0
    seen = np.zeros(FEATURE_SIZE, np.float32)
    seen[:COLOUR_SIZE] = 1 / 3  # new colours, no likeness this frame
    updated = running_mean(mean, seen)
    assert np.allclose(updated[:COLOUR_SIZE], 0.8 / 6 + 0.2 / 3)
    assert np.array_equal(updated[COLOUR_SIZE:], mean[COLOUR_SIZE:])
    first_likeness = seen.copy()
    first_likeness[COLOUR_SIZE + 1] = 1.0
    assert running_mean(seen, first_likeness)[COLOUR_SIZE + 1] == 1.0  # the first known likeness is taken whole
