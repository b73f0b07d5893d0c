"""Time claritycore's psnr, ssim and imresize against plain NumPy versions of the same formulas.

Run by hand: `python benchmarks/bench_numerics.py [--runs 7] [--ref-runs 3]`. Prints the
median wall time of each on a 2040×1356 RGB image (the size of a DIV2K HR image), the
reference's, their ratio, and the largest difference between the two results. The references
are written out here on purpose (no BasicSR, no OpenCV, no SciPy): a full 11×11 Gaussian
window as 121 shifted multiply-adds, and imresize as BasicSR does it, one weighted sum per
output row and column.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np

from claritycore.metrics import psnr, ssim
from claritycore.resize import imresize

H, W = 1356, 2040


def ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    x, y = a.astype(np.float64), b.astype(np.float64)
    h, w = x.shape[0] - 10, x.shape[1] - 10

    def blur(img: np.ndarray) -> np.ndarray:
        out = np.zeros((h, w, img.shape[2]))
        for i in range(11):
            for j in range(11):
                out += window[i, j] * img[i : i + h, j : j + w]
        return out

    mu1, mu2 = blur(x), blur(y)
    s11, s22, s12 = blur(x * x) - mu1**2, blur(y * y) - mu2**2, blur(x * y) - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = (2 * mu1 * mu2 + c1) * (2 * s12 + c2) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(ssim_map.mean())


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (
        -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    ) * ((ax > 1) & (ax <= 2))


def _ref_resize_axis0(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB contributions, symmetric padding, then one weighted sum per output row."""
    n = img.shape[0]
    out_n = math.ceil(n * scale)
    width = 4 / scale if scale < 1 else 4
    u = np.arange(1, out_n + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2).astype(int)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    weights /= weights.sum(1, keepdims=True)
    pad = taps + 1
    padded = np.pad(img, [(pad, pad)] + [(0, 0)] * (img.ndim - 1), mode="symmetric")
    out = np.empty((out_n, *img.shape[1:]))
    for i in range(out_n):
        start = idx[i, 0] - 1 + pad
        out[i] = np.tensordot(weights[i], padded[start : start + taps], axes=1)
    return out


def ref_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    rows = _ref_resize_axis0(img.astype(np.float32), scale)
    return _ref_resize_axis0(rows.transpose(1, 0, 2), scale).transpose(1, 0, 2)


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of ours")
    parser.add_argument("--ref-runs", type=int, default=3, help="timed runs of the references")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    smooth = np.stack([yy * 0.15, xx * 0.1, (yy + xx) * 0.06], axis=-1)
    hr = np.clip(smooth + rng.normal(0, 20, (H, W, 3)), 0, 255).round().astype(np.uint8)
    noisy = np.clip(hr + rng.normal(0, 5, hr.shape), 0, 255).round().astype(np.uint8)
    hr_float = hr.astype(np.float32) / 255
    lr_float = imresize(hr_float, 1 / 4)

    cases = [
        ("psnr (uint8 RGB)", lambda: psnr(hr, noisy), lambda: ref_psnr(hr, noisy)),
        ("ssim (uint8 RGB)", lambda: ssim(hr, noisy), lambda: ref_ssim(hr, noisy)),
        (
            "imresize x1/4 (2040x1356 -> 510x339)",
            lambda: imresize(hr_float, 1 / 4),
            lambda: ref_imresize(hr_float, 1 / 4),
        ),
        (
            "imresize x4 (510x339 -> 2040x1356)",
            lambda: imresize(lr_float, 4),
            lambda: ref_imresize(lr_float, 4),
        ),
    ]
    print(f"median of {args.runs} runs (ours) / {args.ref_runs} runs (reference), {W}x{H} RGB")
    print(f"{'':38s} {'ours':>10s} {'reference':>10s} {'speed-up':>9s} {'max diff':>9s}")
    for name, ours, ref in cases:
        ours(), ref()  # warm-up: caches, allocator, lazy imports
        t_ours, r_ours = median_time(ours, args.runs)
        t_ref, r_ref = median_time(ref, args.ref_runs)
        diff = float(np.max(np.abs(np.asarray(r_ours, np.float64) - r_ref)))
        print(
            f"{name:38s} {t_ours * 1e3:8.1f}ms {t_ref * 1e3:8.1f}ms "
            f"{t_ref / t_ours:8.1f}x {diff:9.1e}"
        )


if __name__ == "__main__":
    main()
