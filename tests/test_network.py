"""Training, export and the model file contract (needs the 'train' extra)."""

import contextlib
import dataclasses
import io
import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from analyzer.backends.base import classify_chips
from analyzer.backends.onnxruntime import OnnxRuntimeBackend
from analyzer.cli import main
from analyzer.commands.train import QUICK_EPOCHS
from analyzer.core.age_groups import BUILTIN_GROUPINGS, FINE_AGE_EDGES
from analyzer.core.model_meta import INPUT_NAME, METADATA_SCHEMA
from analyzer.datasets.face_photos import align_photos
from analyzer.datasets.labels import read_labels
from analyzer.errors import DataError, ModelError
from analyzer.tools.evaluation import agreement, select_split

torch = pytest.importorskip("torch", reason="the 'train' extra is not installed")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, utkface: Path) -> Path:
    run = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", str(utkface), "--out", str(run), "--quick", "--align", "crop"]) == 0
    return run


@pytest.fixture(scope="module")
def quick_model(quick_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("engines") / "quick"
    assert main(["export", "--run", str(quick_run), "--out", str(prefix)]) == 0
    return prefix.with_suffix(".onnx")


def test_quick_training_lowers_the_loss(quick_run: Path) -> None:
    history = json.loads((quick_run / "history.json").read_text())
    epochs = history["epochs"]
    assert len(epochs) == QUICK_EPOCHS  # counted in whole epochs, so a busy box runs the same schedule
    assert epochs[-1]["loss"] < epochs[0]["loss"] - 0.1
    assert history["config"]["input_size"] == 64


def test_a_folder_smaller_than_one_batch_trains_and_a_budget_too_short_is_one_line(
    tmp_path: Path, utkface: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzer.datasets.labels import split_by_md5

    training, validation = split_by_md5(read_labels(utkface))
    rows = [f"{face.path},{face.age},{face.gender},{face.md5}\n" for face in training[:100] + validation[:8]]
    (tmp_path / "labels.csv").write_text("path,age,gender,md5\n" + "".join(rows))  # an operator's first 108 faces
    common = ["train", "--data", str(tmp_path), "--input-size", "64", "--align", "crop"]
    assert main([*common, "--out", str(tmp_path / "run"), "--epochs", "2"]) == 0  # was 0 batches, then a KeyError
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["train_faces"] == 100 and len(history["epochs"]) == 2
    assert all(np.isfinite(epoch["loss"]) for epoch in history["epochs"])
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "short"), "--minutes", "0.0001"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (  # after the progress bars
        "error: --minutes 0.0001 ran out before the first epoch finished; give more minutes, or --epochs N"
    )


def test_photos_without_a_findable_face_are_counted_before_training(tmp_path: Path) -> None:
    import cv2

    from analyzer.train.loop import TrainConfig, train

    rows = []
    for index in range(24):  # walls and floors: what a folder of an operator's camera snapshots may hold
        cv2.imwrite(str(tmp_path / f"{index}.jpg"), np.full((120, 120, 3), 40 + 8 * index, np.uint8))
        side = "00000000" if index < 6 else "ffffffff"  # md5s that put 6 on the validation side
        rows.append(f"{index}.jpg,30,male,{side}{index:024x}\n")
    (tmp_path / "labels.csv").write_text("path,age,gender,md5\n" + "".join(rows))
    with pytest.raises(DataError, match=r"a face was found in only 0 of 18 training and 0 of 6 validation photos"):
        train(TrainConfig(data=str(tmp_path), input_size=64, epochs=1, align="detect"), tmp_path / "run")


def test_export_round_trip_matches_pytorch(quick_run: Path, quick_model: Path) -> None:
    from analyzer.train.loop import load_checkpoint
    from analyzer.train.model import ProbabilityModel

    net, _ = load_checkpoint(quick_run)
    inputs = np.random.default_rng(3).normal(size=(5, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        age, gender = ProbabilityModel(net).eval()(torch.from_numpy(inputs))
    result = OnnxRuntimeBackend(quick_model).infer(inputs)
    assert np.allclose(result.age_probs, age.numpy(), atol=1e-5)
    assert np.allclose(result.gender_probs, gender.numpy(), atol=1e-5)
    assert np.allclose(result.age_probs.sum(axis=1), 1.0, atol=1e-5)
    # dynamic batch: one face and 33 faces both work
    assert len(OnnxRuntimeBackend(quick_model).infer(inputs[:1])) == 1
    assert len(OnnxRuntimeBackend(quick_model).infer(np.repeat(inputs, 7, axis=0)[:33])) == 33


def test_metadata_reads_back(quick_model: Path) -> None:
    metadata = OnnxRuntimeBackend(quick_model).metadata
    assert metadata.input_size == 64
    assert metadata.age_bin_edges == FINE_AGE_EDGES
    assert metadata.gender_labels == ("female", "male")
    assert metadata.precision == "fp32"
    assert "UTKFace" in metadata.training_data
    fp16 = OnnxRuntimeBackend(quick_model.with_name("quick.fp16.onnx")).metadata
    assert fp16.precision == "fp16" and fp16.input_size == 64
    props = {p.key: p.value for p in onnx.load(str(quick_model)).metadata_props}
    assert props["footfall.schema"] == METADATA_SCHEMA
    assert json.loads(props["footfall.normalization"])["formula"] == "(pixel / 255 - mean) / std"


def test_fp16_file_really_is_fp16(quick_model: Path) -> None:
    model = onnx.load(str(quick_model.with_name("quick.fp16.onnx")))
    types = {init.data_type for init in model.graph.initializer if len(init.dims) > 1}
    assert types == {onnx.TensorProto.FLOAT16}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda props: props.pop("footfall.age_bin_edges"), "footfall.age_bin_edges is missing"),
        (lambda props: props.update({"footfall.schema": "other"}), "not a footfall analyzer model"),
        (lambda props: props.update({"footfall.gender_labels": '["a", "b"]'}), "gender_labels must be"),
        (lambda props: props.update({"footfall.input": '{"size": 80}'}), "does not match metadata input size"),
        (lambda props: props.update({"footfall.normalization": "{nope"}), "not valid JSON"),
    ],
)
def test_inconsistent_metadata_is_a_clear_error(quick_model: Path, tmp_path: Path, change, message: str) -> None:
    model = onnx.load(str(quick_model))
    props = {p.key: p.value for p in model.metadata_props}
    change(props)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(ModelError, match=message) as error:
        OnnxRuntimeBackend(broken)
    assert "broken.onnx" in str(error.value)


