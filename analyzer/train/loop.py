"""``analyzer train``: fit the age and gender network on a labelled folder.

The schedule is measured in wall-clock time, not epochs: warm-up then cosine
decay over ``minutes``, so a run ends on time on whatever box it runs on and
always finishes its learning-rate decay. After every epoch the run's state is
saved to ``resume.pt``, so a run stopped by a reboot or a killed session
continues with ``--resume`` from its last epoch instead of starting over.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from analyzer.core.age_groups import BUILTIN_GROUPINGS, FINE_AGE_EDGES
from analyzer.core.preprocess import Normalization, chips_to_input
from analyzer.datasets.labels import read_labels, split_by_md5
from analyzer.datasets.scores import attribute_report
from analyzer.errors import ConfigError, DataError
from analyzer.service.atomic_files import whole_file
from analyzer.service.console import how_many, progress_bar
from analyzer.service.cores import usable_cores
from analyzer.train.augment import AUGMENTATIONS
from analyzer.train.dataset import AugmentedChips, BackdropPairs, BatchCollator, FaceSet, TeacherViews, load_face_set
from analyzer.train.from_export import is_export, networks_from_export, unfold_batchnorm
from analyzer.train.model import AgeGenderNet, HeadOutline, ProbabilityModel, exportable_model

CHECKPOINT = "model.pt"
HISTORY = "history.json"
CALIBRATION_CHIPS = 1024  # augmented training chips that set the BatchNorms of a network started from an export
RESUME = "resume.pt"  # the unfinished run's state after its last whole epoch; removed when the run ends


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (saved with the checkpoint)."""

    data: str
    input_size: int = 80
    minutes: float = 50.0
    epochs: int = 0  # > 0: the schedule spans this many whole epochs instead of ``minutes`` (same work on any box)
    batch_size: int = 128
    learning_rate: float = 0.1
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.03
    gender_weight: float = 1.0
    age_l1_weight: float = 0.05
    label_smoothing: float = 0.05
    validation_fraction: float = 0.1
    align: str = "auto"
    seed: int = 0
    subset: int = 0
    workers: int = 1
    balance: float = 0.5  # sample weight 1/frequency**balance of the face's fairface9 group (0 = as is, 1 = equal)
    init: str = ""  # run folder or exported .onnx whose weights start this run (fine-tuning); "" = random weights
    init_member: int = 0  # which run of an exported ensemble ``init`` starts from
    augment: str = "camera"  # a recipe of analyzer.train.augment.AUGMENTATIONS
    head_outline: float = 0.0  # > 0: mask the chip outside a superellipse of this power (2 = ellipse); 0: keep init's
    backdrop_consistency: float = 0.0  # > 0: each face on two backdrops; weight of their predictions' divergence
    distill_from: str = ""  # exported .onnx whose answers on each face's clean chip the camera chip learns; "" = none
    distill_weight: float = 1.0  # weight of the divergence from ``distill_from``'s answers
    distill_member: int = -1  # which run of ``distill_from`` teaches; -1 = the whole ensemble
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (1, 2, 2, 1)
    normalization: Normalization = field(default_factory=Normalization)

    @property
    def source_size(self) -> int:
        """Side of the cached source chips that augmentation cuts from.

        A little larger than the input, so the jittered cut rarely needs the
        slower area-averaging path and the chips stay small in memory.
        """
        return round(self.input_size * 1.25)


def age_targets(ages: torch.Tensor, bin_values: torch.Tensor) -> torch.Tensor:
    """Soft labels: a Gaussian over the fine bins, wider for older faces.

    Age labels of adults are less certain than of children (a 60-year-old may
    look 50 or 70), so the spread grows with age: sigma = 1 + 0.05 * age.
    """
    sigma = 1.0 + 0.05 * ages.float()
    logits = -0.5 * ((bin_values[None, :] - ages[:, None].float()) / sigma[:, None]) ** 2
    return torch.softmax(logits, dim=1)


