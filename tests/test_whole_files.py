import os
from pathlib import Path

import pytest

from analyzer.service.atomic_files import whole_file


def test_a_file_is_replaced_only_when_its_writer_finishes(tmp_path: Path) -> None:
    resume = tmp_path / "resume.pt"
    resume.write_text("epoch 3")
    with pytest.raises(KeyboardInterrupt), whole_file(resume) as partial:  # killed while saving epoch 4
        partial.write_text("epoch 4, half of it")
        raise KeyboardInterrupt
    assert resume.read_text() == "epoch 3" and sorted(tmp_path.iterdir()) == [resume]
    with whole_file(resume) as partial:
        partial.write_text("epoch 4")
    assert resume.read_text() == "epoch 4" and sorted(tmp_path.iterdir()) == [resume]


def test_a_replaced_file_keeps_its_permissions(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("{}")
    report.chmod(0o640)  # the operator let the dashboard's group read it, and nobody else
    with whole_file(report) as partial:
        partial.write_text('{"visits": []}')
    assert report.stat().st_mode & 0o777 == 0o640 and report.read_text() == '{"visits": []}'
    fresh = tmp_path / "new.json"
    with whole_file(fresh) as partial:
        partial.write_text("{}")
    assert fresh.read_text() == "{}"


def test_the_new_file_reaches_the_disk_before_its_name_and_the_name_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "report.json"
    report.write_text("yesterday")
    synced: list[tuple[str, str]] = []  # (what was synced, what report.json held at that moment)
    real_fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{descriptor}"), report.read_text()))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    with whole_file(report) as partial:
        partial.write_text("today")
    assert synced == [(str(partial), "yesterday"), (str(tmp_path), "today")]
