"""Visits as published and reported: who was counted, when, and the verdict on their age group and gender.

Visit ids are random per run, so nothing links a visit to a person.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from analyzer.core.zones import Point


class LoggedSample(NamedTuple):
    """One classified sample as a track's vote keeps it (and analysis logs it)."""

    age_probs: np.ndarray  # over the model's fine age bins
    gender_probs: np.ndarray
    quality: float  # its vote weight
    presence: float | None  # the face check's logit on its crop (None: no face check)


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
    classified: int = 0  # classifier calls its tracks cost (at least ``samples``); analysis only
    sample_log: tuple[tuple[LoggedSample, ...], ...] = ()  # each track's samples in order; analysis only
    face_presence: float | None = None  # median face-presence logit of the classified crops (None: no face check)
    face_covered: bool = False  # too little of a face shown: gender and age group unknown, however sure the vote

    @classmethod
    def unknown(cls) -> TrackAttributes:
        """No usable sample was classified (face too small or never frontal)."""
        return cls(UNKNOWN, UNKNOWN, {}, {}, None, 0)


#: A visit's ``direction`` on a camera with a counting line: the way it first crossed, or never crossed.
NOT_CROSSED = "none"
DIRECTIONS = ("in", "out", NOT_CROSSED)


def random_visit_id() -> str:
    """12 hex characters from the OS random source."""
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Visit:
    """A counted visitor, as published and reported.

    ``start``/``end`` are unix seconds; ``stream_start``/``stream_end`` are
    seconds on the camera's stream clock (the position in a file).
    """

    camera: str
    visit_id: str
    start: float
    end: float
    stream_start: float
    stream_end: float
    attributes: TrackAttributes
    direction: str | None = None
    zone_dwell_s: dict[str, float] = field(default_factory=dict)
    first_position: Point = (0.0, 0.0)
    last_position: Point = (0.0, 0.0)

    @property
    def dwell_s(self) -> float:
        """Seconds from first to last sight."""
        return self.stream_end - self.stream_start

    def to_dict(self) -> dict[str, object]:
        """The visit fields of the ZeroMQ ``visit.<camera>`` message and the report."""
        fields: dict[str, object] = {
            "visit_id": self.visit_id,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "stream_start": round(self.stream_start, 3),
            "stream_end": round(self.stream_end, 3),
            "dwell_s": round(self.dwell_s, 3),
            "age_group": self.attributes.age_group,
            "gender": self.attributes.gender,
            "age_group_p": self.attributes.age_group_p,
            "gender_p": self.attributes.gender_p,
            "age_years": self.attributes.age_years,
            "samples": self.attributes.samples,
            "face_presence": self.attributes.face_presence,
            "face_covered": self.attributes.face_covered,
            "first_position": [round(v, 4) for v in self.first_position],
            "last_position": [round(v, 4) for v in self.last_position],
        }
        if self.direction is not None:
            fields["direction"] = self.direction
        if self.zone_dwell_s:
            fields["zone_dwell_s"] = {name: round(seconds, 3) for name, seconds in self.zone_dwell_s.items()}
        return fields
