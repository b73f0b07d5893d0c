"""Where a training pair's LR input comes from: one table, keyed by `degradation.type`.

Each entry says what the data loader reads from the store and how the loader's item for a step
becomes a `Batch` on the training device:

- `bicubic`: the store's LR planes (MATLAB bicubic of the HR, or a paired source's own LR);
- `realesrgan`: HR regions only (`degradation.crop`, Real-ESRGAN's 400²); the LR is
  Real-ESRGAN's second-order degradation of the whole region, drawn per sample in the loader
  (a pure function of seed and sample index) and synthesised here, batched on the device
  (per-batch choices a pure function of seed and step); then the training patch is cut from the
  degraded region at the sample's aligned position, as Real-ESRGAN's `paired_random_crop`.

A new degradation is a new entry here and its own module beside `claritycore/degradation/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from claritycore.config import DegradationConfig
from claritycore.data.dataset import HRRegionDataset, PairedPatchDataset, collate_regions
from claritycore.degradation import degrade, usm_sharp


@dataclass(frozen=True)
class Batch:
    """One step's images on the device: the LR input and the HR targets each loss compares
    against (the unsharp-masked HR where the degradation's `*_gt_usm` asks for it)."""

    low_res: torch.Tensor
    pixel_target: torch.Tensor
    perceptual_target: torch.Tensor
    real: torch.Tensor  # what the discriminator is shown as real


@dataclass(frozen=True)
class BatchContext:
    """What turning a loader item into a `Batch` needs besides the item and the step."""

    degradation: DegradationConfig
    scale: int
    patch_size: int
    seed: int
    device: torch.device
    channels_last: bool


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 batch → float [0, 1] on the device; the copy is a quarter of a float32 one."""
    images = images.to(device, non_blocking=True).float().div_(255)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def _store_pairs(store: Path, *, patch_size: int, seed: int, length: int,
                 degradation: DegradationConfig) -> Dataset:  # fmt: skip
    return PairedPatchDataset(store, patch_size=patch_size, seed=seed, length=length)


def _store_batch(context: BatchContext, item: tuple, step: int) -> Batch:
    low_res, high_res = (
        to_device(images, context.device, context.channels_last) for images in item
    )
    return Batch(low_res, high_res, high_res, high_res)


def _hr_regions(store: Path, *, patch_size: int, seed: int, length: int,
                degradation: DegradationConfig) -> Dataset:  # fmt: skip
    return HRRegionDataset(
        store, patch_size=patch_size, seed=seed, length=length, degradation=degradation
    )


def _cut(images: torch.Tensor, places: torch.Tensor, side: int, scale: int) -> torch.Tensor:
    """Each image's `side`² patch at its LR place (top, left) times `scale`."""
    return torch.stack([
        image[:, top * scale : top * scale + side, left * scale : left * scale + side]
        for image, (top, left) in zip(images, places.tolist(), strict=True)
    ])  # fmt: skip


def _realesrgan_batch(context: BatchContext, item: tuple, step: int) -> Batch:
    degradation, scale = context.degradation, context.scale
    regions, draws, places = item
    high_res = to_device(regions, context.device, False)
    sharp = usm_sharp(high_res)
    # Real-ESRGAN degrades the unsharp-masked HR (usm_input), which is also the sharpened target.
    source = sharp if degradation.usm_input else high_res
    degraded = degrade(high_res, draws, degradation, scale=scale, seed=context.seed, step=step,
                       hr_usm=source)  # fmt: skip
    patch = context.patch_size
    low_res = _cut(degraded, places, patch // scale, 1)
    flags = (degradation.l1_gt_usm, degradation.percep_gt_usm, degradation.gan_gt_usm)
    # Only the targets some loss uses are cut (each is a copy of B patches).
    cut = {flag: _cut(sharp if flag else high_res, places, patch, scale) for flag in set(flags)}
    targets = [cut[flag] for flag in flags]
    if context.channels_last:
        low_res, *targets = (
            t.contiguous(memory_format=torch.channels_last) for t in (low_res, *targets)
        )
    return Batch(low_res, *targets)


@dataclass(frozen=True)
class PairSource:
    """One way of making training pairs: the dataset over a store, how the loader collates
    its samples (None: PyTorch's default), and the (context, item, step) → `Batch` function."""

    open_dataset: Callable[..., Dataset]
    collate: Callable[[list], tuple] | None
    make_batch: Callable[[BatchContext, tuple, int], Batch]


PAIR_SOURCES: dict[str, PairSource] = {
    "bicubic": PairSource(_store_pairs, None, _store_batch),
    "realesrgan": PairSource(_hr_regions, collate_regions, _realesrgan_batch),
}
