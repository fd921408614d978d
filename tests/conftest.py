"""Shared fixtures: the labelled data beside the repo, the shipped model, a real face photo."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from analyzer.tools.demo import render_demo

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FOOTFALL_DATA", REPO.parent / "shared" / "data"))
UTKFACE = SHARED_DATA / "utkface"
SHIPPED_MODEL = REPO / "engines" / "agegender.onnx"


@pytest.fixture(scope="session")
def utkface() -> Path:
    if not (UTKFACE / "labels.csv").is_file():
        pytest.fail(f"labelled faces not found at {UTKFACE}; clone with ../shared beside the repo or set FOOTFALL_DATA")
    return UTKFACE


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    assert SHIPPED_MODEL.is_file(), f"{SHIPPED_MODEL} missing: the trained network must be committed"
    return SHIPPED_MODEL


@pytest.fixture(scope="session")
def walkers_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("clips") / "walkers.mp4"
    people = render_demo(path, seconds=12.0, walkers=3, seed=5)
    return path, len(people)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()
