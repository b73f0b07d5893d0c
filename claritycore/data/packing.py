"""Packing image folders into stores (`store.py` reads them): the HR once, then each scale's LR.

`extract_hr_store` packs a folder's HR images (with Real-ESRGAN's multi-scale copies, if asked),
raw or as lossless shards (`shards.py`);
`extract_lr_store` packs one scale's LR from an HR store: MATLAB bicubic of the mod-cropped HR,
or a paired folder's own LR files, or nothing (a run that degrades on the fly). Images are
processed in parallel, each written at offsets planned from the headers alone, so the bytes
depend only on the input pixels, never on the worker count or the order work finishes.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from claritycore.config import HRFormat
from claritycore.data import shards
from claritycore.data.images import image_size, list_images, read_rgb, staged_dir
from claritycore.data.pairs import hr_images, image_pairs, paired_layout
from claritycore.data.shards import ShardDecodeError, ShardedImage
from claritycore.data.store import (
    FORMAT,
    HR_FILE,
    HR_FORMAT,
    HR_VERSION,
    INDEX_FILE,
    LR_FILE,
    VERSION,
    HRStore,
    ImageStore,
    PackedImage,
    Reader,
    StoredImage,
    StoreError,
    rebuild_hint,
)
from claritycore.errors import ConfigError, UserError
from claritycore.resize import imresize, modcrop
from claritycore.schema import SCALES

# Real-ESRGAN's scripts/generate_multiscale_DF2K.py: every HR image also at these fractions of
# its size, and once more with its shorter side 400 px, each a PIL LANCZOS resize.
MULTISCALE_FACTORS = (0.75, 0.5, 1 / 3)
MULTISCALE_SHORTER_SIDE = 400

console = Console(stderr=True)


def multiscale_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """(height, width) of Real-ESRGAN's four multi-scale copies of a height×width image, with
    its script's arithmetic (int() of a float product), named `<stem>T0` ... `<stem>T3`."""
    sizes = [(int(height * f), int(width * f)) for f in MULTISCALE_FACTORS]
    side = MULTISCALE_SHORTER_SIDE
    if width < height:
        sizes.append((int(side * (height / width)), side))
    else:
        sizes.append((side, int(side * (width / height))))
    return sizes


def _single_threaded() -> None:
    """Pool initializer: one torch thread per worker process, as DataLoader workers do.

    Each process already handles one image; N processes with N threads each oversubscribe
    the cores, and OpenMP's spinning threads then made imresize 10-40x slower (measured on a
    busy 2-core machine). This runs only in the pool's own processes, never the caller's.
    """
    torch.set_num_threads(1)


def _run_jobs(label: str, work: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> list:
    """`work(*job)` for every job, in `workers` processes, with a progress bar; the results."""
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    results = []
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=len(jobs))
        if workers <= 1:
            for job in jobs:
                results.append(work(*job))
                progress.advance(task)
            return results
        # spawn: forking a parent that already runs torch threads can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_threaded) as pool:
            for future in as_completed([pool.submit(work, *job) for job in jobs]):
                results.append(future.result())
                progress.advance(task)
    return results


def _write_planes(file: Path, offset: int, pixels: np.ndarray) -> None:
    with open(file, "r+b") as f:
        f.seek(offset)
        f.write(np.ascontiguousarray(pixels.transpose(2, 0, 1)).data)


def _allocate(file: Path, size: int) -> None:
    # Full-size files first, so each worker writes its own region in place.
    with open(file, "wb") as f:
        f.truncate(size)


def _decode_with_copies(path: Path, sizes: list[tuple[int, int]]) -> tuple[list, str | None]:
    """Image `path` decoded (H×W×3 uint8) and resized to each of `sizes[1:]`; its mode note."""
    pixels, note = read_rgb(path)
    if pixels.shape[:2] != sizes[0]:
        raise RuntimeError(f"{path} decoded to {pixels.shape[:2]}, its header said {sizes[0]}")
    image = Image.fromarray(pixels)
    copies = [
        np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))
        for height, width in sizes[1:]
    ]
    return [pixels, *copies], note


def _pack_hr_one(
    path: Path, file: Path, offsets: list[int], sizes: list[tuple[int, int]]
) -> str | None:
    """Decode one image and write it (and its multi-scale copies) at `offsets`; its mode note."""
    images, note = _decode_with_copies(path, sizes)
    for offset, pixels in zip(offsets, images, strict=True):
        _write_planes(file, offset, pixels)
    return note


