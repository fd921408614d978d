from pathlib import Path

import pytest

from analyzer.whole_files import whole_file


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
