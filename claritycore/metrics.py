"""PSNR and SSIM as BasicSR computes them, which is what SR papers report.

Conventions (BasicSR's `calculate_psnr` / `calculate_ssim`): values on the [0, 255] scale,
`crop_border` pixels cut from each edge, optionally only the BT.601 luma
Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (not rounded), float64 arithmetic. A
single-channel (greyscale) image is its own luma: `y_channel` scores that channel as it is, as
the MATLAB code behind the published tables does (RGB to Y would shrink its range to 16-235).
SSIM uses an 11×11 Gaussian window (sigma 1.5) over the valid region only, C1 = (0.01·255)²,
C2 = (0.03·255)², and averages the channels.

Inputs are numpy H×W×C RGB arrays (uint8, or float on [0, 255]), giving a Python float, or
tensors (3, H, W) / (N, 3, H, W) on [0, 1] on any device, giving a float64 tensor of shape ()
or (N,). Tensors are scaled by 255 but not quantised: quantise first for paper figures.
numpy arrays go through the tensor code, so both give the same numbers.

Both metrics run over strips of rows, so no full-image float64 copy is ever made. SSIM's
Gaussian filter is separable and each 1-D pass is a banded matrix, applied block by block as
small matrix products (far faster than 11 shifted multiply-adds).
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import overload

import numpy as np
import torch

_WINDOW = 11
_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
# Rows per strip and columns per block of SSIM's banded products: a strip's five float64
# maps stay in cache, and each output costs (16 + 10) multiply-adds per pass. PSNR's strips
# are as small for the same reason (measured: 16 rows beat 128 by 2-5x).
_STRIP = 16
_BLOCK = 16
_PSNR_STRIP = 16
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def _as_batch(img: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, float]:
    """A channels-last (N, H, W, C) view of `img` (no copy) and the factor to [0, 255].

    Channels-last is numpy's memory order, so strips of rows convert without a gather.
    """
    if isinstance(img, np.ndarray):
        if img.ndim != 3:
            raise ValueError(f"expected an H×W×C array, got shape {img.shape}")
        with warnings.catch_warnings():
            # Arrays from PIL are read-only; nothing here writes to them.
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(img)[None], 1.0
    if img.ndim not in (3, 4):
        raise ValueError(f"expected a (C, H, W) or (N, C, H, W) tensor, got {tuple(img.shape)}")
    return (img[None] if img.ndim == 3 else img).permute(0, 2, 3, 1), 255.0


def _prepare(
    a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, crop_border: int, y_channel: bool
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Check and crop both images; return (N, H, W, C) views and their [0, 255] factor."""
    if isinstance(a, np.ndarray) != isinstance(b, np.ndarray):
        raise ValueError("pass two numpy arrays or two tensors, not one of each")
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"image shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    x, factor = _as_batch(a)
    y, _ = _as_batch(b)
    if y_channel and x.shape[3] not in (1, 3):
        raise ValueError(f"y_channel needs 3 (RGB) or 1 (grey) channels, got {x.shape[3]}")
    if crop_border:
        c = crop_border
        x, y = x[:, c:-c, c:-c], y[:, c:-c, c:-c]
    if x.shape[1] < 1 or x.shape[2] < 1:
        raise ValueError(f"crop_border={crop_border} leaves nothing of shape {tuple(a.shape)}")
    return x, y, factor


@lru_cache(maxsize=8)
def _y_weights(device: torch.device) -> torch.Tensor:
    """BT.601 luma weights on `device`: built once, not per strip (a host-to-device copy)."""
    return torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=device)


def _to_255(x: torch.Tensor, factor: float, y_channel: bool) -> torch.Tensor:
    """Channels-last (..., C) slice -> float64 on [0, 255]; just Y, (..., 1), if asked."""
    x = x.to(torch.float64)
    if factor != 1.0:
        x = x * factor
    if y_channel and x.shape[-1] == 3:
        return (x @ _y_weights(x.device))[..., None] / 255.0 + 16.0
    return x


def _result(values: list[torch.Tensor], a: np.ndarray | torch.Tensor) -> float | torch.Tensor:
    out = torch.stack(values)
    if isinstance(a, np.ndarray):
        return float(out[0])
    return out[0] if a.ndim == 3 else out


@overload
def psnr(
    a: np.ndarray, b: np.ndarray, *, crop_border: int = 0, y_channel: bool = False
) -> float: ...
@overload
def psnr(
    a: torch.Tensor, b: torch.Tensor, *, crop_border: int = 0, y_channel: bool = False
) -> torch.Tensor: ...
def psnr(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
) -> float | torch.Tensor:
    """Peak signal-to-noise ratio in dB on the [0, 255] scale; inf for identical images.

    numpy H×W×3 (uint8 or [0, 255] float) -> float; tensor (3, H, W) or (N, 3, H, W) on
    [0, 1] -> float64 tensor of shape () or (N,), one value per image.
    """
    x, y, factor = _prepare(a, b, crop_border, y_channel)
    luma = y_channel and x.shape[3] == 3
    weights = _y_weights(x.device)
    values = []
    for i in range(x.shape[0]):
        sse = torch.zeros((), dtype=torch.float64, device=x.device)
        for r in range(0, x.shape[1], _PSNR_STRIP):
            # Subtract first, then scale: Y's offset of 16 cancels, and a strip costs three
            # passes (convert, subtract, dot). copy=True: float64 input must not be changed.
            d = x[i, r : r + _PSNR_STRIP].to(torch.float64, copy=True)
            d.sub_(y[i, r : r + _PSNR_STRIP])
            if factor != 1.0:
                d.mul_(factor)
            if luma:
                d = d @ weights / 255.0
            d = d.reshape(-1)
            sse += torch.dot(d, d)
        count = x[i, ..., :1].numel() if luma else x[i].numel()
        values.append(10.0 * torch.log10(255.0**2 / (sse / count)))
    return _result(values, a)


