"""Tiled upscaling of images of any size with a trained super-resolution model.

The image is cut into overlapping windows of `tile + 2 * tile_pad` pixels. Every window lies
inside the image (it is shifted at the borders rather than padded), so all windows have one
size and can be batched, and a window's edge only touches zero padding where the whole image
would too. Each window's centre (`tile` pixels) is kept; when `tile_pad` covers the model's
receptive field, the stitched output equals whole-image inference.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from claritycore.config import EvalOptions
from claritycore.device import PRECISION_DTYPES, cuda_half_dtype, resolve_device
from claritycore.resize import imresize

PRECISIONS = ("auto", *PRECISION_DTYPES)
# Values of an integer dtype map to [0, 1] by this maximum; floats are taken as [0, 1].
_DTYPE_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# ITU-R 601-2 luma, the weights PIL uses for RGB -> L, so grey in gives the grey PIL would.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def model_scale(model: nn.Module) -> int:
    """The upscaling factor a model records (`model.config.scale`, else `model.scale`)."""
    config = getattr(model, "config", None)
    scale = getattr(config, "scale", None) or getattr(model, "scale", None)
    if not isinstance(scale, int):
        raise ValueError("the model records no integer scale (expected model.config.scale)")
    return scale


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast on CUDA only: CPU inference stays fp32, where bf16 is slower and less exact."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is unknown; choose one of {PRECISIONS}")
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = cuda_half_dtype() if precision == "auto" else PRECISION_DTYPES[precision]
    return torch.autocast("cuda", dtype=dtype)


@dataclass(frozen=True)
class _Window:
    """One tile: the input window [top:bottom, left:right] and the kept core inside it."""

    top: int
    left: int
    core_top: int
    core_left: int
    core_bottom: int
    core_right: int


def _starts(size: int, tile: int, pad: int) -> Iterator[tuple[int, int, int]]:
    """(window start, core start, core end) along one axis, for windows of tile + 2 * pad.

    The first and last windows touch the image border, so their cores can be tile + pad wide:
    a side that fits in one window is one window, not a few overlapping ones.
    """
    window = tile + 2 * pad
    if size <= window:
        yield 0, 0, size
        return
    core, end = 0, tile + pad
    while size - core > tile + pad:
        yield max(core - pad, 0), core, end
        core, end = end, end + tile
    yield size - window, core, size


def _windows(height: int, width: int, tile: int, pad: int) -> list[_Window]:
    return [
        _Window(top, left, ct, cl, cb, cr)
        for top, ct, cb in _starts(height, tile, pad)
        for left, cl, cr in _starts(width, tile, pad)
    ]


def _progress(show: bool) -> Progress:
    columns = [TextColumn("upscaling"), BarColumn(), TextColumn("{task.completed}/{task.total}")]
    # On stderr, so piped stdout stays clean.
    console = Console(stderr=True)
    return Progress(
        *columns, TimeRemainingColumn(), console=console, transient=True, disable=not show
    )


@torch.inference_mode()
def upscale_tensor(
    model: nn.Module,
    x: torch.Tensor,
    *,
    tile: int = EvalOptions.tile,
    tile_pad: int = EvalOptions.tile_pad,
    device: str | torch.device | None = None,
    precision: str = "auto",
    batch_size: int | None = None,
    progress: bool | None = None,
    out_dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Upscale a (C, H, W) float tensor in [0, 1]; returns an (sH, sW, C) array of `out_dtype`.

    Integer `out_dtype`s are quantised tile by tile (rounding is per pixel, so this equals
    quantising the whole output) so a large output never exists in float32.
    """
    if tile < 0 or tile_pad < 0:
        raise ValueError(
            f"tile and tile_pad must be >= 0 (0 = whole image), got {tile}, {tile_pad}"
        )
    dev = resolve_device(device)
    model = model.to(dev).eval()
    scale = model_scale(model)
    _, height, width = x.shape
    # Real-ESRGAN's x2 pixel-unshuffles the input: pad it once here as the model would, and
    # keep every window on the same 2-pixel grid, so tiles see what the whole image sees.
    align = getattr(model, "unshuffle", 1)
    if align > 1 and (height % align or width % align):
        mode = "reflect" if min(height, width) > 1 else "replicate"
        x = torch.nn.functional.pad(x[None], (0, -width % align, 0, -height % align), mode=mode)[0]
    padded_h, padded_w = x.shape[-2:]
    if tile == 0:
        tile = max(padded_h, padded_w)
    tile, tile_pad = math.ceil(tile / align) * align, math.ceil(tile_pad / align) * align
    windows = _windows(padded_h, padded_w, tile, tile_pad)
    if batch_size is None:
        # Batching helps a GPU stay busy; on CPU it only multiplies the activation memory.
        batch_size = 4 if dev.type == "cuda" else 1
    win_h, win_w = min(padded_h, tile + 2 * tile_pad), min(padded_w, tile + 2 * tile_pad)

    out = np.empty((height * scale, width * scale, x.shape[0]), dtype=out_dtype)
    maximum = _DTYPE_MAX.get(out.dtype)
    show = len(windows) >= 8 if progress is None else progress
    with _progress(show) as bar, _autocast(dev, precision):
        task = bar.add_task("tiles", total=len(windows))
        for first in range(0, len(windows), batch_size):
            group = windows[first : first + batch_size]
            batch = torch.stack(
                [x[:, w.top : w.top + win_h, w.left : w.left + win_w] for w in group]
            )
            result = model(batch.to(dev)).float().clamp_(0, 1)
            for w, y in zip(group, result, strict=True):
                # Cores of the padded image's last row/column may reach past the real image.
                bottom, right = min(w.core_bottom, height), min(w.core_right, width)
                if bottom <= w.core_top or right <= w.core_left:
                    continue
                rows = slice((w.core_top - w.top) * scale, (bottom - w.top) * scale)
                cols = slice((w.core_left - w.left) * scale, (right - w.left) * scale)
                core = y[:, rows, cols].permute(1, 2, 0)
                if maximum is not None:
                    core = core.mul(maximum).round_()
                out[w.core_top * scale : bottom * scale, w.core_left * scale : right * scale] = (
                    core.cpu().numpy()
                )
            bar.advance(task, len(group))
    return out


