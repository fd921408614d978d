"""Is what a track follows a person's face? The face check before anything counts or votes.

BlazeFace finds face-shaped blobs. On real footage it also boxes the backs
and tops of heads, hair and hands, and the classifier, trained on faces
only, then invents an age and a gender for them (backs of heads lean to
"70+"). MediaPipe's face mesh model (``face_landmark.tflite``, in the same
``mediapipe`` wheel as BlazeFace) has a second output besides its 468
landmarks: a face-presence score, which MediaPipe's own face mesh uses to
tell whether the face it follows is still there. It runs here on the
track's face turned upright by its eyes and widened by half, as MediaPipe
crops it, at 192 px. Profiles and three-quarter faces keep a face mesh,
so they pass; a back or top of a head has none.

A track counts as a face once ``needed`` checks passed; until then it is
checked every ``interval_s`` (a track that keeps failing, less and less
often), and a face is never checked again except for the crops it votes
with: a sample is classified only if its own crop passes
(:meth:`FaceCheck.passes`). docs/ACCURACY.md has the scores measured on the
real clips and the simulated ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analyzer.console import quiet_native_stderr
from analyzer.errors import ModelError
from analyzer.track import Tracks

if TYPE_CHECKING:
    from analyzer.config import FaceCheckConfig

#: The face mesh model's input side, in pixels.
MESH_INPUT = 192
#: The crop is the face box's longer side widened by this, as MediaPipe's face mesh crops a detection.
MESH_CROP_SCALE = 1.5
#: A track failing this many checks in a row is then checked only every ``BACKED_OFF_S`` (a back seen for minutes).
BACK_OFF_AFTER = 10
BACKED_OFF_S = 1.0
#: The face mesh model's landmarks.
MESH_POINTS = 468
#: How often a face not yet seen to move is read again, to tell a fixture (poster, screen still) from a person.
STILLNESS_EVERY_S = 1.0
#: A face whose centre moved this much of its width from where it was first seen, or whose width changed by this
#: share, has moved: a person. A poster's detected box jitters by 2-4% of its width (13% at worst) in 2 s.
FIXTURE_MOVE, FIXTURE_RESIZE = 0.25, 0.2
#: A face whose landmark shape (position, size and turn taken out) changes by more than this (90th percentile of
#: its readings) is alive. A poster's stays within 0.04; a head turning from profile to frontal moves 0.2-0.3.
FIXTURE_SHAPE_CHANGE = 0.08
#: Readings a fixture needs (with ``STILLNESS_EVERY_S``: about ten seconds of them) before the shape decides.
FIXTURE_MIN_READINGS = 10


def mesh_crop(frame_rgb: np.ndarray, box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(192, 192, 3) uint8: the face's neighbourhood, eyes level, as the face mesh model expects it.

    ``keypoints`` are BlazeFace's (right eye, left eye first); their line is turned level.
    """
    import cv2

    x1, y1, x2, y2 = (float(v) for v in box)
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    side = max(x2 - x1, y2 - y1, 1.0) * MESH_CROP_SCALE
    right_eye, left_eye = keypoints[0], keypoints[1]
    angle = float(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))
    scale = MESH_INPUT / side
    cosine, sine = np.cos(angle), np.sin(angle)
    rotation = scale * np.array([[cosine, sine], [-sine, cosine]])  # frame to crop: turn the eyes' line level
    matrix = np.hstack([rotation, (MESH_INPUT / 2 - rotation @ centre)[:, None]])
    return cv2.warpAffine(
        frame_rgb, matrix, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


@dataclass(frozen=True)
class MeshReading:
    """What the face mesh model says of one face crop.

    Attributes:
        logit: face presence; above 0 a face is more likely there than not.
        shape: (468, 2) float32 landmarks in crop pixels (only their shape is used: rigid or not).
    """

    logit: float
    shape: np.ndarray


class FacePresence:
    """The face mesh model on a face's crop: its face-presence score and its landmarks.

    One per camera thread: an interpreter is not shared between threads.

    Example:
        >>> presence = FacePresence(asset_path("face_landmark.tflite"))  # doctest: +SKIP
        >>> presence.read(frame_rgb, faces.boxes[0], faces.keypoints[0]).logit  # doctest: +SKIP
        14.2
    """

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ModelError(
                "the face check needs the ai-edge-litert package: pip install 'ai-edge-litert==2.3.0' "
                "(or set face_check.enabled: false)"
            ) from None
        try:
            with quiet_native_stderr():  # LiteRT announces its CPU delegate on descriptor 2
                self._interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{model_path}: not the face mesh model ({error}); run `analyzer models fetch`") from None
        (given,) = self._interpreter.get_input_details()
        outputs = {int(np.prod(detail["shape"])): detail["index"] for detail in self._interpreter.get_output_details()}
        if tuple(given["shape"]) != (1, MESH_INPUT, MESH_INPUT, 3) or not {1, 3 * MESH_POINTS} <= set(outputs):
            raise ModelError(
                f"{model_path}: not the face mesh model (input {given['shape']}); run `analyzer models fetch`"
            )
        self._input, self._presence, self._landmarks = given["index"], outputs[1], outputs[3 * MESH_POINTS]

    def read(self, frame_rgb: np.ndarray, box: np.ndarray, keypoints: np.ndarray) -> MeshReading:
        """The face in ``box`` with BlazeFace's ``keypoints`` (frame pixels)."""
        crop = mesh_crop(frame_rgb, box, keypoints)
        self._interpreter.set_tensor(self._input, (crop.astype(np.float32) / 255.0)[None])
        self._interpreter.invoke()
        logit = float(self._interpreter.get_tensor(self._presence).ravel()[0])
        shape = self._interpreter.get_tensor(self._landmarks).reshape(MESH_POINTS, 3)[:, :2].astype(np.float32)
        return MeshReading(logit, shape)


def shape_change(shapes: list[np.ndarray]) -> np.ndarray:
    """(N,) how far each landmark set is from their mean shape, position, size and turn taken out (Procrustes).

    A photo's shape stays put up to noise; a living face's changes as it turns and moves.
    """
    normalised = []
    for shape in shapes:
        centred = shape - shape.mean(axis=0)
        normalised.append(centred / max(float(np.sqrt((centred**2).sum(axis=1).mean())), 1e-9))
    reference = normalised[0]
    for _ in range(2):
        aligned = []
        for shape in normalised:
            u, _, vt = np.linalg.svd(shape.T @ reference)
            aligned.append(shape @ (u @ vt))
        mean = np.mean(aligned, axis=0)
        reference = mean / max(float(np.sqrt((mean**2).sum(axis=1).mean())), 1e-9)
    return np.array([float(np.sqrt(((shape - reference) ** 2).sum(axis=1).mean())) for shape in aligned])


@dataclass
class _Stillness:
    """Readings of a face that has not moved since its track began: (stream seconds, centre, width, shape)."""

    since: float
    readings: list[tuple[float, np.ndarray, float, np.ndarray]] = field(default_factory=list)
    moved: bool = False  # it walked or turned: never a fixture


@dataclass
class _Evidence:
    checks: int = 0
    passes: int = 0
    failed_in_a_row: int = 0
    checked_at: float = -1e9
    last_timestamp: float = -1e9  # the frame of the last check, and its result: a sample of it reuses it
    last_passed: bool = False
    stillness: _Stillness | None = None
    fixture: bool = False


class FaceCheck:
    """Per camera: which tracks are faces of people, from the face mesh model.

    Args:
        read: the face mesh model on a box of a frame (:meth:`FacePresence.read`).
        min_logit: a check passes above this. Raising it turns away more
            backs of heads and more small or blurred real faces.
        needed: checks a track must pass to count as a face. One is enough
            on clear footage; two keep a single lucky check of a back of a head
            from making a visitor.
        interval_s: how often an undecided track is checked.
        fixture_after_s: a face whose track has stayed as still as a photo
            (in place and in shape) from its first sight for this long is a
            fixture: a poster, a screen's still, a mannequin; 0 never decides
            so. Longer keeps a very still real person from being taken for
            one; shorter stops counting a fixture sooner.

    Example:
        >>> check = FaceCheck(FacePresence(asset_path("face_landmark.tflite")).read)  # doctest: +SKIP
        >>> tracks = check.update(frame_rgb, tracks, timestamp=12.4)  # doctest: +SKIP
    """

    def __init__(
        self,
        read: Callable[[np.ndarray, np.ndarray, np.ndarray], MeshReading],
        min_logit: float = 0.0,
        needed: int = 2,
        interval_s: float = 0.2,
        fixture_after_s: float = 30.0,
    ) -> None:
        self.read = read
        self.min_logit = min_logit
        self.needed = needed
        self.interval_s = interval_s
        self.fixture_after_s = fixture_after_s
        self.checks = 0  # every model run, for the bench
        self._tracks: dict[int, _Evidence] = {}

    @classmethod
    def from_config(cls, presence: FacePresence, settings: FaceCheckConfig) -> FaceCheck:
        """The face check the ``face_check`` settings ask for (``run`` and ``check`` alike)."""
        return cls(presence.read, settings.min_logit, settings.needed, fixture_after_s=settings.fixture_after_s)

    def update(self, frame_rgb: np.ndarray, tracks: Tracks, timestamp: float) -> Tracks:
        """Check the tracks that are due; ``tracks`` with ``face`` and ``fixture`` set for each."""
        face, fixture = np.zeros(len(tracks), bool), np.zeros(len(tracks), bool)
        for row, track_id in enumerate(tracks.ids.tolist()):
            evidence = self._tracks.setdefault(track_id, _Evidence())
            seen = bool(tracks.matched[row] and tracks.confirmed[row])
            box, keypoints = tracks.boxes[row], tracks.keypoints[row]
            if seen and evidence.passes < self.needed:
                wait = BACKED_OFF_S if evidence.failed_in_a_row >= BACK_OFF_AFTER else self.interval_s
                if timestamp - evidence.checked_at >= wait:
                    self._check(evidence, frame_rgb, box, keypoints, timestamp)
            elif seen and self.fixture_after_s and not evidence.fixture:
                self._watch_stillness(evidence, frame_rgb, box, keypoints, timestamp)
            face[row] = evidence.passes >= self.needed
            fixture[row] = evidence.fixture
        return dataclasses.replace(tracks, face=face, fixture=fixture)

    def passes(
        self, frame_rgb: np.ndarray, track_id: int, box: np.ndarray, keypoints: np.ndarray, timestamp: float
    ) -> bool:
        """Whether this crop of ``track_id`` is a face (a sample votes only then); this frame's check is reused."""
        evidence = self._tracks.setdefault(track_id, _Evidence())
        if evidence.fixture:
            return False
        if evidence.last_timestamp == timestamp:
            return evidence.last_passed
        return self._check(evidence, frame_rgb, box, keypoints, timestamp)

    def forget(self, track_ids: list[int]) -> None:
        """Drop ended tracks (keeps memory bounded)."""
        for track_id in track_ids:
            self._tracks.pop(track_id, None)

    def _check(
        self, evidence: _Evidence, frame_rgb: np.ndarray, box: np.ndarray, keypoints: np.ndarray, timestamp: float
    ) -> bool:
        reading = self.read(frame_rgb, box, keypoints)
        passed = reading.logit > self.min_logit
        self.checks += 1
        evidence.checks += 1
        evidence.passes += passed
        evidence.failed_in_a_row = 0 if passed else evidence.failed_in_a_row + 1
        evidence.checked_at = evidence.last_timestamp = timestamp
        evidence.last_passed = passed
        if passed and evidence.stillness is None:  # the shape at its first checks starts the stillness watch
            evidence.stillness = _Stillness(timestamp)
        if passed and evidence.stillness is not None and not evidence.stillness.moved:
            self._note_stillness(evidence, box, reading, timestamp)
        return passed

    def _watch_stillness(
        self, evidence: _Evidence, frame_rgb: np.ndarray, box: np.ndarray, keypoints: np.ndarray, timestamp: float
    ) -> None:
        """A face not yet known to have moved: a reading every ``STILLNESS_EVERY_S``, then judge."""
        stillness = evidence.stillness
        if stillness is None or stillness.moved:
            return
        if stillness.readings and timestamp - stillness.readings[-1][0] < STILLNESS_EVERY_S:
            return
        reading = self.read(frame_rgb, box, keypoints)
        self.checks += 1
        if reading.logit <= self.min_logit:  # turned away or covered: a photo does not
            stillness.moved = True
            return
        self._note_stillness(evidence, box, reading, timestamp)

    def _note_stillness(self, evidence: _Evidence, box: np.ndarray, reading: MeshReading, timestamp: float) -> None:
        stillness = evidence.stillness
        assert stillness is not None
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float64)
        width = float(max(box[2] - box[0], 1.0))
        stillness.readings.append((timestamp, centre, width, reading.shape))
        readings = stillness.readings
        first_centre, first_width = readings[0][1], readings[0][2]
        if (
            np.linalg.norm(centre - first_centre) > FIXTURE_MOVE * first_width
            or abs(width / first_width - 1) > FIXTURE_RESIZE
        ):
            stillness.moved, stillness.readings = True, []  # it walked, or came nearer: a person
            return
        if (
            len(readings) >= FIXTURE_MIN_READINGS
            and np.percentile(shape_change([shape for *_, shape in readings]), 90) > FIXTURE_SHAPE_CHANGE
        ):
            stillness.moved, stillness.readings = True, []  # its face turned or moved in itself: alive
            return
        if timestamp - stillness.since >= self.fixture_after_s and len(readings) >= FIXTURE_MIN_READINGS:
            evidence.fixture = True
            stillness.readings = []
