"""How a run did on real footage judged by eye (``footfall-real-truth/1``, ``../shared/data/real-clips``).

By-eye truth cannot say where each face was, only who was in view when, from
which side and roughly how old: so a clip is judged on what it can tell.
How many visitors may be counted at most: the people who show a face at
some point (``faces_visible``, a number or ``[lo, hi]`` where the eye could
not decide); people seen only from behind must not become visitors with an
age group or a gender. Visits are paired one to one with the people whose
face shows by overlap in time (Hungarian matching), and their gender and
age band compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from analyzer.errors import DataError

REAL_TRUTH_SCHEMA = "footfall-real-truth/1"
UNKNOWN = "unknown"


def _span(value: object) -> tuple[int, int]:
    """``3`` or ``[2, 3]`` as (lowest, highest)."""
    if isinstance(value, list) and len(value) == 2:
        return int(value[0]), int(value[1])
    return int(value), int(value)  # type: ignore[call-overload]


def _band(text: str) -> tuple[float, float] | None:
    """``"20-39"`` or ``"40-59 (unsure)"`` as years; None when the eye could not tell."""
    first = text.split()[0] if text else ""
    low, _, high = first.partition("-")
    if not (low.isdigit() and high.isdigit()):
        return None
    return float(low), float(high) + 1


def _group_years(name: str) -> tuple[float, float] | None:
    """An age group's years (``"30-39"``, ``"70+"``)."""
    if name.endswith("+") and name[:-1].isdigit():
        return float(name[:-1]), 200.0
    return _band(name)


@dataclass(frozen=True)
class ClipScore:
    """One real clip's run against its truth."""

    clip: str
    faces_visible: tuple[int, int]
    backs_only: tuple[int, int]
    counted: int
    with_attributes: int  # visits with a known gender or age group
    too_many: int  # counted beyond the people who showed a face
    missed: int  # people whose face showed, fewer than the least the eye saw
    gender_checked: int = 0
    gender_right: int = 0
    age_band_checked: int = 0
    age_band_right: int = 0
    wrong: list[str] = field(default_factory=list)  # what went wrong, one line each

    @property
    def passes(self) -> bool:
        """Nothing counted beyond the faces shown, none missed, attributes right where known.

        A clip where no face shows passes with at most one visitor, and only an ``unknown`` one.
        """
        if self.faces_visible[1] == 0:
            return self.with_attributes == 0 and self.counted <= 1
        return not self.too_many and not self.missed and self.gender_right == self.gender_checked

    def to_dict(self) -> dict[str, object]:
        """For ``--json`` and docs/ACCURACY.md."""
        return {
            "clip": self.clip,
            "faces_visible": list(self.faces_visible),
            "backs_only": list(self.backs_only),
            "counted": self.counted,
            "with_attributes": self.with_attributes,
            "too_many": self.too_many,
            "missed": self.missed,
            "gender_checked": self.gender_checked,
            "gender_right": self.gender_right,
            "age_band_checked": self.age_band_checked,
            "age_band_right": self.age_band_right,
            "passes": self.passes,
            "wrong": self.wrong,
        }


