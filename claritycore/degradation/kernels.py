"""Blur kernels of Real-ESRGAN's degradation model, built in numpy (in the data loader worker).

The formulas are those of the Real-ESRGAN paper (Wang et al. 2021, section 3.1): a Gaussian,
generalised-Gaussian or plateau density over a rotated, scaled grid, and a circular low-pass
("sinc") filter, each normalised to sum 1. Kernels are computed in float64 and stored as
float32, zero-padded to a fixed side so a batch of them stacks into one array.
"""

from __future__ import annotations

import math

import numpy as np

# Quadrature points of Bessel's integral for J1: the integrand is periodic and analytic, so the
# trapezoid rule converges geometrically; 128 points give float64 precision up to x ~ 100
# (the sinc kernels need x <= pi * 10 * sqrt(2) ~ 45).
_BESSEL_POINTS = 128
# Kernel weights below this are set to 0: they change no float32 sum, and the products of
# pixels with such weights (a Gaussian's far tail reaches 1e-40) are denormal numbers, which
# made the CPU convolution 13× slower.
NEGLIGIBLE_WEIGHT = 1e-12


def mesh(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) offsets from the centre of an odd `size`² kernel; x runs along columns."""
    half = size // 2
    axis = np.arange(-half, half + 1, dtype=np.float64)
    return np.meshgrid(axis, axis)


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """(x, y) Σ⁻¹ (x, y)ᵀ on the grid, with Σ = R diag(σx², σy²) Rᵀ and R a rotation by θ."""
    xx, yy = mesh(size)
    cos, sin = math.cos(theta), math.sin(theta)
    # Coordinates in the kernel's own axes: Rᵀ (x, y).
    u = cos * xx + sin * yy
    v = -sin * xx + cos * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return kernel / kernel.sum()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """Anisotropic Gaussian exp(-q/2); isotropic when sigma_x == sigma_y."""
    return _normalised(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> np.ndarray:
    """Generalised Gaussian exp(-q^β / 2): β < 1 heavier tails, β > 1 flatter top."""
    q = _quadratic_form(size, sigma_x, sigma_y, theta)
    return _normalised(np.exp(-0.5 * q**beta))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float
) -> np.ndarray:
    """Plateau 1 / (1 + q^β)."""
    q = _quadratic_form(size, sigma_x, sigma_y, theta)
    return _normalised(1.0 / (q**beta + 1.0))


def bessel_j1(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind, order 1: J1(x) = (1/2π) ∫ cos(τ - x sin τ) dτ."""
    tau = np.arange(_BESSEL_POINTS) * (2 * math.pi / _BESSEL_POINTS)
    return np.cos(tau - np.multiply.outer(x, np.sin(tau))).mean(axis=-1)


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """Circularly symmetric low-pass filter with cutoff frequency `cutoff` (radians, π max):
    the ideal filter's impulse response ω J1(ω r) / (2π r), whose value at r = 0 is ω²/(4π)."""
    xx, yy = mesh(size)
    r = np.hypot(xx, yy)
    centre = r == 0
    safe_r = np.where(centre, 1.0, r)
    kernel = np.where(centre, cutoff**2 / (4 * math.pi), cutoff * bessel_j1(cutoff * safe_r))
    kernel = np.where(centre, kernel, kernel / (2 * math.pi * safe_r))
    return _normalised(kernel)


def pad_kernel(kernel: np.ndarray, side: int) -> np.ndarray:
    """`kernel` centred in a zero `side`² float32 array (convolving with the zeros adds nothing);
    negligible weights are zeroed."""
    pad = (side - kernel.shape[0]) // 2
    kernel = np.where(np.abs(kernel) < NEGLIGIBLE_WEIGHT, 0.0, kernel)
    return np.pad(kernel, pad).astype(np.float32)


def random_kernel(
    rng: np.random.Generator,
    *,
    sizes: range,
    kernel_list: tuple[str, ...],
    kernel_prob: tuple[float, ...],
    sinc_prob: float,
    sigma_range: tuple[float, float],
    betag_range: tuple[float, float],
    betap_range: tuple[float, float],
) -> tuple[np.ndarray, int]:
    """One blur kernel of a random family and size, as Real-ESRGAN's dataset draws it.

    The side is uniform over `sizes`; with `sinc_prob` a sinc filter (cutoff in [π/3, π] for
    sides below 13, else [π/5, π]), otherwise a family from `kernel_list` by `kernel_prob`
    with σx (and σy, θ ∈ [-π, π] for the anisotropic ones) uniform in `sigma_range`, and β
    below or above 1 with even odds. Returns the kernel (unpadded, float64) and its side.
    """
    size = int(rng.choice(sizes))
    if rng.random() < sinc_prob:
        low = math.pi / 3 if size < 13 else math.pi / 5
        return sinc_kernel(size, rng.uniform(low, math.pi)), size
    family = kernel_list[rng.choice(len(kernel_list), p=np.asarray(kernel_prob) / sum(kernel_prob))]
    sigma_x = rng.uniform(*sigma_range)
    if family.endswith("aniso"):
        sigma_y, theta = rng.uniform(*sigma_range), rng.uniform(-math.pi, math.pi)
    else:
        sigma_y, theta = sigma_x, 0.0
    if family == "iso" or family == "aniso":
        return gaussian_kernel(size, sigma_x, sigma_y, theta), size
    beta_range = betag_range if family.startswith("generalized") else betap_range
    # Real-ESRGAN's draw: β below 1 or above 1 with even odds, whatever the range's width.
    beta = (
        rng.uniform(beta_range[0], 1.0) if rng.random() < 0.5 else rng.uniform(1.0, beta_range[1])
    )
    shape = generalized_gaussian_kernel if family.startswith("generalized") else plateau_kernel
    return shape(size, sigma_x, sigma_y, theta, beta), size