def jensen_shannon(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean Jensen-Shannon divergence between two batches of predicted distributions.

    AugMix's consistency loss (Hendrycks et al., ICLR 2020): zero when both
    views of a face get the same prediction, at most log 2, and symmetric, so
    neither view is the teacher.
    """
    log_a, log_b = torch.log_softmax(logits_a, dim=1), torch.log_softmax(logits_b, dim=1)
    log_mixture = torch.logsumexp(torch.stack([log_a, log_b]), dim=0) - math.log(2.0)
    divergence_a = (log_a.exp() * (log_a - log_mixture)).sum(dim=1)
    divergence_b = (log_b.exp() * (log_b - log_mixture)).sum(dim=1)
    return 0.5 * (divergence_a + divergence_b).mean()


def distillation(logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Mean KL divergence of the student's prediction from the teacher's, KL(teacher || student).

    Hinton et al.'s knowledge distillation at temperature 1: the teacher's
    whole distribution is the target, so it carries how unsure the teacher is.
    """
    log_student = torch.log_softmax(logits, dim=1)
    return (torch.xlogy(teacher_probs, teacher_probs) - teacher_probs * log_student).sum(dim=1).mean()


def _teacher(config: TrainConfig) -> nn.Module | None:
    """The frozen exported model ``--distill-from`` names, or None."""
    if not config.distill_from:
        return None
    if not is_export(config.distill_from):
        raise DataError(f"--distill-from {config.distill_from}: not an .onnx file; pass one `analyzer export` wrote")
    nets = _runs_of_export(config.distill_from, "--distill-from", config)
    if config.distill_member != -1:
        nets = [_member(nets, config.distill_member, "--distill-member", config.distill_from)]
    teacher = exportable_model(nets)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def _balanced_weights(ages: np.ndarray, power: float) -> torch.Tensor:
    """Sampling weights 1/frequency**power of the age group: rare ages seen more (0.5: not equally often)."""
    groups = BUILTIN_GROUPINGS["fairface9"].indices_of(ages)
    counts = np.bincount(groups, minlength=9).astype(np.float64)
    return torch.as_tensor(counts[groups] ** -power, dtype=torch.double)


def _learning_rate(config: TrainConfig, progress: float) -> float:
    if progress < config.warmup_fraction:
        return config.learning_rate * max(progress / config.warmup_fraction, 0.02)
    decay = (progress - config.warmup_fraction) / (1 - config.warmup_fraction)
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * min(decay, 1.0)))


