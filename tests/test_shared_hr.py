"""One HR copy for every scale: the HR store, each scale's LR beside it, version-1 stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from claritycore.data.dataset import PairedPatchDataset
from claritycore.data.packing import (
    extract_hr_store,
    extract_lr_store,
    extract_store,
    multiscale_sizes,
)
from claritycore.data.store import HRStore, ImageStore, StoreError
from claritycore.resize import imresize, modcrop
from claritycore.schema import SCALES


def _noise(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _folder(path: Path, sizes: list[tuple[int, int]]) -> Path:
    path.mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(_noise(i, h, w)).save(path / f"{i:04d}.png")
    return path


def test_four_scales_of_div2k_sized_images_take_under_one_and_a_half_times_the_hr(tmp_path):
    """DIV2K's shapes (2040 wide, 1356 and 1404 high): the HR once plus every scale's LR is
    1 + 1/4 + 1/9 + 1/16 + 1/64 = 1.44x the HR bytes, where per-scale copies took 5.4x."""
    src = _folder(tmp_path / "train", [(1356, 2040), (1404, 2040)])
    hr = extract_hr_store(src, tmp_path / "stores" / "hr", workers=1)
    hr_bytes = (hr.path / "hr.u8").stat().st_size
    assert hr_bytes == 3 * 2040 * (1356 + 1404)
    lr_bytes = 0
    for scale in SCALES:
        store = extract_lr_store(hr.path, tmp_path / "stores" / f"x{scale}", scale, workers=1)
        lr_bytes += (store.path / "lr.u8").stat().st_size
        assert not (store.path / "hr.u8").exists()
    total = sum(f.stat().st_size for f in (tmp_path / "stores").rglob("*") if f.is_file())
    assert 1.43 < (hr_bytes + lr_bytes) / hr_bytes < 1.45 and total < 1.45 * hr_bytes


@pytest.mark.parametrize("scale", [3, 4])
def test_every_scale_reads_the_shared_hr_mod_cropped(tmp_path, scale):
    src = _folder(tmp_path / "train", [(53, 70), (61, 97)])
    store = extract_store(src, tmp_path / f"x{scale}", scale, workers=1)
    for i, (h, w) in enumerate([(53, 70), (61, 97)]):
        hr = modcrop(_noise(i, h, w), scale)
        np.testing.assert_array_equal(store.hr(i), hr)
        np.testing.assert_array_equal(store.lr(i), imresize(np.ascontiguousarray(hr), 1 / scale))
    assert store.hr_store.path == tmp_path / "train_hr"


def test_a_store_over_another_hr_copy_is_refused_in_one_line(tmp_path):
    stores = tmp_path / "data" / "stores"
    src = _folder(tmp_path / "train", [(40, 40), (48, 40)])
    extract_store(src, stores / "x2", 2, workers=1, hr_store=stores / "hr")
    Image.fromarray(_noise(7, 40, 44)).save(src / "0002.png")
    extract_hr_store(src, stores / "hr", workers=1)  # the HR re-packed, x2 not
    with pytest.raises(StoreError) as error:
        ImageStore.open(stores / "x2")
    message = str(error.value)
    assert "extracted from another HR store than" in message and "stores/hr" in message
    assert "dvc repro -f extract@2" in message and "\n" not in message


def _write_version_1(folder: Path, images: list[np.ndarray], scale: int) -> None:
    """A store as claritycore wrote it before the shared HR copy (format version 1)."""
    folder.mkdir(parents=True)
    entries, hr_end, lr_end = [], 0, 0
    with open(folder / "hr.u8", "wb") as hr_file, open(folder / "lr.u8", "wb") as lr_file:
        for i, pixels in enumerate(images):
            hr = modcrop(pixels, scale)
            lr = imresize(np.ascontiguousarray(hr), 1 / scale)
            hr_file.write(np.ascontiguousarray(hr.transpose(2, 0, 1)).tobytes())
            lr_file.write(np.ascontiguousarray(lr.transpose(2, 0, 1)).tobytes())
            entries.append(
                {"name": f"{i:04d}.png", "hr_shape": [3, *hr.shape[:2]], "hr_offset": hr_end,
                 "lr_shape": [3, *lr.shape[:2]], "lr_offset": lr_end}
            )  # fmt: skip
            hr_end, lr_end = hr_end + hr.size, lr_end + lr.size
    index = {"format": "claritycore-patch-store", "version": 1, "scale": scale, "params": {},
             "files": {"hr": "hr.u8", "lr": "lr.u8"}, "skipped": [], "images": entries}  # fmt: skip
    (folder / "index.json").write_text(json.dumps(index))


def test_a_version_1_store_is_still_read_and_trains_the_same_crops(tmp_path):
    images = [_noise(0, 53, 70), _noise(1, 61, 97)]
    _write_version_1(tmp_path / "old", images, 2)
    new = extract_store(_folder(tmp_path / "train", [(53, 70), (61, 97)]), tmp_path / "new", 2)
    old = ImageStore.open(tmp_path / "old")
    assert old.names == new.names and old.has_lr
    kwargs = {"patch_size": 16, "seed": 3, "length": 20}
    from_old, from_new = (
        PairedPatchDataset(old.path, **kwargs),
        PairedPatchDataset(new.path, **kwargs),
    )
    for index in range(20):
        (lr_a, hr_a), (lr_b, hr_b) = from_old[index], from_new[index]
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)


def test_multiscale_copies_are_real_esrgans_lanczos_resizes(tmp_path):
    """generate_multiscale_DF2K.py: int(w * s) x int(h * s) for s in (0.75, 0.5, 1/3), then the
    shorter side 400 (the longer int(400 * ratio)), each PIL LANCZOS of the original."""
    assert multiscale_sizes(1356, 2040) == [(1017, 1530), (678, 1020), (452, 680), (400, 601)]
    assert multiscale_sizes(90, 60)[-1] == (600, 400)  # a small image is enlarged, as there
    src = _folder(tmp_path / "train", [(90, 60)])
    hr = extract_hr_store(src, tmp_path / "hr", workers=1, multiscale=True)
    assert [im.name for im in hr.images] == ["0000.png", *(f"0000T{k}.png" for k in range(4))]
    original = Image.fromarray(_noise(0, 90, 60))
    for i, (h, w) in enumerate(multiscale_sizes(90, 60), start=1):
        expected = np.asarray(original.resize((w, h), Image.LANCZOS))
        np.testing.assert_array_equal(hr.planar(i).transpose(1, 2, 0), expected)
    np.testing.assert_array_equal(hr.planar(0).transpose(1, 2, 0), _noise(0, 90, 60))
    assert isinstance(HRStore.open(hr.path), HRStore)
