"""Image stores: one HR copy for every scale, and beside it each scale's LR.

The HR store (the pipeline's `data/stores/hr`) holds every training image whole, once: `hr.u8`
with each image planar (3×H×W, so a crop copies contiguous row segments) back to back, and
`index.json` naming each with its shape and byte offset. A scale's store (`data/stores/xS`)
holds that scale's LR only, `lr.u8`, and an index naming its HR store (a relative path and the
sha256 of its index), each image's place there, the HR shape mod-cropped to a multiple of S,
and the LR's shape and offset. A store for a run that degrades the HR on the fly, or for a
scale no experiment asked for, has no `lr.u8`: its index alone.

Training memory-maps the files: no decoding per sample, and no tens of thousands of small files
for DVC to hash. Whole images are kept, so a crop may start at any LR pixel. Opening a store
checks every file against its index, so a truncated copy fails with one line saying how to
rebuild it, not at the first batch. The HR store may instead be sharded (`extract.hr_format:
shards`, `shards.py`): lossless WebP tiles in shard files, a crop decoding only its tiles.
Stores of version 1 (before the shared HR copy: one scale's `hr.u8` and `lr.u8` in one folder)
are still read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from claritycore.data import shards
from claritycore.data.shards import ShardDecodeError, ShardedImage, ShardReader
from claritycore.errors import ConfigError, UserError
from claritycore.schema import SCALES

# The format name predates "image store"; kept so existing stores (and run keys) stay valid.
FORMAT = "claritycore-patch-store"
VERSION = 2  # version 1: a scale's HR and LR in one folder (still read)
HR_FORMAT, HR_VERSION = "claritycore-hr-store", 1
HR_FILE, LR_FILE, INDEX_FILE = "hr.u8", "lr.u8", "index.json"
PIPELINE_STORES = Path("data/stores")


class StoreError(UserError, ValueError):
    """A store whose index or files are not what its index says (truncated, edited, foreign)."""


@dataclass(frozen=True)
class PackedImage:
    """One image of an HR store: its (3, H, W) planes at byte `offset` of hr.u8."""

    name: str
    shape: tuple[int, int, int]
    offset: int


@dataclass(frozen=True)
class StoredImage:
    """One image of a scale's store: its HR (the HR store's image `hr`, mod-cropped to
    `hr_shape`) and its (3, h, w) LR planes at byte `lr_offset` of lr.u8."""

    name: str
    hr: int
    hr_shape: tuple[int, int, int]
    lr_shape: tuple[int, int, int]
    lr_offset: int

    @property
    def lr_bytes(self) -> int:
        return math.prod(self.lr_shape)


def pipeline_store(scale: int) -> Path:
    """Where the pipeline's extract@S stage keeps the ×`scale` store (dvc.yaml's outs)."""
    return PIPELINE_STORES / f"x{scale}"


def pipeline_hr_store() -> Path:
    """Where the pipeline's extract_hr stage keeps the HR store every scale reads."""
    return PIPELINE_STORES / "hr"


