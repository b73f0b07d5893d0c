"""Reading HR images as 8-bit RGB, whatever mode they were saved in; writing image folders."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from claritycore.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# EXIF orientations 5-8 rotate by 90 degrees, so the stored width and height swap on display.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


class ImageReadError(UserError, RuntimeError):
    """An image file that cannot be decoded; the message names the file."""


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (hidden files such as `._x.png` skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


# What Pillow raises for a truncated or corrupt file, at open or when it reads further.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Decoding errors inside the block become an ImageReadError naming `path`."""
    try:
        yield
    except _DECODE_ERRORS as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


def _open(path: Path) -> ImageFile.ImageFile:
    with _reading(path):
        return Image.open(path)


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of the image as `load_rgb` returns it, read from the header only."""
    with _open(Path(path)) as img, _reading(path):
        width, height = img.size
        # A PNG's EXIF can follow the pixel data, so this may read (and fail on) the whole file.
        if img.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
            width, height = height, width
    return height, width


def png_rawmode(img: ImageFile.ImageFile) -> str | None:
    """The raw mode of an opened PNG's pixel data ("RGB", "RGB;16B", ...); None otherwise.

    Pillow decodes 16-bit colour PNGs to 8-bit RGB(A), keeping the high byte: only the raw
    mode shows the file's depth. Read it before `load()`, which empties `img.tile`.
    """
    rawmode = img.tile[0][3] if img.tile and img.format == "PNG" else None
    return rawmode if isinstance(rawmode, str) else None


def is_plain_png(path: Path) -> bool:
    """An intact 8-bit RGB PNG without an orientation tag: its bytes can be copied as they are.

    Raises ImageReadError for a truncated or corrupt file (every chunk's checksum is verified).
    """
    with _open(path) as img, _reading(path):
        if png_rawmode(img) != "RGB" or img.getexif().get(_EXIF_ORIENTATION):
            return False
    with _open(path) as img, _reading(path):
        img.verify()
    return True


def _high_depth_to_uint8(img: Image.Image) -> np.ndarray:
    """16-bit (or 32-bit int/float) single-channel pixels scaled to 8 bits."""
    values = np.asarray(img, dtype=np.float64)
    if img.mode == "F" and values.size and values.max() <= 1.0:
        values = values * 255.0  # float images are conventionally in [0, 1]
    elif values.size and values.max() > 255:
        values = values / 257.0  # 65535 -> 255 exactly, as 16-bit to 8-bit conversion does
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def read_rgb(path: Path) -> tuple[np.ndarray, str | None]:
    """`(pixels, note)`: HxWx3 uint8 RGB and a note describing any conversion (None if none).

    EXIF orientation is applied so the pixels match what viewers show.
    """
    path = Path(path)
    # Truncated or corrupt data often shows only when the pixels are decoded: _reading
    # names the file then too.
    with _open(path) as opened, _reading(path):
        deep = (png_rawmode(opened) or "").endswith(";16B")
        img = ImageOps.exif_transpose(opened)
        mode = img.mode
        note = None if mode == "RGB" else f"{path.name}: {mode} converted to 8-bit RGB"
        if deep:
            note = f"{path.name}: 16-bit {mode} reduced to 8-bit RGB (high byte kept)"
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            gray = _high_depth_to_uint8(img)
            pixels = np.repeat(gray[..., None], 3, axis=2)
        else:
            if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
                note = f"{path.name}: {mode} converted to 8-bit RGB (alpha channel dropped)"
            pixels = np.array(img.convert("RGB"), dtype=np.uint8)  # writable
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) == 0:
        raise ImageReadError(f"image {path} decoded to unusable shape {pixels.shape}")
    return np.ascontiguousarray(pixels), note


def load_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB pixels of `path`; other modes are converted with a warning.

    Raises ImageReadError naming the file when it cannot be decoded.
    """
    pixels, note = read_rgb(path)
    if note:
        warnings.warn(note, stacklevel=2)
    return pixels


# Single-channel modes: scored on their own channel, as the published tables do.
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def load_channels(path: Path) -> np.ndarray:
    """8-bit pixels with the file's own channel count: HxWx1 for a greyscale file (mode L,
    16-bit grey, ...), HxWx3 RGB otherwise. Other conversions as `load_rgb`, with a warning."""
    pixels, note = read_rgb(path)
    with _open(Path(path)) as img:
        mode = img.mode
    if mode in GREY_MODES:
        pixels = np.ascontiguousarray(pixels[..., :1])
        note = None if mode in ("1", "L") else f"{Path(path).name}: {mode} read as 8-bit grey"
    if note:
        warnings.warn(note, stacklevel=2)
    return pixels


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Write HxWx3 (or HxWx1) uint8 pixels as a PNG (deterministic bytes for identical pixels)."""
    pixels = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, format="PNG")


@contextmanager
def staged_dir(dest: Path) -> Iterator[Path]:
    """A temporary folder beside `dest` that replaces `dest` only if the block succeeds.

    A crash leaves at most a hidden `.<name>.partial` folder (removed by the next run), never
    a half-written `dest` that looks complete.
    """
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
