"""LPIPS (Zhang et al., "The unreasonable effectiveness of deep features as a perceptual
metric", 2018), AlexNet variant, as the `lpips` package (0.1.4, v0.1 weights) computes it.

Inputs on [-1, 1] are shifted and scaled per channel (the package's scaling layer), run through
AlexNet's five convolution stages (torchvision's ImageNet weights, the outputs after each
ReLU), each stage's features unit-normalised over channels (x / (‖x‖ + 1e-10)); the squared
difference goes through that stage's learned 1×1 convolution (no bias, one output channel),
is averaged over positions, and the five are summed. Lower is closer; 0 for identical images.

The AlexNet definition is ours, in torchvision's key layout (`features.N.*`), so torchvision's
`alexnet-owt-7be5be79.pth` loads as it is (its classifier keys are not used); the linear layers
are the package's `weights/v0.1/alex.pth` (metrics_data/, BSD-2-Clause: see NOTICE.md).
"""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

# After these `features` indices come the five ReLU outputs LPIPS compares.
_TAPS = (1, 4, 7, 9, 11)
CHANNELS = (64, 192, 384, 256, 256)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# The smallest side AlexNet's two strided poolings leave a pixel of: smaller images have no
# LPIPS (the package raises).
MIN_SIDE = 31


class AlexNetFeatures(nn.Module):
    """torchvision's AlexNet `features` (without the last max-pool, which LPIPS never reaches)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU outputs, shallow to deep."""
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAPS:
                outputs.append(x)
        return outputs


class LPIPS(nn.Module):
    """LPIPS-Alex v0.1: `forward(a, b)` of (N, 3, H, W) tensors on [-1, 1] -> (N,) distances."""

    # Buffers (register_buffer), typed for the checker.
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.backbone = AlexNetFeatures()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        self.requires_grad_(False)
        self.eval()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        both = self.backbone((torch.cat([a, b]) - self.shift) / self.scale)
        total = torch.zeros(len(a), device=a.device, dtype=a.dtype)
        for features, lin in zip(both, self.lins, strict=True):
            unit = features / (features.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            first, second = unit.chunk(2)
            total = total + lin((first - second).square()).mean(dim=(1, 2, 3))
        return total


def load_backbone(model: LPIPS, path: Path) -> None:
    """Load torchvision's AlexNet weights (`features.*` of `path`, e.g. alexnet-owt-7be5be79.pth)
    into `model`; a file without AlexNet's feature keys and shapes raises ValueError."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    expected = model.backbone.state_dict()
    shapes = {k: tuple(v.shape) for k, v in features.items()}
    if shapes != {k: tuple(v.shape) for k, v in expected.items()}:
        raise ValueError(f"{path} is not torchvision's AlexNet: its features are {shapes}")
    model.backbone.load_state_dict(features)


def load_lpips(backbone: Path, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS-Alex v0.1 with the AlexNet weights at `backbone` and the package's linear layers."""
    model = LPIPS()
    load_backbone(model, backbone)
    with (files("claritycore") / "metrics_data" / "lpips_alex_v0.1.pth").open("rb") as f:
        lins = torch.load(f, map_location="cpu", weights_only=True)
    for i, lin in enumerate(model.lins):
        cast(nn.Conv2d, lin).weight.copy_(lins[f"lin{i}.model.1.weight"])
    return model.to(device)


def to_input(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """A uint8 HxWxC image (C = 3, or 1 repeated to 3) as LPIPS's (1, 3, H, W) input on
    [-1, 1] (the package's `im2tensor`: x / 127.5 - 1)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"expected a uint8 HxWx3 or HxWx1 image, got {image.dtype} {image.shape}")
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None]
    return (x.to(torch.float32) / 127.5 - 1).expand(1, 3, *image.shape[:2])


@torch.no_grad()
def lpips_distance(model: LPIPS, a: np.ndarray, b: np.ndarray, crop_border: int = 0) -> float:
    """LPIPS between two uint8 HxWxC images of the same shape, `crop_border` pixels cut from
    each edge first (as PSNR/SSIM are scored); NaN if a side is then under MIN_SIDE."""
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} and {b.shape}")
    if crop_border:
        c = crop_border
        a, b = a[c:-c, c:-c], b[c:-c, c:-c]
    if min(a.shape[:2]) < MIN_SIDE:
        return math.nan
    device = model.shift.device
    # IEEE fp32 convolutions, not TF32 (cuDNN's default on Ampere and later): a figure that
    # must not depend on which GPU, or whether one, computed it.
    cudnn = torch.backends.cudnn
    allow_tf32, cudnn.allow_tf32 = cudnn.allow_tf32, False
    try:
        return float(model(to_input(a, device), to_input(b, device))[0])
    finally:
        cudnn.allow_tf32 = allow_tf32
