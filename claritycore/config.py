"""Every parsed configuration: params.yaml's sections and the training recipe.

Each section is a frozen dataclass whose defaults are the one statement of that default
(params.yaml documents them; a test keeps the two equal), parsed by `schema.parse`. This module
imports no torch and no model, so the data stages depend on it without depending on model code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from claritycore.errors import ConfigError
from claritycore.schema import SCALES, as_dict, choices, parse, require

T = TypeVar("T")

# folder: HR images in data.root/{train,valid}; paired: HR with their own LR there (data/pairs.py
# lists the layouts).
Source = Literal["div2k", "sample", "folder", "paired"]
Loss = Literal["l1", "l2", "charbonnier"]
Scheduler = Literal["cosine", "multistep", "constant"]
# Compute precision of training and inference; "auto" is decided by the device (device.py).
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Auto = Literal["auto"]

# How the LR input of a training pair is made: MATLAB bicubic of the HR crop (the store's LR
# planes), or Real-ESRGAN's second-order degradation synthesised from the HR crop on the fly.
Degradation = Literal["bicubic", "realesrgan"]
# Real-ESRGAN's blur kernel families (basicsr/data/degradations.py names them the same way).
Kernel = Literal[
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"
]
GanLoss = Literal["ragan", "vanilla"]
Discriminator = Literal["vgg128", "unet_sn"]

SOURCES, LOSSES, SCHEDULERS, PRECISIONS = map(choices, (Source, Loss, Scheduler, Precision))
KERNELS, DISCRIMINATORS = choices(Kernel), choices(Discriminator)
# VGG19 convolutions by BasicSR's names (conv{block}_{index}); the perceptual loss compares
# features before the ReLU that follows each.
VGG19_LAYERS = tuple(
    f"conv{block}_{i}"
    for block, count in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
    for i in range(1, count + 1)
)
# `workers: auto` starts this many data loader processes, or one per available CPU if fewer.
AUTO_WORKERS = 4


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask (narrowed by containers and taskset)
    where the OS has one, as PyTorch's DataLoader counts them for its too-many-workers warning."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class ExperimentParams:
    """params.yaml's `preset`, `overrides`, `degradation`, `adversarial` and `base_overrides`:
    what `resolve` turns into the experiment (and, for a GAN preset, its PSNR stage)."""

    preset: str = "rrdbnetx4"
    # Each replaces single fields of the preset; None keeps the preset's value.
    overrides: dict[str, Any] = field(default_factory=dict)
    degradation: dict[str, Any] = field(default_factory=dict)
    adversarial: dict[str, Any] = field(default_factory=dict)
    # Training fields of a GAN preset's PSNR stage (the preset `adversarial.base` names).
    base_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataParams:
    """params.yaml's `data` section: where the HR images come from and the scales to extract."""

    source: Source = "div2k"
    root: Path | None = None
    url: str = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
    scales: tuple[int, ...] = SCALES

    def __post_init__(self) -> None:
        require(
            self.source not in ("folder", "paired") or self.root is not None,
            f"data.source: {self.source} needs data.root, a folder holding train/ and valid/",
        )
        require(
            bool(self.scales) and all(s in SCALES for s in self.scales),
            f"data.scales is {list(self.scales)}; use some of {', '.join(map(str, SCALES))}",
        )


