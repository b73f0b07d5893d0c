"""Loader throughput: 256² HR crops (×4: 64² LR) per second per core, side by side in one run,
from the raw store, the sharded store (`extract.hr_format: shards`), BasicSR's PNG folders and
BasicSR's LMDB layout; then the cores an H100 training rrdbnetx4 needs.

    python -m benchmarks.bench_loader [--images 8] [--samples 200] [--repeats 5]
    python -m benchmarks.bench_loader --smoke      # seconds: small images, a few samples

Inputs are DIV2K-sized (2040×1356) synthetic images (gradients, noise and edges, so PNG and
WebP do not compress them trivially), written as PNGs with Pillow's default level, as DIV2K
ships. Every loader takes the same crops (`PairedPatchDataset.draw`: image, position,
orientation). Ours read them from the stores as training does. BasicSR's PairedImageDataset
decodes the whole HR and LR PNG of every sample (cv2 if importable, else PIL), converts the
whole image to float32 / 255, then crops and orients; its LMDB layout (`create_lmdb`) keeps
each image's PNG bytes (level 1) under its name, so it decodes the same way. Each figure is
one process's CPU time (one thread), so a busy machine distorts it less than wall time; the
loaders alternate within each repeat, each repeat draws new crops, and the table gives
medians. LMDB needs the `lmdb` package (`pip install -e ".[bench]"`); without it that row is
skipped with a note.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_train import train_flops_per_step
from benchmarks.gpu_peaks import BF16_PEAK_TFLOPS
from claritycore.data.dataset import PairedPatchDataset, orient
from claritycore.data.packing import extract_hr_store, extract_lr_store
from claritycore.data.store import ImageStore
from claritycore.experiment import resolve

SIZE = (1356, 2040)  # DIV2K's typical landscape image (H, W)
SMOKE_SIZE = (300, 400)
SCALE, PATCH = 4, 256
H100_UTILISATION = 0.40  # of the dense bf16 peak: what the issue assumes a tuned run reaches

Fetch = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


def synthetic_image(seed: int, height: int, width: int) -> np.ndarray:
    """Smooth noise (a low-resolution random field enlarged), fine noise and a few edges."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 32 + 2, width // 32 + 2, 3), dtype=np.uint8)
    smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.asarray(smooth, np.float32) + rng.normal(0, 4, (height, width, 3))
    for _ in range(6):  # bright and dark bars: hard edges
        top, left = rng.integers(0, height - 8), rng.integers(0, width - 8)
        pixels[top : top + height // 8, left : left + 6] = rng.integers(0, 256)
    return pixels.clip(0, 255).astype(np.uint8)


def _png(pixels: np.ndarray, level: int = 6) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=level)
    return buffer.getvalue()


