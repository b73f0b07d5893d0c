"""Your own LR/HR pairs: the layouts are recognised, problems are listed before any packing, the
given LR is packed as it is and crops stay aligned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from claritycore.cli import app
from claritycore.cli import train as train_cli
from claritycore.config import DataOptions
from claritycore.data.dataset import PairedPatchDataset
from claritycore.data.fetch import fetch
from claritycore.data.packing import ensure_store, extract_store
from claritycore.data.pairs import PairingError, image_pairs, paired_layout
from claritycore.data.store import ImageStore
from claritycore.errors import ConfigError
from claritycore.resize import imresize, modcrop

SIZES = [(70, 53), (64, 64), (97, 61)]  # (H, W) of the HR images; none a multiple of 4


def _noise(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _nearest(hr: np.ndarray, scale: int) -> np.ndarray:
    """A known LR of `hr`: every scale-th pixel of the mod-cropped image (not bicubic)."""
    return np.ascontiguousarray(modcrop(hr, scale)[::scale, ::scale])


def _save(pixels: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def make_pairs(folder: Path, layout: str, scale: int = 4, sizes=SIZES) -> dict[str, np.ndarray]:
    """HR images with nearest-neighbour LR in `layout`; returns {HR file name: HR pixels}."""
    written = {}
    for i, (h, w) in enumerate(sizes):
        hr = _noise(i, h, w)
        lr = _nearest(hr, scale)
        if layout in ("HR/LR", "GT/LQ", "LR/X4", "x4 names"):
            hr_dir, lr_dir = ("GT", "LQ") if layout == "GT/LQ" else ("HR", "LR")
            lr_name = f"{i:04d}x{scale}.png" if layout == "x4 names" else f"{i:04d}.png"
            lr_path = folder / lr_dir / (f"X{scale}" if layout == "LR/X4" else "") / lr_name
            name = f"{i:04d}.png"
            _save(hr, folder / hr_dir / name)
        else:  # RealSR: one folder, one LR per scale
            name = f"Canon_{i:03d}_HR.png"
            _save(hr, folder / name)
            _save(_nearest(hr, 2), folder / f"Canon_{i:03d}_LR2.png")
            lr_path = folder / f"Canon_{i:03d}_LR{scale}.png"
        _save(lr, lr_path)
        written[name] = hr
    return written


@pytest.mark.parametrize(
    "layout, words",
    [
        ("HR/LR", "HR/ + LR/"),
        ("GT/LQ", "GT/ + LQ/"),
        ("LR/X4", "HR/ + LR/"),
        ("x4 names", "HR/ + LR/"),
        ("RealSR", "*_HR + *_LR<s>"),
    ],
)
def test_each_layout_pairs_every_hr_with_its_lr(tmp_path, layout, words):
    written = make_pairs(tmp_path, layout)
    assert paired_layout(tmp_path) == words
    pairs = image_pairs(tmp_path, 4)
    assert [p.name for p in pairs] == sorted(written)
    for pair in pairs:
        lr = np.asarray(Image.open(pair.lr))
        np.testing.assert_array_equal(lr, _nearest(written[pair.name], 4))


def test_realsr_folder_pairs_each_scale_with_its_own_lr(tmp_path):
    make_pairs(tmp_path, "RealSR")
    for scale in (2, 4):
        names = [p.lr.name for p in image_pairs(tmp_path, scale)]
        assert names == [f"Canon_{i:03d}_LR{scale}.png" for i in range(len(SIZES))]


def test_a_folder_of_hr_images_has_no_given_lr(tmp_path):
    for i, (h, w) in enumerate(SIZES):
        _save(_noise(i, h, w), tmp_path / f"{i}.png")
    assert paired_layout(tmp_path) is None
    assert [p.lr for p in image_pairs(tmp_path, 4)] == [None, None, None]


def test_missing_partners_and_wrong_sizes_are_listed_in_one_message(tmp_path):
    make_pairs(tmp_path, "HR/LR", sizes=SIZES * 3)  # 9 pairs: 0000 .. 0008
    (tmp_path / "LR" / "0001.png").unlink()
    (tmp_path / "HR" / "0002.png").unlink()
    _save(_noise(0, 20, 20), tmp_path / "LR" / "0003.png")
    with pytest.raises(PairingError) as error:
        image_pairs(tmp_path, 4)
    message = str(error.value)
    assert "3 problems at ×4" in message and "\n" not in message
    assert "0001.png has no LR" in message and "0002.png has no HR" in message
    assert "0003.png: LR 20×20 is not HR 53×70 / 4 (expected 13×17)" in message
    assert "give every HR image its LR" in message and "mod-cropped to 4, divided by 4" in message


def test_more_than_five_problems_are_counted_and_the_fitting_scale_named(tmp_path):
    make_pairs(tmp_path, "RealSR", sizes=SIZES * 3)
    with pytest.raises(PairingError) as error:
        image_pairs(tmp_path, 3)  # every HR lacks an _LR3 (it has _LR2 and _LR4)
    assert "9 problems at ×3" in str(error.value) and "(and 4 more)" in str(error.value)
    wrong = tmp_path / "wrong"
    make_pairs(wrong, "HR/LR", scale=2)
    with pytest.raises(PairingError, match=r"the LR sizes fit ×2: use that scale"):
        image_pairs(wrong, 4)


def test_extract_packs_the_given_lr_and_crops_stay_aligned(tmp_path):
    """The LR is HR[::4, ::4], so every aligned crop pair satisfies lr == hr[::4, ::4]; a
    bicubic LR (or a crop off by one LR pixel) would not."""
    written = make_pairs(tmp_path / "pairs", "GT/LQ")
    store = extract_store(tmp_path / "pairs", tmp_path / "x4", 4, workers=1)
    assert store.names == sorted(written) and store.has_lr
    for i, name in enumerate(store.names):
        np.testing.assert_array_equal(store.hr(i), modcrop(written[name], 4))
        np.testing.assert_array_equal(store.lr(i), _nearest(written[name], 4))
        assert not np.array_equal(store.lr(i), imresize(np.ascontiguousarray(store.hr(i)), 0.25))
    dataset = PairedPatchDataset(store.path, patch_size=32, seed=3, length=40, augment=False)
    for index in range(len(dataset)):
        lr, hr = dataset[index]
        assert torch.equal(lr, hr[:, ::4, ::4])


def test_fetch_paired_checks_every_scale_before_writing(tmp_path):
    root = tmp_path / "mine"
    make_pairs(root / "train", "HR/LR", sizes=[(300, 280), (260, 290)])
    make_pairs(root / "valid", "RealSR")
    dest = tmp_path / "raw"
    with pytest.raises(PairingError, match=r"train.*the LR sizes fit ×4"):
        fetch(DataOptions(source="paired", root=root, scales=(2, 4)), dest, downloads=tmp_path)
    assert not dest.exists()
    fetch(DataOptions(source="paired", root=root, scales=(4,)), dest, downloads=tmp_path)
    assert sorted(p.name for p in (dest / "train").iterdir()) == [
        "0000_HR.png",
        "0000_LR4.png",
        "0001_HR.png",
        "0001_LR4.png",
    ]
    assert len(image_pairs(dest / "valid", 4)) == len(SIZES)
    # The fetched folder is itself a paired layout: extract packs its LR.
    store = extract_store(dest / "train", tmp_path / "x4", 4, workers=1)
    expected = _nearest(np.asarray(Image.open(root / "train" / "HR" / "0001.png")), 4)
    np.testing.assert_array_equal(store.lr(1), expected)


def test_paired_source_needs_pairs(tmp_path):
    for split in ("train", "valid"):
        _save(_noise(0, 300, 300), tmp_path / split / "a.png")
    with pytest.raises(ConfigError, match=r"holds no LR/HR pairs"):
        fetch(DataOptions(source="paired", root=tmp_path, scales=(4,)), tmp_path / "raw",
              downloads=tmp_path)  # fmt: skip
    with pytest.raises(ConfigError, match=r"data.source: paired needs data.root"):
        DataOptions(source="paired")


def test_train_on_a_paired_folder_packs_its_lr(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_cli, "train", lambda experiment, **kw: None)
    written = make_pairs(tmp_path / "mine" / "train", "HR/LR", scale=2)
    result = CliRunner().invoke(app, ["rrdbnet-litex2", "--data", "mine"])
    assert result.exit_code == 0, result.output
    store = ImageStore.open(tmp_path / "mine" / "train_x2")
    np.testing.assert_array_equal(store.lr(0), _nearest(written["0000.png"], 2))
    assert ensure_store(tmp_path / "mine" / "train", 2) == store.path


def test_train_on_mismatched_pairs_exits_2_before_packing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_pairs(tmp_path / "mine" / "train", "HR/LR", scale=4)
    result = CliRunner().invoke(app, ["rrdbnet-litex2", "--data", "mine/train"])
    assert result.exit_code == 2, result.output
    assert "the LR sizes fit ×4" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "mine" / "train_x2").exists()
