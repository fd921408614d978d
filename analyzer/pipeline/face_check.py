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
(:meth:`FaceCheck.presence`). docs/ACCURACY.md has the scores measured on the
real clips and the simulated ones.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analyzer.core.faces import box_iou
from analyzer.core.tracks import Tracks
from analyzer.errors import ModelError
from analyzer.service.console import quiet_native_stderr

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
#: A face whose centre moved this much of its width from where it was first seen as a face, or whose width changed
#: by this share, has moved: a person. A poster's detected box jitters by 2-4% of its width (13% at worst) in 2 s,
#: and more while a walker's head half hides it (a box cut to the visible part); a walker moves a width in a
#: fraction of a second.
FIXTURE_MOVE, FIXTURE_RESIZE = 0.5, 0.4
#: A face at a place whose landmark shape (position, size and turn taken out) differs from the first seen there by
#: more than this is another face, or turned: the place starts over. A poster's stays within 0.04 (90th
#: percentile of its readings); a head turning from profile to frontal moves 0.2-0.3.
FIXTURE_SHAPE_CHANGE = 0.08
#: Readings a fixture needs (with ``STILLNESS_EVERY_S``: about ten seconds of them) before the shape decides.
FIXTURE_MIN_READINGS = 10
#: A face still this long since it was first seen adds to its place's time, or is a fixture on a fixture's place:
#: everyone who walks in is first seen at the door or the frame's edge, and passes on within a second or two.
SETTLE_S = 3.0
#: A face whose box overlaps a place (a fixture's, a still face's) this much is at that place.
FIXTURE_PLACE_IOU = 0.5
#: A place where no still face has been seen this long (a walker passed in front of the poster) starts over.
STILL_GAP_S = 10.0
#: Fixture places (and lost still faces) remembered per camera: a wall has a few posters, not hundreds.
MAX_FIXTURE_PLACES = 50


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


def _centre_and_width(box: np.ndarray) -> tuple[np.ndarray, float]:
    """A face box's centre and width (at least a pixel), in pixels."""
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], np.float64), float(max(box[2] - box[0], 1.0))


@dataclass
class _Stillness:
    """Where a track's face was first seen: it is still while it stays there (a poster), and moved once it leaves."""

    centre: np.ndarray
    width: float
    since: float
    moved: bool = False


@dataclass
class _Place:
    """A place (a face box) where a still face has been seen, whichever track saw it: a fixture once long enough.

    A poster hidden by a walker is boxed again as a new track; the place keeps its time.
    """

    box: np.ndarray
    since: float
    last_seen: float
    shape: np.ndarray  # the landmarks of its first reading: a different face there starts the place over
    readings: int = 1