@lru_cache(maxsize=8)
def _banded(block: int, device: torch.device) -> torch.Tensor:
    """(block, block + 10) matrix whose rows are the Gaussian window shifted by one each."""
    taps = np.exp(-((np.arange(_WINDOW) - _WINDOW // 2) ** 2) / (2 * _SIGMA**2))
    taps /= taps.sum()
    band = np.zeros((block, block + _WINDOW - 1))
    for i in range(block):
        band[i, i : i + _WINDOW] = taps
    return torch.from_numpy(band).to(device)


def _ssim_image(x: torch.Tensor, y: torch.Tensor, factor: float, y_channel: bool) -> torch.Tensor:
    """Mean SSIM of one channels-last (H, W, C) pair over channels and valid positions."""
    h, w, _ = x.shape
    out_h, out_w = h - _WINDOW + 1, w - _WINDOW + 1
    nblocks = -(-out_w // _BLOCK)
    padded_w = nblocks * _BLOCK + _WINDOW - 1
    channels = 1 if y_channel else x.shape[2]  # a grey image has one channel either way
    rows_band = _banded(_STRIP, x.device)
    cols_band = _banded(_BLOCK, x.device).T
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    # Strip layout (rows, map, channel, column): the row pass is one matrix product over the
    # leading axis; x, y, x², y², xy are the five maps. Columns past w stay zero.
    maps = torch.zeros(
        _STRIP + _WINDOW - 1, 5, channels, padded_w, dtype=torch.float64, device=x.device
    )
    for r in range(0, out_h, _STRIP):
        n = min(_STRIP, out_h - r)
        rows = n + _WINDOW - 1
        m = maps[:rows]
        m[:, 0, :, :w] = _to_255(x[r : r + rows], factor, y_channel).transpose(1, 2)
        m[:, 1, :, :w] = _to_255(y[r : r + rows], factor, y_channel).transpose(1, 2)
        torch.mul(m[:, 0], m[:, 0], out=m[:, 2])
        torch.mul(m[:, 1], m[:, 1], out=m[:, 3])
        torch.mul(m[:, 0], m[:, 1], out=m[:, 4])
        vert = rows_band[:n, :rows] @ m.view(rows, -1)
        # Overlapping windows of block + 10 columns, one block apart, as rows of one product.
        flat = vert.view(-1, padded_w)
        windows = flat.as_strided(
            (flat.shape[0], nblocks, _BLOCK + _WINDOW - 1), (padded_w, _BLOCK, 1)
        )
        filt = (windows.reshape(-1, _BLOCK + _WINDOW - 1) @ cols_band).view(n, 5, channels, -1)
        mu1, mu2, e11, e22, e12 = filt[..., :out_w].unbind(1)
        mu11, mu22, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
        num = (2 * mu12 + _C1) * (2 * (e12 - mu12) + _C2)
        den = (mu11 + mu22 + _C1) * ((e11 - mu11) + (e22 - mu22) + _C2)
        total += torch.sum(num / den)
    return total / (channels * out_h * out_w)


@overload
def ssim(
    a: np.ndarray, b: np.ndarray, *, crop_border: int = 0, y_channel: bool = False
) -> float: ...
@overload
def ssim(
    a: torch.Tensor, b: torch.Tensor, *, crop_border: int = 0, y_channel: bool = False
) -> torch.Tensor: ...
def ssim(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
) -> float | torch.Tensor:
    """Structural similarity (BasicSR / Wang et al.); 1.0 for identical images.

    Same inputs and outputs as `psnr`. Images must be at least 11×11 after cropping.
    """
    x, y, factor = _prepare(a, b, crop_border, y_channel)
    if min(x.shape[1:3]) < _WINDOW:
        raise ValueError(
            f"SSIM needs at least {_WINDOW}×{_WINDOW} pixels after cropping, "
            f"got {tuple(x.shape[1:3])}"
        )
    return _result([_ssim_image(x[i], y[i], factor, y_channel) for i in range(x.shape[0])], a)


def min_side(scale: int) -> int:
    """The shortest HR side (mod-cropped) scored at `scale`: SSIM's window after a `scale`-pixel
    border crop. Here, not in `scoring`, so the data modules that drop unscorable images (e.g.
    `data.degraded`) need not import the scoring protocol and the models behind it."""
    return _WINDOW + 2 * scale
