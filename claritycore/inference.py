"""Tiled upscaling of images of any size with a trained super-resolution model.

The image is cut into the fewest overlapping windows of at most `tile + 2 * tile_pad` pixels
a side. All windows have one size (so they batch) and lie inside the image, so a window's
edge only touches zero padding where the whole image would too. Each window keeps its core;
every core pixel has at least `tile_pad` pixels of context, so when `tile_pad` covers the
model's receptive field the stitched output equals whole-image inference. The model computes
the image plus 2 * tile_pad per window boundary, what Real-ESRGAN's variable-size tiles cost.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import torch
from PIL import Image, ImageOps
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from claritycore.config import PRECISIONS, EvaluateOptions
from claritycore.device import PRECISION_DTYPES, cpu_has_native_bf16, resolve_device
from claritycore.resize import imresize

# `auto` may pick bf16: measured on a lite x4 model trained with the CLI (800 steps on
# data/sample), bf16 output vs fp32 output >= 53.5 dB PSNR on every Set5/Set14 image and
# PSNR-Y within 0.008 dB (Set5 28.2138 -> 28.2064, Set14 26.0041 -> 26.0003).
AUTO_BF16 = True
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


def inference_precision(device: torch.device) -> str:
    """What `precision="auto"` runs: bf16 on CUDA GPUs with bf16 and on CPUs that compute
    bf16 natively (AVX512-BF16/AMX), fp32 elsewhere (AUTO_BF16 holds why)."""
    if not AUTO_BF16:
        return "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def _compute_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None = plain float32."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision={precision!r} is unknown; choose one of {', '.join(PRECISIONS)}"
        )
    if precision == "auto":
        precision = inference_precision(device)
    return PRECISION_DTYPES[precision]


@dataclass(frozen=True)
class _DevicePlan:
    """How windows run on a device: how many per forward, in which memory layout."""

    batch_size: int
    memory_format: torch.memory_format


# Batching keeps a GPU busy; on CPU it only multiplies the activation memory. CPU convs
# (oneDNN) run channels-last natively: measured 0.83× the time of contiguous NCHW.
_DEVICE_PLANS = {
    True: _DevicePlan(batch_size=4, memory_format=torch.contiguous_format),
    False: _DevicePlan(batch_size=1, memory_format=torch.channels_last),
}


@dataclass(frozen=True)
class Span:
    """One window along an axis: input [start, start + length) and its kept core [lo, hi)."""

    start: int
    lo: int
    hi: int


def axis_spans(size: int, tile: int, pad: int) -> tuple[int, list[Span]]:
    """(window length, spans) along one axis: the fewest windows of at most tile + 2 * pad.

    All windows have one length, so they batch. Border windows need context on one side only,
    so their cores are `pad` wider; the overlaps (each >= 2 * pad) are spread evenly and each
    is split in the middle, so every core pixel has >= `pad` of context or touches the border.
    The windows then cover size + 2 * pad * (n - 1) pixels, plus at most n - 1 of rounding:
    what any layout of n windows with `pad` of context must compute.
    """
    if tile <= 0 or size <= tile + 2 * pad:
        return size, [Span(0, 0, size)]
    count = math.ceil((size - 2 * pad) / tile)
    length = math.ceil((size + 2 * pad * (count - 1)) / count)
    overlap, extra = divmod(count * length - size, count - 1)
    spans, start, lo = [], 0, 0
    for i in range(count - 1):
        step = overlap + (i < extra)
        nxt = start + length - step
        hi = nxt + step // 2
        spans.append(Span(start, lo, hi))
        start, lo = nxt, hi
    spans.append(Span(start, lo, size))
    return length, spans


def model_input_pixels(height: int, width: int, tile: int, tile_pad: int, align: int = 1) -> int:
    """Input pixels the model computes for an image: windows × window area.

    The work of tiled inference, as a number to test and compare: RealESRGANer computes
    (W + 2·pad·(nx − 1)) · (H + 2·pad·(ny − 1)) with n = ceil(side / tile).
    """
    (win_h, rows), (win_w, cols) = (
        _aligned_spans(side, tile, tile_pad, align) for side in (height, width)
    )
    return len(rows) * len(cols) * win_h * win_w


def _aligned_spans(size: int, tile: int, pad: int, align: int) -> tuple[int, list[Span]]:
    """`axis_spans` on a grid of `align` pixels (the model unshuffles align × align cells)."""
    cells = math.ceil(size / align)
    length, spans = axis_spans(cells, math.ceil(tile / align), math.ceil(pad / align))
    scaled = [Span(s.start * align, s.lo * align, s.hi * align) for s in spans]
    return length * align, scaled


def _progress(show: bool) -> Progress:
    columns = [TextColumn("upscaling"), BarColumn(), TextColumn("{task.completed}/{task.total}")]
    # On stderr, so piped stdout stays clean.
    console = Console(stderr=True)
    return Progress(
        *columns, TimeRemainingColumn(), console=console, transient=True, disable=not show
    )


def _batches(items: list, size: int) -> Iterator[list]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


@torch.inference_mode()
def upscale_tensor(
    model: nn.Module,
    x: torch.Tensor,
    *,
    tile: int = EvaluateOptions.tile,
    tile_pad: int = EvaluateOptions.tile_pad,
    device: str | torch.device | None = None,
    precision: str = "auto",
    batch_size: int | None = None,
    progress: bool | None = None,
    out_dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Upscale a (C, H, W) float tensor in [0, 1]; returns an (sH, sW, C) array of `out_dtype`.

    Each window's core is written straight into the result; integer `out_dtype`s are
    quantised per window (rounding is per pixel, so this equals quantising the whole output),
    so a large output never exists in float32. On CPU the model's weights are switched to
    channels-last, oneDNN's native layout (measured faster, and no per-conv reorder copies).
    """
    if tile < 0 or tile_pad < 0:
        raise ValueError(
            f"tile and tile_pad must be >= 0 (0 = whole image), got {tile}, {tile_pad}"
        )
    dev = resolve_device(device)
    compute = _compute_dtype(dev, precision)
    plan = _DEVICE_PLANS[dev.type == "cuda"]
    # Module.to takes memory_format (as Tensor.to does); torch's overloads leave it out.
    model = model.to(dev, memory_format=plan.memory_format).eval()  # type: ignore[call-overload]
    scale = model_scale(model)
    _, height, width = x.shape
    # Real-ESRGAN's x2 pixel-unshuffles the input: pad it once here as the model would, and
    # keep every window on the same 2-pixel grid, so tiles see what the whole image sees.
    align = getattr(model, "unshuffle", 1)
    if align > 1 and (height % align or width % align):
        mode = "reflect" if min(height, width) > 1 else "replicate"
        x = torch.nn.functional.pad(x[None], (0, -width % align, 0, -height % align), mode=mode)[0]
    win_h, rows = _aligned_spans(x.shape[1], tile, tile_pad, align)
    win_w, cols = _aligned_spans(x.shape[2], tile, tile_pad, align)
    windows = [(r, c) for r in rows for c in cols]

    out = np.empty((height * scale, width * scale, x.shape[0]), dtype=out_dtype)
    target = torch.from_numpy(out)
    maximum = _DTYPE_MAX.get(out.dtype)
    show = len(windows) >= 8 if progress is None else progress
    autocast = torch.autocast(dev.type, dtype=compute) if compute else contextlib.nullcontext()
    with _progress(show) as bar, autocast:
        task = bar.add_task("tiles", total=len(windows))
        for group in _batches(windows, batch_size or plan.batch_size):
            batch = torch.stack(
                [x[:, r.start : r.start + win_h, c.start : c.start + win_w] for r, c in group]
            )
            batch = batch.to(dev, memory_format=plan.memory_format)
            result = model(batch).float().clamp_(0, 1)
            if maximum is not None:
                result = result.mul_(maximum).round_()
            for (r, c), y in zip(group, result, strict=True):
                # Cores of the padded image's last row/column may reach past the real image.
                bottom, right = min(r.hi, height), min(c.hi, width)
                if bottom <= r.lo or right <= c.lo:
                    continue
                core = y[:, (r.lo - r.start) * scale : (bottom - r.start) * scale]
                core = core[:, :, (c.lo - c.start) * scale : (right - c.start) * scale]
                rows_out = slice(r.lo * scale, bottom * scale)
                target[rows_out, c.lo * scale : right * scale].copy_(core.permute(1, 2, 0))
            del batch, result
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