@dataclass
class _Evidence:
    box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # where it was last checked
    checks: int = 0
    passes: int = 0
    failed_in_a_row: int = 0
    checked_at: float = -1e9
    last_timestamp: float = -1e9  # the frame of the last check, and its result: a sample of it reuses it
    last_logit: float = -1e9
    stillness: _Stillness | None = None
    read_at: float = -1e9  # the last reading of the stillness watch
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
        # Fixtures are found where they hang: a poster's face boxed again after a walker passed in front is a new
        # track, as is a screen's next still face. Still faces are timed by their place, whichever track saw
        # them, and a track whose first face sits on a fixture's place is one at once.
        self._fixture_places: deque[np.ndarray] = deque(maxlen=MAX_FIXTURE_PLACES)
        self._places: list[_Place] = []  # still faces' places, not yet fixtures (at most MAX_FIXTURE_PLACES)

    @classmethod
    def from_config(cls, presence: FacePresence, settings: FaceCheckConfig) -> FaceCheck:
        """The face check the ``face_check`` settings ask for (``run`` and ``check`` alike)."""
        return cls(presence.read, settings.min_logit, settings.needed, fixture_after_s=settings.fixture_after_s)

    def update(self, frame_rgb: np.ndarray, tracks: Tracks, timestamp: float) -> Tracks:
        """Check the tracks that are due; ``tracks`` with ``face``, ``fixture`` and ``still`` set for each."""
        face, fixture, still = np.zeros(len(tracks), bool), np.zeros(len(tracks), bool), np.zeros(len(tracks), bool)
        self.forget(list(self._tracks.keys() - set(tracks.ids.tolist())))  # a flicker that never was a track, too
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
            still[row] = evidence.fixture or (evidence.stillness is not None and not evidence.stillness.moved)
        return dataclasses.replace(tracks, face=face, fixture=fixture, still=still)

    def presence(
        self, frame_rgb: np.ndarray, track_id: int, box: np.ndarray, keypoints: np.ndarray, timestamp: float
    ) -> float | None:
        """This crop's face-presence logit if it is a face (a sample votes only then), else None.

        The logit goes with the sample: a face that passes yet shows little of itself (a mask, a scarf, a
        hand) gets unknown attributes (:class:`analyzer.pipeline.attributes.AttributeVoter`). A frame's check is reused.
        """
        evidence = self._tracks.setdefault(track_id, _Evidence())
        if evidence.fixture:
            return None
        if evidence.last_timestamp != timestamp:
            self._check(evidence, frame_rgb, box, keypoints, timestamp)
        return evidence.last_logit if evidence.last_logit > self.min_logit else None

    def forget(self, track_ids: list[int]) -> None:
        """Drop ended tracks (keeps memory bounded); a still face's place keeps its time."""
        for track_id in track_ids:
            evidence = self._tracks.pop(track_id, None)
            if evidence is not None and evidence.fixture:
                self._fixture_places.append(evidence.box)

    def _check(
        self, evidence: _Evidence, frame_rgb: np.ndarray, box: np.ndarray, keypoints: np.ndarray, timestamp: float
    ) -> None:
        reading = self.read(frame_rgb, box, keypoints)
        passed = reading.logit > self.min_logit
        self.checks += 1
        evidence.checks += 1
        evidence.passes += passed
        evidence.failed_in_a_row = 0 if passed else evidence.failed_in_a_row + 1
        evidence.checked_at = evidence.last_timestamp = timestamp
        evidence.last_logit = reading.logit
        evidence.box = np.asarray(box, np.float32)
        if passed and evidence.stillness is None:  # where it is first seen as a face starts the stillness watch
            evidence.stillness = _Stillness(*_centre_and_width(box), timestamp)
        if passed and evidence.stillness is not None and not evidence.stillness.moved:
            self._note_stillness(evidence, box, reading, timestamp)

    def _on_fixture_place(self, box: np.ndarray) -> bool:
        """Whether ``box`` sits on a place where a fixture was found."""
        places = np.array(list(self._fixture_places), np.float32).reshape(-1, 4)
        return bool(len(places) and box_iou(np.asarray(box, np.float32)[None], places).max() >= FIXTURE_PLACE_IOU)

    def _watch_stillness(
        self, evidence: _Evidence, frame_rgb: np.ndarray, box: np.ndarray, keypoints: np.ndarray, timestamp: float
    ) -> None:
        """A face not yet known to have moved: a reading every ``STILLNESS_EVERY_S``, then judge."""
        stillness = evidence.stillness
        if stillness is None or stillness.moved:
            return
        if timestamp - evidence.read_at < STILLNESS_EVERY_S:
            return
        reading = self.read(frame_rgb, box, keypoints)
        self.checks += 1
        if reading.logit > self.min_logit:  # not a face now: turned away, or someone passes in front of the poster
            self._note_stillness(evidence, box, reading, timestamp)

    def _note_stillness(self, evidence: _Evidence, box: np.ndarray, reading: MeshReading, timestamp: float) -> None:
        """One reading of a face not yet seen to move: still where it was first seen? Then time its place."""
        stillness = evidence.stillness
        assert stillness is not None
        evidence.read_at = timestamp
        centre, width = _centre_and_width(box)
        if (
            np.linalg.norm(centre - stillness.centre) > FIXTURE_MOVE * stillness.width
            or abs(width / stillness.width - 1) > FIXTURE_RESIZE
        ):
            stillness.moved = True  # it walked, or came nearer: a person
            return
        if timestamp - stillness.since < SETTLE_S:
            return  # a walker pausing at the door, or stepping in where everyone steps in, is not still yet
        if self._on_fixture_place(box):
            evidence.fixture = True  # the poster again, after a walker hid it; the screen's next face
            return
        place = self._place_at(box, reading, stillness.since, timestamp)
        if timestamp - place.since >= self.fixture_after_s and place.readings >= FIXTURE_MIN_READINGS:
            evidence.fixture = True
            self._fixture_places.append(np.asarray(box, np.float32))
            self._places.remove(place)

    def _place_at(self, box: np.ndarray, reading: MeshReading, still_since: float, timestamp: float) -> _Place:
        """The still faces' place at ``box``; a new one's time starts when the face there became still.

        Landmark shapes barely tell two people apart (two faces differ by 0.056 in the median), so the place's
        time carries on whoever sits there still: only a face that has stayed put for ``SETTLE_S`` adds to it.
        """
        self._places = [place for place in self._places if timestamp - place.last_seen <= STILL_GAP_S]
        here = np.asarray(box, np.float32)
        boxes = np.array([place.box for place in self._places], np.float32).reshape(-1, 4)
        overlaps = box_iou(here[None], boxes)[0] if len(boxes) else np.zeros(0)
        if not len(overlaps) or overlaps.max() < FIXTURE_PLACE_IOU:
            self._places = [*self._places, _Place(here, still_since, timestamp, reading.shape)][-MAX_FIXTURE_PLACES:]
            return self._places[-1]
        place = self._places[int(np.argmax(overlaps))]
        if shape_change([place.shape, reading.shape]).max() > FIXTURE_SHAPE_CHANGE:  # another face, or it turned
            place.since, place.shape, place.readings = timestamp, reading.shape, 0
        place.last_seen = timestamp
        place.readings += 1
        return place