@dataclass(frozen=True)
class ExtractParams:
    """params.yaml's `extract` section."""

    workers: int = 2

    def __post_init__(self) -> None:
        require(self.workers >= 1, f"extract.workers is {self.workers}; use an integer >= 1")


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is trained. `patch_size` is the HR patch side; the LR patch is patch/scale."""

    steps: int
    batch_size: int
    patch_size: int
    lr: float = 2e-4
    loss: Loss = "l1"
    # Mixed precision (the presets' "AMP"): the run's `precision: auto` follows it.
    amp: bool = True
    ema: bool = False
    ema_decay: float = 0.999
    # Cosine decays to `min_lr`; multistep multiplies by `lr_gamma` at each milestone,
    # given as fractions of `steps` so a shortened run keeps the same shape.
    scheduler: Scheduler = "cosine"
    min_lr: float = 1e-7
    milestones: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95)
    lr_gamma: float = 0.5
    warmup_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "patch_size"):
            value = getattr(self, name)
            require(value >= 1, f"{name} must be a positive integer, got {value!r}")
        require(self.lr > 0, f"lr must be a positive number, got {self.lr!r}")
        require(0.0 < self.ema_decay < 1.0, f"ema_decay must lie in (0, 1), got {self.ema_decay}")
        require(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        require(
            self.grad_clip is None or self.grad_clip > 0,
            f"grad_clip must be positive or null, got {self.grad_clip!r}",
        )

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


@dataclass(frozen=True)
class RunOptions:
    """params.yaml's `train` section: how a training runs (what it trains is the experiment).

    `compile`: "auto" is on for CUDA; `channels_last`: "auto" is on for CUDA and for bf16
    training on a CPU with native bf16 (`device.channels_last_auto`, measured). `precision`:
    "auto" follows the recipe's `amp` on the device (device.py has the rule); bf16/fp16/fp32
    force one anywhere.
    `workers`: "auto" is `AUTO_WORKERS`, or the available CPUs if fewer (`loader_workers`).
    """

    seed: int = 0
    workers: int | Auto = "auto"
    device: str = "auto"
    devices: int = 1
    compile: bool | Auto = "auto"
    channels_last: bool | Auto = "auto"
    precision: Precision = "auto"
    log_every: int = 50
    val_every: int = 5000
    save_every: int = 1000
    val_images: int = 10
    max_nonfinite: int = 20
    # A finished run is never resumed, so its checkpoints are deleted once model.pt is written.
    keep_checkpoints: bool = False
    # The perceptual loss's ImageNet VGG19; null: torchvision's file, looked up where
    # `claritycore.data.backbones` says. Another file must have VGG19's keys and shapes.
    vgg_weights: Path | None = None

    def __post_init__(self) -> None:
        for name in ("devices", "log_every", "val_every", "save_every", "max_nonfinite"):
            value = getattr(self, name)
            require(value >= 1, f"train.{name} must be a positive integer, got {value!r}")
        for name in ("workers", "val_images", "seed"):
            value = getattr(self, name)
            if value != "auto":
                require(value >= 0, f"train.{name} must be an integer >= 0, got {value!r}")

    @property
    def loader_workers(self) -> int:
        """DataLoader worker processes: `workers`, with "auto" never above the CPUs available
        (more only contend for them, and PyTorch warns)."""
        return min(AUTO_WORKERS, available_cpus()) if self.workers == "auto" else self.workers


@dataclass(frozen=True)
class EvalOptions:
    """params.yaml's `evaluate` section (also the `claritycore evaluate`/`upscale` defaults)."""

    tile: int = 512  # LR tile side; 0 = the whole image at once
    tile_pad: int = 16
    max_images: int | None = None
    device: str = "auto"
    precision: Precision = "auto"  # inference: claritycore.inference.inference_precision
    self_ensemble: bool = False  # mean over the 8 flips/rotations (EDSR's "+"), 8x the time
    benchmarks: tuple[str, ...] = ()  # pipeline: sets in data/benchmarks/<name>/ to score too
    # Also score every set on a degraded copy of its LR (`<set>-realesrgan`), made once with
    # the default DegradationConfig and `degrade_seed` and cached.
    degrade: Degradation | None = None
    degrade_seed: int = 0
    # Also NIQE (model and bicubic; no reference) and LPIPS-Alex (when torchvision's AlexNet
    # weights are there, else skipped with a warning) per image and set. Training's
    # validation turns it off: it logs PSNR/SSIM only.
    perceptual: bool = True

    def __post_init__(self) -> None:
        for name in self.benchmarks:
            require(
                bool(name) and "/" not in name and name not in (".", "..", "valid"),
                f"evaluate.benchmarks: {name!r} is not a set name; use folder names under "
                "data/benchmarks/, e.g. [Set5, Set14]",
            )
        require(
            len(set(self.benchmarks)) == len(self.benchmarks),
            f"evaluate.benchmarks lists a set twice: {list(self.benchmarks)}",
        )
        require(
            self.degrade != "bicubic",
            "evaluate.degrade: bicubic is the sets' own LR, scored anyway; use realesrgan or null",
        )
        require(self.tile >= 0, f"evaluate.tile must be >= 0 (0: no tiling), got {self.tile}")
        require(self.tile_pad >= 0, f"evaluate.tile_pad must be >= 0, got {self.tile_pad}")
        require(
            self.max_images is None or self.max_images >= 1,
            f"evaluate.max_images must be >= 1 or null (all), got {self.max_images}",
        )


ALL_KERNELS: tuple[Kernel, ...] = KERNELS
# Real-ESRGAN x4plus's kernel probabilities, in ALL_KERNELS' order.
KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


