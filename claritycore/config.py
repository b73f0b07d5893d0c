"""Every parsed configuration: params.yaml's sections and the training recipe.

Each section is a frozen dataclass whose defaults are the one statement of that default and
whose `option` help is the one description of each key (params.yaml's comments, the CLI's help
and the docs' key tables are made from it: `claritycore.params_doc`), parsed by
`schema.parse`. This module imports no torch and no model, so the data stages depend on it
without depending on model code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from claritycore.errors import ConfigError
from claritycore.schema import SCALES, as_dict, choices, load_yaml, option, parse, require

T = TypeVar("T")

Source = Literal["div2k", "df2k", "ost", "sample", "folder", "paired"]
Loss = Literal["l1", "l2", "charbonnier"]
Scheduler = Literal["cosine", "multistep", "constant"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Auto = Literal["auto"]
HRFormat = Literal["raw", "shards"]

Degradation = Literal["bicubic", "realesrgan"]
# Real-ESRGAN's blur kernel families (basicsr/data/degradations.py names them the same way).
Kernel = Literal[
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"
]
GanType = Literal["ragan", "vanilla"]
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
    """params.yaml's `preset`, `overrides`, `degradation`, `adversarial` and `psnr_overrides`:
    what `resolve` turns into the experiment (and, for a GAN preset, its PSNR stage)."""

    preset: str = "rrdbnetx4"
    # Each replaces single fields of the preset; None keeps the preset's value.
    overrides: dict[str, Any] = field(default_factory=dict)
    degradation: dict[str, Any] = field(default_factory=dict)
    adversarial: dict[str, Any] = field(default_factory=dict)
    # Training fields of a GAN preset's PSNR stage (the preset `adversarial.base` names).
    psnr_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataOptions:
    """params.yaml's `data` section: where the HR images come from and the scales to extract."""

    source: Source = option(
        "div2k",
        help="div2k (downloads ~4 GB once) | df2k (DIV2K + Flickr2K, ~24 GB) | ost "
        "(OutdoorSceneTraining, ~2 GB, validated on DIV2K's valid set) | sample (images bundled "
        "in the repo) | folder (HR images in data.root) | paired (HR images with their own LR in "
        "data.root) (docs/data.md)",
    )
    root: Path | None = option(
        None,
        help="source=folder: a folder with train/ and valid/ HR images; paired: the same with "
        "their LR (HR/ + LR/, GT/ + LQ/ or *_HR + *_LR<scale>; data.scales = the pairs' scale); "
        "else null",
    )
    url: str = option(
        "https://data.vision.ee.ethz.ch/cvl/DIV2K/", help="base URL of the DIV2K zips"
    )
    scales: tuple[int, ...] = option(
        (),
        help=f"scales whose LR is packed besides the experiment's own (any of "
        f"{', '.join(map(str, SCALES))}): [] packs only what the experiment reads, "
        "[2, 3, 4, 8] keeps every scale ready; source=paired: the pairs' scale",
    )
    mix: tuple[str, ...] = option(
        (),
        help="more training images mixed into the source's: df2k | ost | div2k (downloaded as "
        "that source) or a folder of your own HR images; each image named <entry>_<file>, e.g. "
        "[ost] for ESRGAN's DF2K + OST",
    )
    multiscale: bool = option(
        False,
        help="also pack each training image at 0.75, 0.5 and 1/3 of its size and with its "
        "shorter side 400 px (Real-ESRGAN's generate_multiscale_DF2K.py, PIL LANCZOS)",
    )

    def __post_init__(self) -> None:
        require(
            self.source not in ("folder", "paired") or self.root is not None,
            f"data.source: {self.source} needs data.root, a folder holding train/ and valid/",
        )
        require(
            all(s in SCALES for s in self.scales),
            f"data.scales is {list(self.scales)}; use some of {', '.join(map(str, SCALES))}",
        )
        require(
            self.source != "paired" or bool(self.scales),
            "data.source: paired needs data.scales, the scale(s) of the pairs' LR, e.g. [4]",
        )
        require(
            self.source != "paired" or not self.mix,
            "data.mix adds HR images, but data.source: paired trains on given pairs; use "
            "data.source: folder (or df2k, ost) to mix",
        )