def _to_float(array: np.ndarray) -> np.ndarray:
    maximum = _DTYPE_MAX.get(array.dtype)
    if maximum is None and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"unsupported array dtype {array.dtype}; use uint8, uint16 or float")
    return array.astype(np.float32) / maximum if maximum else array.astype(np.float32)


def _from_float(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    maximum = _DTYPE_MAX.get(np.dtype(dtype))
    if maximum is None:
        return array.astype(dtype)
    return np.clip(np.round(array * maximum), 0, maximum).astype(dtype)


def upscale_array(model: nn.Module, array: np.ndarray, **options) -> np.ndarray:
    """Upscale an HxW, HxWx1, HxWx3 or HxWx4 array (uint8, uint16 or float in [0, 1]).

    The result has the input's dtype and channel layout. Grey is replicated to RGB and
    converted back with the 601-2 luma weights; alpha is resized with MATLAB bicubic.
    `options` are `upscale_tensor`'s keywords.
    """
    dtype = array.dtype
    channels = 1 if array.ndim == 2 else array.shape[2]
    if array.ndim not in (2, 3) or channels not in (1, 3, 4):
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {array.shape}")
    pixels = array.reshape(array.shape[0], array.shape[1], channels)
    rgb = pixels[..., :3] if channels >= 3 else np.repeat(pixels, 3, axis=2)
    x = torch.from_numpy(np.ascontiguousarray(_to_float(rgb).transpose(2, 0, 1)))
    # The model output is quantised directly for 3-channel integer results; other layouts
    # still need float for the luma and alpha steps.
    direct = channels == 3
    out = upscale_tensor(model, x, out_dtype=dtype if direct else np.float32, **options)
    if direct:
        return out
    if channels == 1:
        grey = out @ _LUMA
        return _from_float(grey if array.ndim == 2 else grey[..., None], dtype)
    scale = out.shape[0] // array.shape[0]
    alpha = np.clip(imresize(_to_float(pixels[..., 3:]), scale), 0, 1)
    return _from_float(np.concatenate([out, alpha], axis=2), dtype)


def upscale(
    model: nn.Module, image: Image.Image | np.ndarray, **options
) -> Image.Image | np.ndarray:
    """Upscale a PIL image or a numpy array with `model`, tile by tile.

    Keywords (see `upscale_tensor`): `tile` (0 = whole image), `tile_pad`,
    `device=None` (auto), `precision="auto"` (bf16/fp16 autocast on CUDA), `batch_size`,
    `progress`. A PIL image is turned upright by its EXIF orientation and comes back in its
    mode: RGB, RGBA and LA (alpha by bicubic), L, P (converted and back), I;16 and I
    (16-bit, in float). Arrays: see `upscale_array`.
    """
    if isinstance(image, np.ndarray):
        return upscale_array(model, image, **options)
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        return Image.fromarray(upscale_array(model, np.asarray(image), **options))
    if mode in ("L", "LA"):
        rgb = image.convert("RGBA" if mode == "LA" else "RGB")
        return Image.fromarray(upscale_array(model, np.asarray(rgb), **options)).convert(mode)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: Pillow reads it as I;16 (or I); process in float, write back 16-bit.
        values = np.asarray(image)
        result = upscale_array(model, np.clip(values, 0, 65535).astype(np.uint16), **options)
        return Image.fromarray(result.astype(values.dtype))
    if mode == "P":
        if "transparency" in image.info:
            # A palette has no smooth alpha: transparent palette images come back as RGBA.
            return upscale(model, image.convert("RGBA"), **options)
        result = upscale(model, image.convert("RGB"), **options)
        return result.quantize(palette=image, dither=Image.Dither.NONE)
    if mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        return upscale(model, image.convert("RGB"), **options).convert(mode)
    raise ValueError(
        f"image mode {mode!r} is not supported; supported: RGB, RGBA, L, LA, P, I;16, I, "
        "1, CMYK, YCbCr, LAB, HSV"
    )
