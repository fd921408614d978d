import pytest

from analyzer.cli import build_parser, main

COMMANDS = [name for name in build_parser()._subparsers._group_actions[0].choices]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"$ analyzer {command}" in out


def test_train_rejects_silly_input_size(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--input-size", "8"]) == 2
    assert capsys.readouterr().err.startswith("error: --input-size 8 is outside")


def test_evaluate_on_missing_folder_is_one_line(tmp_path, shipped_model, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", str(shipped_model), "--data", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "labels.csv: not found" in err
