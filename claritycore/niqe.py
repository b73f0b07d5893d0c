"""NIQE (Mittal, Soundararajan and Bovik, "Making a completely blind image quality analyzer",
2013), a no-reference quality score (lower is more natural), as BasicSR 1.4.2's
`calculate_niqe` computes it, which is what SR papers print.

Conventions (BasicSR's): the image's BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255,
converted through float32 as BasicSR does and rounded to integers (a greyscale image is its own
Y); `crop_border` pixels cut from each edge; the rest cut to whole 96×96 blocks. At two scales
(the image, then its MATLAB bicubic ×1/2), per block: the mean-subtracted contrast-normalised
(MSCN) coefficients, 7×7 Gaussian window, edge-replicated, and 18 features: an asymmetric
generalised Gaussian fit (AGGD) of the coefficients and of their products with the four
neighbours (right, down and the two diagonals, wrapping inside the block). The score is the
distance between the Gaussian of those 36-feature vectors and the pristine-image model:
sqrt((mu_p - mu)ᵀ pinv((cov_p + cov)/2) (mu_p - mu)). A block whose features are undefined (no
negative or no positive coefficient, e.g. a flat area) is left out of the covariance.

BasicSR works in float32 where its inputs are float32 (the Y image, the filtered maps, the MSCN
coefficients); so do we, so both round alike. The block statistics are computed for all blocks
at once in float64. The pristine model (`metrics_data/niqe_pris_params.npz`) is BasicSR's file,
Apache-2.0 (see metrics_data/NOTICE.md).
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib.resources import files

import numpy as np
import torch

from claritycore.resize import contributions

BLOCK = 96
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
# The neighbour of each coefficient whose product with it is fitted: (rows, columns) rolled.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@lru_cache(maxsize=1)
def _pristine() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (36,), covariance (36, 36), 1-D Gaussian taps (7,)) of the pristine model."""
    with (files("claritycore") / "metrics_data" / "niqe_pris_params.npz").open("rb") as f:
        params = np.load(f)
        window = params["gaussian_window"]
        mu, cov = params["mu_pris_param"][0], params["cov_pris_param"]
    # The 7×7 window is an outer product: filtering is two 1-D passes.
    return mu, cov, window.sum(axis=1)


@lru_cache(maxsize=1)
def _shape_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The AGGD shape candidates α = 0.2, 0.201, …, 10 with, for each, the moment ratio
    Γ(2/α)²/(Γ(1/α)Γ(3/α)) the fit matches (increasing in α), sqrt(Γ(1/α)/Γ(3/α)) (std to
    scale) and Γ(2/α)/Γ(1/α) (scale difference to mean)."""
    alpha = np.arange(0.2, 10.001, 0.001)
    g1, g2, g3 = (np.array([math.gamma(k / a) for a in alpha]) for k in (1, 2, 3))
    return alpha, g2 * g2 / (g1 * g3), np.sqrt(g1 / g3), g2 / g1


def luma(image: np.ndarray) -> np.ndarray:
    """BasicSR's NIQE input: Y of an HxWx3 RGB (or HxWx1 / HxW grey) uint8 image, float32,
    rounded to integers (half to even, as numpy rounds)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        # BasicSR: float32 /255, a float64 dot, +16, /255, back to float32, then ×255 in float32.
        scaled = (image.astype(np.float32) / np.float32(255)).astype(np.float64)
        y = ((scaled @ _Y_WEIGHTS + 16.0) / 255.0).astype(np.float32) * np.float32(255)
        return np.round(y)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return image.reshape(image.shape[:2]).astype(np.float32)
    raise ValueError(f"expected an HxWx3, HxWx1 or HxW image, got shape {image.shape}")


