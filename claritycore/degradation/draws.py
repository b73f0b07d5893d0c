"""The random choices of the degradation, as pure functions of (seed, sample index, step).

Per sample (drawn in the data loader worker, like the crop): the two blur kernels and the final
sinc filter, whether the second blur happens, each stage's noise (type, strength, grey or
colour) and JPEG quality, and a seed for the noise fields. Per step, as Real-ESRGAN draws them
once per batch (a batch must keep one shape): each resize's direction, factor and interpolation
mode, and the order of the final step. Nothing depends on the batch's composition, so one
process with batch B and W DDP ranks with B/W each degrade every sample identically.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, fields

import numpy as np
import torch

from claritycore.config import DegradationConfig
from claritycore.degradation.kernels import pad_kernel, random_kernel, sinc_kernel

# Domain separation from the crop draws (claritycore/data/dataset.py): the same (seed, index)
# gives independent numbers here.
_SAMPLE_PERSON = b"claritycore-degr"
_STEP_PERSON = b"claritycore-degs"
SMALLEST_KERNEL = 7
# Real-ESRGAN's final sinc filter: side 7 to 21, cutoff in [π/3, π], padded to 21.
FINAL_SINC_SIZE = 21
RESIZE_MODES = ("area", "bilinear", "bicubic")


def counter_generator(person: bytes, seed: int, counter: int) -> np.random.Generator:
    """A numpy Generator determined by (seed, counter) alone: Philox keyed by their BLAKE2b."""
    digest = hashlib.blake2b(struct.pack("<QQ", seed, counter), digest_size=16, person=person)
    return np.random.Generator(np.random.Philox(key=int.from_bytes(digest.digest(), "little")))


@dataclass(frozen=True)
class SampleDraw:
    """One sample's choices. Kernels are float32 squares padded with zeros to the config's
    `blur_kernel_size` (the final sinc to 21); `*_size` is the side before padding (1: a pulse,
    no filtering). Index 0 of each pair is the first degradation, 1 the second; `jpeg_quality`
    [1] is the final step's."""

    kernel1: np.ndarray
    kernel1_size: int
    kernel2: np.ndarray
    kernel2_size: int
    second_blur: bool
    sinc: np.ndarray
    sinc_size: int
    gaussian_noise: tuple[bool, bool]
    noise_sigma: tuple[float, float]
    poisson_scale: tuple[float, float]
    gray_noise: tuple[bool, bool]
    jpeg_quality: tuple[float, float]
    noise_seed: int


