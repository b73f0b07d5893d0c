"""MATLAB-compatible bicubic resize (`imresize(img, scale)`) and `modcrop`.

The field's LR images come from MATLAB's `imresize`: Keys cubic (a = -0.5), the kernel widened
by 1/scale when shrinking (antialiasing), symmetric padding, output size ceil(in * scale).
Float results agree with BasicSR's `matlab_functions.imresize` within 3e-7 (both float32).

Each axis is a linear map from `in_len` to `out_len` samples whose matrix is banded. We fold
the symmetric padding into that matrix (a mirrored tap adds its weight to the pixel it
mirrors), cut the output into blocks of rows, and store each block's weights densely over the
contiguous input range it reads. A block is then one small matrix product over a slice of the
image: no padded copy, no per-pixel loop, and the same code for any scale.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import TypeVar

import numpy as np
import torch

Image = TypeVar("Image", np.ndarray, torch.Tensor)

# Input samples one block reads. Larger blocks make faster matrix products but multiply
# more zeros (a block's matrix is dense over its whole input range); these measured best.
_ROWS_TARGET = 64
_COLS_TARGET = 64


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's `contributions`: per output sample, its input indices (0-based, mirrored into
    range) and normalised weights, both of shape (out_len, taps)."""
    width = 4.0 / scale if scale < 1 else 4.0
    # Output sample centres mapped to input coordinates (1-based, as MATLAB writes it).
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(math.ceil(width) + 2)
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric padding: index -1 reads 0, index in_len reads in_len - 1, and so on.
    period = 2 * in_len
    mod = (idx.astype(np.int64) - 1) % period
    return np.where(mod < in_len, mod, period - 1 - mod), weights


@lru_cache(maxsize=64)
def _plan(in_len: int, scale: float, block: int) -> tuple[int, np.ndarray, int, np.ndarray]:
    """Blocked resize matrix for one axis.

    Returns (out_len, start, span, weights): output rows `b*block : (b+1)*block` are
    `weights[b] @ x[start[b] : start[b] + span]`, with `weights` of shape (blocks, block, span).
    """
    out_len = math.ceil(in_len * scale)
    src, weights = contributions(in_len, out_len, scale)
    rows = np.arange(out_len)
    blk = rows // block
    nblocks = int(blk[-1]) + 1
    # Zero weights (the kernel's ends) would widen a block's input range for nothing.
    used = weights != 0
    lo = np.full(nblocks, in_len)
    hi = np.full(nblocks, -1)
    np.minimum.at(lo, blk, np.where(used, src, in_len).min(axis=1))
    np.maximum.at(hi, blk, np.where(used, src, -1).max(axis=1))
    span = min(int((hi - lo).max()) + 1, in_len)
    start = np.minimum(lo, in_len - span)
    dense = np.zeros((nblocks, block, span))
    r, t = np.nonzero(used)
    np.add.at(dense, (blk[r], r % block, src[r, t] - start[blk[r]]), weights[r, t])
    return out_len, start, span, dense


def _block(scale: float, target: int) -> int:
    """Output samples per block so that a block reads about `target` input samples."""
    return max(1, round(target * scale) - 4) if scale < 1 else target


@lru_cache(maxsize=64)
def _column_weights(
    in_len: int, scale: float, channels: int
) -> tuple[int, np.ndarray, int, np.ndarray]:
    """The column pass's blocked matrix, transposed and widened to interleaved channels:
    kron(weights[b].T, I_channels), so channels-last rows need no transpose."""
    out_len, start, span, dense = _plan(in_len, scale, _block(scale, _COLS_TARGET))
    eye = np.eye(channels)
    wide = np.einsum("bjs,mn->bsmjn", dense, eye).reshape(len(dense), span * channels, -1)
    return out_len, start, span, wide


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's conversion to uint8: clip to 0..255, round half away from zero (in place)."""
    return x.clamp_(0, 255).add_(0.5).floor_()