# One source image: its path, then the (height, width) of the image and of each copy.
Source = tuple[Path, list[tuple[int, int]]]


def _pack_raw(plans: list[Source], dest: Path, workers: int) -> tuple[dict, list, int, list]:
    """hr.u8 in `dest`: every image's planes back to back. (Index fields, image entries,
    bytes, notes.)"""
    entries, jobs, end = [], [], 0
    for path, sizes in plans:
        offsets = []
        for height, width in sizes:
            entries.append({"shape": [3, height, width], "offset": end})
            offsets.append(end)
            end += 3 * height * width
        jobs.append((path, dest / HR_FILE, offsets, sizes))
    _allocate(dest / HR_FILE, end)
    notes = _run_jobs("extract HR", _pack_hr_one, jobs, workers)
    index = {
        "format": HR_FORMAT,
        "version": HR_VERSION,
        "layout": "planar uint8 (3, H, W), C-order, whole images",
        "files": {"hr": HR_FILE},
    }
    return index, entries, end, notes


def _pack_shard(
    number: int, images: list[tuple[Path, list[tuple[int, int]], int]], file: Path
) -> tuple[int, list[int], list[str | None]]:
    """Write shard `number`: each (source, sizes, copy) image's record, in order. (Its number,
    the records' lengths, the sources' mode notes.)"""
    lengths, notes, decoded = [], [], None
    with open(file, "wb") as out:
        for path, sizes, copy in images:
            if decoded is None or decoded[0] != path:  # a source's copies are neighbours
                pixels, note = _decode_with_copies(path, sizes)
                decoded = (path, pixels)
                notes.append(note)
            record = shards.encode_record(decoded[1][copy])
            out.write(record)
            lengths.append(len(record))
    return number, lengths, notes


