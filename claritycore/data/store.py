"""Per-scale image store: whole mod-cropped HR images and their LR, packed for crops.

A store is a folder with two raw uint8 files, `hr.u8` and `lr.u8`, holding every image planar
(3×H×W, so a crop copies contiguous row segments), and `index.json` naming each image with its
shapes and byte offsets and the parameters used. Training memory-maps the two files: no
decoding per sample and no tens of thousands of small files for DVC to hash. Whole images are
kept, so a training crop may start at any LR pixel.

The LR is MATLAB bicubic of the HR, or the LR files of a paired folder (`data.pairs`), or
absent: a store for a run that degrades the HR on the fly holds `hr.u8` only (index.json's
`files` has no `lr`). Opening a store checks its files against the index, so a truncated copy
fails with one line saying how to rebuild it, not at the first batch.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import re
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
from claritycore.data.pairs import ImagePair, image_pairs, paired_layout
from claritycore.errors import ConfigError, UserError
from claritycore.resize import lr_hr_pair, modcrop
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


class StoreError(UserError, ValueError):
    """A store whose index or files are not what its index says (truncated, edited, foreign)."""


def rebuild_hint(path: Path) -> str:
    """How to rebuild the store at `path`: the pipeline's extract stage for `data/stores/xS`,
    else extracting its HR folder again (`claritycore train --data` extracts a missing store)."""
    path = Path(path)
    if path.parent.name == "stores" and re.fullmatch(r"x\d+", path.name):
        return f"rebuild it with `dvc repro -f extract@{path.name[1:]}`"
    return (
        f"delete {path} and re-run `claritycore train --data` on its HR folder (or "
        "`dvc repro -f extract@S` for a pipeline store)"
    )


def _read_index(path: Path) -> tuple[int, list[StoredImage], bool]:
    """(scale, images, whether it has LR planes) of the store at `path`; StoreError when its
    index is not one of ours."""
    damaged = f"image store {path} is damaged: {INDEX_FILE}"
    try:
        index = json.loads((path / INDEX_FILE).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"{damaged} is not JSON ({error}); {rebuild_hint(path)}") from None
    found = (index.get("format"), index.get("version")) if isinstance(index, dict) else None
    if found != (FORMAT, VERSION):
        raise StoreError(
            f"image store {path}: {INDEX_FILE} is not a {FORMAT} version {VERSION} index "
            f"(format, version: {found}); {rebuild_hint(path)}"
        )
    try:
        images = [
            StoredImage(**{**e, "hr_shape": tuple(e["hr_shape"]), "lr_shape": tuple(e["lr_shape"])})
            for e in index["images"]
        ]
        scale, files = int(index["scale"]), dict(index["files"])
    except (KeyError, TypeError, ValueError) as error:
        raise StoreError(f"{damaged} lacks or garbles {error}; {rebuild_hint(path)}") from None
    if files not in ({"hr": HR_FILE}, {"hr": HR_FILE, "lr": LR_FILE}):
        named = f"names files {files}, not {HR_FILE} (and {LR_FILE})"
        raise StoreError(f"{damaged} {named}; {rebuild_hint(path)}")
    return scale, images, "lr" in files


def _check_files(path: Path, images: list[StoredImage], has_lr: bool) -> None:
    """The index packs the images back to back, and each data file holds exactly its bytes."""
    hr_end = lr_end = 0
    for im in images:
        if (im.hr_offset, im.lr_offset) != (hr_end, lr_end):
            raise StoreError(
                f"image store {path} is damaged: {INDEX_FILE} places {im.name} at offsets "
                f"{im.hr_offset}/{im.lr_offset}, not {hr_end}/{lr_end}; {rebuild_hint(path)}"
            )
        hr_end, lr_end = hr_end + im.hr_bytes, lr_end + im.lr_bytes
    expected = {HR_FILE: hr_end, LR_FILE: lr_end} if has_lr else {HR_FILE: hr_end}
    for name, size in expected.items():
        file = path / name
        actual = file.stat().st_size if file.is_file() else None
        if actual != size:
            found = "is missing" if actual is None else f"holds {actual:,} bytes"
            raise StoreError(
                f"image store {path} is damaged: {name} {found}, its {INDEX_FILE} says "
                f"{size:,} (truncated or interrupted copy?); {rebuild_hint(path)}"
            )


class ImageStore:
    """Read-only view of a store folder; arrays are memory-mapped on first use."""

    def __init__(
        self, path: Path, scale: int, images: list[StoredImage], *, has_lr: bool = True
    ) -> None:
        self.path = Path(path)
        self.scale = scale
        self.images = images
        self.has_lr = has_lr
        self._hr: np.ndarray | None = None
        self._lr: np.ndarray | None = None

    @classmethod
    def open(cls, path: Path) -> ImageStore:
        """Open the store written by `extract_store` at `path`, checking its index and files
        (StoreError, one line with the fix, when they disagree)."""
        path = Path(path)
        if not (path / INDEX_FILE).is_file():
            raise FileNotFoundError(
                f"{path} is not an image store (no {INDEX_FILE}); run `python -m stages.extract "
                f"--scale S` (or `dvc repro`) to build it"
            )
        scale, images, has_lr = _read_index(path)
        _check_files(path, images, has_lr)
        return cls(path, scale, images, has_lr=has_lr)

    def __len__(self) -> int:
        return len(self.images)

    def __getstate__(self) -> dict:
        # Pickling a memmap copies its whole contents; DataLoader workers re-map instead.
        return {**self.__dict__, "_hr": None, "_lr": None}

    @property
    def names(self) -> list[str]:
        return [image.name for image in self.images]

    def _map(self, name: str) -> np.ndarray:
        # A plain ndarray view of the map: slicing a np.memmap subclass costs microseconds
        # of bookkeeping per view, which adds up at thousands of crops per second.
        return np.memmap(self.path / name, dtype=np.uint8, mode="r").view(np.ndarray)

    def hr_planar(self, i: int) -> np.ndarray:
        """HR image `i` as a (3, H, W) uint8 view (no copy)."""
        if self._hr is None:
            self._hr = self._map(HR_FILE)
        image = self.images[i]
        end = image.hr_offset + image.hr_bytes
        return self._hr[image.hr_offset : end].reshape(image.hr_shape)

    def lr_planar(self, i: int) -> np.ndarray:
        """LR image `i` as a (3, h, w) uint8 view (no copy); StoreError for an HR-only store."""
        if not self.has_lr:
            raise StoreError(
                f"image store {self.path} holds HR images only (packed for a run that degrades "
                "them on the fly), so it has no LR to read; train with degradation.type "
                "realesrgan, or give --data the HR folder to extract a store with bicubic LR"
            )
        if self._lr is None:
            self._lr = self._map(LR_FILE)
        image = self.images[i]
        end = image.lr_offset + image.lr_bytes
        return self._lr[image.lr_offset : end].reshape(image.lr_shape)

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
    pair: ImagePair,
    pack_lr: bool,
    scale: int,
    folder: Path,
    hr_offset: int,
    lr_offset: int,
    hr_size: tuple[int, int],
) -> str | None:
    """Decode, mod-crop and write one image (and its LR: given, or bicubic of the HR) at its
    offsets; returns a mode note."""
    pixels, note = read_rgb(pair.hr)
    if pair.lr is None:
        lr, hr = lr_hr_pair(pixels, scale)
    else:
        hr, (lr, lr_note) = modcrop(pixels, scale), read_rgb(pair.lr)
        note = note or lr_note
        if lr.shape[:2] != (hr_size[0] // scale, hr_size[1] // scale):
            raise RuntimeError(f"{pair.lr} decoded to {lr.shape[:2]}, its header said otherwise")
    if hr.shape[:2] != hr_size:
        raise RuntimeError(f"{pair.hr} decoded to {hr.shape[:2]}, its header said {hr_size}")
    planes = ((HR_FILE, hr_offset, hr), (LR_FILE, lr_offset, lr))
    for name, offset, image in planes if pack_lr else planes[:1]:
        with open(folder / name, "r+b") as f:
            f.seek(offset)
            f.write(np.ascontiguousarray(image.transpose(2, 0, 1)).data)
    return note


def _plan(pairs: list[ImagePair], scale: int) -> tuple[list[StoredImage], list[str]]:
    """Offsets of every usable image (from headers only) and the names of those too small."""
    planned, skipped = [], []
    hr_end = lr_end = 0
    for pair in pairs:
        h, w = image_size(pair.hr)
        h, w = h - h % scale, w - w % scale
        if h == 0 or w == 0:
            skipped.append(pair.name)
            continue
        lr_h, lr_w = h // scale, w // scale
        planned.append(StoredImage(pair.name, (3, h, w), hr_end, (3, lr_h, lr_w), lr_end))
        hr_end += 3 * h * w
        lr_end += 3 * lr_h * lr_w
    return planned, skipped


def _lr_param(src: Path, hr_only: bool) -> str:
    """index.json's description of the LR planes."""
    if hr_only:
        return "none: HR only, the LR is made from the HR crop on the fly (degradation)"
    layout = paired_layout(src)
    if layout is not None:
        return f"given: the LR files paired with each HR image ({layout}), not resized"
    return "claritycore.resize.imresize(hr, 1/scale): MATLAB bicubic, whole image"


