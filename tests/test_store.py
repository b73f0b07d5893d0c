"""Patch store extraction: exact LR, aligned crops, deterministic bytes, odd image modes."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from claritycore.cli import app
from claritycore.cli import train as train_cli
from claritycore.config import DegradationConfig
from claritycore.data.dataset import HRRegionDataset
from claritycore.data.images import ImageReadError, list_images, load_rgb, read_rgb
from claritycore.data.packing import ensure_store, extract_store
from claritycore.data.store import ImageStore, StoreError
from claritycore.errors import ConfigError
from claritycore.resize import imresize, modcrop
from tests.helpers import png48, tiny_images

REALESRGAN = DegradationConfig(type="realesrgan")
SIZES = [(53, 70), (64, 64), (61, 97)]  # (H, W): none a multiple of 3, some of 2 or 4


def _noise(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def src(tmp_path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    for i, (h, w) in enumerate(SIZES):
        Image.fromarray(_noise(i, h, w)).save(folder / f"{i:04d}.png")
    return folder


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lr_is_imresize_of_modcropped_hr(src, tmp_path, scale):
    store = extract_store(src, tmp_path / f"x{scale}", scale, workers=1)
    assert store.scale == scale and len(store) == 3
    assert store.names == ["0000.png", "0001.png", "0002.png"]
    for i, (h, w) in enumerate(SIZES):
        hr = modcrop(_noise(i, h, w), scale)
        assert store.hr(i).shape == (h - h % scale, w - w % scale, 3)
        assert store.hr(i).dtype == np.uint8
        np.testing.assert_array_equal(store.hr(i), hr)
        np.testing.assert_array_equal(store.lr(i), imresize(np.ascontiguousarray(hr), 1 / scale))
        np.testing.assert_array_equal(store.hr_planar(i), hr.transpose(2, 0, 1))


@pytest.mark.parametrize("scale", [2, 4])
def test_crops_at_scaled_positions_are_aligned(src, tmp_path, scale):
    """Downscaling an HR crop gives the LR crop at position/scale, except near the crop edge."""
    store = extract_store(src, tmp_path / "s", scale, workers=1)
    rng = np.random.default_rng(0)
    p, margin = 12, 3  # LR patch side; the bicubic support reaches 2 LR pixels past an edge
    for i in range(len(store)):
        lr_full = store.lr(i)
        for _ in range(5):
            top = int(rng.integers(lr_full.shape[0] - p + 1))
            left = int(rng.integers(lr_full.shape[1] - p + 1))
            hr = store.hr(i)[top * scale : (top + p) * scale, left * scale : (left + p) * scale]
            down = imresize(np.ascontiguousarray(hr), 1 / scale).astype(int)
            lr = lr_full[top : top + p, left : left + p].astype(int)
            inner = (slice(margin, -margin), slice(margin, -margin))
            assert np.abs(down[inner] - lr[inner]).max() <= 1
            # A crop one LR pixel off is far from it: the check can tell.
            shifted = store.lr(i)[top + 1 : top + 1 + p, left : left + p].astype(int)
            if shifted.shape == lr.shape:
                assert np.abs(down[inner] - shifted[inner]).mean() > 10


def test_output_is_byte_identical_across_runs_and_worker_counts(src, tmp_path):
    a = extract_store(src, tmp_path / "a" / "x3", 3, workers=1, hr_store=tmp_path / "a" / "hr")
    extract_store(src, a.path, 3, workers=1, hr_store=tmp_path / "a" / "hr")  # a re-run
    extract_store(src, tmp_path / "b" / "x3", 3, workers=2, hr_store=tmp_path / "b" / "hr")
    for store in ("hr", "x3"):
        files = sorted(p.name for p in (tmp_path / "a" / store).iterdir())
        assert files == (["hr.u8", "index.json"] if store == "hr" else ["index.json", "lr.u8"])
        for name in files:
            one, other = (tmp_path / run / store / name for run in ("a", "b"))
            assert one.read_bytes() == other.read_bytes()
    assert not list(tmp_path.glob("*/.*"))  # no temporary folders left behind


def test_index_records_shapes_offsets_and_params(src, tmp_path):
    extract_store(src, tmp_path / "x2", 2, workers=1, hr_store=tmp_path / "hr")
    index = json.loads((tmp_path / "x2" / "index.json").read_text())
    assert index["scale"] == 2 and index["params"]["scale"] == 2 and index["version"] == 2
    assert index["hr_store"] == "../hr"
    hr_index = (tmp_path / "hr" / "index.json").read_bytes()
    assert index["hr_index_sha256"] == hashlib.sha256(hr_index).hexdigest()
    first, second = index["images"][:2]
    assert first["hr_shape"] == [3, 52, 70] and first["lr_shape"] == [3, 26, 35]
    assert (first["hr"], second["hr"]) == (0, 1) and second["lr_offset"] == 3 * 26 * 35
    # The HR store keeps every image whole (53 rows, not 52): one copy for every scale.
    hr_images = json.loads(hr_index)["images"]
    assert hr_images[1] == {"name": "0001.png", "shape": [3, 64, 64], "offset": 3 * 53 * 70}
    total = sum(3 * h * w for h, w in SIZES)
    assert (tmp_path / "hr" / "hr.u8").stat().st_size == total


def test_odd_modes_are_converted_to_rgb(tmp_path):
    src = tmp_path / "odd"
    src.mkdir()
    rgb = _noise(7, 32, 40)
    Image.fromarray(rgb).convert("L").save(src / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((32, 40), 9, np.uint8)])).save(src / "rgba.png")
    Image.fromarray(rgb).convert("P").save(src / "palette.png")
    deep = (np.arange(32 * 40, dtype=np.uint16).reshape(32, 40) * 51).astype(np.uint16)
    Image.fromarray(deep).save(src / "deep16.png")
    with pytest.warns(UserWarning, match="converted to 8-bit RGB"):
        load_rgb(src / "gray.png")
    expected = {
        "gray.png": np.repeat(np.asarray(Image.fromarray(rgb).convert("L"))[..., None], 3, 2),
        "rgba.png": rgb,
        "palette.png": np.asarray(Image.open(src / "palette.png").convert("RGB")),
        "deep16.png": np.repeat(np.rint(deep / 257.0).astype(np.uint8)[..., None], 3, 2),
    }
    store = extract_store(src, tmp_path / "x2", 2, workers=1)
    for i, name in enumerate(store.names):
        np.testing.assert_array_equal(store.hr(i), expected[name])
    assert np.asarray(store.hr(store.names.index("deep16.png"))).max() > 200


def test_48_bit_rgb_png_is_reduced_with_a_note(tmp_path):
    deep = np.random.default_rng(3).integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    (tmp_path / "deep48.png").write_bytes(png48(deep))
    pixels, note = read_rgb(tmp_path / "deep48.png")
    np.testing.assert_array_equal(pixels, (deep >> 8).astype(np.uint8))
    assert note is not None and "16-bit" in note


def test_images_smaller_than_the_scale_are_skipped(src, tmp_path):
    Image.fromarray(_noise(9, 3, 50)).save(src / "thin.png")
    store = extract_store(src, tmp_path / "x4", 4, workers=1)
    assert "thin.png" not in store.names and len(store) == 3
    assert json.loads((tmp_path / "x4" / "index.json").read_text())["skipped"] == ["thin.png"]


def test_unreadable_image_is_named_and_leaves_no_store(src, tmp_path):
    (src / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ImageReadError, match="0001"):
        extract_store(src, tmp_path / "x2", 2, workers=1)
    assert not (tmp_path / "x2").exists() and not list(tmp_path.glob(".x2*"))


def test_open_rejects_a_folder_without_index(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"stages\.extract"):
        ImageStore.open(tmp_path)


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ("b.PNG", "a.jpg", "._a.png", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "d.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.webp"]


def test_corrupt_pixels_raise_read_error(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(_noise(0, 64, 64)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:300])
    with warnings.catch_warnings(), pytest.raises(ImageReadError, match=r"cut\.png"):
        warnings.simplefilter("ignore")
        load_rgb(cut)


def test_hr_only_store_packs_the_same_hr_and_no_lr(src, tmp_path):
    full = extract_store(src, tmp_path / "full", 2, workers=1)
    hr_only = extract_store(src, tmp_path / "hr", 2, workers=1, hr_only=True)
    assert sorted(p.name for p in hr_only.path.iterdir()) == ["index.json"]
    for i in range(len(full)):
        np.testing.assert_array_equal(hr_only.hr_planar(i), full.hr_planar(i))
    index = json.loads((hr_only.path / "index.json").read_text())
    assert index["files"] == {} and index["params"]["lr"].startswith("none")
    assert (full.has_lr, hr_only.has_lr) == (True, False)
    # The LR shapes a degradation must produce are still recorded.
    assert [im.lr_shape for im in hr_only.images] == [im.lr_shape for im in full.images]
    with pytest.raises(StoreError, match=r"holds no LR.*realesrgan.*add 2 to data.scales"):
        hr_only.lr_planar(0)


def test_bicubic_store_index_is_unchanged_by_the_hr_only_option(src, tmp_path):
    store = extract_store(src, tmp_path / "x2", 2, workers=1)
    index = json.loads((store.path / "index.json").read_text())
    assert index["files"] == {"lr": "lr.u8"}
    assert index["params"]["lr"].startswith("claritycore.resize.imresize")


def test_ensure_store_packs_hr_only_when_no_lr_is_read(src, tmp_path):
    hr_store = ensure_store(src, 2, workers=1, hr_only=True)
    assert hr_store == src.with_name("src_x2_hr") and not ImageStore.open(hr_store).has_lr
    with pytest.raises(ConfigError, match="holds no LR"):
        ensure_store(hr_store, 2, workers=1)
    assert src.with_name("src_hr").is_dir()  # the HR, packed once for both
    full = ensure_store(src, 2, workers=1)
    assert full == src.with_name("src_x2") and ImageStore.open(full).has_lr
    # Once a full store exists, an HR-only run reads it rather than packing HR twice.
    shutil.rmtree(hr_store)
    assert ensure_store(src, 2, workers=1, hr_only=True) == full
    assert not hr_store.exists()


@pytest.mark.parametrize(
    ("folder", "name", "fix"), [("hr", "hr.u8", "extract_hr"), ("x2", "lr.u8", "extract@2")]
)
def test_a_truncated_store_is_refused_on_open_with_the_fix(src, tmp_path, folder, name, fix):
    stores = tmp_path / "data" / "stores"
    extract_store(src, stores / "x2", 2, workers=1, hr_store=stores / "hr")
    file = stores / folder / name
    size = file.stat().st_size
    with open(file, "r+b") as f:
        f.truncate(size - 7)
    with pytest.raises(StoreError) as error:
        ImageStore.open(stores / "x2")
    message = str(error.value)
    assert f"{name} holds {size - 7:,} bytes" in message and f"says {size:,}" in message
    assert f"stores/{folder} is damaged" in message
    assert f"dvc repro -f {fix}" in message and "\n" not in message
    file.unlink()
    with pytest.raises(StoreError, match=f"{name} is missing"):
        ImageStore.open(stores / "x2")


def test_a_foreign_or_garbled_index_is_refused(src, tmp_path):
    store = extract_store(src, tmp_path / "mine", 2, workers=1).path
    index = json.loads((store / "index.json").read_text())
    (store / "index.json").write_text(json.dumps({**index, "version": 99}))
    with pytest.raises(StoreError, match=r"not a claritycore-patch-store version 1/2 index"):
        ImageStore.open(store)
    (store / "index.json").write_text(json.dumps({**index, "images": [{"name": "a"}]}))
    with pytest.raises(StoreError, match=r"damaged: index.json lacks or garbles"):
        ImageStore.open(store)
    moved = [index["images"][0], {**index["images"][1], "lr_offset": 5}, *index["images"][2:]]
    (store / "index.json").write_text(json.dumps({**index, "images": moved}))
    with pytest.raises(StoreError, match=r"places 0001.png's LR at offset 5, not 2730"):
        ImageStore.open(store)
    (store / "index.json").write_text('{"format": ')
    with pytest.raises(StoreError, match=r"not JSON.*delete .*mine and re-run `claritycore train"):
        ImageStore.open(store)


def test_train_on_a_truncated_store_exits_2_with_one_line(tmp_path, monkeypatch):
    """The issue's case: hr.u8 cut short. `claritycore train` names the store, the file and
    the fix in one line, exit status 2, no traceback."""
    monkeypatch.chdir(tmp_path)
    tiny_images(tmp_path / "set" / "train")
    store = tmp_path / "set" / "train_x2"
    extract_store(tmp_path / "set" / "train", store, 2, workers=1)
    with open(tmp_path / "set" / "train_hr" / "hr.u8", "r+b") as f:
        f.truncate(1000)
    args = ["train", "--preset", "rrdbnet-litex2", "--data", "set/train", "--steps", "2"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "set/train_hr is damaged: hr.u8 holds 1,000 bytes" in lines[0]
    assert "claritycore train --data" in lines[0]


def test_a_degrading_preset_packs_hr_only_from_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_cli, "train", lambda experiment, **kw: None)
    tiny_images(tmp_path / "set" / "train")
    result = CliRunner().invoke(app, ["realesrnet-litex2", "--data", "set/train"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "set" / "train_x2_hr").iterdir()] == ["index.json"]
    assert sorted(p.name for p in (tmp_path / "set" / "train_hr").iterdir()) == [
        "hr.u8",
        "index.json",
    ]
    assert not (tmp_path / "set" / "train_x2").exists()


def test_an_hr_only_store_feeds_the_degrading_dataset_like_a_full_one(src, tmp_path):
    full = extract_store(src, tmp_path / "full", 2, workers=1)
    hr_only = extract_store(src, tmp_path / "hr", 2, workers=1, hr_only=True)
    kwargs = {"patch_size": 16, "seed": 5, "length": 12, "degradation": REALESRGAN}
    from_full = HRRegionDataset(full.path, **kwargs)
    from_hr = HRRegionDataset(hr_only.path, **kwargs)
    for index in range(12):
        (a, _, place_a), (b, _, place_b) = from_full[index], from_hr[index]
        assert torch.equal(a, b) and a.shape == (3, 400, 400) and torch.equal(place_a, place_b)