def test_missing_and_corrupt_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match=r"is a folder; pass the \.onnx file of a network$"):
        OnnxRuntimeBackend(tmp_path)  # was "model file not found" for a folder that is there
    for name in ("mine.onnx", "mine.fp16.onnx", "mine.likeness.onnx"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ModelError, match=r"is a folder; pass one of its networks: \S+/mine\.onnx$"):
        OnnxRuntimeBackend(tmp_path)  # the FP16 twin and the tracker's likeness trunk are not networks to pass
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(ModelError, match=r"corrupt\.onnx: not a loadable ONNX model"):
        OnnxRuntimeBackend(corrupt)


def test_shipped_fp16_agrees_with_fp32_on_validation_faces(shipped_model: Path, utkface: Path) -> None:
    faces = select_split(read_labels(utkface), "validation")
    fp32 = OnnxRuntimeBackend(shipped_model)
    fp16 = OnnxRuntimeBackend(shipped_model.with_name("agegender.fp16.onnx"))
    chips = align_photos([face.path for face in faces], fp32.metadata.input_size, "crop").chips
    reference = classify_chips(fp32, chips)
    reduced = classify_chips(fp16, chips)
    result = agreement(
        reference.age_probs,
        reference.gender_probs,
        reduced.age_probs,
        reduced.gender_probs,
        FINE_AGE_EDGES,
        BUILTIN_GROUPINGS["fairface9"],
    )
    assert result["gender"] >= 0.995
    assert result["fairface9"] >= 0.99