def write_store_plan(scales: tuple[int, ...], path: Path) -> None:
    """build/stores.yaml: for every scale, whether extract@S packs its LR (`lr.x<S>`), so each
    extract@S stage depends on its own key and re-runs only when that changes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plan = {"lr": {f"x{scale}": scale in scales for scale in SCALES}}
    header = (
        "# Written by `resolve` (stages/resolve.py): whether extract@S packs the LR of scale S,\n"
        "# from the experiment (its own scale, unless it degrades on the fly) and data.scales.\n"
    )
    path.write_text(header + yaml.safe_dump(plan, sort_keys=False))


def reads_lr(scale: int, path: Path) -> bool:
    """Whether build/stores.yaml (`write_store_plan`) asks extract@`scale` to pack its LR."""
    if not path.is_file():
        raise ConfigError(
            f"{path} not found; run `dvc repro resolve` (or python -m stages.resolve)"
        )
    try:
        return bool((yaml.safe_load(path.read_text()) or {})["lr"][f"x{scale}"])
    except (KeyError, TypeError):
        raise ConfigError(f"{path} has no lr.x{scale}; run `dvc repro resolve`") from None


def rebuild_hint(path: Path) -> str:
    """How to rebuild the store at `path`: the pipeline's stage for `data/stores/{hr,xS}`, else
    extracting its HR folder again (`claritycore train --data` extracts a missing store)."""
    path = Path(path)
    if path.parent.name == "stores" and path.name == "hr":
        return "rebuild it with `dvc repro -f extract_hr` (or `dvc pull data/stores/hr`)"
    if path.parent.name == "stores" and re.fullmatch(r"x\d+", path.name):
        return f"rebuild it with `dvc repro -f extract@{path.name[1:]}`"
    return (
        f"delete {path} and re-run `claritycore train --data` on its HR folder (or "
        "`dvc repro -f extract@S` for a pipeline store)"
    )


def _load_index(path: Path, formats: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """The index of the store at `path`, if its format is one of `formats` (name: versions)."""
    if not (path / INDEX_FILE).is_file():
        raise FileNotFoundError(
            f"{path} is not an image store (no {INDEX_FILE}); run `python -m stages.extract "
            f"--scale S` (or `dvc repro`) to build it"
        )
    try:
        index = json.loads((path / INDEX_FILE).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(
            f"image store {path} is damaged: {INDEX_FILE} is not JSON ({error}); "
            f"{rebuild_hint(path)}"
        ) from None
    found = (index.get("format"), index.get("version")) if isinstance(index, dict) else None
    if found is None or found[1] not in formats.get(str(found[0]), ()):
        wanted = " or ".join(
            f"{name} version {'/'.join(map(str, v))}" for name, v in formats.items()
        )
        raise StoreError(
            f"image store {path}: {INDEX_FILE} is not a {wanted} index "
            f"(format, version: {found}); {rebuild_hint(path)}"
        )
    return index


def _check_size(path: Path, name: str, size: int) -> None:
    file = path / name
    actual = file.stat().st_size if file.is_file() else None
    if actual != size:
        found = "is missing" if actual is None else f"holds {actual:,} bytes"
        raise StoreError(
            f"image store {path} is damaged: {name} {found}, its {INDEX_FILE} says "
            f"{size:,} (truncated or interrupted copy?); {rebuild_hint(path)}"
        )


def _garbled(path: Path, error: Exception) -> StoreError:
    return StoreError(
        f"image store {path} is damaged: {INDEX_FILE} lacks or garbles {error}; "
        f"{rebuild_hint(path)}"
    )


class Reader(Protocol):
    """Where an HR store's pixels come from: `RawReader` or `shards.ShardReader`."""

    def region(self, image: Any, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Rows top..top+height, columns left..left+width of `image` (its index entry)."""
        ...


class RawReader:
    """Crops of the images of a raw hr.u8, as views of its memory map (no copy)."""

    def __init__(self, file: Path) -> None:
        self.file = Path(file)
        self._map: np.ndarray | None = None

    def __getstate__(self) -> dict:
        # Pickling a memmap copies its whole contents; DataLoader workers re-map instead.
        return {**self.__dict__, "_map": None}

    def region(
        self, image: PackedImage, top: int, left: int, height: int, width: int
    ) -> np.ndarray:
        """Rows top..top+height, columns left..left+width of `image`, a (3, h, w) view."""
        if self._map is None:
            self._map = _map(self.file)
        planes = self._map[image.offset : image.offset + math.prod(image.shape)]
        return planes.reshape(image.shape)[:, top : top + height, left : left + width]


class HRStore:
    """Read-only view of an HR store, raw (or a version-1 store's hr.u8) or sharded."""

    def __init__(
        self,
        path: Path,
        images: Sequence[PackedImage | ShardedImage],
        reader: Reader,
    ) -> None:
        self.path = Path(path)
        self.images = images
        self.reader = reader

    @classmethod
    def open(cls, path: Path) -> HRStore:
        """Open the HR store written by `packing.extract_hr_store`, checking index and files."""
        path = Path(path)
        index = _load_index(path, {HR_FORMAT: (HR_VERSION,), shards.FORMAT: (shards.VERSION,)})
        if index["format"] == shards.FORMAT:
            return _open_sharded(path, index)
        try:
            images = [
                PackedImage(e["name"], tuple(e["shape"]), e["offset"]) for e in index["images"]
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise _garbled(path, error) from None
        return cls._checked(path, images)

    @classmethod
    def _checked(cls, path: Path, images: list[PackedImage]) -> HRStore:
        """The store, once the images lie back to back and hr.u8 holds exactly their bytes."""
        end = 0
        for image in images:
            if image.offset != end:
                raise StoreError(
                    f"image store {path} is damaged: {INDEX_FILE} places {image.name} at offset "
                    f"{image.offset}, not {end}; {rebuild_hint(path)}"
                )
            end += math.prod(image.shape)
        _check_size(path, HR_FILE, end)
        return cls(path, images, RawReader(path / HR_FILE))

    def index_digest(self) -> str:
        """sha256 of index.json: a scale's store records it to name the HR copy it was made from."""
        return hashlib.sha256((self.path / INDEX_FILE).read_bytes()).hexdigest()

    def __len__(self) -> int:
        return len(self.images)

    def region(self, i: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Rows top..top+height, columns left..left+width of image `i`, (3, h, w) uint8: a view
        of a raw store, a new array decoded from a sharded one."""
        try:
            return self.reader.region(self.images[i], top, left, height, width)
        except ShardDecodeError as error:
            raise StoreError(
                f"image store {self.path} is damaged: {error}; {rebuild_hint(self.path)}"
            ) from None

    def planar(self, i: int) -> np.ndarray:
        """Image `i` as (3, H, W) uint8 (a view of a raw store)."""
        _, height, width = self.images[i].shape
        return self.region(i, 0, 0, height, width)


def _open_sharded(path: Path, index: dict[str, Any]) -> HRStore:
    """A sharded HR store, once its records lie back to back in shards whose files hold
    exactly the bytes the index gives them (a truncated shard is named here, not mid-run)."""
    try:
        images = [
            ShardedImage(e["name"], tuple(e["shape"]), e["shard"], e["offset"], e["length"])
            for e in index["images"]
        ]
        sizes = [int(s["bytes"]) for s in index["shards"]]
        tile = int(index["tile"])
    except (KeyError, TypeError, ValueError) as error:
        raise _garbled(path, error) from None
    ends = [0] * len(sizes)
    for image in images:
        if not 0 <= image.shard < len(sizes) or image.offset != ends[image.shard]:
            raise StoreError(
                f"image store {path} is damaged: {INDEX_FILE} places {image.name} at offset "
                f"{image.offset} of shard {image.shard}, not after the images before it; "
                f"{rebuild_hint(path)}"
            )
        ends[image.shard] += image.length
    for number, (end, size) in enumerate(zip(ends, sizes, strict=True)):
        if end != size:
            raise _garbled(path, KeyError(f"shard {number}'s size {size} (its images: {end})"))
        _check_size(path, shards.shard_file(number), size)
    return HRStore(path, images, ShardReader(path, tile))


def _map(file: Path) -> np.ndarray:
    # A plain ndarray view of the map: slicing a np.memmap subclass costs microseconds of
    # bookkeeping per view, which adds up at thousands of crops per second.
    return np.memmap(file, dtype=np.uint8, mode="r").view(np.ndarray)


def _open_v1(path: Path, index: dict[str, Any]) -> tuple[int, list[StoredImage], HRStore, bool]:
    """A version-1 store: HR and LR of one scale in one folder, HR already mod-cropped."""
    try:
        entries = index["images"]
        packed = [PackedImage(e["name"], tuple(e["hr_shape"]), e["hr_offset"]) for e in entries]
        images = [
            StoredImage(e["name"], i, tuple(e["hr_shape"]), tuple(e["lr_shape"]), e["lr_offset"])
            for i, e in enumerate(entries)
        ]
        scale, files = int(index["scale"]), dict(index["files"])
    except (KeyError, TypeError, ValueError) as error:
        raise _garbled(path, error) from None
    if files not in ({"hr": HR_FILE}, {"hr": HR_FILE, "lr": LR_FILE}):
        raise StoreError(
            f"image store {path} is damaged: {INDEX_FILE} names files {files}, not {HR_FILE} "
            f"(and {LR_FILE}); {rebuild_hint(path)}"
        )
    return scale, images, HRStore._checked(path, packed), "lr" in files


def _open_v2(path: Path, index: dict[str, Any]) -> tuple[int, list[StoredImage], HRStore, bool]:
    """A scale's store: its LR here, its HR in the HR store the index names."""
    try:
        images = [
            StoredImage(
                e["name"], e["hr"], tuple(e["hr_shape"]), tuple(e["lr_shape"]), e["lr_offset"]
            )
            for e in index["images"]
        ]
        scale, has_lr = int(index["scale"]), index["files"] == {"lr": LR_FILE}
        # normpath: name `data/stores/hr` in messages, not `data/stores/x4/../hr`.
        hr_path = Path(os.path.normpath(path / index["hr_store"]))
        digest = str(index["hr_index_sha256"])
    except (KeyError, TypeError, ValueError) as error:
        raise _garbled(path, error) from None
    if not (hr_path / INDEX_FILE).is_file():
        raise StoreError(
            f"image store {path} reads its HR images from {hr_path}, which is not there; "
            f"{rebuild_hint(hr_path)}"
        )
    hr = HRStore.open(hr_path)
    if hr.index_digest() != digest:
        raise StoreError(
            f"image store {path} was extracted from another HR store than {hr_path} (the "
            f"sha256 of its {INDEX_FILE} differs); {rebuild_hint(path)}"
        )
    for image in images:
        if not 0 <= image.hr < len(hr) or hr.images[image.hr].name != image.name:
            raise StoreError(
                f"image store {path} is damaged: {image.name} is not image {image.hr} of "
                f"{hr_path}; {rebuild_hint(path)}"
            )
    return scale, images, hr, has_lr


class ImageStore:
    """Read-only view of one scale's store: HR (mod-cropped to the scale) and LR per image,
    memory-mapped on first use."""

    def __init__(
        self, path: Path, scale: int, images: list[StoredImage], hr: HRStore, *, has_lr: bool
    ) -> None:
        self.path = Path(path)
        self.scale = scale
        self.images = images
        self.hr_store = hr
        self.has_lr = has_lr
        self._lr: np.ndarray | None = None

    @classmethod
    def open(cls, path: Path) -> ImageStore:
        """Open the store written by `packing.extract_lr_store` (or a version-1 store) at
        `path`, checking its index and files (StoreError, one line with the fix, if they
        disagree)."""
        path = Path(path)
        index = _load_index(path, {FORMAT: (1, VERSION)})
        opener = _open_v1 if index["version"] == 1 else _open_v2
        scale, images, hr, has_lr = opener(path, index)
        end = 0
        for image in images if has_lr else ():
            if image.lr_offset != end:
                raise StoreError(
                    f"image store {path} is damaged: {INDEX_FILE} places {image.name}'s LR at "
                    f"offset {image.lr_offset}, not {end}; {rebuild_hint(path)}"
                )
            end += image.lr_bytes
        if has_lr:
            _check_size(path, LR_FILE, end)
        return cls(path, scale, images, hr, has_lr=has_lr)

    def __len__(self) -> int:
        return len(self.images)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_lr": None}

    @property
    def names(self) -> list[str]:
        return [image.name for image in self.images]

    def hr_planar(self, i: int) -> np.ndarray:
        """HR image `i`, mod-cropped to the scale, as (3, H, W) uint8 (a view of a raw store)."""
        _, height, width = self.images[i].hr_shape
        return self.hr_region(i, 0, 0, height, width)

    def hr_region(self, i: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Rows top..top+height, columns left..left+width of HR image `i`, (3, h, w) uint8,
        inside its mod-cropped shape (a view of a raw store; decoded from a sharded one)."""
        return self.hr_store.region(self.images[i].hr, top, left, height, width)

    def lr_planar(self, i: int) -> np.ndarray:
        """LR image `i` as a (3, h, w) uint8 view (no copy); StoreError for a store without LR."""
        if not self.has_lr:
            raise StoreError(
                f"image store {self.path} holds no LR (extracted for a run that degrades the HR "
                "on the fly, or for a scale the experiment did not ask for): train with "
                f"degradation.type realesrgan, add {self.scale} to data.scales and `dvc repro "
                f"extract@{self.scale}`, or give --data the HR folder"
            )
        if self._lr is None:
            self._lr = _map(self.path / LR_FILE)
        image = self.images[i]
        end = image.lr_offset + image.lr_bytes
        return self._lr[image.lr_offset : end].reshape(image.lr_shape)

    def hr(self, i: int) -> np.ndarray:
        """HR image `i` as an H×W×3 uint8 view (no copy)."""
        return self.hr_planar(i).transpose(1, 2, 0)

    def lr(self, i: int) -> np.ndarray:
        """LR image `i` as an h×w×3 uint8 view (no copy)."""
        return self.lr_planar(i).transpose(1, 2, 0)