@dataclass(frozen=True)
class ExtractOptions:
    """params.yaml's `extract` section."""

    workers: int = option(2, help="parallel processes packing images, integer >= 1")
    hr_format: HRFormat = option(
        "raw",
        help="the HR store's layout: raw (uint8 planes, memory-mapped: fastest to read) | "
        "shards (lossless WebP tiles in shard files of a fixed number of images: fewer bytes, "
        "each file pushed and pulled by DVC on its own; appending images adds shards; "
        "docs/data.md)",
    )

    def __post_init__(self) -> None:
        require(self.workers >= 1, f"extract.workers is {self.workers}; use an integer >= 1")


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is trained: the recipe a preset states and overrides change."""

    steps: int = option(help="training iterations, integer >= 1")
    batch_size: int = option(help="images per step (global, across all devices), integer >= 1")
    patch_size: int = option(
        help="HR patch side in pixels; a multiple of the scale (LR side = patch/scale)"
    )
    lr: float = option(2e-4, help="peak learning rate of Adam, > 0 (e.g. 2e-4)")
    loss: Loss = option("l1", help="pixel loss: l1 | l2 | charbonnier")
    amp: bool = option(
        True,
        help="mixed precision (the presets' AMP): CUDA bf16 (or fp16 + GradScaler), CPU bf16 "
        "where native; the run's precision: auto follows it",
    )
    ema: bool = option(False, help="also keep an exponential moving average of the weights")
    ema_decay: float = option(0.999, help="EMA decay in (0, 1), e.g. 0.999")
    scheduler: Scheduler = option(
        "cosine",
        help="learning-rate schedule after the warm-up: cosine (down to min_lr) | multistep "
        "(times lr_gamma at each milestone) | constant",
    )
    min_lr: float = option(1e-7, help="cosine: the learning rate reached at the last step, >= 0")
    milestones: tuple[float, ...] = option(
        (0.5, 0.75, 0.9, 0.95),
        help="multistep: fractions of steps (so a shortened run keeps the same shape), e.g. "
        "[0.5, 0.75, 0.9, 0.95]",
    )
    lr_gamma: float = option(0.5, help="multistep: factor applied at each milestone, e.g. 0.5")
    warmup_steps: int = option(0, help="linear warm-up steps before the schedule, integer >= 0")
    betas: tuple[float, float] = option(
        (0.9, 0.99), help="Adam betas, a list of two numbers, e.g. [0.9, 0.99]"
    )
    weight_decay: float = option(0.0, help="Adam weight decay, >= 0")
    grad_clip: float | None = option(
        None, help="clip the gradient norm to this value, > 0 (null: no clipping)"
    )

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
class TrainOptions:
    """params.yaml's `train` section: how a training runs (what it trains is the experiment).
    The "auto" rules live in `device.py` (`channels_last_auto`, measured) and `loader_workers`."""

    seed: int = option(0, help="seed of the weights' init and of the (resumable) patch stream")
    workers: int | Auto = option(
        "auto",
        help=f"DataLoader worker processes, integer >= 0 (auto: {AUTO_WORKERS}, or the CPUs "
        "available if fewer)",
    )
    device: str = option("auto", help="training device: auto | cpu | cuda | cuda:N | mps")
    devices: int = option(
        1, help="GPUs for data-parallel training (>1 launches DDP, the batch split), integer >= 1"
    )
    compile: bool | Auto = option(
        "auto", help="torch.compile the model: auto | true | false (auto: on CUDA only)"
    )
    channels_last: bool | Auto = option(
        "auto",
        help="channels-last memory format: auto | true | false (auto: on CUDA, and for bf16 on a "
        "CPU with native bf16)",
    )
    precision: Precision = option(
        "auto",
        help="training compute precision: auto (follows the recipe's amp on the device) | bf16 | "
        "fp16 | fp32 (forced on any device)",
    )
    log_every: int = option(50, help="log the training loss every N steps")
    val_every: int = option(
        5000, help="compute validation PSNR every N steps (and at the last step)"
    )
    save_every: int = option(
        1000,
        help="write a resumable checkpoint every N steps (the pipeline's: checkpoints/<run key>/)",
    )
    val_images: int = option(10, help="validation images used during training, integer >= 0")
    max_nonfinite: int = option(
        20, help="stop after this many inf/NaN losses in a row (those steps are skipped)"
    )
    keep_checkpoints: bool = option(
        False,
        help="keep a finished run's last checkpoints (else deleted once model.pt is written: a "
        "finished run is never resumed)",
    )
    vgg_weights: Path | None = option(
        None,
        help="the perceptual loss's VGG19 file, with VGG19's keys and shapes (null: torchvision's "
        "vgg19-dcbb9e9d.pth, looked up as docs/perceptual.md says)",
    )
    pretrained: str | None = option(
        None,
        help="the generator the run starts from: a published name (`claritycore models`), any "
        "file `claritycore upscale` reads, or null (random weights, or a fine-tune preset's "
        "own). A GAN experiment started from one has no PSNR stage: its GAN stage starts from it",
    )
    pretrained_strict: bool = option(
        True,
        help="the start files (train.pretrained, adversarial.pretrained_d) must fit every tensor; "
        "false: load those whose names and shapes match, the rest start fresh (e.g. a ×4 file "
        "for a ×2 model), listed in the log and model.pt",
    )

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
class EvaluateOptions:
    """params.yaml's `evaluate` section (also the `claritycore evaluate`/`upscale` defaults)."""

    tile: int = option(
        512,
        help="LR tile side for tiled inference, integer >= 0 (0: the whole image at once; "
        "smaller: less memory)",
    )
    tile_pad: int = option(16, help="context added around each tile, in LR pixels (hides seams)")
    max_images: int | None = option(
        None, help="score only the first N images of each set (null: all)"
    )
    device: str = option("auto", help="inference device: auto | cpu | cuda | cuda:N | mps")
    precision: Precision = option(
        "auto",
        help="inference compute precision: auto | fp32 | bf16 | fp16 (auto: bf16 where the device "
        "computes it natively; docs/speed.md)",
    )
    self_ensemble: bool = option(
        False,
        help="mean over the 8 flips/rotations of the input (EDSR's '+'): a little higher PSNR, 8x "
        "the time",
    )
    benchmarks: tuple[str, ...] = option(
        (),
        help="sets the pipeline scores besides valid/, each in data/benchmarks/<name>/, e.g. "
        "[Set5, Set14]",
    )
    degrade: Degradation | None = option(
        None,
        help="realesrgan: also score every set on a copy degraded by Real-ESRGAN's pipeline "
        "(the degradation defaults, degrade_seed), as <set>-realesrgan, made once and cached; "
        "null: not (bicubic is each set's own LR, scored anyway)",
    )
    degrade_seed: int = option(0, help="seed of those degraded copies")
    perceptual: bool = option(
        True,
        help="also NIQE (model and bicubic; no reference) and LPIPS-Alex (if torchvision's "
        "AlexNet weights are there, else skipped with a warning); off: PSNR/SSIM only, as "
        "training's validation logs",
    )

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
            self.degrade is None or not DegradationConfig(type=self.degrade).reads_store_lr,
            f"evaluate.degrade: {self.degrade} is the sets' own LR, scored anyway; use "
            "realesrgan or null",
        )
        require(self.tile >= 0, f"evaluate.tile must be >= 0 (0: no tiling), got {self.tile}")
        require(self.tile_pad >= 0, f"evaluate.tile_pad must be >= 0, got {self.tile_pad}")
        require(
            self.max_images is None or self.max_images >= 1,
            f"evaluate.max_images must be >= 1 or null (all), got {self.max_images}",
        )