@pytest.fixture(scope="module")
def other_run(quick_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second run unlike the quick one: every weight moved a little, the heads' biases by a lot.

    Its probabilities differ whatever the quick run learnt, so mixing up the two runs shows.
    """
    from analyzer.train.loop import CHECKPOINT

    other = tmp_path_factory.mktemp("other")
    stored = torch.load(quick_run / CHECKPOINT, map_location="cpu", weights_only=False)
    generator = torch.Generator().manual_seed(1)

    def moved(name: str, value: torch.Tensor) -> torch.Tensor:
        if name.endswith("head.bias"):
            return value + torch.randn(value.shape, generator=generator)
        if value.is_floating_point() and value.ndim > 1:
            return value + 0.1 * value.std() * torch.randn(value.shape, generator=generator)
        return value

    stored["state_dict"] = {name: moved(name, value) for name, value in stored["state_dict"].items()}
    torch.save(stored, other / CHECKPOINT)
    return other


@pytest.fixture(scope="module")
def exported_pair(quick_run: Path, other_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The quick and the other run exported as one ensemble, and what ``analyzer export`` printed."""
    prefix = tmp_path_factory.mktemp("pair") / "pair"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", "--run", str(quick_run), "--run", str(other_run), "--out", str(prefix)]) == 0
    return prefix.with_suffix(".onnx"), printed.getvalue()


@pytest.fixture(scope="module")
def pair_export(exported_pair: tuple[Path, str]) -> Path:
    return exported_pair[0]


def test_an_ensemble_export_averages_its_runs(
    quick_run: Path, other_run: Path, exported_pair: tuple[Path, str]
) -> None:
    from analyzer.train.loop import load_checkpoint
    from analyzer.train.model import ProbabilityModel, model_size

    exported, printed = exported_pair
    parameters, macs = model_size(load_checkpoint(quick_run)[0], 64)
    assert f"2 x {parameters / 1e6:.2f} M parameters, {macs / 1e6:.0f} M multiply-adds" in printed
    inputs = np.random.default_rng(4).normal(size=(4, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        members = [
            ProbabilityModel(load_checkpoint(run)[0]).eval()(torch.from_numpy(inputs)) for run in (quick_run, other_run)
        ]
    result = OnnxRuntimeBackend(exported).infer(inputs)
    expected_age = (members[0][0] + members[1][0]).numpy() / 2
    assert np.allclose(result.age_probs, expected_age, atol=1e-5)
    assert not np.allclose(result.age_probs, members[0][0].numpy(), atol=1e-4)
    assert "ensemble of 2 runs" in OnnxRuntimeBackend(exported).metadata.training_data


def test_export_writes_the_trackers_face_likeness_model(quick_run: Path, quick_model: Path) -> None:
    from analyzer.core.preprocess import template_keypoints
    from analyzer.pipeline.appearance import LIKENESS_SIZE, FaceLikeness
    from analyzer.train.loop import load_checkpoint

    likeness_path = quick_model.with_name("quick.likeness.onnx")
    likeness = FaceLikeness(likeness_path)
    assert likeness.input_size == 64
    net, config = load_checkpoint(quick_run)
    faces = np.random.default_rng(5).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    vectors = np.concatenate(
        [likeness.describe(face, template_keypoints(64, 64)[None]) for face in faces]
    )  # each "frame" is an aligned chip already, so the cut is the identity
    from analyzer.core.preprocess import chips_to_input

    with torch.no_grad():
        trunk = net.pooled(torch.from_numpy(chips_to_input(faces, config.normalization))).numpy()
    expected = trunk / np.linalg.norm(trunk, axis=1, keepdims=True)
    assert vectors.shape == (3, LIKENESS_SIZE)
    assert np.allclose(vectors, expected, atol=1e-4)


@pytest.fixture(scope="module")
def masked_run(quick_run: Path, utkface: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick run fine-tuned with ``--head-outline 2``: everything outside an inscribed ellipse masked."""
    run = tmp_path_factory.mktemp("masked")
    args = ["train", "--data", str(utkface), "--out", str(run), "--quick", "--epochs", "2", "--align", "crop"]
    assert main([*args, "--init", str(quick_run), "--head-outline", "2"]) == 0
    return run


def test_fine_tuning_starts_from_the_given_run(quick_run: Path, masked_run: Path) -> None:
    scratch = json.loads((quick_run / "history.json").read_text())["epochs"]
    tuned = json.loads((masked_run / "history.json").read_text())
    assert len(tuned["epochs"]) == 2  # --epochs shortens --quick
    # same seed and data: only the starting weights (and the mask) differ, and they are the trained ones
    assert tuned["epochs"][0]["loss"] < scratch[0]["loss"] - 0.1
    assert tuned["config"]["init"] == str(quick_run) and tuned["config"]["head_outline"] == 2


def test_fine_tuning_a_run_of_another_size_or_a_broken_one_is_one_line(
    quick_run: Path, utkface: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a short budget, so that if the check were missing the test fails in a minute instead of training for 50
    args = ["train", "--data", str(utkface), "--out", str(tmp_path / "r"), "--minutes", "0.05", "--init"]
    assert main([*args, str(quick_run), "--input-size", "80"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained at 64 px" in err and "--input-size 64" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.pt").write_bytes(b"not a checkpoint")
    assert main([*args, str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a checkpoint of `analyzer train`" in err
    # an exported file where export wants the run folder: the folder is what is missing, not a checkpoint in it
    assert main(["export", "--run", str(broken / "model.pt"), "--out", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {broken / 'model.pt'} is a file; give the run folder that `analyzer train --out` wrote\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--epochs", "-3"], "--epochs -3 is negative"),
        (["--input-size", "200"], "--input-size 200 is outside 32..160"),
        (["--head-outline", "0.5"], "--head-outline 0.5: give a superellipse power of 1 or more"),
        (["--head-outline", "-2"], "--head-outline -2: give a superellipse power of 1 or more"),
        (["--backdrop-consistency", "-1"], "--backdrop-consistency -1 is negative"),
        (["--distill-weight", "-0.5"], "--distill-weight -0.5 is negative"),
        (["--distill-from", "t.onnx", "--backdrop-consistency", "12"], "pick one"),
        (["--distill-member", "1"], "give --distill-from too"),
        (["--minutes", "0"], "--minutes 0: give a training time above 0, or --epochs N"),
        (["--learning-rate", "-1"], "--learning-rate must be above 0"),
        (["--gender-weight", "-1"], "--gender-weight 0 or more"),
        (["--balance", "5"], "--balance 5 is outside 0 (faces as they come) .. 1"),
    ],
)
def test_a_wrong_training_setting_is_one_line_before_any_work(
    utkface: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    assert main(["train", "--data", str(utkface), "--out", str(tmp_path / "r"), *option]) == 2  # a usage error
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "r").exists()


def _logits(net: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        age, gender = net(inputs)
    return torch.cat([age, gender], dim=1)


def test_an_export_gives_back_each_of_its_runs(quick_run: Path, other_run: Path, pair_export: Path) -> None:
    from analyzer.train.from_export import networks_from_export
    from analyzer.train.loop import load_checkpoint

    nets, input_size = networks_from_export(pair_export, (32, 64, 128, 256), (1, 2, 2, 1))
    assert input_size == 64 and len(nets) == 2
    inputs = torch.from_numpy(np.random.default_rng(6).normal(size=(4, 3, 64, 64)).astype(np.float32))
    for rebuilt, run in zip(nets, (quick_run, other_run), strict=True):
        original = load_checkpoint(run)[0].eval()
        assert torch.allclose(_logits(rebuilt.eval(), inputs), _logits(original, inputs), atol=1e-4)
    assert not torch.allclose(_logits(nets[0], inputs), _logits(nets[1], inputs), atol=1e-2)


def test_unfolded_batchnorm_trains_from_where_the_export_is(pair_export: Path, utkface: Path) -> None:
    from analyzer.core.preprocess import chips_to_input
    from analyzer.train.from_export import networks_from_export, unfold_batchnorm

    net = networks_from_export(pair_export, (32, 64, 128, 256), (1, 2, 2, 1))[0][1]
    faces = read_labels(utkface)[:48]
    chips = align_photos([face.path for face in faces], 64, "crop").chips
    inputs = torch.from_numpy(chips_to_input(chips, OnnxRuntimeBackend(pair_export).metadata.normalization))
    exported = _logits(net.eval(), inputs)

    def in_training(module: torch.nn.Module) -> torch.Tensor:
        module.train()
        module.dropout.eval()  # dropout aside, train mode differs from eval only in BatchNorm's statistics
        logits = _logits(module, inputs)
        module.eval()
        return logits

    # folded, train-mode BatchNorm renormalises every layer: training would start far from the export
    assert (in_training(net) - exported).abs().max() > 0.5
    unfold_batchnorm(net, inputs)
    assert torch.allclose(_logits(net, inputs), exported, atol=1e-4)
    assert torch.allclose(in_training(net), exported, atol=1e-3)


def test_fine_tuning_starts_from_an_exported_run(
    quick_run: Path, pair_export: Path, utkface: Path, tmp_path: Path
) -> None:
    from analyzer.train.augment import AUGMENTATIONS

    tuned = tmp_path / "tuned"
    args = ["train", "--data", str(utkface), "--out", str(tuned), "--quick", "--epochs", "2", "--align", "crop"]
    assert main([*args, "--init", str(pair_export), "--init-member", "0", "--augment", "entrance"]) == 0
    scratch = json.loads((quick_run / "history.json").read_text())["epochs"]
    history = json.loads((tuned / "history.json").read_text())
    assert history["epochs"][0]["loss"] < scratch[0]["loss"] - 0.1
    assert history["config"]["init"] == str(pair_export) and history["config"]["init_member"] == 0
    # the recipe is saved with the run, and it is a different one
    assert history["config"]["augment"] == "entrance" and AUGMENTATIONS["entrance"] != AUGMENTATIONS["camera"]


@pytest.mark.parametrize(
    ("init", "extra", "message"),
    [
        ("pair.onnx", ["--init-member", "2"], "holds 2 runs; pick 0..1"),
        ("pair.onnx", ["--input-size", "80"], "exported at 64 px"),
        ("pair.fp16.onnx", [], "use the FP32 .onnx"),
        ("pair.likeness.onnx", [], "not the age and gender network"),
        ("absent.onnx", [], "no such file"),
    ],
)
def test_a_wrong_export_to_start_from_is_one_line(
    pair_export: Path,
    utkface: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    init: str,
    extra: list[str],
    message: str,
) -> None:
    args = ["train", "--data", str(utkface), "--out", str(tmp_path / "r"), "--minutes", "0.05"]
    capsys.readouterr()
    assert main([*args, "--input-size", "64", "--init", str(pair_export.with_name(init)), *extra]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_head_outline_hides_the_chips_backdrop_from_the_exported_networks(
    quick_run: Path, masked_run: Path, quick_model: Path, tmp_path: Path
) -> None:
    import onnxruntime

    from analyzer.train.from_export import networks_from_export
    from analyzer.train.loop import load_checkpoint
    from analyzer.train.model import HeadOutline

    prefix = tmp_path / "masked"
    assert main(["export", "--run", str(masked_run), "--out", str(prefix)]) == 0
    rng = np.random.default_rng(7)
    chips = rng.normal(size=(3, 3, 64, 64)).astype(np.float32)
    outside = HeadOutline.superellipse(64, 2.0).mask.numpy()[0, 0] == 0
    assert 0.15 < outside.mean() < 0.3  # the corners beyond an inscribed ellipse
    new_backdrop, new_face = chips.copy(), chips.copy()
    new_backdrop[:, :, outside] = rng.normal(size=new_backdrop[:, :, outside].shape)
    new_face[:, :, 24:40, 24:40] = rng.normal(size=(3, 3, 16, 16))

    def outputs(path: Path, inputs: np.ndarray) -> np.ndarray:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        results = session.run(None, {INPUT_NAME: inputs})
        return np.concatenate([output.reshape(len(inputs), -1) for output in results], axis=1)

    for path in (prefix.with_suffix(".onnx"), prefix.with_name("masked.likeness.onnx")):
        assert np.allclose(outputs(path, chips), outputs(path, new_backdrop), atol=1e-6), path.name
        assert not np.allclose(outputs(path, chips), outputs(path, new_face), atol=1e-4), path.name
    assert not np.allclose(outputs(quick_model, chips), outputs(quick_model, new_backdrop), atol=1e-4)
    # started from the export (``--init masked.onnx``), the network keeps its mask
    rebuilt = networks_from_export(prefix.with_suffix(".onnx"), (32, 64, 128, 256), (1, 2, 2, 1))[0][0]
    assert torch.equal(rebuilt.outline.mask, load_checkpoint(masked_run)[0].outline.mask)
    # an ensemble of an unmasked and a masked run gives each back as it was trained
    mixed = tmp_path / "mixed"
    assert main(["export", "--run", str(quick_run), "--run", str(masked_run), "--out", str(mixed)]) == 0
    unmasked, masked = networks_from_export(mixed.with_suffix(".onnx"), (32, 64, 128, 256), (1, 2, 2, 1))[0]
    assert isinstance(unmasked.outline, torch.nn.Identity)
    assert torch.equal(masked.outline.mask, load_checkpoint(masked_run)[0].outline.mask)


class _RebootError(Exception):
    """Stands for the power cut that stops a run between two epochs."""


_STOPPED_RUN_MINUTES = 0.12  # a few epochs of 600 faces; the resumed run trains out the rest


def _stopped_run(utkface: Path, out: Path) -> Path:
    """A short run (seed 7, ``_STOPPED_RUN_MINUTES``) stopped after its first epoch; its resume file."""
    from analyzer.train.loop import RESUME, TrainConfig, train

    config = TrainConfig(
        data=str(utkface), input_size=64, minutes=_STOPPED_RUN_MINUTES, subset=600, align="crop", seed=7
    )
    epochs_seen = []

    def stop_after_one_epoch(line: str) -> None:
        if line.startswith("epoch"):
            epochs_seen.append(line)
            if len(epochs_seen) == 1:
                raise _RebootError

    with pytest.raises(_RebootError):
        train(config, out, log=stop_after_one_epoch)
    assert (out / RESUME).is_file() and not (out / "model.pt").exists()
    return out / RESUME


def test_a_stopped_run_resumes_from_its_last_epoch(
    utkface: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resume_file = _stopped_run(utkface, tmp_path)
    before = torch.load(resume_file, weights_only=False)["history"]
    capsys.readouterr()  # the stopped run's own output (alignment progress on a box without the cache)

    args = ["train", "--data", str(utkface), "--out", str(tmp_path), "--quick", "--align", "crop"]
    assert main(args) == 1  # the same command again does not wipe the epochs done
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unfinished run" in err and "--resume" in err
    assert main(["export", "--run", str(tmp_path), "--out", str(tmp_path / "early")]) == 1
    assert "the run has not finished (no model.pt yet); finish it with" in capsys.readouterr().err  # not "train first"

    assert main([*args, "--resume"]) == 0
    summary = json.loads((tmp_path / "history.json").read_text())
    epochs = summary["epochs"]
    assert summary["config"]["seed"] == 7  # the settings the run was started with, not this command's
    assert epochs[:1] == before and len(epochs) > 1
    assert [record["epoch"] for record in epochs] == list(range(1, len(epochs) + 1))
    assert all(later["minutes"] > earlier["minutes"] for earlier, later in itertools.pairwise(epochs))
    assert epochs[-1]["minutes"] < _STOPPED_RUN_MINUTES + 0.2  # the budget counts the minutes before the stop
    assert (tmp_path / "model.pt").is_file() and not resume_file.exists()

    assert main([*args, "--resume"]) == 1
    assert "the run has finished" in capsys.readouterr().err


def test_a_run_stopped_as_its_budget_ran_out_keeps_its_last_epochs_weights(utkface: Path, tmp_path: Path) -> None:
    from analyzer.train.loop import CHECKPOINT

    resume_file = _stopped_run(utkface, tmp_path)
    state = torch.load(resume_file, weights_only=False)
    state["seconds"] = _STOPPED_RUN_MINUTES * 60  # the power went as the last epoch ended, before model.pt was written
    torch.save(state, resume_file)
    args = ["train", "--data", str(utkface), "--out", str(tmp_path), "--align", "crop", "--resume"]
    assert main(args) == 0
    finished = torch.load(tmp_path / CHECKPOINT, weights_only=False)["state_dict"]
    assert finished.keys() == state["state_dict"].keys()
    assert all(torch.equal(finished[name], state["state_dict"][name]) for name in finished)
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 1


def test_jensen_shannon_is_the_textbook_divergence_of_the_two_predictions() -> None:
    from scipy.spatial.distance import jensenshannon

    from analyzer.train.loop import jensen_shannon

    rng = np.random.default_rng(8)
    logits_a = torch.from_numpy(rng.normal(0, 3, (5, 101)))
    logits_b = torch.from_numpy(rng.normal(0, 3, (5, 101)))
    probs_a, probs_b = torch.softmax(logits_a, 1).numpy(), torch.softmax(logits_b, 1).numpy()
    expected = np.mean([jensenshannon(a, b) ** 2 for a, b in zip(probs_a, probs_b, strict=True)])  # natural log
    assert float(jensen_shannon(logits_a, logits_b)) == pytest.approx(expected, rel=1e-6)
    assert float(jensen_shannon(logits_b, logits_a)) == pytest.approx(expected, rel=1e-6)
    assert float(jensen_shannon(logits_a, logits_a)) == pytest.approx(0.0, abs=1e-12)
    certain = torch.tensor([[30.0, -30.0]], dtype=torch.float64)
    assert float(jensen_shannon(certain, -certain)) == pytest.approx(np.log(2.0), rel=1e-6)  # opposite and sure


def test_distillation_is_the_textbook_divergence_from_the_teachers_answer() -> None:
    from scipy.special import rel_entr

    from analyzer.train.loop import distillation

    rng = np.random.default_rng(10)
    student = torch.from_numpy(rng.normal(0, 3, (5, 101)))
    teacher = torch.softmax(torch.from_numpy(rng.normal(0, 3, (5, 101))), 1)
    teacher[0] = torch.nn.functional.one_hot(torch.tensor(7), 101)  # a sure teacher: zeros count for nothing
    expected = rel_entr(teacher.numpy(), torch.softmax(student, 1).numpy()).sum(axis=1).mean()
    assert float(distillation(student, teacher)) == pytest.approx(expected, rel=1e-6)
    assert float(distillation(torch.log(teacher[1:]), teacher[1:])) == pytest.approx(0.0, abs=1e-12)
    assert float(distillation(student, teacher)) > 0.5


def test_a_teacher_that_cannot_teach_this_run_is_one_line_before_any_work(
    pair_export: Path, utkface: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", str(utkface), "--out", str(tmp_path / "r"), "--minutes", "0.05", "--distill-from"]
    assert main([*args, str(tmp_path / "missing.onnx"), "--input-size", "64"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--distill-from" in err and "missing.onnx: no such file" in err
    assert main([*args, str(pair_export), "--input-size", "80"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exported at 64 px" in err and "--input-size 64" in err
    assert main([*args, str(tmp_path), "--input-size", "64"]) == 1  # a run folder is not a teacher
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an .onnx file" in err
    assert not (tmp_path / "r").exists()


def test_one_run_of_the_teacher_file_teaches_when_asked(
    quick_run: Path, other_run: Path, pair_export: Path, utkface: Path
) -> None:
    # a run's own self as its teacher keeps the runs of a new ensemble apart; the file's
    # second run must be the other run, mirror-averaged, and the default the mean of both
    from analyzer.train.loop import TrainConfig, _teacher, load_checkpoint
    from analyzer.train.model import ProbabilityModel

    chips = torch.from_numpy(np.random.default_rng(8).normal(size=(4, 3, 64, 64)).astype(np.float32))
    config = TrainConfig(data=str(utkface), input_size=64, distill_from=str(pair_export))
    with torch.no_grad():
        runs = [ProbabilityModel(load_checkpoint(run)[0]).eval()(chips) for run in (quick_run, other_run)]
        second = _teacher(dataclasses.replace(config, distill_member=1))(chips)
        both = _teacher(config)(chips)
    assert torch.allclose(second[1], runs[1][1], atol=1e-5) and torch.allclose(second[0], runs[1][0], atol=1e-5)
    assert not torch.allclose(second[0], runs[0][0], atol=1e-4)
    assert torch.allclose(both[0], (runs[0][0] + runs[1][0]) / 2, atol=1e-5)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--distill-member", "2"], "--distill-member 2: "),
        (["--distill-member", "-3"], "--distill-member -3: "),
    ],
)
def test_a_teacher_run_the_file_lacks_is_one_line(
    pair_export: Path,
    utkface: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    args = ["train", "--data", str(utkface), "--out", str(tmp_path / "r"), "--minutes", "0.05", "--input-size", "64"]
    assert main([*args, "--distill-from", str(pair_export), *extra]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "holds 2 runs; pick 0..1" in err
    assert not (tmp_path / "r").exists()


def test_backdrop_pairs_batch_the_photo_chips_then_the_painted_ones() -> None:
    from analyzer.core.preprocess import Normalization, chips_to_input
    from analyzer.train.augment import AUGMENTATIONS
    from analyzer.train.dataset import BackdropPairs, BatchCollator, FaceSet

    rng = np.random.default_rng(9)
    faces = FaceSet(
        chips=rng.integers(0, 256, (3, 80, 80, 3), dtype=np.uint8),
        ages=np.array([4, 30, 71]),
        genders=np.array([0, 1, 1]),
        races=[None] * 3,
    )
    pairs = BackdropPairs(faces, 64, AUGMENTATIONS["entrance"], seed=5)
    items = [pairs[index] for index in range(3)]
    inputs, ages, genders = BatchCollator(Normalization())(items)
    photos = np.stack([pair[0] for pair, _, _ in items])
    painted = np.stack([pair[1] for pair, _, _ in items])
    assert np.array_equal(inputs.numpy(), chips_to_input(np.concatenate([photos, painted]), Normalization()))
    assert ages.tolist() == [4, 30, 71] and genders.tolist() == [0, 1, 1]
    again = BackdropPairs(faces, 64, AUGMENTATIONS["entrance"], seed=5)[1][0]
    assert np.array_equal(again, items[1][0])  # an item depends only on (seed, epoch, index)