def upscale_array(model: nn.Module, array: np.ndarray, **options: Any) -> np.ndarray:
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


@overload
def upscale(model: nn.Module, image: Image.Image, **options: Any) -> Image.Image: ...
@overload
def upscale(model: nn.Module, image: np.ndarray, **options: Any) -> np.ndarray: ...
def upscale(
    model: nn.Module, image: Image.Image | np.ndarray, **options: Any
) -> Image.Image | np.ndarray:
    """Upscale a PIL image or a numpy array with `model`, tile by tile.

    Keywords (see `upscale_tensor`): `tile` (0 = whole image), `tile_pad`,
    `device=None` (auto), `precision="auto"` (see `inference_precision`; or fp32, bf16,
    fp16), `batch_size`, `progress`. A PIL image is turned upright by its EXIF orientation
    and comes back in its mode: RGB, RGBA and LA (alpha by bicubic), L, P (converted and
    back), I;16 and I (16-bit, in float). Arrays: see `upscale_array`.
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
        upscaled = upscale(model, image.convert("RGB"), **options)
        return upscaled.quantize(palette=image, dither=Image.Dither.NONE)
    if mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        return upscale(model, image.convert("RGB"), **options).convert(mode)
    raise ValueError(
        f"image mode {mode!r} is not supported; supported: RGB, RGBA, L, LA, P, I;16, I, "
        "1, CMYK, YCbCr, LAB, HSV"
    )
