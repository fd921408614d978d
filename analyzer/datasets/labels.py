"""Labelled face folders: ``labels.csv`` (``path,age,gender[,race][,md5]``) plus images.

Used by ``analyzer train`` and ``analyzer evaluate``. Any folder in this layout
works, so an operator can train on their own (commercially licensed) faces.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analyzer.core.text_files import NotUtf8Error, read_utf8
from analyzer.errors import DataError

GENDERS: tuple[str, ...] = ("female", "male")
#: How spreadsheets spell them; any case.
GENDER_SPELLINGS: dict[str, str] = {
    "female": "female",
    "f": "female",
    "woman": "female",
    "male": "male",
    "m": "male",
    "man": "male",
}
REQUIRED_COLUMNS: tuple[str, ...] = ("path", "age", "gender")
MAX_AGE = 120


@dataclass(frozen=True)
class LabelledFace:
    """One row of ``labels.csv``; ``line`` is its line number for error messages."""

    path: Path
    age: int
    gender: str
    race: str | None
    md5: str
    line: int

    @property
    def gender_index(self) -> int:
        """Index into :data:`GENDERS` (0 female, 1 male)."""
        return GENDERS.index(self.gender)


def read_labels(folder: Path) -> list[LabelledFace]:
    """Read and check ``folder/labels.csv``.

    Raises:
        DataError: the file is missing or a row is bad; the message names the line.
    """
    if Path(folder).is_file():
        raise DataError(f"{folder} is a file; pass the folder it is in ({Path(folder).parent}), with its images")
    csv_path = Path(folder) / "labels.csv"
    if not csv_path.is_file():
        raise DataError(
            f"{csv_path}: not found; a labelled folder needs labels.csv with columns "
            "path,age,gender (optional race, md5) next to its images"
        )
    try:
        text = read_utf8(csv_path)
    except NotUtf8Error as error:
        raise DataError(
            f"{csv_path} line {error.line}: not UTF-8 text; save the file as UTF-8 (in a spreadsheet: 'CSV UTF-8')"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(text.partition("\n")[0]))
    columns = [name.strip().lower() for name in reader.fieldnames or []]  # "Path", " Age" as spreadsheets head them
    reader.fieldnames = columns
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise DataError(
            f"{csv_path}: missing column{'s' * (len(missing) > 1)} {', '.join(missing)}; "
            f"found {columns}, need path,age,gender"
        )
    faces = [_parse_row(row, reader.line_num, csv_path) for row in reader]
    if not faces:
        raise DataError(f"{csv_path}: has a header but no rows")
    return faces


def _delimiter(header: str) -> str:
    """The header's separator: commas, or the semicolons or tabs that spreadsheets write in some locales."""
    counts = {delimiter: header.count(delimiter) for delimiter in (",", ";", "\t")}
    return max(counts, key=lambda delimiter: counts[delimiter]) if any(counts.values()) else ","


def _whole_years(text: str) -> int | None:
    """``25``, or ``25.0`` as pandas writes a column of ages; None for anything else."""
    try:
        years = float(text)
    except ValueError:
        return None
    return int(years) if years.is_integer() else None


def _parse_row(row: dict[str, str | None], line: int, csv_path: Path) -> LabelledFace:
    where = f"{csv_path} line {line}"
    if None in row or any(row.get(column) is None for column in REQUIRED_COLUMNS):
        raise DataError(f"{where}: wrong number of fields; expected the header's columns")
    path_text = (row["path"] or "").strip()
    if not path_text:
        raise DataError(f"{where}: empty path")
    age_text = (row["age"] or "").strip()
    age = _whole_years(age_text)
    if age is None:
        raise DataError(f"{where}: age '{age_text}' is not a whole number of years")
    if not 0 <= age <= MAX_AGE:
        raise DataError(f"{where}: age {age} is outside 0..{MAX_AGE}")
    gender = GENDER_SPELLINGS.get((row["gender"] or "").strip().lower())
    if gender is None:
        raise DataError(f"{where}: gender '{row['gender']}' must be one of female, male (or f, m, woman, man)")
    race = (row.get("race") or "").strip() or None
    md5 = (row.get("md5") or "").strip().lower()
    # a folder labelled on Windows writes images\\face.jpg
    return LabelledFace(csv_path.parent / path_text.replace("\\", "/"), age, gender, race, md5, line)


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes, for folders whose labels.csv has no md5 column."""
    try:
        return hashlib.md5(path.read_bytes()).hexdigest()
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise DataError(f"{path}: image file not found (listed in labels.csv)") from None
        raise DataError(f"{path}: cannot read image ({error.strerror})") from None


def split_by_md5(
    faces: Sequence[LabelledFace], validation_fraction: float = 0.1
) -> tuple[list[LabelledFace], list[LabelledFace]]:
    """Deterministic train/validation split keyed by image hash.

    Duplicate images share an md5 and so always land on the same side; the
    split does not depend on row order or on other rows.
    """
    train: list[LabelledFace] = []
    validation: list[LabelledFace] = []
    unreadable: list[str] = []
    threshold = round(validation_fraction * 10_000)
    for face in faces:
        try:
            digest = face.md5 or file_md5(face.path)
        except DataError as error:  # every missing file is named at once, not one per attempt
            unreadable.append(str(error))
            continue
        (validation if int(digest[:8], 16) % 10_000 < threshold else train).append(face)
    if unreadable:
        raise unreadable_images(unreadable, len(faces))
    return train, validation


def unreadable_images(problems: Sequence[str], total: int) -> DataError:
    """One line for every image of a folder that cannot be read: the first three, and how many more."""
    shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    return DataError(f"{len(problems)} of {total} images cannot be read: {shown}. Fix those files or remove their rows")