def _pack_shards(plans: list[Source], dest: Path, workers: int) -> tuple[dict, list, int, list]:
    """Shard files in `dest` of `shards.SHARD_IMAGES` images each (`shards.py`). (Index
    fields, image entries, bytes, notes.)"""
    per_shard = shards.SHARD_IMAGES
    images = [(path, sizes, copy) for path, sizes in plans for copy in range(len(sizes))]
    jobs = [
        (k // per_shard, images[k : k + per_shard], dest / shards.shard_file(k // per_shard))
        for k in range(0, len(images), per_shard)
    ]
    written = sorted(_run_jobs("extract HR shards", _pack_shard, jobs, workers))
    entries: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for number, lengths, _ in written:
        offset = 0
        for length in lengths:
            entries.append({"shard": number, "offset": offset, "length": length})
            offset += length
        files.append({"file": shards.shard_file(number), "bytes": offset})
    height_width = [size for _, sizes, copy in images for size in [sizes[copy]]]
    for entry, (height, width) in zip(entries, height_width, strict=True):
        entry["shape"] = [3, height, width]
    index = {
        "format": shards.FORMAT,
        "version": shards.VERSION,
        "layout": (
            "shard k holds images k*images_per_shard.. in order; each a uint32 LE table of "
            "(byte length, CRC-32) per tile (row-major tile x tile tiles), then the tiles"
        ),
        "codec": shards.CODEC,
        "encoder": shards.encoder(),
        "tile": shards.TILE,
        "images_per_shard": per_shard,
        "shards": files,
    }
    notes = [note for _, _, shard_notes in written for note in shard_notes]
    return index, entries, sum(f["bytes"] for f in files), notes


# extract.hr_format: how the HR store lays out its images.
HR_PACKERS: dict[str, Callable[[list[Source], Path, int], tuple[dict, list, int, list]]] = {
    "raw": _pack_raw,
    "shards": _pack_shards,
}


def extract_hr_store(
    src: Path,
    dest: Path,
    *,
    workers: int = 2,
    multiscale: bool = False,
    hr_format: HRFormat = "raw",
) -> HRStore:
    """Pack every HR image of `src` (of a paired folder: its HR files) whole into the HR store
    `dest` (replaced atomically), raw or as lossless shards (`hr_format`: `HR_PACKERS`); with
    `multiscale`, each followed by Real-ESRGAN's four multi-scale copies (`multiscale_sizes`)."""
    src, dest = Path(src), Path(dest)
    paths = hr_images(src)
    if not paths:
        raise FileNotFoundError(f"no images in {src}; run `python -m stages.fetch` first")
    plans: list[Source] = []
    names: list[str] = []
    for path in paths:
        sizes = [image_size(path)]
        names.append(path.name)
        if multiscale:
            sizes += multiscale_sizes(*sizes[0])
            names += [f"{path.stem}T{k}.png" for k in range(len(sizes) - 1)]
        plans.append((path, sizes))
    started = time.perf_counter()
    with staged_dir(dest) as tmp:
        index, entries, end, notes = HR_PACKERS[hr_format](plans, tmp, workers)
        index["multiscale"] = (
            f"each image then its copies at {MULTISCALE_FACTORS} of its size and with its "
            f"shorter side {MULTISCALE_SHORTER_SIDE} (PIL LANCZOS, Real-ESRGAN's "
            "generate_multiscale_DF2K.py), named <stem>T0..T3.png"
            if multiscale
            else None
        )
        index["images"] = [
            {"name": name, **entry} for name, entry in zip(names, entries, strict=True)
        ]
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    elapsed = time.perf_counter() - started
    converted = [n for n in notes if n]
    summary = (
        f"HR: {len(entries)} images in {dest} ({end / 1e9:.2f} GB, {hr_format}) in "
        f"{elapsed:.1f} s, {len(paths) / elapsed:.1f} source images/s"
    )
    if converted:
        summary += f"; {len(converted)} converted to 8-bit RGB (e.g. {converted[0]})"
    console.print(summary)
    return HRStore.open(dest)


def _pack_lr_one(
    reader: Reader, image: PackedImage | ShardedImage, scale: int,
    lr_path: Path | None, lr_file: Path, lr_offset: int,
) -> str | None:  # fmt: skip
    """Write one image's LR at `lr_offset`: bicubic of its mod-cropped HR, or its LR file."""
    _, height, width = image.shape
    planes = reader.region(image, 0, 0, height, width)
    hr = modcrop(np.asarray(planes).transpose(1, 2, 0), scale)
    note = None
    if lr_path is None:
        lr = imresize(np.ascontiguousarray(hr), 1 / scale)
    else:
        lr, note = read_rgb(lr_path)
        if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
            raise RuntimeError(f"{lr_path} decoded to {lr.shape[:2]}, its header said otherwise")
    _write_planes(lr_file, lr_offset, lr)
    return note


def _lr_param(pairs_from: Path | None, pack_lr: bool) -> str:
    """index.json's description of the LR planes."""
    if not pack_lr:
        return "none: the HR only (a run that degrades it on the fly, or a scale not asked for)"
    layout = paired_layout(pairs_from) if pairs_from is not None else None
    if layout is not None:
        return f"given: the LR files paired with each HR image ({layout}), not resized"
    return "claritycore.resize.imresize(hr, 1/scale): MATLAB bicubic, whole image"


def extract_lr_store(
    hr_store: Path,
    dest: Path,
    scale: int,
    *,
    pairs_from: Path | None = None,
    pack_lr: bool = True,
    workers: int = 2,
) -> ImageStore:
    """The ×`scale` store `dest` (replaced atomically) over the HR store `hr_store`: each HR
    image mod-cropped to a multiple of `scale` and, with `pack_lr`, its LR: the given LR files
    when `pairs_from` is a paired folder (`data.pairs` checks them first), else
    `imresize(hr, 1/scale)` of the whole image (MATLAB bicubic). Images smaller than the scale
    are skipped."""
    hr_store, dest = Path(hr_store), Path(dest)
    if scale not in SCALES:
        raise ConfigError(f"scale {scale!r} is not supported; choose one of {SCALES}")
    hr = HRStore.open(hr_store)
    lr_files = {}
    if pack_lr and pairs_from is not None and paired_layout(pairs_from) is not None:
        lr_files = {pair.name: pair.lr for pair in image_pairs(pairs_from, scale)}
    images, skipped, end = [], [], 0
    for i, packed in enumerate(hr.images):
        _, height, width = packed.shape
        crop = (3, height - height % scale, width - width % scale)
        if crop[1] == 0 or crop[2] == 0:
            skipped.append(packed.name)
            continue
        lr_shape = (3, crop[1] // scale, crop[2] // scale)
        images.append(StoredImage(packed.name, i, crop, lr_shape, end if pack_lr else 0))
        end += math.prod(lr_shape) if pack_lr else 0
    if not images:
        raise UserError(f"every image in {hr_store} is smaller than the scale {scale}")
    started = time.perf_counter()
    notes: list[str | None] = []
    with staged_dir(dest) as tmp:
        if pack_lr:
            _allocate(tmp / LR_FILE, end)
            jobs = [
                (hr.reader, hr.images[im.hr], scale, lr_files.get(im.name), tmp / LR_FILE,
                 im.lr_offset)
                for im in images
            ]  # fmt: skip
            try:
                notes = _run_jobs(f"extract x{scale}", _pack_lr_one, jobs, workers)
            except ShardDecodeError as error:
                raise StoreError(
                    f"image store {hr_store} is damaged: {error}; {rebuild_hint(hr_store)}"
                ) from None
        index = {
            "format": FORMAT,
            "version": VERSION,
            "scale": scale,
            "hr_store": Path(os.path.relpath(hr_store.absolute(), dest.absolute())).as_posix(),
            "hr_index_sha256": hr.index_digest(),
            "params": {
                "scale": scale,
                "layout": "planar uint8 (3, h, w), C-order",
                "hr": "the HR store's image, mod-cropped to a multiple of scale (bottom/right)",
                "lr": _lr_param(pairs_from, pack_lr),
            },
            "files": {"lr": LR_FILE} if pack_lr else {},
            "skipped": skipped,
            "images": [
                {
                    "name": im.name,
                    "hr": im.hr,
                    "hr_shape": im.hr_shape,
                    "lr_shape": im.lr_shape,
                    "lr_offset": im.lr_offset,
                }
                for im in images
            ],
        }
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    elapsed = time.perf_counter() - started
    lr_text = f"LR {end / 1e9:.2f} GB" if pack_lr else "no LR (index only)"
    summary = f"x{scale}: {len(images)} images in {dest} ({lr_text}) in {elapsed:.1f} s"
    if converted := [n for n in notes if n]:
        summary += f"; {len(converted)} converted to 8-bit RGB (e.g. {converted[0]})"
    if skipped:
        summary += f"; {len(skipped)} skipped as smaller than {scale} px: {', '.join(skipped[:5])}"
    console.print(summary)
    return ImageStore.open(dest)


def extract_store(
    src: Path,
    dest: Path,
    scale: int,
    *,
    workers: int = 2,
    hr_only: bool = False,
    hr_store: Path | None = None,
) -> ImageStore:
    """Pack `src` into an HR store (`hr_store`, by default `<src name>_hr` beside `dest`) and
    its ×`scale` store `dest` (no LR with `hr_only`): `extract_hr_store`, then
    `extract_lr_store`."""
    src, dest = Path(src), Path(dest)
    if scale not in SCALES:
        raise ConfigError(f"scale {scale!r} is not supported; choose one of {SCALES}")
    hr_store = Path(hr_store) if hr_store is not None else dest.with_name(f"{src.name}_hr")
    extract_hr_store(src, hr_store, workers=workers)
    return extract_lr_store(
        hr_store, dest, scale, pairs_from=src, pack_lr=not hr_only, workers=workers
    )


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
    the HR store `<data>_hr` (shared by every scale), and `<data>_x<scale>` (with LR), or with
    `hr_only` (a run that makes its LR on the fly) that one when it exists, else
    `<data>_x<scale>_hr` (no LR packed that nothing reads). A store of another scale, or one
    without LR for a run that reads LR, is refused."""
    data = Path(data)
    if (data / INDEX_FILE).exists():
        store = data
    else:
        store = data.with_name(f"{data.name}_x{scale}")
        if hr_only and not (store / INDEX_FILE).exists():
            store = store.with_name(f"{store.name}_hr")
    if not (store / INDEX_FILE).exists():
        hr_store = data.with_name(f"{data.name}_hr")
        if not (hr_store / INDEX_FILE).exists():
            console.print(f"extracting {data} into {hr_store} (once, for every scale)")
            extract_hr_store(data, hr_store, workers=max(1, workers))
        console.print(f"extracting x{scale} of {hr_store} into {store} (once)")
        extract_lr_store(
            hr_store, store, scale, pairs_from=data, pack_lr=not hr_only, workers=max(1, workers)
        )
    opened = ImageStore.open(store)
    if opened.scale != scale:
        raise ConfigError(
            f"the store {store} holds ×{opened.scale} pairs but this run trains ×{scale}; "
            f"pass --data with a ×{scale} store or a folder of HR images"
        )
    if not hr_only and not opened.has_lr:
        raise ConfigError(
            f"the store {store} holds no LR, but this run (degradation bicubic) reads it; "
            "pass --data with the HR folder or a store extracted with LR"
        )
    return store