def score_clip(clip: str, truth: dict, visits: list[dict], fps: float) -> ClipScore:
    """Judge one clip's visits (report entries) against its truth entry; ``fps`` turns frames into seconds."""
    faces_visible, backs_only = _span(truth["faces_visible"]), _span(truth.get("backs_only", 0))
    counted = len(visits)
    known = [visit for visit in visits if visit.get("gender") != UNKNOWN or visit.get("age_group") != UNKNOWN]
    wrong = []
    too_many = max(0, counted - faces_visible[1])
    if too_many:
        wrong.append(f"{counted} visitors counted where at most {faces_visible[1]} showed a face")
    missed = max(0, faces_visible[0] - counted)
    if missed:
        wrong.append(f"{counted} visitors counted where {faces_visible[0]} showed a face")
    if faces_visible[1] == 0:
        wrong += [
            f"visit {visit['visit_id']} at {visit['stream_start']:.1f} s: {visit['gender']} {visit['age_group']} "
            "from someone seen only from behind"
            for visit in known
        ]
    faced = [
        person
        for person in truth.get("people", [])
        if "face" in person.get("view", "") or "profile" in person.get("view", "")
    ]
    score = ClipScore(clip, faces_visible, backs_only, counted, len(known), too_many, missed, wrong=wrong)
    if not faced or not visits:
        return score
    overlap = np.zeros((len(visits), len(faced)))
    for row, visit in enumerate(visits):
        for column, person in enumerate(faced):
            start, end = person["from_frame"] / fps, (person["to_frame"] + 1) / fps
            overlap[row, column] = max(0.0, min(visit["stream_end"], end) - max(visit["stream_start"], start))
    rows, columns = linear_sum_assignment(-overlap)
    gender_checked = gender_right = band_checked = band_right = 0
    for row, column in zip(rows, columns, strict=True):
        if overlap[row, column] <= 0:
            continue
        visit, person = visits[row], faced[column]
        if visit["gender"] != UNKNOWN and person.get("gender") in ("female", "male"):
            gender_checked += 1
            gender_right += visit["gender"] == person["gender"]
            if visit["gender"] != person["gender"]:
                wrong.append(f"visit {visit['visit_id']}: {visit['gender']}, the eye says {person['gender']}")
        band, group = _band(person.get("age_band", "")), _group_years(str(visit["age_group"]))
        if band is not None and group is not None:
            band_checked += 1
            band_right += group[0] < band[1] and band[0] < group[1]
    return ClipScore(
        clip,
        faces_visible,
        backs_only,
        counted,
        len(known),
        too_many,
        missed,
        gender_checked,
        gender_right,
        band_checked,
        band_right,
        wrong,
    )


def read_real_truth(document: dict, path: Path) -> dict[str, dict]:
    """The clips of a ``footfall-real-truth/1`` document, by file name."""
    if document.get("schema") != REAL_TRUTH_SCHEMA or not isinstance(document.get("clips"), dict):
        raise DataError(f"{path}: not a {REAL_TRUTH_SCHEMA} truth file")
    return document["clips"]


def clip_fps(path: Path) -> float:
    """The frame rate of a clip beside its truth file (frame numbers in the truth count its frames)."""
    import cv2

    if not path.is_file():
        raise DataError(f"{path}: clip not found beside its truth file; the truth counts its frames")
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    if not fps or fps <= 0:
        raise DataError(f"{path}: cannot read its frame rate")
    return float(fps)


def score_report(truth_path: Path, document: dict, report: dict) -> list[ClipScore]:
    """Every camera of ``report`` named after a clip of the truth (``--source CLIP`` names it so)."""
    clips = read_real_truth(document, truth_path)
    by_stem = {Path(name).stem: name for name in clips}
    scores = []
    for camera, entry in report["cameras"].items():
        name = by_stem.get(camera)
        if name is None:
            continue
        fps = clip_fps(truth_path.parent / name)
        scores.append(score_clip(name, clips[name], entry["visits"], fps))
    if not scores:
        raise DataError(
            f"no camera of the report is named after a clip of {truth_path} ({', '.join(sorted(by_stem))}); "
            "run each clip with --source, which names the camera after the file"
        )
    return scores


def score_line(score: ClipScore) -> str:
    """One line for the console."""
    low, high = score.faces_visible
    faces = f"{low}" if low == high else f"{low}-{high}"
    attributes = f", gender {score.gender_right} of {score.gender_checked} right" if score.gender_checked else ""
    return (
        f"{score.clip}: {score.counted} counted ({score.with_attributes} with age or gender), {faces} showed a face"
        f"{attributes}: {'ok' if score.passes else 'WRONG'}"
    )