ALL_KERNELS: tuple[Kernel, ...] = KERNELS
# Real-ESRGAN degrades a 400² crop of each HR image (RealESRGANDataset's crop_pad_size) and
# cuts the training patch from the result.
REALESRGAN_CROP = 400
# Real-ESRGAN x4plus's kernel probabilities, in ALL_KERNELS' order.
KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


# The help a first-degradation key shares with its twin in the second (`…2`).
_BLUR_KERNEL_SIZE = "largest blur kernel side, odd 7..21 (each sample's side drawn from 7, 9, ...)"
_KERNEL_LIST = "blur kernel families to draw from (iso, aniso: Gaussian)"
_KERNEL_PROB = "probability of each kernel_list entry, summing to 1"
_SINC_PROB = "probability of a sinc (ringing, circular low-pass) kernel instead"
_BLUR_SIGMA = "[min, max] Gaussian sigma, > 0"
_BETAG_RANGE = "[min, max] shape of the generalized Gaussian kernels"
_BETAP_RANGE = "[min, max] shape of the plateau kernels"
_RESIZE_PROB = "probabilities of [up, down, keep]"
_RESIZE_RANGE = "[min, max] resize factor"
_GAUSSIAN_NOISE_PROB = "Gaussian noise with this probability, else Poisson"
_NOISE_RANGE = "[min, max] Gaussian noise sigma, 0..255 units"
_POISSON_SCALE_RANGE = "[min, max] Poisson noise scale"
_GRAY_NOISE_PROB = "noise equal on all channels with this probability"


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
    """How a training pair's LR is made. `realesrgan`: Real-ESRGAN's second-order pipeline
    applied to the HR crop on the training device (blur -> resize -> noise -> JPEG, then
    blur -> resize -> noise, then the final resize + sinc and JPEG in either order), with
    Real-ESRGAN x4plus's values and names as the defaults. Every field but `type` is used by
    `realesrgan` only."""

    type: Degradation = option(
        "bicubic",
        help="bicubic (the store's MATLAB-bicubic LR) | realesrgan (Real-ESRGAN's pipeline, made "
        "on the fly from the HR crop)",
    )
    crop: int | None = option(
        None,
        help="side of the HR region that is degraded whole, a multiple of the scale; the "
        "training patch is then cut from it at a random aligned position (images smaller "
        f"than it are reflect-padded). null: Real-ESRGAN's crop_pad_size, {REALESRGAN_CROP}, "
        "rounded up to a multiple of the scale and at least the patch",
    )
    usm_input: bool = option(
        True, help="degrade the unsharp-masked HR, as Real-ESRGAN does (false: the plain HR)"
    )
    # First degradation: blur, resize, noise, JPEG.
    blur_kernel_size: int = option(21, help=_BLUR_KERNEL_SIZE)
    kernel_list: tuple[Kernel, ...] = option(ALL_KERNELS, help=_KERNEL_LIST)
    kernel_prob: tuple[float, ...] = option(KERNEL_PROB, help=_KERNEL_PROB)
    sinc_prob: float = option(0.1, help=_SINC_PROB)
    blur_sigma: tuple[float, float] = option((0.2, 3.0), help=_BLUR_SIGMA)
    betag_range: tuple[float, float] = option((0.5, 4.0), help=_BETAG_RANGE)
    betap_range: tuple[float, float] = option((1.0, 2.0), help=_BETAP_RANGE)
    resize_prob: tuple[float, float, float] = option((0.2, 0.7, 0.1), help=_RESIZE_PROB)
    resize_range: tuple[float, float] = option((0.15, 1.5), help=_RESIZE_RANGE)
    gaussian_noise_prob: float = option(0.5, help=_GAUSSIAN_NOISE_PROB)
    noise_range: tuple[float, float] = option((1.0, 30.0), help=_NOISE_RANGE)
    poisson_scale_range: tuple[float, float] = option((0.05, 3.0), help=_POISSON_SCALE_RANGE)
    gray_noise_prob: float = option(0.4, help=_GRAY_NOISE_PROB)
    jpeg_range: tuple[float, float] = option((30.0, 95.0), help="[min, max] JPEG quality, 1..100")
    # Second degradation: blur, resize, noise (its JPEG is the final step's).
    second_blur_prob: float = option(0.8, help="probability of the second degradation's blur")
    blur_kernel_size2: int = option(21, help=_BLUR_KERNEL_SIZE)
    kernel_list2: tuple[Kernel, ...] = option(ALL_KERNELS, help=_KERNEL_LIST)
    kernel_prob2: tuple[float, ...] = option(KERNEL_PROB, help=_KERNEL_PROB)
    sinc_prob2: float = option(0.1, help=_SINC_PROB)
    blur_sigma2: tuple[float, float] = option((0.2, 1.5), help=_BLUR_SIGMA)
    betag_range2: tuple[float, float] = option((0.5, 4.0), help=_BETAG_RANGE)
    betap_range2: tuple[float, float] = option((1.0, 2.0), help=_BETAP_RANGE)
    resize_prob2: tuple[float, float, float] = option((0.3, 0.4, 0.3), help=_RESIZE_PROB)
    resize_range2: tuple[float, float] = option((0.3, 1.2), help=_RESIZE_RANGE)
    gaussian_noise_prob2: float = option(0.5, help=_GAUSSIAN_NOISE_PROB)
    noise_range2: tuple[float, float] = option((1.0, 25.0), help=_NOISE_RANGE)
    poisson_scale_range2: tuple[float, float] = option((0.05, 2.5), help=_POISSON_SCALE_RANGE)
    gray_noise_prob2: float = option(0.4, help=_GRAY_NOISE_PROB)
    jpeg_range2: tuple[float, float] = option(
        (30.0, 95.0), help="[min, max] JPEG quality of the final step, 1..100"
    )
    # Final step: resize to the LR size + sinc filter, and JPEG, in either order.
    final_sinc_prob: float = option(0.8, help="final step: probability of a sinc filter")
    final_resize_first_prob: float = option(
        0.5, help="final step: resize + sinc before JPEG with this probability, else after"
    )
    l1_gt_usm: bool = option(True, help="L1 loss against an unsharp-masked HR")
    percep_gt_usm: bool = option(True, help="perceptual loss against an unsharp-masked HR")
    gan_gt_usm: bool = option(False, help="discriminator sees an unsharp-masked HR as real")

    def __post_init__(self) -> None:
        require(
            self.crop is None or self.crop >= 1,
            f"degradation.crop is {self.crop}; use a side in pixels >= 1, or null",
        )
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

    def region(self, scale: int, patch_size: int) -> int:
        """The side of the HR region degraded for one `patch_size` patch at `scale`."""
        if self.crop is not None:
            return self.crop
        return max(patch_size, scale * -(-REALESRGAN_CROP // scale))

    @property
    def reads_store_lr(self) -> bool:
        """The training LR is the store's (MATLAB bicubic, or a paired source's own), not made
        on the fly; then every field but `type` is idle. The one place this is decided on the
        config side; training/pair_sources.py's table says how each type makes its pairs."""
        return self.type == "bicubic"

    def to_dict(self) -> dict[str, Any]:
        """A type that reads the store's LR as `{type: ...}` alone: the other fields do not
        act, and so neither a config hash nor a `dvc exp show` column changes for the L1
        presets."""
        return {"type": self.type} if self.reads_store_lr else as_dict(self)


@dataclass(frozen=True)
class AdversarialConfig:
    """ESRGAN's second stage: the generator, started from the model of the PSNR preset
    `base`, trained with `pixel_weight`·L1 + `perceptual_weight`·VGG19 features +
    `gan_weight`·GAN loss against a discriminator with its own Adam (`d_lr`, `d_betas`; its
    learning rate follows the generator's schedule, scaled by d_lr/lr). The first
    `d_init_steps` steps train the discriminator alone (BasicSR's `net_d_init_iters`)."""

    base: str = option(help="the PSNR preset whose model this stage starts from")
    pixel_weight: float = option(
        1e-2,
        help="weight of the L1 loss to the HR: keeps colours and structure; higher = closer to "
        "the PSNR model",
    )
    perceptual_weight: float = option(
        1.0, help="weight of the VGG19 feature distance (textures, edges); 0: no VGG19 file needed"
    )
    perceptual_layers: dict[str, float] = option(
        factory=lambda: {"conv5_4": 1.0},
        help="VGG19 layers, features before their ReLU (ESRGAN's choice), each with its weight "
        "(BasicSR's layer_weights)",
    )
    gan_type: GanType = option(
        "ragan",
        help="ragan (ESRGAN's relativistic average: is real more realistic than the average "
        "fake) | vanilla (Real-ESRGAN's: real vs fake)",
    )
    gan_weight: float = option(
        5e-3,
        help="weight of the generator's GAN loss: higher = more (and more hallucinated) texture",
    )
    discriminator: Discriminator = option(
        "vgg128",
        help="vgg128 (ESRGAN's VGG-style D with batch norm, 128² patches only) | unet_sn "
        "(Real-ESRGAN's U-Net with spectral norm, any patch side that is a multiple of 8, "
        "judging each pixel)",
    )
    d_num_feat: int = option(64, help="discriminator base channels")
    d_lr: float = option(
        1e-4, help="discriminator's peak Adam learning rate (it follows the generator's schedule)"
    )
    d_betas: tuple[float, float] = option((0.9, 0.99), help="discriminator's Adam betas")
    d_init_steps: int = option(
        0,
        help="steps that train only the discriminator before the generator's first update "
        "(BasicSR's net_d_init_iters): D learns to tell the PSNR model's output from HR first",
    )
    pretrained_d: str | None = option(
        None,
        help="the discriminator the GAN stage starts from: a published name (e.g. "
        "RealESRGAN_x4plus_netD), a weights file (BasicSR's layout), or null (random weights)",
    )

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
        """`d_init_steps` and `pretrained_d` only when set: at their defaults the GAN presets'
        configs (and their hashes, run keys and DVC run cache) are what they were before the
        fields existed."""
        values = as_dict(self)
        if not self.d_init_steps:
            del values["d_init_steps"]
        if self.pretrained_d is None:
            del values["pretrained_d"]
        return values


# params.yaml's sections by name; `preset` and `overrides` are top-level keys.
SECTIONS: dict[str, type] = {
    "data": DataOptions,
    "extract": ExtractOptions,
    "train": TrainOptions,
    "evaluate": EvaluateOptions,
}


def load_params(path: Path) -> dict[str, Any]:
    """The params file as a mapping, or a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found; run from the repository root or pass --params")
    params = load_yaml(path.read_text(), str(path))
    if not isinstance(params, dict):
        raise ConfigError(f"{path} must be a mapping of sections, got {params!r}")
    return params


def read_section(params: dict[str, Any], name: str, cls: type[T]) -> T:
    """Section `name` of a loaded params file, parsed into `cls`."""
    return parse(cls, params.get(name), name)


def read_experiment_params(params: dict[str, Any]) -> ExperimentParams:
    """The top-level `preset`, `overrides` and the sections that change the experiment."""
    keys = ("preset", "overrides", "degradation", "adversarial", "psnr_overrides")
    selection = {k: params[k] for k in keys if params.get(k) is not None}
    return parse(ExperimentParams, selection, "params")
