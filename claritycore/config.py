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

Source = Literal["div2k", "sample", "folder"]
Loss = Literal["l1", "l2", "charbonnier"]
Scheduler = Literal["cosine", "multistep", "constant"]
# Compute precision of training and inference; "auto" is decided by the device (device.py).
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Auto = Literal["auto"]

SOURCES, LOSSES, SCHEDULERS, PRECISIONS = map(choices, (Source, Loss, Scheduler, Precision))
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
    """params.yaml's `preset` and `overrides`: what `resolve` turns into the experiment."""

    preset: str = "rrdbnetx4"
    # Replaces single fields of the preset; None keeps the preset's value.
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataParams:
    """params.yaml's `data` section: where the HR images come from and the scales to extract."""

    source: Source = "div2k"
    root: Path | None = None
    url: str = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
    scales: tuple[int, ...] = SCALES

    def __post_init__(self) -> None:
        require(
            self.source != "folder" or self.root is not None,
            "data.source: folder needs data.root, a folder holding train/ and valid/",
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

    `compile`/`channels_last`: "auto" turns them on for CUDA. `precision`: "auto" follows the
    recipe's `amp` on the device (device.py has the rule); bf16/fp16/fp32 force one anywhere.
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
        require(self.tile >= 0, f"evaluate.tile must be >= 0 (0: no tiling), got {self.tile}")
        require(self.tile_pad >= 0, f"evaluate.tile_pad must be >= 0, got {self.tile_pad}")
        require(
            self.max_images is None or self.max_images >= 1,
            f"evaluate.max_images must be >= 1 or null (all), got {self.max_images}",
        )


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
    """The top-level `preset` and `overrides` of a loaded params file."""
    selection = {k: params[k] for k in ("preset", "overrides") if params.get(k) is not None}
    return parse(ExperimentParams, selection, "params")