def _gaussian_filter(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """`image` (float32) filtered by the separable window, edges replicated, in float64, then
    rounded to float32 as scipy.ndimage.convolve returns it for float32 input."""
    r = len(taps) // 2
    padded = np.pad(image.astype(np.float64), r, mode="edge")
    h, w = image.shape
    rows = sum(t * padded[i : i + h] for i, t in enumerate(taps))
    return sum(t * rows[:, j : j + w] for j, t in enumerate(taps)).astype(np.float32)


def _half_size(image: np.ndarray) -> np.ndarray:
    """MATLAB bicubic ×1/2 of `image` (float32, even sides) by BasicSR's float32 operations.

    NIQE turns one-ulp changes of this image into score changes of up to 4e-3 (through the
    float32 variance in `_mscn`), so the same products must be rounded the same way: one
    float32 matrix-vector product of 8 taps per output row, then per output column, as
    BasicSR's `imresize` does. A vectorised resize (claritycore.resize, within 3e-7 of it)
    moves the score by up to 4e-3. Each product reads a contiguous copy of the taps' input
    lines where BasicSR's reads a strided view into its padded image: the same on an Intel
    Xeon with AMX, but an AMD EPYC's BLAS rounds the two differently (up to 2.1e-3 in the
    score; tests/fixtures/README.md).
    """
    lines = torch.from_numpy(image / np.float32(255))
    for axis in (0, 1):
        src, taps = contributions(lines.shape[axis], lines.shape[axis] // 2, 0.5)
        used = taps.any(axis=0)  # the kernel's zero end taps
        index = torch.from_numpy(src[:, used])
        weights = torch.from_numpy(np.ascontiguousarray(taps[:, used], dtype=np.float32))
        if axis == 0:
            lines = torch.stack([lines[i].T.mv(w) for i, w in zip(index, weights, strict=True)])
        else:
            columns = [lines[:, i].mv(w) for i, w in zip(index, weights, strict=True)]
            lines = torch.stack(columns, dim=1)
    return lines.numpy() * np.float32(255)


def _mscn(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of `image` (float32)."""
    mu = _gaussian_filter(image, taps)
    sigma = np.sqrt(np.abs(_gaussian_filter(np.square(image), taps) - np.square(mu)))
    return (image - mu) / (sigma + np.float32(1))


def _aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit of each row of `samples`: (α, β_left, β_right, mean), each
    of shape (rows,).

    α is the grid value whose moment ratio is nearest the sample's (the first on a tie, as
    an argmin over the grid picks it); rows without a negative or positive sample give NaN
    scales and the first α, as BasicSR's fit does."""
    x = samples.astype(np.float64)
    square = x * x
    negative, positive = x < 0, x > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((square * negative).sum(1) / negative.sum(1))
        right = np.sqrt((square * positive).sum(1) / positive.sum(1))
        g = left / right
        rhat = np.abs(x).mean(1) ** 2 / square.mean(1)
        target = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha, ratio, std_to_scale, scale_to_mean = _shape_grid()
    upper = np.clip(np.searchsorted(ratio, target), 1, len(ratio) - 1)
    lower = upper - 1
    index = np.where((target - ratio[lower]) ** 2 <= (ratio[upper] - target) ** 2, lower, upper)
    index = np.where(np.isnan(target), 0, index)
    beta_left, beta_right = left * std_to_scale[index], right * std_to_scale[index]
    return alpha[index], beta_left, beta_right, (beta_right - beta_left) * scale_to_mean[index]


def _block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """The 18 features of every `block`×`block` tile of `mscn`: (tiles, 18)."""
    rows, cols = mscn.shape[0] // block, mscn.shape[1] // block
    tiles = mscn.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    alpha, left, right, _ = _aggd(tiles.reshape(len(tiles), -1))
    features = [alpha, (left + right) / 2]
    for shift in _SHIFTS:
        pairs = tiles * np.roll(tiles, shift, axis=(1, 2))  # float32 products, as BasicSR's
        alpha, left, right, mean = _aggd(pairs.reshape(len(tiles), -1))
        features += [alpha, mean, left, right]
    return np.stack(features, axis=1)


def niqe(image: np.ndarray, crop_border: int = 0) -> float:
    """NIQE of a uint8 HxWx3 RGB (or greyscale HxWx1 / HxW) image; lower is more natural.

    NaN when fewer than two 96×96 blocks with defined features remain after the crop (a
    small or flat image): the score is undefined there.
    """
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    y = luma(image)
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    rows, cols = (max(side, 0) // BLOCK for side in y.shape)
    if rows * cols < 2:
        return math.nan
    y = np.ascontiguousarray(y[: rows * BLOCK, : cols * BLOCK])
    mu_pristine, cov_pristine, taps = _pristine()
    fine = _block_features(_mscn(y, taps), BLOCK)
    coarse = _block_features(_mscn(_half_size(y), taps), BLOCK // 2)
    features = np.concatenate([fine, coarse], axis=1)
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:
        return math.nan
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(features, axis=0)
    cov = np.cov(complete, rowvar=False)
    diff = mu_pristine - mean
    distance = diff @ np.linalg.pinv((cov_pristine + cov) / 2) @ diff
    return float(np.sqrt(distance))
