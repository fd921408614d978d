"""Tracks: what a camera's tracker follows after one frame, as the stages after it and the preview see it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analyzer.core.faces import Faces


@dataclass(frozen=True)
class Tracks:
    """Tracks alive after one update, one row per track.

    Attributes:
        ids: (N,) int64 track ids, unique within this tracker.
        boxes: (N, 4) float32 ``x1, y1, x2, y2`` pixels (the matched detection, or the prediction).
        scores: (N,) float32 score of the matched detection (0 when unmatched).
        keypoints: (N, 6, 2) float32 pixels of the matched detection (zeros when unmatched).
        matched: (N,) bool, seen in this frame.
        confirmed: (N,) bool, seen in at least ``min_hits`` frames.
        appearance: (N, F) float32 appearance cue of each track (zeros when unknown).
        face: (N,) bool, a face by the face check (:mod:`analyzer.pipeline.face_check`); None when no check ran.
        fixture: (N,) bool, a face as still as a photo since it was first seen (a poster); None when no check ran.
        still: (N,) bool, a face that has not moved since it was first seen (a fixture or not, yet); None likewise.
    """

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray
    matched: np.ndarray
    confirmed: np.ndarray
    appearance: np.ndarray | None = None
    face: np.ndarray | None = None
    fixture: np.ndarray | None = None
    still: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Tracks:
        """No tracks."""
        return cls(
            np.zeros(0, np.int64),
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, 6, 2), np.float32),
            np.zeros(0, bool),
            np.zeros(0, bool),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: np.ndarray | slice) -> Tracks:
        """Rows selected by a mask, index array or slice."""
        return Tracks(
            self.ids[index],
            self.boxes[index],
            self.scores[index],
            self.keypoints[index],
            self.matched[index],
            self.confirmed[index],
            None if self.appearance is None else self.appearance[index],
            None if self.face is None else self.face[index],
            None if self.fixture is None else self.fixture[index],
            None if self.still is None else self.still[index],
        )

    @property
    def people(self) -> np.ndarray:
        """(N,) bool: a person's face by the face check (a face, not a fixture), or every track when none ran."""
        face = np.ones(len(self), bool) if self.face is None else self.face
        return face if self.fixture is None else face & ~self.fixture

    @property
    def stills(self) -> np.ndarray:
        """(N,) bool: not moved since first seen, by the face check (none when no check ran)."""
        return np.zeros(len(self), bool) if self.still is None else self.still

    @property
    def fixtures(self) -> np.ndarray:
        """(N,) bool: a fixture by the face check (none when no check ran)."""
        return np.zeros(len(self), bool) if self.fixture is None else self.fixture

    def faces(self) -> Faces:
        """The detections behind the matched rows, as ``Faces``."""
        return Faces(self.boxes, self.scores, self.keypoints)