def extract_store(
    src: Path, dest: Path, scale: int, *, workers: int = 2, hr_only: bool = False
) -> ImageStore:
    """Pack every image in `src` for `scale` into the store `dest` (replaced atomically).

    HR is mod-cropped to a multiple of `scale`. LR: the given LR files when `src` is a paired
    folder (`data.pairs` checks them first), else `imresize(hr, 1/scale)` of the whole image
    (MATLAB bicubic); none with `hr_only`. Images are processed in parallel by `workers`
    processes; the output bytes depend only on the input pixels.
    """
    src, dest = Path(src), Path(dest)
    if scale not in SCALES:
        raise ConfigError(f"scale {scale!r} is not supported; choose one of {SCALES}")
    pairs = image_pairs(src, scale)
    if not pairs:
        raise FileNotFoundError(f"no images in {src}; run `python -m stages.fetch` first")
    by_name = {p.name: p for p in pairs}
    planned, skipped = _plan(pairs, scale)
    if not planned:
        raise UserError(f"every image in {src} is smaller than the scale {scale}")
    started = time.perf_counter()
    notes: list[str | None] = []  # each image's conversion note, None if it needed none
    with staged_dir(dest) as tmp:
        last = planned[-1]
        hr_bytes, lr_bytes = last.hr_offset + last.hr_bytes, last.lr_offset + last.lr_bytes
        # Full-size files first, so each worker writes its own region in place.
        sizes = ((HR_FILE, hr_bytes),) if hr_only else ((HR_FILE, hr_bytes), (LR_FILE, lr_bytes))
        for name, end in sizes:
            with open(tmp / name, "wb") as f:
                f.truncate(end)
        jobs = [
            (by_name[im.name], not hr_only, scale, tmp, im.hr_offset, im.lr_offset, im.hr_shape[1:])
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
                "lr": _lr_param(src, hr_only),
            },
            "files": {"hr": HR_FILE} if hr_only else {"hr": HR_FILE, "lr": LR_FILE},
            "skipped": skipped,
            "images": [asdict(im) for im in planned],
        }
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    elapsed = time.perf_counter() - started
    store = ImageStore.open(dest)
    converted = [n for n in notes if n]
    lr_text = "no LR" if hr_only else f"LR {lr_bytes / 1e9:.2f} GB"
    summary = (
        f"x{scale}: {len(planned)} images in {dest} (HR {hr_bytes / 1e9:.2f} GB + {lr_text}) "
        f"in {elapsed:.1f} s, {len(planned) / elapsed:.1f} images/s"
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


def ensure_store(data: Path, scale: int, *, workers: int = 2, hr_only: bool = False) -> Path:
    """`data` itself when it is a store, else the store of its images beside it, extracted once:
    `<data>_x<scale>` (HR and LR), or with `hr_only` (a run that makes its LR on the fly) that
    one when it exists, else `<data>_x<scale>_hr` (HR only: no LR packed that nothing reads).
    A store of another scale, or an HR-only store for a run that reads LR, is refused."""
    data = Path(data)
    if (data / INDEX_FILE).exists():
        store = data
    else:
        store = data.with_name(f"{data.name}_x{scale}")
        if hr_only and not (store / INDEX_FILE).exists():
            store = store.with_name(f"{store.name}_hr")
    if not (store / INDEX_FILE).exists():
        console.print(f"extracting {data} into {store} (once)")
        extract_store(data, store, scale, workers=max(1, workers), hr_only=hr_only)
    opened = ImageStore.open(store)
    if opened.scale != scale:
        raise ConfigError(
            f"the store {store} holds ×{opened.scale} pairs but this run trains ×{scale}; "
            f"pass --data with a ×{scale} store or a folder of HR images"
        )
    if not hr_only and not opened.has_lr:
        raise ConfigError(
            f"the store {store} holds HR images only, but this run (degradation bicubic) reads "
            "their LR; pass --data with the HR folder or a store extracted with LR"
        )
    return store