def _decode_png(data: bytes) -> np.ndarray:
    """BasicSR's `imfrombytes`: cv2.imdecode when cv2 is there (BGR, as BasicSR keeps it)."""
    try:
        import cv2
    except ImportError:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def basicsr_sample(
    hr_png: bytes, lr_png: bytes, top: int, left: int, orientation: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One sample as BasicSR's PairedImageDataset makes it: whole images decoded and made
    float32 / 255, then the aligned crop, the orientation and CHW tensors."""
    hr = _decode_png(hr_png).astype(np.float32) / 255.0
    lr = _decode_png(lr_png).astype(np.float32) / 255.0
    p = PATCH // SCALE
    lr_crop = lr[top : top + p, left : left + p].transpose(2, 0, 1)
    hr_crop = hr[top * SCALE : (top + p) * SCALE, left * SCALE : (left + p) * SCALE]
    hr_crop = hr_crop.transpose(2, 0, 1)
    return (
        torch.from_numpy(np.ascontiguousarray(orient(lr_crop, orientation))),
        torch.from_numpy(np.ascontiguousarray(orient(hr_crop, orientation))),
    )


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build(work: Path, images: int, size: tuple[int, int]) -> tuple[dict[str, Fetch], dict]:
    """The loaders (name: sample index -> (lr, hr)) over `images` synthetic images, and each
    one's bytes on disk (a store's HR and ×4 LR; the PNG folders; the LMDB files)."""
    folder = work / "src"
    folder.mkdir(parents=True)
    for i in range(images):
        (folder / f"{i:04d}.png").write_bytes(_png(synthetic_image(i, *size)))
    kwargs = {"patch_size": PATCH, "seed": 0, "length": 2**40}
    loaders: dict[str, Fetch] = {}
    sizes: dict[str, int] = {}
    datasets = {}
    for layout in ("raw", "shards"):
        hr = extract_hr_store(folder, work / layout / "hr", workers=1, hr_format=layout)
        store = extract_lr_store(hr.path, work / layout / "x4", SCALE, workers=1)
        datasets[layout] = PairedPatchDataset(store.path, **kwargs)
        loaders[f"{layout} store"] = datasets[layout].__getitem__
        sizes[f"{layout} store"] = _size(work / layout)
    # BasicSR reads the LR/HR PNG folders its users made beforehand: the same pixels here,
    # and the same crops (both datasets draw alike: same seed, same image shapes).
    store, draw = datasets["raw"].store, datasets["raw"].draw
    pngs = [(_png(store.hr(i).copy()), _png(store.lr(i).copy())) for i in range(len(store))]
    sizes["BasicSR PNG folders"] = sum(len(h) + len(lr) for h, lr in pngs)

    def from_pngs(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, top, left, orientation = draw(index)
        hr_png, lr_png = pngs[image]  # a file read: the OS page cache, as the stores enjoy
        return basicsr_sample(hr_png, lr_png, top, left, orientation)

    loaders["BasicSR PNG folders"] = from_pngs
    if (lmdb_loader := _lmdb(work / "lmdb", store, draw)) is not None:
        loaders["BasicSR LMDB"], sizes["BasicSR LMDB"] = lmdb_loader, _size(work / "lmdb")
    return loaders, sizes


def _lmdb(path: Path, store: ImageStore, draw: Callable[[int], tuple]) -> Fetch | None:
    """BasicSR's LMDB layout (`scripts/data_preparation/create_lmdb.py`): one environment per
    side, each image's PNG (level 1) under its name; None without the `lmdb` package."""
    try:
        import lmdb
    except ImportError:
        print("NOTE: BasicSR LMDB skipped: the `lmdb` package is not installed (.[bench])")
        return None
    path.mkdir()
    envs = {}
    for side, pixels in (("hr", store.hr), ("lr", store.lr)):
        env = lmdb.open(str(path / side), map_size=1 << 34)
        with env.begin(write=True) as txn:
            for i, name in enumerate(store.names):
                txn.put(name.encode(), _png(pixels(i).copy(), level=1))
        envs[side] = env

    def from_lmdb(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, top, left, orientation = draw(index)
        key = store.names[image].encode()
        with envs["hr"].begin() as hr_txn, envs["lr"].begin() as lr_txn:
            hr_png, lr_png = bytes(hr_txn.get(key)), bytes(lr_txn.get(key))
        return basicsr_sample(hr_png, lr_png, top, left, orientation)

    return from_lmdb


def per_core_rates(loaders: dict[str, Fetch], samples: int, repeats: int) -> dict[str, list]:
    """Patches per CPU-second of each loader in each repeat; repeat r takes samples
    r·samples ... (new crops), the loaders one after another within a repeat."""
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for repeat in range(repeats):
        for name, fetch in loaders.items():
            started = time.process_time()
            for index in range(repeat * samples, (repeat + 1) * samples):
                lr, hr = fetch(index)
            rates[name].append(samples / (time.process_time() - started))
            assert lr.shape == (3, PATCH // SCALE, PATCH // SCALE) and hr.shape == (3, PATCH, PATCH)
    return rates


def h100_patches_per_second() -> tuple[float, str]:
    """The patches/s an H100 consumes training rrdbnetx4 at `H100_UTILISATION` of its dense
    bf16 peak, and the arithmetic as text."""
    experiment = resolve("rrdbnetx4", {})
    flops = train_flops_per_step(experiment)
    batch, peak = experiment.training.batch_size, BF16_PEAK_TFLOPS["H100"]
    steps = H100_UTILISATION * peak * 1e12 / flops
    text = (
        f"rrdbnetx4: {flops / 1e12:.2f} TFLOP per step of batch {batch} (forward + backward, "
        f"benchmarks/bench_train.py); H100 dense bf16 peak {peak} TFLOP/s x "
        f"{H100_UTILISATION:.0%} = {H100_UTILISATION * peak:.1f} TFLOP/s -> {steps:.1f} "
        f"steps/s x {batch} = {steps * batch:.0f} patches/s"
    )
    return steps * batch, text


def run(images: int, size: tuple[int, int], samples: int, repeats: int) -> dict:
    """Every loader's figures: median and per-repeat patches/s per core, ratio to the raw
    store, bytes, cores for the H100; the load average before and after."""
    torch.set_num_threads(1)
    needed, derivation = h100_patches_per_second()
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        loaders, sizes = build(Path(tmp), images, size)
        rates = per_core_rates(loaders, samples, repeats)
    load.append(os.getloadavg()[0])
    raw = statistics.median(rates["raw store"])
    rows = {
        name: {
            "patches_per_s_per_core": statistics.median(runs),
            "runs": runs,
            "vs_raw": statistics.median(runs) / raw,
            "bytes": sizes[name],
            "bytes_vs_raw": sizes[name] / sizes["raw store"],
            "cores_for_h100": needed / statistics.median(runs),
        }
        for name, runs in rates.items()
    }
    return {"rows": rows, "needed": needed, "derivation": derivation, "load_average": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--samples", type=int, default=200, help="crops per loader and repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="2 small images, 8 crops, 1 repeat")
    args = parser.parse_args()
    if args.smoke:
        result = run(2, SMOKE_SIZE, 8, 1)
    else:
        result = run(args.images, SIZE, args.samples, args.repeats)
    print(f"H100 need: {result['derivation']}")
    print(
        "| loader | patches/s per core (median) | vs raw store | bytes (HR + x4 LR) | "
        "bytes vs raw | cores for an H100 (rrdbnetx4) |\n|---|---|---|---|---|---|"
    )
    for name, row in result["rows"].items():
        print(
            f"| {name} | {row['patches_per_s_per_core']:.0f} | {row['vs_raw']:.3f} | "
            f"{row['bytes']:,} | {row['bytes_vs_raw']:.3f} | {row['cores_for_h100']:.1f} |"
        )
    print(f"load average (1 min) before, after: {result['load_average']}")


if __name__ == "__main__":
    main()
