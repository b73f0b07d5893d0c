"""The training loader: shapes, aligned crops, all 8 orientations, stateless reproducibility."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from claritycore.data.dataset import (
    PairedPatchDataset,
    orient,
)
from claritycore.data.packing import extract_store
from claritycore.resize import imresize


def _noise(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _store(tmp_path: Path, sizes: list[tuple[int, int]], scale: int) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(_noise(i, h, w)).save(src / f"{i:04d}.png")
    extract_store(src, tmp_path / f"x{scale}", scale, workers=1)
    return tmp_path / f"x{scale}"


@pytest.fixture(scope="module")
def store_x4(tmp_path_factory) -> Path:
    return _store(tmp_path_factory.mktemp("x4"), [(96, 120), (64, 64), (81, 150)], 4)


def test_shapes_dtype_and_length(store_x4):
    ds = PairedPatchDataset(store_x4, patch_size=32, seed=0, length=50)
    assert len(ds) == 50
    lr, hr = ds[7]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32)
    assert lr.dtype == torch.uint8 and hr.dtype == torch.uint8
    assert lr.is_contiguous() and hr.is_contiguous()
    with pytest.raises(IndexError):
        ds[50]


def test_crops_are_aligned_in_every_orientation(store_x4):
    ds = PairedPatchDataset(store_x4, patch_size=48, seed=3, length=64)
    for i in range(64):
        lr, hr = ds[i]
        hwc = np.ascontiguousarray(hr.numpy().transpose(1, 2, 0))
        down = imresize(hwc, 1 / 4).astype(int).transpose(2, 0, 1)
        inner = (slice(None), slice(3, -3), slice(3, -3))
        assert np.abs(down[inner] - lr.numpy().astype(int)[inner]).max() <= 1, i


def test_sample_matches_its_drawn_position_and_orientation(store_x4):
    ds = PairedPatchDataset(store_x4, patch_size=32, seed=5, length=100)
    for i in range(100):
        image, top, left, o = ds.draw(i)
        lr, hr = ds[i]
        lr_ref = ds.store.lr_planar(image)[:, top : top + 8, left : left + 8]
        hr_ref = ds.store.hr_planar(image)[:, 4 * top : 4 * top + 32, 4 * left : 4 * left + 32]
        np.testing.assert_array_equal(lr.numpy(), orient(lr_ref, o))
        np.testing.assert_array_equal(hr.numpy(), orient(hr_ref, o))


def test_all_eight_orientations_reachable(tmp_path):
    store = _store(tmp_path, [(32, 32)], 4)  # patch = whole image: only orientation varies
    ds = PairedPatchDataset(store, patch_size=32, seed=0, length=200)
    base = ds.store.hr_planar(0)
    variants = [orient(base, o) for o in range(8)]
    assert len({v.tobytes() for v in variants}) == 8
    seen = set()
    for i in range(200):
        hr = ds[i][1].numpy()
        matches = [o for o, v in enumerate(variants) if np.array_equal(hr, v)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(8))
    plain = PairedPatchDataset(store, patch_size=32, seed=0, length=20, augment=False)
    assert all(np.array_equal(plain[i][1].numpy(), base) for i in range(20))


def test_every_position_reachable_including_the_last(tmp_path):
    store = _store(tmp_path, [(36, 40)], 4)  # LR 9x10, patch 8: 2 x 3 positions
    ds = PairedPatchDataset(store, patch_size=32, seed=1, length=300, augment=False)
    positions = {ds.draw(i)[1:3] for i in range(300)}
    assert positions == {(t, left) for t in range(2) for left in range(3)}


def test_same_seed_same_samples_and_workers_do_not_matter(store_x4):
    a = PairedPatchDataset(store_x4, patch_size=32, seed=11, length=64)
    b = PairedPatchDataset(store_x4, patch_size=32, seed=11, length=64)
    c = PairedPatchDataset(store_x4, patch_size=32, seed=12, length=64)
    assert all(torch.equal(a[i][1], b[i][1]) for i in range(64))
    assert sum(torch.equal(a[i][1], c[i][1]) for i in range(64)) < 3
    assert len({a.draw(i) for i in range(64)}) > 60  # different indices, different crops
    loader = DataLoader(a, batch_size=8, num_workers=2)
    batches = list(loader)
    for k, (lr, hr) in enumerate(batches):
        assert hr.shape == (8, 3, 32, 32)
        for j in range(8):
            assert torch.equal(hr[j], a[8 * k + j][1]) and torch.equal(lr[j], a[8 * k + j][0])


def test_resume_from_an_index_needs_no_state(store_x4):
    ds = PairedPatchDataset(store_x4, patch_size=32, seed=4, length=1000)
    later = PairedPatchDataset(store_x4, patch_size=32, seed=4, length=1000)
    expected = [ds[i][1] for i in range(500, 516)]
    assert all(torch.equal(later[500 + j][1], expected[j]) for j in range(16))


def test_small_images_skipped_with_warning_and_none_left_is_an_error(store_x4):
    with pytest.warns(UserWarning, match="1 of 3 images"):
        ds = PairedPatchDataset(store_x4, patch_size=80, seed=0, length=10)
    assert ds.skipped == 1 and {ds.draw(i)[0] for i in range(10)} <= {0, 2}
    with pytest.raises(ValueError, match="smaller patch_size"):
        PairedPatchDataset(store_x4, patch_size=400, seed=0, length=10)
    with pytest.raises(ValueError, match="multiple"):
        PairedPatchDataset(store_x4, patch_size=30, seed=0, length=10)


def test_pickling_does_not_copy_the_store(store_x4):
    ds = PairedPatchDataset(store_x4, patch_size=32, seed=0, length=10)
    ds[0]  # maps the files
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 20_000
    assert torch.equal(clone[3][1], ds[3][1])