def _check_probability(name: str, value: float) -> None:
    require(0.0 <= value <= 1.0, f"degradation.{name} is {value}; a probability lies in [0, 1]")


def _check_range(name: str, pair: tuple[float, float], low: float, high: float) -> None:
    require(
        low <= pair[0] <= pair[1] <= high,
        f"degradation.{name} is {list(pair)}; use [min, max] with {low:g} <= min <= max <= "
        f"{high:g}",
    )


def _check_distribution(name: str, probs: tuple[float, ...], count: int, what: str) -> None:
    require(
        len(probs) == count,
        f"degradation.{name} has {len(probs)} probabilities for {count} {what}; give one each",
    )
    for p in probs:
        _check_probability(name, p)
    require(
        abs(sum(probs) - 1.0) < 1e-6,
        f"degradation.{name} is {list(probs)}, which sums to {sum(probs):g}; the "
        "probabilities must sum to 1",
    )


@dataclass(frozen=True)
class DegradationConfig:
    """How a training pair's LR is made. `bicubic`: the store's MATLAB-bicubic LR planes.
    `realesrgan`: Real-ESRGAN's second-order pipeline applied to the HR crop on the training
    device (blur -> resize -> noise -> JPEG, twice, then the final resize + sinc + JPEG in one
    of two orders), with Real-ESRGAN x4plus's values and names as the defaults. Every field but
    `type` is used by `realesrgan` only. `*_gt_usm`: the loss compares against an
    unsharp-masked HR (Real-ESRGAN's `l1_gt_usm`, `percep_gt_usm`, `gan_gt_usm`)."""

    type: Degradation = "bicubic"
    # First degradation: blur (kernel side drawn from 7, 9, ..., blur_kernel_size).
    blur_kernel_size: int = 21
    kernel_list: tuple[Kernel, ...] = ALL_KERNELS
    kernel_prob: tuple[float, ...] = KERNEL_PROB
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    # ... resize (probabilities of up, down, keep), noise, JPEG.
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # Second degradation, the same steps; its blur happens with `second_blur_prob`.
    second_blur_prob: float = 0.8
    blur_kernel_size2: int = 21
    kernel_list2: tuple[Kernel, ...] = ALL_KERNELS
    kernel_prob2: tuple[float, ...] = KERNEL_PROB
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    # Final step: resize to the LR size, then a sinc filter with `final_sinc_prob`, then JPEG;
    # or JPEG first (each order half of the time in Real-ESRGAN).
    final_sinc_prob: float = 0.8
    final_resize_first_prob: float = 0.5
    l1_gt_usm: bool = True
    percep_gt_usm: bool = True
    gan_gt_usm: bool = False

    def __post_init__(self) -> None:
        for suffix in ("", "2"):
            size = getattr(self, f"blur_kernel_size{suffix}")
            require(
                size % 2 == 1 and 7 <= size <= 21,
                f"degradation.blur_kernel_size{suffix} is {size}; use an odd size from 7 to 21",
            )
            kernels = getattr(self, f"kernel_list{suffix}")
            require(bool(kernels), f"degradation.kernel_list{suffix} is empty; name a kernel")
            probs = getattr(self, f"kernel_prob{suffix}")
            _check_distribution(f"kernel_prob{suffix}", probs, len(kernels), "kernels")
            _check_range(f"blur_sigma{suffix}", getattr(self, f"blur_sigma{suffix}"), 0.0, 100)
            require(
                getattr(self, f"blur_sigma{suffix}")[0] > 0,
                f"degradation.blur_sigma{suffix} starts at 0; a Gaussian sigma must be > 0",
            )
            _check_range(f"betag_range{suffix}", getattr(self, f"betag_range{suffix}"), 0.01, 100)
            _check_range(f"betap_range{suffix}", getattr(self, f"betap_range{suffix}"), 0.01, 100)
            _check_distribution(
                f"resize_prob{suffix}", getattr(self, f"resize_prob{suffix}"), 3, "up/down/keep"
            )
            _check_range(f"resize_range{suffix}", getattr(self, f"resize_range{suffix}"), 0.01, 8)
            _check_range(f"noise_range{suffix}", getattr(self, f"noise_range{suffix}"), 0, 255)
            _check_range(
                f"poisson_scale_range{suffix}",
                getattr(self, f"poisson_scale_range{suffix}"),
                0,
                100,
            )
            _check_range(f"jpeg_range{suffix}", getattr(self, f"jpeg_range{suffix}"), 1, 100)
            for name in ("sinc_prob", "gaussian_noise_prob", "gray_noise_prob"):
                _check_probability(f"{name}{suffix}", getattr(self, f"{name}{suffix}"))
        for name in ("second_blur_prob", "final_sinc_prob", "final_resize_first_prob"):
            _check_probability(name, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """Bicubic as `{type: bicubic}` alone: the other fields do not act, and so neither a
        config hash nor a `dvc exp show` column changes for the L1 presets."""
        return as_dict(self) if self.type == "realesrgan" else {"type": self.type}


@dataclass(frozen=True)
class AdversarialConfig:
    """ESRGAN's second stage: the generator, started from the model of the PSNR preset
    `base`, trained with `pixel_weight`·L1 + `perceptual_weight`·VGG19 features +
    `gan_weight`·GAN loss against a discriminator with its own Adam (`d_lr`, `d_betas`; its
    learning rate follows the generator's schedule, scaled by d_lr/lr). The first
    `d_init_steps` steps train the discriminator alone (BasicSR's `net_d_init_iters`)."""

    base: str
    pixel_weight: float = 1e-2
    perceptual_weight: float = 1.0
    # BasicSR's `layer_weights`: VGG19 layer (before its ReLU) -> weight.
    perceptual_layers: dict[str, float] = field(default_factory=lambda: {"conv5_4": 1.0})
    gan_type: GanLoss = "ragan"
    gan_weight: float = 5e-3
    discriminator: Discriminator = "vgg128"
    d_num_feat: int = 64
    d_lr: float = 1e-4
    d_betas: tuple[float, float] = (0.9, 0.99)
    # Steps that train only the discriminator, before the generator's first update.
    d_init_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("pixel_weight", "perceptual_weight", "gan_weight"):
            value = getattr(self, name)
            require(value >= 0, f"adversarial.{name} is {value}; a loss weight must be >= 0")
        require(
            bool(self.perceptual_layers) or self.perceptual_weight == 0,
            "adversarial.perceptual_layers is empty; name VGG19 layers, e.g. {conv5_4: 1.0}",
        )
        for layer, weight in self.perceptual_layers.items():
            require(
                layer in VGG19_LAYERS,
                f"adversarial.perceptual_layers names {layer!r}; use VGG19 layers: "
                + ", ".join(VGG19_LAYERS),
            )
            require(
                isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight >= 0,
                f"adversarial.perceptual_layers.{layer} is {weight!r}; use a number >= 0",
            )
        require(self.d_num_feat >= 1, f"adversarial.d_num_feat is {self.d_num_feat}; use >= 1")
        require(self.d_lr > 0, f"adversarial.d_lr is {self.d_lr}; use a number > 0")
        require(
            all(0 <= b < 1 for b in self.d_betas),
            f"adversarial.d_betas is {list(self.d_betas)}; use two numbers in [0, 1)",
        )
        require(
            self.d_init_steps >= 0,
            f"adversarial.d_init_steps is {self.d_init_steps}; use an integer >= 0",
        )

    def to_dict(self) -> dict[str, Any]:
        """`d_init_steps` only when set: at its default 0 the GAN presets' configs (and their
        hashes, run keys and DVC run cache) are what they were before the field existed."""
        values = as_dict(self)
        if not self.d_init_steps:
            del values["d_init_steps"]
        return values


# params.yaml's sections by name; `preset` and `overrides` are top-level keys.
SECTIONS: dict[str, type] = {
    "data": DataParams,
    "extract": ExtractParams,
    "train": RunOptions,
    "evaluate": EvalOptions,
}


def load_params(path: Path) -> dict[str, Any]:
    """The params file as a mapping, or a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found; run from the repository root or pass --params")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}".replace("\n", " ")) from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path} must be a mapping of sections, got {params!r}")
    return params


def read_section(params: dict[str, Any], name: str, cls: type[T]) -> T:
    """Section `name` of a loaded params file, parsed into `cls`."""
    return parse(cls, params.get(name), name)


def read_experiment_params(params: dict[str, Any]) -> ExperimentParams:
    """The top-level `preset`, `overrides` and the sections that change the experiment."""
    keys = ("preset", "overrides", "degradation", "adversarial", "base_overrides")
    selection = {k: params[k] for k in keys if params.get(k) is not None}
    return parse(ExperimentParams, selection, "params")