@dataclass(frozen=True)
class BatchedDraws:
    """SampleDraws stacked along a first batch dimension (tensors on the CPU until `to`)."""

    kernel1: torch.Tensor
    kernel1_size: torch.Tensor
    kernel2: torch.Tensor
    kernel2_size: torch.Tensor
    second_blur: torch.Tensor
    sinc: torch.Tensor
    sinc_size: torch.Tensor
    gaussian_noise: torch.Tensor
    noise_sigma: torch.Tensor
    poisson_scale: torch.Tensor
    gray_noise: torch.Tensor
    jpeg_quality: torch.Tensor
    noise_seed: torch.Tensor

    def __len__(self) -> int:
        return len(self.noise_seed)

    def __getitem__(self, index: slice | torch.Tensor) -> BatchedDraws:
        return BatchedDraws(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass(frozen=True)
class ResizeDraw:
    """One resize: `factor` (1 keeps the size) and its F.interpolate mode."""

    factor: float
    mode: str


@dataclass(frozen=True)
class StepDraw:
    """The choices Real-ESRGAN makes once per batch."""

    resize1: ResizeDraw
    resize2: ResizeDraw
    final_resize_first: bool
    final_mode: str


def collate_draws(draws: list[SampleDraw]) -> BatchedDraws:
    """Stack SampleDraws into one BatchedDraws."""

    def stack(name: str) -> torch.Tensor:
        return torch.as_tensor(np.stack([getattr(d, name) for d in draws]))

    return BatchedDraws(**{f.name: stack(f.name) for f in fields(BatchedDraws)})


def _stage_kernel(
    rng: np.random.Generator, config: DegradationConfig, suffix: str
) -> tuple[np.ndarray, int]:
    side = getattr(config, f"blur_kernel_size{suffix}")
    kernel, size = random_kernel(
        rng,
        sizes=range(SMALLEST_KERNEL, side + 1, 2),
        kernel_list=getattr(config, f"kernel_list{suffix}"),
        kernel_prob=getattr(config, f"kernel_prob{suffix}"),
        sinc_prob=getattr(config, f"sinc_prob{suffix}"),
        sigma_range=getattr(config, f"blur_sigma{suffix}"),
        betag_range=getattr(config, f"betag_range{suffix}"),
        betap_range=getattr(config, f"betap_range{suffix}"),
    )
    return pad_kernel(kernel, side), size


def draw_sample(config: DegradationConfig, seed: int, index: int) -> SampleDraw:
    """The degradation choices of sample `index`: a pure function of (config, seed, index)."""
    rng = counter_generator(_SAMPLE_PERSON, seed, index)
    kernel1, size1 = _stage_kernel(rng, config, "")
    kernel2, size2 = _stage_kernel(rng, config, "2")
    if rng.random() < config.final_sinc_prob:
        size = int(rng.choice(range(SMALLEST_KERNEL, FINAL_SINC_SIZE + 1, 2)))
        sinc = pad_kernel(sinc_kernel(size, rng.uniform(math.pi / 3, math.pi)), FINAL_SINC_SIZE)
    else:
        size, sinc = 1, pad_kernel(np.ones((1, 1)), FINAL_SINC_SIZE)
    second_blur = bool(rng.random() < config.second_blur_prob)
    stages = [
        (
            bool(rng.random() < getattr(config, f"gaussian_noise_prob{s}")),
            rng.uniform(*getattr(config, f"noise_range{s}")),
            rng.uniform(*getattr(config, f"poisson_scale_range{s}")),
            bool(rng.random() < getattr(config, f"gray_noise_prob{s}")),
            rng.uniform(*getattr(config, f"jpeg_range{s}")),
        )
        for s in ("", "2")
    ]
    gaussian, sigma, poisson, gray, quality = zip(*stages, strict=True)
    return SampleDraw(
        kernel1=kernel1,
        kernel1_size=size1,
        kernel2=kernel2,
        kernel2_size=size2,
        second_blur=second_blur,
        sinc=sinc,
        sinc_size=size,
        gaussian_noise=gaussian,
        noise_sigma=sigma,
        poisson_scale=poisson,
        gray_noise=gray,
        jpeg_quality=quality,
        noise_seed=int(rng.integers(2**63)),
    )


def _resize_draw(
    rng: np.random.Generator, probs: tuple[float, float, float], bounds: tuple[float, float]
) -> ResizeDraw:
    direction = rng.choice(3, p=np.asarray(probs) / sum(probs))
    if direction == 0:
        factor = rng.uniform(1.0, bounds[1])
    elif direction == 1:
        factor = rng.uniform(bounds[0], 1.0)
    else:
        factor = 1.0
    return ResizeDraw(float(factor), RESIZE_MODES[rng.choice(len(RESIZE_MODES))])


def draw_step(config: DegradationConfig, seed: int, step: int) -> StepDraw:
    """The per-batch choices of training step `step`: a pure function of (config, seed, step)."""
    rng = counter_generator(_STEP_PERSON, seed, step)
    resize1 = _resize_draw(rng, config.resize_prob, config.resize_range)
    resize2 = _resize_draw(rng, config.resize_prob2, config.resize_range2)
    final_resize_first = bool(rng.random() < config.final_resize_first_prob)
    return StepDraw(resize1, resize2, final_resize_first, RESIZE_MODES[rng.choice(3)])
