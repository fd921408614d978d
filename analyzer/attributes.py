"""Per-track attributes: the classifier's answers on several samples, combined.

Each sample's probabilities are averaged with its quality as weight (an
average of probabilities, not a product: one bad crop cannot veto the rest).
Confidence is the combined probability of the winning answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from analyzer.age_groups import AgeGrouping
from analyzer.model_meta import ModelMetadata

#: One classified sample as kept for analysis: (fine age bin probabilities, gender probabilities, quality).
LoggedSample = tuple[np.ndarray, np.ndarray, float]

UNKNOWN = "unknown"


@dataclass(frozen=True)
class TrackAttributes:
    """The combined verdict on one visitor."""

    age_group: str
    gender: str
    age_group_p: dict[str, float]
    gender_p: dict[str, float]
    age_years: float | None
    samples: int
    sample_log: tuple[tuple[LoggedSample, ...], ...] = ()  # each track's samples in order; analysis only

    @classmethod
    def unknown(cls) -> TrackAttributes:
        """No usable sample was classified (face too small or never frontal)."""
        return cls(UNKNOWN, UNKNOWN, {}, {}, None, 0)


@dataclass
class TrackVotes:
    """Running quality-weighted sums of one track's sample probabilities."""

    age_probs: np.ndarray
    gender_probs: np.ndarray = field(default_factory=lambda: np.zeros(2))
    weight: float = 0.0
    samples: int = 0
    log: list[LoggedSample] = field(default_factory=list)

    def add(self, age_probs: np.ndarray, gender_probs: np.ndarray, quality: float) -> None:
        """Count one classified sample."""
        self.age_probs += quality * age_probs
        self.gender_probs += quality * gender_probs
        self.weight += quality
        self.samples += 1


class AttributeVoter:
    """Combines sample probabilities per track and decides when a track is settled.

    Args:
        grouping: the reporting age groups.
        bin_edges: the model's fine age bin edges.
        bin_values: age each fine bin stands for.
        gender_labels: names of the gender outputs, in order.
        confident_at: a track with this much combined probability for both its
            gender and its age group needs no more samples.
        min_samples: samples needed before confidence may stop sampling.
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
        min_samples: int = 2,
        keep_sample_log: bool = False,
    ) -> None:
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
        cls, grouping: AgeGrouping, metadata: ModelMetadata, confident_at: float = 0.95, keep_sample_log: bool = False
    ) -> AttributeVoter:
        """A voter for the outputs of the model ``metadata`` describes."""
        return cls(
            grouping,
            metadata.age_bin_edges,
            metadata.age_bin_values,
            metadata.gender_labels,
            confident_at=confident_at,
            keep_sample_log=keep_sample_log,
        )

    def add(self, key: tuple[str, int], age_probs: np.ndarray, gender_probs: np.ndarray, quality: float) -> None:
        """Count one sample of the track ``(camera, track_id)``."""
        votes = self._votes.get(key)
        if votes is None:
            votes = self._votes[key] = TrackVotes(np.zeros(len(self.bin_values)))
        votes.add(np.asarray(age_probs, np.float64), np.asarray(gender_probs, np.float64), quality)
        if self.keep_sample_log:
            votes.log.append((np.asarray(age_probs), np.asarray(gender_probs), quality))

    def is_confident(self, key: tuple[str, int]) -> bool:
        """Whether the track already has a sure answer (more samples would be wasted)."""
        votes = self._votes.get(key)
        if votes is None or votes.samples < self.min_samples:
            return False
        group_p = (votes.age_probs / votes.weight) @ self.group_matrix
        gender_p = votes.gender_probs / votes.weight
        return bool(group_p.max() >= self.confident_at and gender_p.max() >= self.confident_at)

    def peek_label(self, key: tuple[str, int]) -> str:
        """Current best guess as short text (for the preview window)."""
        votes = self._votes.get(key)
        if votes is None or votes.weight <= 0:
            return ""
        group = self.grouping.names[int(np.argmax((votes.age_probs / votes.weight) @ self.group_matrix))]
        return f"{self.gender_labels[int(np.argmax(votes.gender_probs))]} {group}"

    def finish(self, keys: list[tuple[str, int]]) -> TrackAttributes:
        """Final attributes of a visit made of these tracks; forgets them."""
        votes = TrackVotes(np.zeros(len(self.bin_values)))
        track_logs = []
        for key in keys:
            part = self._votes.pop(key, None)
            if part is not None:
                votes.age_probs += part.age_probs
                votes.gender_probs += part.gender_probs
                votes.weight += part.weight
                votes.samples += part.samples
                track_logs.append(tuple(part.log))
        if votes.weight <= 0:
            return TrackAttributes.unknown()
        age_probs = votes.age_probs / votes.weight
        group_p = age_probs @ self.group_matrix
        gender_p = votes.gender_probs / votes.weight
        return TrackAttributes(
            age_group=self.grouping.names[int(np.argmax(group_p))],
            gender=self.gender_labels[int(np.argmax(gender_p))],
            age_group_p={name: round(float(p), 4) for name, p in zip(self.grouping.names, group_p, strict=True)},
            gender_p={name: round(float(p), 4) for name, p in zip(self.gender_labels, gender_p, strict=True)},
            age_years=round(float(age_probs @ self.bin_values), 1),
            samples=votes.samples,
            sample_log=tuple(track_logs) if self.keep_sample_log else (),
        )

    def replay(self, track_logs: Sequence[Sequence[LoggedSample]], samples_per_track: int) -> TrackAttributes:
        """The verdict a visit's logged samples give with at most ``samples_per_track`` per track.

        The pipeline's rules, replayed offline: a track's samples count in
        order until it is confident (later ones are not classified), so a
        run that logged more samples measures any smaller K exactly.
        """
        keys = [("replay", index) for index in range(len(track_logs))]
        for key, log in zip(keys, track_logs, strict=True):
            for age_probs, gender_probs, quality in log[:samples_per_track]:
                if not self.is_confident(key):
                    self.add(key, age_probs, gender_probs, quality)
        return self.finish(keys)

    def discard(self, keys: list[tuple[str, int]]) -> None:
        """Forget tracks that did not become a visit."""
        for key in keys:
            self._votes.pop(key, None)
