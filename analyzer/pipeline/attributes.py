"""Per-track attributes: the classifier's answers on several samples, combined.

Each sample's probabilities are averaged with its quality as weight (an
average of probabilities, not a product: one bad crop cannot veto the rest).
Confidence is the combined probability of the winning answer. An answer less
sure than ``min_gender_p`` or ``min_age_group_p`` is published as
``unknown``, its probabilities kept: a guess is not a fact (the thresholds and
the curve they come from: docs/ACCURACY.md, "Unknown").

A sure answer can still be a guess: the network reads a masked face's eyes,
brows and hair, stays sure, and is wrong more often. The face check's presence
logit says how much of a face a crop shows; a visit whose classified crops
show less than ``min_face_presence`` (their median) gets both attributes
``unknown``, whatever the probabilities say.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from analyzer.core.age_groups import AgeGrouping
from analyzer.core.model_meta import ModelMetadata
from analyzer.core.visits import UNKNOWN, LoggedSample, TrackAttributes

T = TypeVar("T")


def improves_votes(quality: float, kept_qualities: list[float], samples_per_track: int) -> bool:
    """Whether a candidate earns a classifier call: the vote has room, or it beats the worst kept sample."""
    return len(kept_qualities) < samples_per_track or quality > min(kept_qualities)


def keep_best(kept: list[T], item: T, samples_per_track: int, quality: Callable[[T], float] = float) -> None:
    """Add a classified sample, dropping the earliest of the worst beyond K.

    The sampler (keeping qualities) and the voter (keeping samples) both call
    this, so they always drop the same sample.
    """
    kept.append(item)
    if len(kept) > samples_per_track:
        del kept[min(range(len(kept)), key=lambda index: quality(kept[index]))]


@dataclass
class TrackVotes:
    """One track's voting samples: the ``keep`` best by quality (the sampler classifies the same ones)."""

    keep: int
    kept: list[LoggedSample] = field(default_factory=list)
    log: list[LoggedSample] = field(default_factory=list)
    classified: int = 0
    presences: list[float] = field(default_factory=list)  # every classified crop's face-presence logit

    def add(
        self, age_probs: np.ndarray, gender_probs: np.ndarray, quality: float, presence: float | None = None
    ) -> None:
        """Count one classified sample; beyond ``keep`` the worst one stops voting."""
        self.classified += 1
        if presence is not None:
            self.presences.append(presence)
        sample = LoggedSample(age_probs, gender_probs, quality, presence)
        keep_best(self.kept, sample, self.keep, quality=lambda kept: kept.quality)

    @property
    def qualities(self) -> list[float]:
        """The kept samples' qualities, in the order they were classified."""
        return [sample.quality for sample in self.kept]

    def weighted_sums(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Quality-weighted sums of the kept samples' age and gender probabilities, and of their weights."""
        qualities = np.array(self.qualities)
        age = qualities @ np.stack([sample.age_probs for sample in self.kept])
        gender = qualities @ np.stack([sample.gender_probs for sample in self.kept])
        return age, gender, float(qualities.sum())


def _median(values: list[float]) -> float | None:
    """The median, or None for no values (no face check ran)."""
    return float(np.median(values)) if values else None


class AttributeVoter:
    """Combines sample probabilities per track and decides when a track is settled.

    Args:
        grouping: the reporting age groups.
        bin_edges: the model's fine age bin edges.
        bin_values: age each fine bin stands for.
        gender_labels: names of the gender outputs, in order.
        confident_at: a track with this much combined probability for both its
            gender and its age group needs no more samples.
        samples_per_track: K, the best samples of each track that vote.
        min_samples: samples needed before confidence may stop sampling.
        min_gender_p: a gender whose combined probability is lower is
            ``unknown``. Raising it makes more visits unknown and the rest
            more often right.
        min_age_group_p: the same for the age group (of the configured
            grouping: a grouping of fewer, wider groups is surer of each).
        min_face_presence: a visit whose classified crops' median face-presence
            logit is lower has both attributes ``unknown`` (a mask, a scarf, a
            hand over the face); 0 never decides so.
        keep_sample_log: keep each sample's probabilities on the result (for
            measuring accuracy against the number of samples; never published).
    """

    def __init__(
        self,
        grouping: AgeGrouping,
        bin_edges: tuple[float, ...],
        bin_values: np.ndarray,
        gender_labels: tuple[str, ...],
        confident_at: float = 0.95,
        samples_per_track: int = 7,
        min_samples: int = 2,
        keep_sample_log: bool = False,
        min_gender_p: float = 0.0,
        min_age_group_p: float = 0.0,
        min_face_presence: float = 0.0,
    ) -> None:
        self.min_gender_p = min_gender_p
        self.min_age_group_p = min_age_group_p
        self.min_face_presence = min_face_presence
        self.samples_per_track = samples_per_track
        self.keep_sample_log = keep_sample_log
        self.grouping = grouping
        self.group_matrix = grouping.bin_matrix(bin_edges)
        self.bin_values = np.asarray(bin_values, dtype=np.float64)
        self.gender_labels = gender_labels
        self.confident_at = confident_at
        self.min_samples = min_samples
        self._votes: dict[tuple[str, int], TrackVotes] = {}

    @classmethod
    def for_model(
        cls,
        grouping: AgeGrouping,
        metadata: ModelMetadata,
        confident_at: float = 0.95,
        samples_per_track: int = 7,
        keep_sample_log: bool = False,
        min_gender_p: float = 0.0,
        min_age_group_p: float = 0.0,
        min_face_presence: float = 0.0,
    ) -> AttributeVoter:
        """A voter for the outputs of the model ``metadata`` describes."""
        return cls(
            grouping,
            metadata.age_bin_edges,
            metadata.age_bin_values,
            metadata.gender_labels,
            confident_at=confident_at,
            samples_per_track=samples_per_track,
            keep_sample_log=keep_sample_log,
            min_gender_p=min_gender_p,
            min_age_group_p=min_age_group_p,
            min_face_presence=min_face_presence,
        )

    def add(
        self,
        key: tuple[str, int],
        age_probs: np.ndarray,
        gender_probs: np.ndarray,
        quality: float,
        presence: float | None = None,
    ) -> None:
        """Count one sample of the track ``(camera, track_id)``; ``presence``: the face check's logit on its crop."""
        votes = self._votes.get(key)
        if votes is None:
            votes = self._votes[key] = TrackVotes(self.samples_per_track)
        votes.add(np.asarray(age_probs, np.float64), np.asarray(gender_probs, np.float64), quality, presence)
        if self.keep_sample_log:
            votes.log.append(LoggedSample(np.asarray(age_probs), np.asarray(gender_probs), quality, presence))

    def is_confident(self, key: tuple[str, int]) -> bool:
        """Whether the track already has a sure answer (more samples would be wasted)."""
        votes = self._votes.get(key)
        if votes is None or len(votes.kept) < self.min_samples:
            return False
        age, gender, weight = votes.weighted_sums()
        group_p = (age / weight) @ self.group_matrix
        return bool(group_p.max() >= self.confident_at and gender.max() / weight >= self.confident_at)

    def caption(self, key: tuple[str, int]) -> str:
        """Current best guess as short text (for the preview window)."""
        votes = self._votes.get(key)
        if votes is None or not votes.kept:
            return ""
        if self._covered(_median(votes.presences)):
            return f"{UNKNOWN} (face covered)"
        age, gender, weight = votes.weighted_sums()
        group_p, gender_p = (age / weight) @ self.group_matrix, gender / weight
        gender_label = self._verdict(self.gender_labels, gender_p, self.min_gender_p)
        return f"{gender_label} {self._verdict(self.grouping.names, group_p, self.min_age_group_p)}"

    def _covered(self, face_presence: float | None) -> bool:
        """Whether crops whose median face-presence logit is this showed too little of a face to tell anything."""
        return face_presence is not None and face_presence < self.min_face_presence

    def finish(self, keys: list[tuple[str, int]]) -> TrackAttributes:
        """Final attributes of a visit made of these tracks (each track's kept samples vote); forgets them."""
        age_sum, gender_sum, weight, samples, classified = np.zeros(len(self.bin_values)), np.zeros(2), 0.0, 0, 0
        track_logs, presences = [], []
        for key in keys:
            part = self._votes.pop(key, None)
            if part is not None and part.kept:
                presences += part.presences
                age, gender, part_weight = part.weighted_sums()
                age_sum, gender_sum = age_sum + age, gender_sum + gender
                weight += part_weight
                samples += len(part.kept)
                classified += part.classified
                track_logs.append(tuple(part.log))
        if weight <= 0:
            return TrackAttributes.unknown()
        age_probs = age_sum / weight
        group_p = age_probs @ self.group_matrix
        gender_p = gender_sum / weight
        face_presence = _median(presences)
        covered = self._covered(face_presence)
        return TrackAttributes(
            age_group=UNKNOWN if covered else self._verdict(self.grouping.names, group_p, self.min_age_group_p),
            gender=UNKNOWN if covered else self._verdict(self.gender_labels, gender_p, self.min_gender_p),
            age_group_p={name: round(float(p), 4) for name, p in zip(self.grouping.names, group_p, strict=True)},
            gender_p={name: round(float(p), 4) for name, p in zip(self.gender_labels, gender_p, strict=True)},
            age_years=round(float(age_probs @ self.bin_values), 1),
            samples=samples,
            classified=classified,
            sample_log=tuple(track_logs) if self.keep_sample_log else (),
            face_presence=None if face_presence is None else round(face_presence, 2),
            face_covered=covered,
        )

    @staticmethod
    def _verdict(names: Sequence[str], probabilities: np.ndarray, least: float) -> str:
        """The most probable of ``names``, or ``unknown`` when it is less sure than ``least``."""
        best = int(np.argmax(probabilities))
        return names[best] if probabilities[best] >= least else UNKNOWN

    def replay(
        self, track_logs: Sequence[Sequence[LoggedSample]], samples_per_track: int, max_classified: int | None = None
    ) -> TrackAttributes:
        """A visit's verdict from its logged samples with K votes and at most ``max_classified`` calls per track.

        The pipeline's rules, replayed offline from a run that classified every
        candidate crop (:class:`analyzer.pipeline.sample.Sampler`): a track's candidates
        are classified in order while the vote has room or the candidate beats
        its worst kept sample, until the track is confident or has used its
        calls. ``max_classified`` = K (the default) is the first K candidates.
        """
        calls = samples_per_track if max_classified is None else max_classified
        replaying = copy.copy(self)  # same rules, its own K and tracks
        replaying.samples_per_track, replaying._votes = samples_per_track, {}
        keys = [("replay", index) for index in range(len(track_logs))]
        for key, log in zip(keys, track_logs, strict=True):
            for sample in log:
                votes = replaying._votes.get(key) or TrackVotes(samples_per_track)
                if votes.classified >= calls or replaying.is_confident(key):
                    break
                if improves_votes(sample.quality, votes.qualities, samples_per_track):
                    replaying.add(key, *sample)
        return replaying.finish(keys)

    def discard(self, keys: list[tuple[str, int]]) -> None:
        """Forget tracks that did not become a visit."""
        for key in keys:
            self._votes.pop(key, None)