def _resize(src: torch.Tensor, dst: torch.Tensor, scale: float, dtype: torch.dtype) -> None:
    """Resize `src` (L, H, W, M) into contiguous `dst` (L, ceil(H*scale), ceil(W*scale), M).

    Rows first, then columns, as MATLAB does for equal scales; for uint8 the row pass result
    is rounded too, because MATLAB's per-dimension resize keeps the input class.
    """
    planes, h, w, m = src.shape
    device = src.device
    out_h, start_h, span_h, weights_h = _plan(h, scale, _block(scale, _ROWS_TARGET))
    out_w, start_w, span_w, weights_w = _column_weights(w, scale, m)
    block_h, block_w = weights_h.shape[1], weights_w.shape[2] // m
    wh = torch.from_numpy(weights_h).to(device, dtype)
    ww = torch.from_numpy(weights_w).to(device, dtype)
    x = src.reshape(planes, h, w * m)
    mid = torch.empty(planes, out_h, w * m, dtype=dtype, device=device)
    # uint8 rows are converted into one reused buffer: a fresh multi-MB tensor per block
    # would cost page faults that take longer than the arithmetic.
    buffer = torch.empty(span_h, w * m, dtype=dtype, device=device) if x.dtype != dtype else None
    for p in range(planes):
        for b, s in enumerate(start_h.tolist()):
            first = b * block_h
            n = min(block_h, out_h - first)
            rows = x[p, s : s + span_h]
            rows = rows if buffer is None else buffer.copy_(rows)
            torch.mm(wh[b, :n], rows, out=mid[p, first : first + n])
    if dst.dtype == torch.uint8:
        _round_uint8(mid)
    mid = mid.view(planes * out_h, w * m)
    out = dst.view(planes * out_h, out_w * m)
    for b, s in enumerate(start_w.tolist()):
        first = b * block_w
        n = min(block_w, out_w - first)
        cols = mid[:, s * m : (s + span_w) * m]
        target = out[:, first * m : (first + n) * m]
        if dst.dtype == dtype:
            # BLAS writes the strided column slice in place: no temporary, no copy.
            torch.mm(cols, ww[b, :, : n * m], out=target)
        elif dst.dtype == torch.uint8:
            target.copy_(_round_uint8(cols @ ww[b, :, : n * m]))
        else:
            target.copy_(cols @ ww[b, :, : n * m])


def imresize(img: Image, scale: float) -> Image:
    """Resize by `scale` exactly as MATLAB's `imresize(img, scale)` (bicubic, antialiased).

    `img` is a numpy array H×W or H×W×C, or a tensor (..., H, W) such as (C, H, W) or
    (N, C, H, W), on any device. The output is ceil(H*scale) × ceil(W*scale), same type and
    layout. uint8 in -> uint8 out, rounded and clipped as MATLAB does; float in -> float out,
    not clipped (computed in float64 for float64 and uint8, else in float32).
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    scale = float(scale)
    if isinstance(img, np.ndarray):
        if img.ndim not in (2, 3):
            raise ValueError(f"expected an H×W or H×W×C array, got shape {img.shape}")
        h, w = img.shape[:2]
        with warnings.catch_warnings():
            # Arrays from PIL are read-only; nothing here writes to them.
            warnings.simplefilter("ignore", UserWarning)
            src = torch.from_numpy(np.ascontiguousarray(img)).reshape(1, h, w, -1)
    else:
        if img.ndim < 2:
            raise ValueError(f"expected a tensor (..., H, W), got shape {tuple(img.shape)}")
        h, w = img.shape[-2:]
        src = img.reshape(-1, h, w, 1)
    if src.dtype != torch.uint8 and not src.is_floating_point():
        raise ValueError(f"expected a uint8 or float image, got {img.dtype}")
    size = (math.ceil(h * scale), math.ceil(w * scale))
    dtype = torch.float64 if src.dtype in (torch.float64, torch.uint8) else torch.float32
    if isinstance(img, np.ndarray):
        out = np.empty(size + img.shape[2:], dtype=img.dtype)
        _resize(src, torch.from_numpy(out).view(1, *size, -1), scale, dtype)
        return out
    out = torch.empty(*img.shape[:-2], *size, dtype=img.dtype, device=img.device)
    _resize(src, out.view(-1, *size, 1), scale, dtype)
    return out


def modcrop(img: Image, scale: int) -> Image:
    """Crop the bottom and right edges so height and width are multiples of `scale`.

    numpy H×W[×C] or tensor (..., H, W).
    """
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if isinstance(img, np.ndarray):
        h, w = img.shape[:2]
        return img[: h - h % scale, : w - w % scale]
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def lr_hr_pair(image: Image, scale: int) -> tuple[Image, Image]:
    """`(lr, hr)` as SR training and benchmarks make them: HR is `image` mod-cropped to a
    multiple of `scale` (a view), LR its MATLAB bicubic downscale `imresize(hr, 1 / scale)`."""
    hr = modcrop(image, scale)
    if min(hr.shape[:2] if isinstance(hr, np.ndarray) else hr.shape[-2:]) == 0:
        raise ValueError(f"an image of {image.shape} is smaller than the scale {scale}")
    return imresize(hr, 1 / scale), hr