@torch.no_grad()
def predict(
    model: ProbabilityModel, faces: FaceSet, normalization: Normalization, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Age and gender probabilities for aligned chips, as the exported model computes them."""
    model.eval()
    ages, genders = [], []
    for start in range(0, len(faces.chips), batch):
        inputs = torch.from_numpy(chips_to_input(faces.chips[start : start + batch], normalization))
        age, gender = model(inputs.contiguous(memory_format=torch.channels_last))
        ages.append(age.numpy())
        genders.append(gender.numpy())
    return np.concatenate(ages), np.concatenate(genders)


def validation_metrics(model: ProbabilityModel, faces: FaceSet, config: TrainConfig) -> dict[str, float]:
    """Gender accuracy, MAE and fairface9 accuracy on the validation split."""
    age_probs, gender_probs = predict(model, faces, config.normalization)
    edges = list(FINE_AGE_EDGES)
    report = attribute_report(
        faces.ages,
        faces.genders,
        age_probs,
        gender_probs,
        edges,
        np.asarray(edges),
        [BUILTIN_GROUPINGS["fairface9"]],
    )
    fairface = report["groups"]["fairface9"]  # type: ignore[index]
    return {
        "gender": float(report["gender_accuracy"]),  # type: ignore[arg-type]
        "mae": float(report["age_mae"]),  # type: ignore[arg-type]
        "ff9": float(fairface["exact"]),
        "ff9_1": float(fairface["within_one"]),
    }


def _network(config: TrainConfig, state_dict: dict[str, torch.Tensor] | None = None) -> AgeGenderNet:
    """The architecture ``config`` names, with ``state_dict``'s weights when given (else random ones)."""
    outline = HeadOutline(state_dict["outline.mask"]) if state_dict and "outline.mask" in state_dict else None
    net = AgeGenderNet(len(FINE_AGE_EDGES), widths=config.widths, blocks=config.blocks, outline=outline)
    if state_dict is not None:
        net.load_state_dict(state_dict)
    return net


def _starting_network(config: TrainConfig) -> AgeGenderNet:
    """The initial weights, masked with ``--head-outline`` when given (else a fine-tune keeps its mask)."""
    net = _initial_weights(config)
    if config.head_outline > 0:
        net.outline = HeadOutline.superellipse(config.input_size, config.head_outline)
    return net.train()


def _initial_weights(config: TrainConfig) -> AgeGenderNet:
    """Random weights, or a finished run's weights to fine-tune (same input size and architecture)."""
    if not config.init:
        return _network(config)
    if is_export(config.init):
        return _exported_network(config)
    net, trained = load_checkpoint(Path(config.init))
    if (trained.input_size, trained.widths, trained.blocks) != (config.input_size, config.widths, config.blocks):
        raise DataError(
            f"--init {config.init}: trained at {trained.input_size} px with widths {list(trained.widths)} and "
            f"blocks {list(trained.blocks)}, this run asks for {config.input_size} px, {list(config.widths)}, "
            f"{list(config.blocks)}; pass --input-size {trained.input_size} or train from scratch"
        )
    return net


def _exported_network(config: TrainConfig) -> AgeGenderNet:
    """One run of an exported file (its BatchNorms still folded: see ``unfold_batchnorm``)."""
    return _member(_runs_of_export(config.init, "--init", config), config.init_member, "--init-member", config.init)


def _runs_of_export(path: str, option: str, config: TrainConfig) -> list[AgeGenderNet]:
    """Every run of the exported file ``option`` names, which must take this run's input size."""
    nets, input_size = networks_from_export(Path(path), config.widths, config.blocks, option)
    if input_size != config.input_size:
        raise DataError(
            f"{option} {path}: exported at {input_size} px, this run asks for {config.input_size}; "
            f"pass --input-size {input_size}"
        )
    return nets


def _member(nets: list[AgeGenderNet], index: int, option: str, source: str) -> AgeGenderNet:
    """Run ``index`` of an exported ensemble, or a one-line error naming ``option``."""
    if not 0 <= index < len(nets):
        raise DataError(f"{option} {index}: {source} holds {how_many(len(nets), 'run')}; pick 0..{len(nets) - 1}")
    return nets[index]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(net: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, parameter in net.named_parameters():
        (no_decay if parameter.ndim <= 1 or name.endswith(".bias") else decay).append(parameter)
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        momentum=0.9,
        nesterov=True,
    )


def _save_resume_state(
    out_dir: Path,
    config: TrainConfig,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    history: list[dict[str, float]],
    seconds: float,
) -> None:
    """Everything a resumed run needs to go on as if it had not stopped (written whole or not at all)."""
    state = {
        "config": asdict(config),
        "state_dict": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
        "seconds": seconds,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    with whole_file(out_dir / RESUME) as partial:
        torch.save(state, partial)


def _load_resume_state(out_dir: Path) -> dict:
    path = out_dir / RESUME
    if not path.is_file():
        finished = (out_dir / CHECKPOINT).is_file()
        raise DataError(
            f"{out_dir}: {'the run has finished (model.pt is there)' if finished else 'no unfinished run'}; "
            "nothing to resume, start a run without --resume"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        state["config"] = _config_from_dict(state["config"])
    except Exception as error:  # a torn or foreign file fails in pickle, torch or our config alike
        raise DataError(
            f"{path}: not a resumable run of `analyzer train` ({type(error).__name__}); delete it and start again"
        ) from None
    return state


def train(config: TrainConfig, out_dir: Path, log: Callable[[str], None] = print) -> dict[str, object]:
    """Train, validate every epoch, save ``model.pt`` and ``history.json`` in ``out_dir``.

    An unfinished run already in ``out_dir`` is an error rather than something to overwrite.
    """
    if (out_dir / RESUME).is_file():
        raise DataError(f"{out_dir} holds an unfinished run; add --resume to continue it, or pick another --out")
    return _train(config, out_dir, log, None)


def resume_training(out_dir: Path, data: str, log: Callable[[str], None] = print) -> dict[str, object]:
    """Continue the unfinished run in ``out_dir`` with its own settings (faces read from ``data``).

    It goes on with the run's weights, optimizer, history, random state and minutes spent.
    """
    saved = _load_resume_state(out_dir)
    return _train(replace(saved["config"], data=data), out_dir, log, saved)


def _train(config: TrainConfig, out_dir: Path, log: Callable[[str], None], saved: dict | None) -> dict[str, object]:
    if config.augment not in AUGMENTATIONS:
        raise DataError(f"augmentation {config.augment!r} is unknown; pick one of {', '.join(AUGMENTATIONS)}")
    _seed_everything(config.seed)
    torch.set_num_threads(usable_cores())
    # first: a wrong --init fails before minutes of face alignment
    net = _starting_network(config) if saved is None else _network(config, saved["state_dict"])
    teacher = _teacher(config)
    train_set, validation_set = _face_sets(config, log)
    net = net.to(memory_format=torch.channels_last)
    model = ProbabilityModel(net, mirror_average=True)
    optimizer = _optimizer(net, config)
    bin_values = torch.as_tensor(FINE_AGE_EDGES, dtype=torch.float32)
    dataset, loader = _training_batches(config, train_set, teacher is not None)
    if saved is None and is_export(config.init):
        calibration = [dataset[index] for index in range(min(CALIBRATION_CHIPS, len(dataset)))]
        unfold_batchnorm(net, BatchCollator(config.normalization)(calibration)[0])
    gender_loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    budget = config.minutes * 60.0
    history: list[dict[str, float]] = []
    spent = 0.0  # seconds of the budget used before this process started (by the run it resumes)
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        history, spent = saved["history"], saved["seconds"]
        torch.set_rng_state(saved["rng"]["torch"])
        np.random.set_state(saved["rng"]["numpy"])
        random.setstate(saved["rng"]["python"])
        log(f"resuming after epoch {len(history)}, {spent / 60:.1f} of {config.minutes:g} minutes spent")
    started = time.monotonic() - spent
    epoch = len(history)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = 0.0
    steps_per_epoch = len(loader)
    while progress < 1.0 and not (config.epochs and epoch >= config.epochs):
        dataset.epoch = epoch
        net.train()
        losses = []
        bar = progress_bar(loader, desc=f"epoch {epoch + 1}", unit="batch", leave=False)
        for step, (inputs, ages, genders) in enumerate(bar):
            if config.epochs:
                progress = (epoch + step / steps_per_epoch) / config.epochs
            else:
                progress = (time.monotonic() - started) / budget
            if progress >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, progress)
            loss = _batch_loss(net, teacher, inputs, ages, genders, config, bin_values, gender_loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", lr=f"{optimizer.param_groups[0]['lr']:.4f}")
        bar.close()
        if not losses:
            break
        metrics = validation_metrics(model, validation_set, config)
        record = {
            "epoch": epoch + 1,
            "minutes": (time.monotonic() - started) / 60,
            "loss": float(np.mean(losses)),
            **metrics,
        }
        history.append(record)
        _save_resume_state(out_dir, config, net, optimizer, history, time.monotonic() - started)
        log(
            f"epoch {epoch + 1:3d} {record['minutes']:5.1f} min  loss {record['loss']:.3f}  "
            f"val gender {metrics['gender']:.3f}  MAE {metrics['mae']:.2f}  "
            f"fairface9 {metrics['ff9']:.3f} (±1 {metrics['ff9_1']:.3f})"
        )
        epoch += 1
    if not history:
        raise ConfigError(
            f"--minutes {config.minutes:g} ran out before the first epoch finished; give more minutes, or --epochs N"
        )
    summary = {
        "config": asdict(config),
        "train_faces": len(train_set.ages),
        "validation_faces": len(validation_set.ages),
        "epochs": history,
        "final": history[-1] if history else {},
    }
    torch.save({"state_dict": net.state_dict(), "config": asdict(config)}, out_dir / CHECKPOINT)
    (out_dir / HISTORY).write_text(json.dumps(summary, indent=2))
    (out_dir / RESUME).unlink(missing_ok=True)
    return summary


def _face_sets(config: TrainConfig, log: Callable[[str], None]) -> tuple[FaceSet, FaceSet]:
    """The training and validation faces (split by md5, ``subset`` drawn), aligned; too few is one clear error."""
    faces = read_labels(Path(config.data))
    train_faces, validation_faces = split_by_md5(faces, config.validation_fraction)
    if config.subset:
        rng = random.Random(config.seed)
        train_faces = rng.sample(train_faces, min(config.subset, len(train_faces)))
        validation_faces = rng.sample(validation_faces, min(max(config.subset // 4, 32), len(validation_faces)))
    if len(train_faces) < 16 or len(validation_faces) < 4:
        raise DataError(
            f"{config.data}: only {len(train_faces)} training and {len(validation_faces)} validation "
            "faces after the md5 split; need at least 16 and 4"
        )
    log(f"{len(train_faces)} training and {len(validation_faces)} validation faces (split by md5)")
    train_set = load_face_set(train_faces, config.source_size, config.align, "training")
    validation_set = load_face_set(validation_faces, config.input_size, config.align, "validation")
    if len(train_set.ages) < 16 or len(validation_set.ages) < 4:
        raise DataError(
            f"{config.data}: a face was found in only {len(train_set.ages)} of {len(train_faces)} training and "
            f"{len(validation_set.ages)} of {len(validation_faces)} validation photos; need at least 16 and 4 "
            "(photos the detector finds no face in are left out: check them, or try --align crop for tight crops)"
        )
    return train_set, validation_set


def _training_batches(config: TrainConfig, train_set: FaceSet, with_teacher: bool) -> tuple[AugmentedChips, DataLoader]:
    """The augmented training chips and their loader, drawn age-balanced as ``config.balance`` asks."""
    chips = AugmentedChips
    if with_teacher:
        chips = TeacherViews
    elif config.backdrop_consistency > 0:
        chips = BackdropPairs
    dataset = chips(train_set, config.input_size, AUGMENTATIONS[config.augment], config.seed)
    sampler = WeightedRandomSampler(_balanced_weights(train_set.ages, config.balance), len(dataset), replacement=True)
    loader = DataLoader(
        dataset,
        batch_size=min(config.batch_size, len(dataset)),  # a small folder still makes one batch an epoch
        sampler=sampler,
        num_workers=config.workers,
        drop_last=True,
        collate_fn=BatchCollator(config.normalization),
    )
    return dataset, loader


def _batch_loss(
    net: nn.Module,
    teacher: nn.Module | None,
    inputs: torch.Tensor,
    ages: torch.Tensor,
    genders: torch.Tensor,
    config: TrainConfig,
    bin_values: torch.Tensor,
    gender_loss: nn.Module,
) -> torch.Tensor:
    """One batch's loss: age bins and L1, gender, and the backdrop or teacher terms when they are on."""
    if teacher is not None:  # clean chips for the teacher, then the camera chips the network learns from
        with torch.no_grad():
            teacher_age, teacher_gender = teacher(inputs[: len(ages)])
        inputs = inputs[len(ages) :]
    age_logits, gender_logits = net(inputs.contiguous(memory_format=torch.channels_last))
    views = len(inputs) // len(ages)  # 2 for backdrop pairs: photo chips, then painted ones
    view_ages, view_genders = ages.repeat(views), genders.repeat(views)
    log_probs = torch.log_softmax(age_logits, dim=1)
    age_loss = -(age_targets(view_ages, bin_values) * log_probs).sum(dim=1).mean()
    expected = (log_probs.exp() * bin_values).sum(dim=1)
    loss = (
        age_loss
        + config.age_l1_weight * (expected - view_ages.float()).abs().mean()
        + config.gender_weight * gender_loss(gender_logits, view_genders)
    )
    if views == 2:
        batch = len(ages)
        loss = loss + config.backdrop_consistency * (
            jensen_shannon(age_logits[:batch], age_logits[batch:])
            + jensen_shannon(gender_logits[:batch], gender_logits[batch:])
        )
    if teacher is not None:
        loss = loss + config.distill_weight * (
            distillation(age_logits, teacher_age) + distillation(gender_logits, teacher_gender)
        )
    return loss


def _config_from_dict(settings: dict) -> TrainConfig:
    """A ``TrainConfig`` back from its ``asdict`` form (tuples and the normalization restored)."""
    settings = dict(settings)
    settings["normalization"] = Normalization(**settings["normalization"])
    settings["widths"] = tuple(settings["widths"])
    settings["blocks"] = tuple(settings["blocks"])
    return TrainConfig(**settings)


def load_checkpoint(run_dir: Path) -> tuple[AgeGenderNet, TrainConfig]:
    """The trained network and its config from a run folder."""
    path = Path(run_dir) / CHECKPOINT
    if Path(run_dir).is_file():
        raise DataError(f"{run_dir} is a file; give the run folder that `analyzer train --out` wrote")
    if not path.is_file() and (Path(run_dir) / RESUME).is_file():
        raise DataError(
            f"{run_dir}: the run has not finished (no {CHECKPOINT} yet); finish it with "
            f"`analyzer train --data DIR --out {run_dir} --resume`, or wait for it"
        )
    if not path.is_file():
        raise DataError(f"{path}: no checkpoint; train first with `analyzer train --out {run_dir}`")
    try:
        stored = torch.load(path, map_location="cpu", weights_only=False)
        config = _config_from_dict(stored["config"])
        net = _network(config, stored["state_dict"])
    except Exception as error:  # a torn or foreign file fails in pickle, torch or our config alike
        raise DataError(
            f"{path}: not a checkpoint of `analyzer train` ({type(error).__name__}); train again into {run_dir}"
        ) from None
    return net.eval(), config
