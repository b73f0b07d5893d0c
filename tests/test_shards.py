"""The sharded HR store (`extract.hr_format: shards`): lossless, reproducible, appendable in
shards, read into the same training batches as the raw store, and refused in one line when cut."""

from __future__ import annotations

import io
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from claritycore.config import DegradationConfig
from claritycore.data import shards
from claritycore.data.dataset import HRRegionDataset, PairedPatchDataset
from claritycore.data.packing import extract_hr_store, extract_lr_store
from claritycore.data.store import HRStore, StoreError, write_store_plan
from stages import extract, extract_hr

# Not multiples of the 128 px tile, so crops straddle tile edges and partial tiles.
SIZES = [(300, 270), (130, 401), (257, 129), (90, 100), (200, 333)]


def _smooth(seed: int, h: int, w: int) -> np.ndarray:
    """Gradients plus noise plus an edge: compressible, as photographs are, but not trivially."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = (xx[..., None] * (seed + 1) + yy[..., None] * np.array([1, 2, 3])) % 256
    pixels = ramp + rng.normal(0, 6, (h, w, 3)) + 60 * (xx > w // 3)[..., None]
    return pixels.clip(0, 255).astype(np.uint8)


def _folder(path: Path, sizes: list[tuple[int, int]], first: int = 0) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate(sizes, start=first):
        Image.fromarray(_smooth(i, h, w)).save(path / f"{i:04d}.png")
    return path


@pytest.fixture(autouse=True)
def two_images_per_shard(monkeypatch):
    """Five images make three shards, the last one partial."""
    monkeypatch.setattr(shards, "SHARD_IMAGES", 2)


def _files(store: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(store.iterdir())}


def test_a_sharded_store_is_lossless_smaller_and_byte_for_byte_reproducible(tmp_path):
    src = _folder(tmp_path / "train", SIZES)
    store = extract_hr_store(src, tmp_path / "a", workers=1, hr_format="shards")
    assert [f.name for f in sorted(store.path.iterdir())] == [
        "index.json", "shard-00000.bin", "shard-00001.bin", "shard-00002.bin"
    ]  # fmt: skip
    for i, (h, w) in enumerate(SIZES):
        np.testing.assert_array_equal(store.planar(i), _smooth(i, h, w).transpose(2, 0, 1))
    index = json.loads((store.path / "index.json").read_text())
    assert index["tile"] == 128 and index["encoder"] == shards.encoder()
    assert [image["shard"] for image in index["images"]] == [0, 0, 1, 1, 2]
    raw = sum(3 * h * w for h, w in SIZES)
    assert sum(s["bytes"] for s in index["shards"]) < 0.8 * raw
    again = extract_hr_store(src, tmp_path / "b", workers=2, hr_format="shards")
    assert _files(again.path) == _files(store.path)


def test_appending_images_rewrites_only_the_last_partial_shard(tmp_path):
    src = _folder(tmp_path / "train", SIZES)
    before = _files(extract_hr_store(src, tmp_path / "hr", workers=1, hr_format="shards").path)
    _folder(src, [(140, 150), (150, 140)], first=len(SIZES))
    after = _files(extract_hr_store(src, tmp_path / "hr", workers=1, hr_format="shards").path)
    assert after["shard-00000.bin"] == before["shard-00000.bin"]
    assert after["shard-00001.bin"] == before["shard-00001.bin"]
    assert after["shard-00002.bin"] != before["shard-00002.bin"]  # filled up: image 5 joined
    assert after["shard-00002.bin"].startswith(before["shard-00002.bin"])
    assert "shard-00003.bin" in after and "shard-00003.bin" not in before


def test_sharded_and_raw_stores_give_identical_training_batches(tmp_path):
    src = _folder(tmp_path / "train", SIZES)
    stores = {}
    for layout in ("raw", "shards"):
        hr = extract_hr_store(src, tmp_path / layout / "hr", workers=1, hr_format=layout)
        stores[layout] = extract_lr_store(hr.path, tmp_path / layout / "x2", 2, workers=1).path
    assert _files(stores["raw"])["lr.u8"] == _files(stores["shards"])["lr.u8"]
    kwargs = {"patch_size": 64, "seed": 11, "length": 64}
    raw, sharded = (PairedPatchDataset(stores[k], **kwargs) for k in ("raw", "shards"))
    loaders = [torch.utils.data.DataLoader(d, batch_size=8) for d in (raw, sharded)]
    for (lr_a, hr_a), (lr_b, hr_b) in zip(*loaders, strict=True):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
    # Real-ESRGAN's regions: 96² crops, and reflect-padded whole images smaller than that.
    degradation = DegradationConfig(type="realesrgan", crop=96)
    regions = [
        HRRegionDataset(stores[k], patch_size=32, seed=5, length=20, degradation=degradation)
        for k in ("raw", "shards")
    ]
    for index in range(20):
        assert torch.equal(regions[0][index][0], regions[1][index][0])


def test_a_decoded_tile_is_reused_from_the_cache(tmp_path):
    store = extract_hr_store(
        _folder(tmp_path / "train", SIZES[:1]), tmp_path / "hr", workers=1, hr_format="shards"
    )
    first = store.region(0, 100, 100, 50, 50)  # inside tiles (0, 0), (0, 1), (1, 0), (1, 1)
    cached = dict(store.reader._tiles)
    assert len(cached) == 4
    np.testing.assert_array_equal(store.region(0, 110, 110, 20, 20), first[:, 10:30, 10:30])
    assert all(store.reader._tiles[key] is tile for key, tile in cached.items())


def _pipeline(root: Path) -> None:
    """A pipeline's working directory: params, the source's images and resolve's plan."""
    _folder(root / "data" / "raw" / "sample" / "train", SIZES)
    params = {"data": {"source": "sample"}, "extract": {"workers": 1, "hr_format": "shards"}}
    (root / "params.yaml").write_text(json.dumps(params))
    write_store_plan((2,), root / "build" / "stores.yaml")


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_damaged_shard_stops_the_next_stage_with_one_line(tmp_path, monkeypatch, damage):
    monkeypatch.chdir(tmp_path)
    _pipeline(tmp_path)
    assert CliRunner().invoke(extract_hr.app, []).exit_code == 0
    assert HRStore.open(Path("data/stores/hr")).reader.tile == shards.TILE
    shard = Path("data/stores/hr/shard-00001.bin")
    size = shard.stat().st_size
    if damage == "truncated":
        with open(shard, "r+b") as f:
            f.truncate(size - 100)
    else:  # same size, the bytes of a tile overwritten
        with open(shard, "r+b") as f:
            f.seek(size // 2)
            f.write(bytes(64))
    result = CliRunner().invoke(extract.app, ["--scale", "2"])
    assert result.exit_code == 2, result.output
    # One line after the progress bar (which a tile that fails mid-way leaves on screen).
    lines = [line for line in result.output.splitlines() if "extract failed" in line]
    assert len(lines) == 1 and result.output.strip().endswith(lines[0])
    assert "Traceback" not in result.output
    assert "data/stores/hr is damaged" in lines[0] and "shard-00001.bin" in lines[0]
    assert "dvc repro -f extract_hr" in lines[0] and "dvc pull data/stores/hr" in lines[0]
    if damage == "truncated":
        assert f"holds {size - 100:,} bytes" in lines[0]
        with pytest.raises(StoreError, match=r"shard-00001\.bin holds"):
            HRStore.open(Path("data/stores/hr"))  # on open, before any batch
    else:
        assert "does not match its CRC-32" in lines[0]


def test_every_image_is_one_record_of_its_tiles(tmp_path):
    """The layout docs/data.md states: a uint32 table of each tile's length and CRC-32, then
    the tiles."""
    pixels = _smooth(0, 300, 270)
    record = shards.encode_record(pixels)
    rows, columns = shards.tile_grid(300, 270, shards.TILE)
    assert (rows, columns) == (3, 3)
    table = np.frombuffer(record[: 8 * rows * columns], "<u4").reshape(-1, 2)
    assert 8 * len(table) + int(table[:, 0].sum()) == len(record)
    last = record[len(record) - int(table[-1, 0]) :]
    assert zlib.crc32(last) == table[-1, 1]
    with Image.open(io.BytesIO(last)) as tile:
        assert tile.size == (270 - 256, 300 - 256)
        np.testing.assert_array_equal(np.asarray(tile), pixels[256:, 256:])
    assert math.prod(pixels.shape) > len(record)
