from pathlib import Path

import pytest

from analyzer.datasets.labels import read_labels, split_by_md5
from analyzer.errors import DataError

HEADER = "path,age,gender,race,md5\n"


def write_labels(folder: Path, text: str) -> Path:
    (folder / "labels.csv").write_text(text)
    return folder


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a.jpg,25,male,White,aa\nb.jpg,abc,female,Asian,bb\n", "line 3: age 'abc'"),
        ("a.jpg,25,male,White,aa\nb.jpg,30,robot,Asian,bb\n", "line 3: gender 'robot'"),
        ("a.jpg,25,male,White,aa\nb.jpg,-4,male,Asian,bb\n", "line 3: age -4 is outside"),
        ("a.jpg,25,male,White,aa\n,30,male,Asian,bb\n", "line 3: empty path"),
        ("a.jpg,25,male,White,aa,extra\n", "line 2: wrong number of fields"),
        ("a.jpg,25\n", "line 2: wrong number of fields"),
    ],
)
def test_bad_rows_name_their_line(tmp_path: Path, body: str, message: str) -> None:
    write_labels(tmp_path, HEADER + body)
    with pytest.raises(DataError, match=message):
        read_labels(tmp_path)


@pytest.mark.parametrize(
    "spreadsheet_csv",
    [
        "\ufeffpath,age,gender\r\nimages/a.jpg,25,male\r\nimages/b.jpg,31,female\r\n",  # Excel's "CSV UTF-8"
        "path;age;gender\nimages/a.jpg;25;male\nimages/b.jpg;31;female\n",  # a locale with decimal commas
        "path\tage\tgender\nimages/a.jpg\t25\tmale\nimages/b.jpg\t31\tfemale\n",
        "path,age,gender\nimages\\a.jpg,25,male\nimages\\b.jpg,31,female\n",  # labelled on Windows
    ],
)
def test_a_labels_file_saved_by_a_spreadsheet_reads_like_a_plain_one(tmp_path: Path, spreadsheet_csv: str) -> None:
    (tmp_path / "labels.csv").write_bytes(spreadsheet_csv.encode())
    faces = read_labels(tmp_path)
    assert [(face.path, face.age, face.gender) for face in faces] == [
        (tmp_path / "images" / "a.jpg", 25, "male"),
        (tmp_path / "images" / "b.jpg", 31, "female"),
    ]


def test_a_labels_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_bytes(
        "path,age,gender,race\na.jpg,25,male,x\nb.jpg,30,female,Latina ñ\n".encode("cp1252")
    )
    with pytest.raises(DataError, match=r"labels\.csv line 3: not UTF-8 text; save the file as UTF-8"):
        read_labels(tmp_path)


def test_missing_column_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"labels\.csv: not found"):
        read_labels(tmp_path)
    write_labels(tmp_path, HEADER + "a.jpg,25,male,White,aa\n")
    with pytest.raises(DataError, match=rf"labels\.csv is a file; pass the folder it is in \({tmp_path}\)"):
        read_labels(tmp_path / "labels.csv")  # was ".../labels.csv/labels.csv: not found"
    write_labels(tmp_path, "path,years,gender\na.jpg,3,male\n")
    with pytest.raises(DataError, match="missing column age"):
        read_labels(tmp_path)


def test_a_spreadsheets_spellings_read_as_ours(tmp_path: Path) -> None:
    # headed "Path,Age,Gender", genders as M/F or man/woman, ages as pandas writes them
    write_labels(tmp_path, "Path, Age ,GENDER\na.jpg,25.0,M\nb.jpg,31,f\nc.jpg,40,Woman\nd.jpg,7,man\n")
    assert [(face.age, face.gender) for face in read_labels(tmp_path)] == [
        (25, "male"),
        (31, "female"),
        (40, "female"),
        (7, "male"),
    ]
    for bad_age in ("25.5", "nan", "inf"):
        write_labels(tmp_path, f"path,age,gender\na.jpg,{bad_age},male\n")
        with pytest.raises(DataError, match=f"line 2: age '{bad_age}' is not a whole number of years"):
            read_labels(tmp_path)


def test_good_rows_parse(tmp_path: Path) -> None:
    write_labels(tmp_path, "path,age,gender\nimg/a.jpg,7,Female\nimg/b.jpg,70,male\n")
    faces = read_labels(tmp_path)
    assert [(f.age, f.gender, f.gender_index, f.race) for f in faces] == [(7, "female", 0, None), (70, "male", 1, None)]
    assert faces[0].path == tmp_path / "img/a.jpg"
    assert faces[1].line == 3


def test_split_keeps_duplicates_together(utkface: Path) -> None:
    faces = read_labels(utkface)
    train, validation = split_by_md5(faces)
    train_md5 = {face.md5 for face in train}
    assert not train_md5 & {face.md5 for face in validation}
    assert 0.08 < len(validation) / len(faces) < 0.12
    again_train, _ = split_by_md5(list(reversed(faces)))
    assert {f.path for f in again_train} == {f.path for f in train}


def test_every_broken_image_of_a_folder_is_named_in_one_error(tmp_path: Path, utkface: Path) -> None:
    from analyzer.datasets.face_photos import align_photos

    good = read_labels(utkface)[0].path
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:2000])
    broken = [tmp_path / name for name in ("empty.jpg", "text.jpg", "cut.jpg", "gone.jpg")]
    with pytest.raises(DataError) as error:  # one error per run would take a run per broken file to find them
        align_photos([good, *broken, good], 64, "crop")
    message = str(error.value)
    assert message.startswith("4 of 6 images cannot be read: ") and message.endswith("remove their rows")
    assert message.index("empty.jpg") < message.index("text.jpg") < message.index("cut.jpg")  # in row order
    assert "; and 1 more." in message and "gone.jpg" not in message and "\n" not in message
    write_labels(
        tmp_path, "path,age,gender\n" + "".join(f"{name},30,male\n" for name in ("empty.jpg", "a.jpg", "b.jpg"))
    )
    with pytest.raises(DataError, match=r"^2 of 3 images cannot be read: .*a\.jpg: image file not found .*b\.jpg"):
        split_by_md5(read_labels(tmp_path))  # a folder without md5s hashes its files first
