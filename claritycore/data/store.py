"""Per-scale image store: whole mod-cropped HR images and their bicubic LR, packed for crops.

A store is a folder with two raw uint8 files, `hr.u8` and `lr.u8`, holding every image planar
(3×H×W, so a crop copies contiguous row segments), and `index.json` naming each image with its
shapes and byte offsets and the parameters used. Training memory-maps the two files: no
decoding per sample and no tens of thousands of small files for DVC to hash. Whole images are
kept, so a training crop may start at any LR pixel.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from claritycore.data.images import image_size, list_images, read_rgb, staged_dir
from claritycore.errors import ConfigError, UserError
from claritycore.resize import lr_hr_pair
from claritycore.schema import SCALES

# The format name predates "image store"; kept so existing stores (and run keys) stay valid.
FORMAT = "claritycore-patch-store"
VERSION = 1
HR_FILE, LR_FILE, INDEX_FILE = "hr.u8", "lr.u8", "index.json"

console = Console(stderr=True)


@dataclass(frozen=True)
class StoredImage:
    """Where one image lives in the store: (3, H, W) planes at byte offsets in hr.u8 / lr.u8."""

    name: str
    hr_shape: tuple[int, int, int]
    hr_offset: int
    lr_shape: tuple[int, int, int]
    lr_offset: int

    @property
    def hr_bytes(self) -> int:
        return math.prod(self.hr_shape)

    @property
    def lr_bytes(self) -> int:
        return math.prod(self.lr_shape)


class ImageStore:
    """Read-only view of a store folder; arrays are memory-mapped on first use."""

    def __init__(self, path: Path, scale: int, images: list[StoredImage]) -> None:
        self.path = Path(path)
        self.scale = scale
        self.images = images
        self._hr: np.ndarray | None = None
        self._lr: np.ndarray | None = None

    @classmethod
    def open(cls, path: Path) -> ImageStore:
        """Open the store written by `extract_store` at `path`."""
        path = Path(path)
        index_path = path / INDEX_FILE
        if not index_path.is_file():
            raise FileNotFoundError(
                f"{path} is not an image store (no {INDEX_FILE}); run `python -m stages.extract "
                f"--scale S` (or `dvc repro`) to build it"
            )
        index = json.loads(index_path.read_text())
        if index.get("format") != FORMAT or index.get("version") != VERSION:
            raise UserError(
                f"{index_path} is not a {FORMAT} version {VERSION} index; rebuild the store"
            )
        images = [
            StoredImage(**{**e, "hr_shape": tuple(e["hr_shape"]), "lr_shape": tuple(e["lr_shape"])})
            for e in index["images"]
        ]
        return cls(path, index["scale"], images)

    def __len__(self) -> int:
        return len(self.images)

    def __getstate__(self) -> dict:
        # Pickling a memmap copies its whole contents; DataLoader workers re-map instead.
        return {**self.__dict__, "_hr": None, "_lr": None}

    @property
    def names(self) -> list[str]:
        return [image.name for image in self.images]

    def _maps(self) -> tuple[np.ndarray, np.ndarray]:
        if self._hr is None or self._lr is None:
            # Plain ndarray views of the maps: slicing a np.memmap subclass costs microseconds
            # of bookkeeping per view, which adds up at thousands of crops per second.
            self._hr = np.memmap(self.path / HR_FILE, dtype=np.uint8, mode="r").view(np.ndarray)
            self._lr = np.memmap(self.path / LR_FILE, dtype=np.uint8, mode="r").view(np.ndarray)
        return self._hr, self._lr

    def hr_planar(self, i: int) -> np.ndarray:
        """HR image `i` as a (3, H, W) uint8 view (no copy)."""
        image = self.images[i]
        end = image.hr_offset + image.hr_bytes
        return self._maps()[0][image.hr_offset : end].reshape(image.hr_shape)

    def lr_planar(self, i: int) -> np.ndarray:
        """LR image `i` as a (3, h, w) uint8 view (no copy)."""
        image = self.images[i]
        end = image.lr_offset + image.lr_bytes
        return self._maps()[1][image.lr_offset : end].reshape(image.lr_shape)

    def hr(self, i: int) -> np.ndarray:
        """HR image `i` as an H×W×3 uint8 view (no copy)."""
        return self.hr_planar(i).transpose(1, 2, 0)

    def lr(self, i: int) -> np.ndarray:
        """LR image `i` as an h×w×3 uint8 view (no copy)."""
        return self.lr_planar(i).transpose(1, 2, 0)


def _single_threaded() -> None:
    """Pool initializer: one torch thread per worker process, as DataLoader workers do.

    Each process already handles one image; N processes with N threads each oversubscribe
    the cores, and OpenMP's spinning threads then made imresize 10-40x slower (measured on a
    busy 2-core machine). This runs only in the pool's own processes, never the caller's.
    """
    torch.set_num_threads(1)


def _write_one(
    path: Path, scale: int, folder: Path, hr_offset: int, lr_offset: int, hr_size: tuple[int, int]
) -> str | None:
    """Decode, mod-crop, downscale and write one image at its offsets; returns a mode note."""
    pixels, note = read_rgb(path)
    lr, hr = lr_hr_pair(pixels, scale)
    if hr.shape[:2] != hr_size:
        raise RuntimeError(f"{path} decoded to {hr.shape[:2]}, its header said {hr_size}")
    for name, offset, image in ((HR_FILE, hr_offset, hr), (LR_FILE, lr_offset, lr)):
        with open(folder / name, "r+b") as f:
            f.seek(offset)
            f.write(np.ascontiguousarray(image.transpose(2, 0, 1)).data)
    return note


def _plan(images: list[Path], scale: int) -> tuple[list[StoredImage], list[str]]:
    """Offsets of every usable image (from headers only) and the names of those too small."""
    planned, skipped = [], []
    hr_end = lr_end = 0
    for path in images:
        h, w = image_size(path)
        h, w = h - h % scale, w - w % scale
        if h == 0 or w == 0:
            skipped.append(path.name)
            continue
        lr_h, lr_w = h // scale, w // scale
        planned.append(StoredImage(path.name, (3, h, w), hr_end, (3, lr_h, lr_w), lr_end))
        hr_end += 3 * h * w
        lr_end += 3 * lr_h * lr_w
    return planned, skipped


def extract_store(src: Path, dest: Path, scale: int, *, workers: int = 2) -> ImageStore:
    """Pack every image in `src` for `scale` into the store `dest` (replaced atomically).

    HR is mod-cropped to a multiple of `scale`; LR is `imresize(hr, 1/scale)` of the whole
    image (MATLAB bicubic). Images are processed in parallel by `workers` processes; the
    output bytes depend only on the input pixels.
    """
    src, dest = Path(src), Path(dest)
    if scale not in SCALES:
        raise ConfigError(f"scale {scale!r} is not supported; choose one of {SCALES}")
    paths = list_images(src)
    if not paths:
        raise FileNotFoundError(f"no images in {src}; run `python -m stages.fetch` first")
    by_name = {p.name: p for p in paths}
    planned, skipped = _plan(paths, scale)
    if not planned:
        raise UserError(f"every image in {src} is smaller than the scale {scale}")
    started = time.perf_counter()
    notes: list[str] = []
    with staged_dir(dest) as tmp:
        last = planned[-1]
        hr_bytes, lr_bytes = last.hr_offset + last.hr_bytes, last.lr_offset + last.lr_bytes
        # Full-size files first, so each worker writes its own region in place.
        for name, end in ((HR_FILE, hr_bytes), (LR_FILE, lr_bytes)):
            with open(tmp / name, "wb") as f:
                f.truncate(end)
        jobs = [
            (by_name[im.name], scale, tmp, im.hr_offset, im.lr_offset, im.hr_shape[1:])
            for im in planned
        ]
        columns = (
            TextColumn(f"extract x{scale}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("extract", total=len(jobs))
            if workers <= 1:
                for job in jobs:
                    notes.append(_write_one(*job))
                    progress.advance(task)
            else:
                # spawn: forking a parent that already runs torch threads can deadlock.
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(
                    workers, mp_context=context, initializer=_single_threaded
                ) as pool:
                    for future in as_completed([pool.submit(_write_one, *job) for job in jobs]):
                        notes.append(future.result())
                        progress.advance(task)
        index = {
            "format": FORMAT,
            "version": VERSION,
            "scale": scale,
            "params": {
                "scale": scale,
                "layout": "planar uint8 (3, H, W), C-order",
                "hr": "mod-cropped to a multiple of scale (bottom/right)",
                "lr": "claritycore.resize.imresize(hr, 1/scale): MATLAB bicubic, whole image",
            },
            "files": {"hr": HR_FILE, "lr": LR_FILE},
            "skipped": skipped,
            "images": [asdict(im) for im in planned],
        }
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    elapsed = time.perf_counter() - started
    store = ImageStore.open(dest)
    converted = [n for n in notes if n]
    summary = (
        f"x{scale}: {len(planned)} images in {dest} (HR {hr_bytes / 1e9:.2f} GB + LR "
        f"{lr_bytes / 1e9:.2f} GB) in {elapsed:.1f} s, {len(planned) / elapsed:.1f} images/s"
    )
    if converted:
        summary += f"; {len(converted)} converted to 8-bit RGB (e.g. {converted[0]})"
    if skipped:
        summary += f"; {len(skipped)} skipped as smaller than {scale} px: {', '.join(skipped[:5])}"
    console.print(summary)
    return store


def pipeline_store(scale: int) -> Path:
    """Where the pipeline's extract stage keeps the ×`scale` store (dvc.yaml's outs)."""
    return Path("data/stores") / f"x{scale}"


def pipeline_valid_dir(store: Path) -> Path | None:
    """For a store the pipeline extracted (`<data>/stores/xS`), the validation images of the
    source it came from: `<data>/raw/<source>/valid` of the source whose train/ holds the
    store's images. None for any other folder, or when no source matches."""
    store = Path(store)
    if not (store / INDEX_FILE).is_file():
        return None
    names = set(ImageStore.open(store).names)
    for train in sorted((store.parent.parent / "raw").glob("*/train")):
        valid = train.parent / "valid"
        if valid.is_dir() and names <= {p.name for p in list_images(train)}:
            return valid
    return None


def ensure_store(data: Path, scale: int, *, workers: int = 2) -> Path:
    """`data` itself when it is a store, else the store of its images beside it, extracted once
    (`<data>_x<scale>`); a store of another scale is refused."""
    data = Path(data)
    store = data if (data / INDEX_FILE).exists() else data.with_name(f"{data.name}_x{scale}")
    if not (store / INDEX_FILE).exists():
        console.print(f"extracting {data} into {store} (once)")
        extract_store(data, store, scale, workers=max(1, workers))
    store_scale = ImageStore.open(store).scale
    if store_scale != scale:
        raise ConfigError(
            f"the store {store} holds ×{store_scale} pairs but this run trains ×{scale}; "
            f"pass --data with a ×{scale} store or a folder of HR images"
        )
    return store
