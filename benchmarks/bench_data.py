"""Data throughput: extraction per scale and the training loader for the rrdbnetx4 preset.

    python benchmarks/bench_data.py [--images 4] [--batches 150] [--workers 2]

Inputs are DIV2K-sized (2040×1356) PNGs made from the bundled sample photographs, so PNG
decoding costs about what real photographs cost. Figures depend on machine load: run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, default_collate

from claritycore.data.dataset import PairedPatchDataset
from claritycore.data.fetch import SAMPLE_DIR
from claritycore.data.images import list_images
from claritycore.data.packing import extract_store

SIZE = (2040, 1356)  # DIV2K's typical landscape size (W, H)


def make_images(folder: Path, count: int) -> None:
    """`count` 2040×1356 PNGs resized from the sample photographs (real textures, not noise)."""
    folder.mkdir(parents=True)
    sources = list_images(SAMPLE_DIR / "train")
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as img:
            img.convert("RGB").resize(SIZE, Image.Resampling.LANCZOS).save(folder / f"{i:04d}.png")


def bench_extract(src: Path, work: Path, count: int, workers: int) -> Path:
    decoded = SIZE[0] * SIZE[1] * 3 * count
    for scale in (2, 3, 4, 8):
        dest = work / f"x{scale}"
        started = time.perf_counter()
        extract_store(src, dest, scale, workers=workers)
        elapsed = time.perf_counter() - started
        size = sum(p.stat().st_size for p in dest.iterdir())
        print(
            f"RESULT extract x{scale}: {count / elapsed:.2f} images/s ({workers} workers, "
            f"{count} images of 2040x1356); store = {size / decoded:.3f} x decoded HR bytes"
        )
    return work / "x4"


def bench_extract_one(src: Path, work: Path) -> None:
    """Steady-state cost of one image in one worker (decode, mod-crop, imresize, write), without
    the pool's start-up; one torch thread, as in the pool's worker processes."""
    torch.set_num_threads(1)
    one = work / "one"
    one.mkdir()
    shutil.copy(list_images(src)[0], one)
    for scale in (2, 3, 4, 8):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            extract_store(one, work / f"one_x{scale}", scale, workers=1)
            best = min(best, time.perf_counter() - started)
        print(f"RESULT extract x{scale}, one worker, steady state: {1 / best:.2f} images/s")


def bench_loader(store: Path, batches: int, workers: int) -> None:
    batch, patch = 16, 256  # the rrdbnetx4 preset
    dataset = PairedPatchDataset(store, patch_size=patch, seed=0, length=batch * (batches + 40))
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, persistent_workers=True)
    it = iter(loader)
    for _ in range(20):  # workers start and fill their prefetch queues
        lr, hr = next(it)
    assert lr.shape == (batch, 3, 64, 64) and hr.shape == (batch, 3, 256, 256)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(it)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"RESULT loader rrdbnetx4: {batches * batch / elapsed:.0f} patches/s "
        f"(batch {batch}, {patch}px HR / {patch // 4}px LR, 8 orientations, {workers} workers); "
        f"main process receiving batches: {1000 * cpu / batches:.2f} ms CPU per batch"
    )
    # CPU time is what a busy machine does not distort: one core's worth of samples + collate.
    torch.set_num_threads(1)
    cpu = time.process_time()
    for k in range(batches):
        default_collate([dataset[k * batch + j] for j in range(batch)])
    cpu = time.process_time() - cpu
    print(f"RESULT loader rrdbnetx4, per core (CPU time): {batches * batch / cpu:.0f} patches/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_images(work / "src", args.images)
        store = bench_extract(work / "src", work, args.images, args.workers)
        bench_loader(store, args.batches, args.workers)
        bench_extract_one(work / "src", work)  # last: it sets this process to one thread


if __name__ == "__main__":
    main()
