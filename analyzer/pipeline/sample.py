"""Which face crops of a track are worth classifying.

Classifying every face in every frame wastes the classifier on near-identical,
often poor crops. The sampler offers a track's crops spaced in time (different
poses and lighting vote better than neighbouring frames), only from faces big
enough to hold detail, and classifies the first ``samples_per_track`` of them.
With ``max_classified_per_track`` above that it goes on classifying a later
crop of higher quality (larger, more confident, more frontal) than the worst
it has, and the vote (:class:`analyzer.pipeline.attributes.AttributeVoter`) keeps the
best K: a visitor walking up to a camera is seen small and far first. On the
simulated entrances that bought nothing at K = 7 (docs/ACCURACY.md), so it is
off by default. A face cut by the frame's edge (walking in or out) is not
sampled: its chip would be half made of repeated border pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analyzer.core.faces import cut_by_frame
from analyzer.core.preprocess import align_face
from analyzer.core.tracks import Tracks
from analyzer.pipeline.attributes import improves_votes, keep_best

#: A crop's face-presence logit if it is a face, else None: (frame RGB, track id, box, keypoints, stream seconds).
FaceTest = Callable[[np.ndarray, int, np.ndarray, np.ndarray, float], float | None]
MIN_SAMPLE_WEIGHT = 1e-3  # a sample's vote weight is its quality, floored so every classified crop counts


@dataclass(frozen=True)
class Sample:
    """An aligned chip of one tracked face, ready for the classifier.

    Attributes:
        camera: camera id.
        track_id: tracker id (never published).
        chip: (S, S, 3) uint8 RGB aligned chip.
        quality: 0..1, weight of this sample's vote.
        timestamp: stream seconds of the frame.
        captured_at: ``time.monotonic()`` of the frame's capture.
        face_presence: the face check's logit on this crop (how much of a face it shows), or None
            without a face check.
    """

    camera: str
    track_id: int
    chip: np.ndarray
    quality: float
    timestamp: float
    captured_at: float
    face_presence: float | None = None


def face_quality(
    keypoints: np.ndarray, sizes: np.ndarray, scores: np.ndarray, full_size_px: float = 80.0
) -> np.ndarray:
    """(N,) quality 0..1: size up to ``full_size_px``, detector score, and frontalness.

    Frontalness is how centred the nose tip is between the eyes: 1 for a
    frontal face, falling to 0 for a profile, where age and gender cues are weakest.
    """
    eyes_mid = (keypoints[:, 0] + keypoints[:, 1]) / 2
    eye_distance = np.linalg.norm(keypoints[:, 1] - keypoints[:, 0], axis=1)
    nose_offset = np.abs(keypoints[:, 2, 0] - eyes_mid[:, 0]) / np.maximum(eye_distance, 1.0)
    frontal = np.clip(1.0 - 2.0 * nose_offset, 0.0, 1.0)
    size = np.clip(sizes / full_size_px, 0.0, 1.0)
    return size * np.clip(scores, 0.0, 1.0) * (0.3 + 0.7 * frontal)


def _inside_frame(boxes: np.ndarray, width: int, height: int, slack: float = 0.05) -> np.ndarray:
    """(N,) True where a face box lies within the frame, give or take ``slack`` of its size on the right and bottom.

    A box touching the left or top edge is cut (see :func:`analyzer.core.faces.cut_by_frame`).
    """
    margin = slack * np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return ~cut_by_frame(boxes, width, height, margin).any(axis=1)


@dataclass
class _TrackSampling:
    classified: int = 0
    last_candidate_at: float = -1e9
    best_quality: float = 0.0
    kept_qualities: list[float] = field(default_factory=list)  # the K best classified so far


class Sampler:
    """Picks the crops of each track worth classifying and cuts aligned chips from the frame.

    Args:
        chip_size: the network's input side in pixels.
        samples_per_track: K, the samples of a track that vote.
        min_face_px: smaller faces are skipped (the classifier guesses on them).
        interval_s: minimum stream time between two candidate crops of a track.
        min_relative_quality: after the first candidate, a crop must reach this
            fraction of the track's best quality so far to be a candidate.
        max_classified_per_track: the most classifier calls one track costs
            (K when not given; more lets better later crops replace poor early ones).
        refine: gives precise keypoints for a face box of the frame (see
            :class:`analyzer.pipeline.detect.KeypointRefiner`), or None; the tracked
            detection's keypoints are used when it is not given or finds nothing.
        is_face: a crop's face-presence logit if it shows a face, else None
            (:meth:`analyzer.pipeline.face_check.FaceCheck.presence`); a crop that does not (the back of the head
            of someone turning away) is not classified.

    Example:
        >>> sampler = Sampler(chip_size=80)
        >>> sampler.forget([1, 2])
    """

    def __init__(
        self,
        chip_size: int,
        samples_per_track: int = 7,
        min_face_px: int = 28,
        interval_s: float = 0.2,
        min_relative_quality: float = 0.6,
        refine: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None = None,
        max_classified_per_track: int | None = None,
        is_face: FaceTest | None = None,
    ) -> None:
        self.refine = refine
        self.is_face = is_face
        self.max_classified_per_track = max(max_classified_per_track or samples_per_track, samples_per_track)
        self.chip_size = chip_size
        self.samples_per_track = samples_per_track
        self.min_face_px = min_face_px
        self.interval_s = interval_s
        self.min_relative_quality = min_relative_quality
        self._tracks: dict[int, _TrackSampling] = {}

    def select(
        self,
        camera: str,
        frame_rgb: np.ndarray,
        tracks: Tracks,
        timestamp: float,
        captured_at: float,
        every_face: bool = False,
    ) -> list[Sample]:
        """Samples to classify from this frame; ``every_face`` disables the policy (the naive baseline)."""
        usable = tracks[tracks.matched & tracks.confirmed]
        usable = usable[_inside_frame(usable.boxes, frame_rgb.shape[1], frame_rgb.shape[0])]
        if not len(usable):
            return []
        faces = usable.faces()
        qualities = face_quality(faces.keypoints, faces.sizes, faces.scores)
        samples = []
        for row, track_id in enumerate(usable.ids.tolist()):
            state = self._tracks.setdefault(track_id, _TrackSampling())
            quality = float(qualities[row])
            weight = max(quality, MIN_SAMPLE_WEIGHT)
            if not every_face and not self._wanted(state, faces.sizes[row], quality, weight, timestamp):
                continue
            presence = None
            if self.is_face is not None:
                presence = self.is_face(frame_rgb, track_id, faces.boxes[row], faces.keypoints[row], timestamp)
                if presence is None:
                    continue
            keypoints = self.refine(frame_rgb, faces.boxes[row]) if self.refine is not None else None
            chip = align_face(frame_rgb, faces.keypoints[row] if keypoints is None else keypoints, self.chip_size)
            samples.append(Sample(camera, track_id, chip, weight, timestamp, captured_at, presence))
            state.classified += 1
            keep_best(state.kept_qualities, weight, self.samples_per_track)
        return samples

    def _wanted(self, state: _TrackSampling, size: float, quality: float, weight: float, timestamp: float) -> bool:
        """Whether to classify this crop (``weight``: its vote weight).

        A candidate moves the spacing clock even when it is not classified.
        """
        if state.classified >= self.max_classified_per_track or size < self.min_face_px:
            return False
        if state.classified and (
            timestamp - state.last_candidate_at < self.interval_s
            or quality < self.min_relative_quality * state.best_quality
        ):
            return False
        state.last_candidate_at = timestamp
        state.best_quality = max(state.best_quality, quality)
        return improves_votes(weight, state.kept_qualities, self.samples_per_track)

    def forget(self, track_ids: list[int]) -> None:
        """Drop the state of ended tracks (keeps memory bounded)."""
        for track_id in track_ids:
            self._tracks.pop(track_id, None)
