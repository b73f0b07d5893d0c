"""Sharded HR stores: every image as lossless WebP tiles, in shard files of a fixed number of
images, so the store takes fewer bytes than raw planes and DVC moves each shard on its own.

A shard is a file of image records back to back. A record is a table of two uint32
little-endian numbers per tile, its byte length and its CRC-32 (row-major tiles of `TILE`² px,
the last row and column smaller), then the tiles' WebP bytes: WebP has no checksum of its own,
and a damaged tile can decode to other pixels without an error. Shard k holds images k·n ...
k·n + n - 1 of the index's order (n: the index's `images_per_shard`), so a shard's bytes depend
only on its images: appending images at the end rewrites only the last, partial shard and adds
new ones. A crop decodes only the tiles it overlaps. The HR store's index (`store.HRStore`)
records every shard's size and every image's shard, offset and record length.

Lossless WebP at its fastest effort was the codec that decoded fastest per byte saved on
2040×1356 photographs (docs/data.md, "Shard format").
"""

from __future__ import annotations

import io
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

FORMAT, VERSION = "claritycore-hr-shards", 1
TILE = 128  # a 256² crop decodes (256 + 127)² px on average: fewer than with 256² tiles
SHARD_IMAGES = 64  # DIV2K-sized images: about 0.2 GB per shard
CODEC = "webp lossless, quality 0, method 0"
# Decoded tiles a reader keeps (each 48 KiB): a crop's tiles, and neighbours revisited.
CACHED_TILES = 64


class ShardDecodeError(ValueError):
    """A record or tile of a shard that does not decode (`store.HRStore` adds the fix)."""


def shard_file(number: int) -> str:
    """The file name of shard `number`."""
    return f"shard-{number:05d}.bin"


def encoder() -> str:
    """The encoder that wrote the tiles: the same pixels give the same bytes with the same one."""
    return f"libwebp {features.version('webp')} (Pillow {PIL.__version__})"


def tile_grid(height: int, width: int, tile: int) -> tuple[int, int]:
    """(rows, columns) of tiles covering a height×width image."""
    return -(-height // tile), -(-width // tile)


def encode_record(pixels: np.ndarray, tile: int = TILE) -> bytes:
    """An H×W×3 uint8 image as one shard record: its tile table, then its tiles."""
    height, width, _ = pixels.shape
    tiles = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            part = np.ascontiguousarray(pixels[top : top + tile, left : left + tile])
            buffer = io.BytesIO()
            Image.fromarray(part).save(buffer, "WEBP", lossless=True, quality=0, method=0)
            tiles.append(buffer.getvalue())
    table = np.array([(len(t), zlib.crc32(t)) for t in tiles], "<u4")
    return table.tobytes() + b"".join(tiles)


@dataclass(frozen=True)
class ShardedImage:
    """One image of a sharded store: (3, H, W), its record at byte `offset` of shard `shard`,
    `length` bytes long."""

    name: str
    shape: tuple[int, int, int]
    shard: int
    offset: int
    length: int


class ShardReader:
    """Crops of the images of the shards in `path`, decoding only the tiles a crop overlaps.

    Each process (a DataLoader worker) maps the shards and keeps its own decoded-tile cache.
    """

    def __init__(self, path: Path, tile: int) -> None:
        self.path, self.tile = Path(path), tile
        self._maps: dict[int, np.ndarray] = {}
        self._tiles: OrderedDict[tuple[int, int, int, int], np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict:
        # Maps and decoded tiles stay with the process that made them.
        return {**self.__dict__, "_maps": {}, "_tiles": OrderedDict()}

    def _record(self, image: ShardedImage) -> np.ndarray:
        if image.shard not in self._maps:
            file = self.path / shard_file(image.shard)
            self._maps[image.shard] = np.memmap(file, np.uint8, "r").view(np.ndarray)
        return self._maps[image.shard][image.offset : image.offset + image.length]

    def _tile(self, image: ShardedImage, row: int, column: int) -> np.ndarray:
        """Tile (row, column) of `image`, H×W×3, decoded once while it stays cached."""
        key = (image.shard, image.offset, row, column)
        if (cached := self._tiles.get(key)) is not None:
            self._tiles.move_to_end(key)
            return cached
        record = self._record(image)
        rows, columns = tile_grid(image.shape[1], image.shape[2], self.tile)
        table = record[: 8 * rows * columns].view("<u4").reshape(-1, 2).astype(np.int64)
        ends = 8 * rows * columns + np.cumsum(table[:, 0])
        where = f"{shard_file(image.shard)}: {image.name}"
        if ends[-1] != image.length:
            raise ShardDecodeError(
                f"{where}'s tile table sums to {ends[-1]} bytes, its index says {image.length}"
            )
        k = row * columns + column
        data = record[int(ends[k - 1]) if k else 8 * rows * columns : ends[k]].tobytes()
        if zlib.crc32(data) != table[k, 1]:
            raise ShardDecodeError(f"{where}'s tile {k} does not match its CRC-32")
        try:
            with Image.open(io.BytesIO(data), formats=["WEBP"]) as decoded:
                pixels = np.asarray(decoded)
        except (OSError, ValueError, SyntaxError) as error:
            raise ShardDecodeError(f"{where}'s tile {k} does not decode ({error})") from None
        self._tiles[key] = pixels
        if len(self._tiles) > CACHED_TILES:
            self._tiles.popitem(last=False)
        return pixels

    def region(
        self, image: ShardedImage, top: int, left: int, height: int, width: int
    ) -> np.ndarray:
        """Rows top..top+height, columns left..left+width of `image` as a new (3, h, w) array."""
        out = np.empty((3, height, width), np.uint8)
        tile = self.tile
        for row in range(top // tile, (top + height - 1) // tile + 1):
            for column in range(left // tile, (left + width - 1) // tile + 1):
                pixels = self._tile(image, row, column)
                tile_top, tile_left = row * tile, column * tile
                y0, x0 = max(top, tile_top), max(left, tile_left)
                y1 = min(top + height, tile_top + pixels.shape[0])
                x1 = min(left + width, tile_left + pixels.shape[1])
                part = pixels[y0 - tile_top : y1 - tile_top, x0 - tile_left : x1 - tile_left]
                out[:, y0 - top : y1 - top, x0 - left : x1 - left] = part.transpose(2, 0, 1)
        return out
