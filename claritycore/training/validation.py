"""Validation during training: PSNR/SSIM on the Y channel (crop = scale), as papers report them.

The SR output is quantised to uint8 before scoring, as BasicSR does, so the figures match what
`claritycore evaluate` reports for the saved images. The bicubic baseline (MATLAB `imresize`
of the LR image) is scored once per run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from claritycore import metrics
from claritycore.data.dataset import load_validation_pairs
from claritycore.resize import imresize

# Validation images shown in dvclive (bicubic | model | ground truth), and their HR crop side.
NUM_CROPS = 3
CROP = 192


@dataclass(frozen=True)
class ValImage:
    """One validation image: uint8 tensors (1, 3, H, W); `_unit` gives them in [0, 1].

    Kept as uint8 for the whole run: as float64 ten DIV2K images would hold ~1.5 GB.
    """

    name: str
    lr: torch.Tensor
    hr: torch.Tensor
    bicubic: torch.Tensor


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def _unit(image: torch.Tensor) -> torch.Tensor:
    """uint8 levels -> float64 in [0, 1]."""
    return image.double() / 255


def load_validation(folder: Path | None, scale: int, max_images: int) -> list[ValImage]:
    """The first `max_images` valid images of `folder` with their bicubic upscaling."""
    if folder is None or max_images == 0:
        return []
    pairs = load_validation_pairs(Path(folder), scale, max_images=max_images)
    return [
        ValImage(p.name, _to_tensor(p.lr), _to_tensor(p.hr), _to_tensor(imresize(p.lr, scale)))
        for p in pairs
    ]


def _score(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> tuple[float, float]:
    psnr = metrics.psnr(sr, hr, crop_border=scale, y_channel=True)
    ssim = metrics.ssim(sr, hr, crop_border=scale, y_channel=True)
    return float(psnr.mean()), float(ssim.mean())


def _means(prefix: str, scores: list[tuple[float, float]]) -> dict[str, float]:
    """Mean PSNR/SSIM over images, logged as `prefix/psnr_y` and `prefix/ssim_y`."""
    return {
        f"{prefix}/psnr_y": float(np.mean([psnr for psnr, _ in scores])),
        f"{prefix}/ssim_y": float(np.mean([ssim for _, ssim in scores])),
    }


def bicubic_baseline(images: list[ValImage], scale: int) -> dict[str, float]:
    """Mean PSNR/SSIM (Y) of bicubic upscaling: the floor a trained model must beat."""
    return _means("bicubic", [_score(_unit(im.bicubic), _unit(im.hr), scale) for im in images])


def _crop_strip(*images: torch.Tensor) -> np.ndarray:
    """Centre crops of same-size (1, 3, H, W) images side by side, as uint8 HxWx3."""
    height, width = images[0].shape[-2:]
    side = min(CROP, height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crops = [image[0, :, top : top + side, left : left + side] for image in images]
    strip = torch.cat(crops, dim=2).permute(1, 2, 0).mul(255).round().clamp(0, 255)
    return strip.to(torch.uint8).numpy()


@torch.no_grad()
def validate(
    model: nn.Module,
    images: list[ValImage],
    *,
    scale: int,
    device: torch.device,
    autocast: contextlib.AbstractContextManager,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Mean PSNR/SSIM (Y) of `model` on `images`, and a few crops to look at."""
    if not images:
        return {}, {}
    was_training = model.training
    model.eval()
    scores, crops = [], {}
    for i, image in enumerate(images):
        with autocast:
            sr = model(_unit(image.lr).to(device, torch.float32))
        # Quantise to uint8 levels first: the figures are those of the saved image.
        sr = sr.double().clamp(0, 1).mul(255).round().div(255).cpu()
        sr = sr[..., : image.hr.shape[-2], : image.hr.shape[-1]]
        hr = _unit(image.hr)
        scores.append(_score(sr, hr, scale))
        if i < NUM_CROPS:
            crops[f"val/{Path(image.name).stem}.png"] = _crop_strip(_unit(image.bicubic), sr, hr)
    model.train(was_training)
    return _means("val", scores), crops
