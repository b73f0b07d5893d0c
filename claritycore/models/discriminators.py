"""The discriminators of ESRGAN and Real-ESRGAN, with BasicSR 1.4.2's state-dict key names so
weights move between BasicSR, Real-ESRGAN and ClarityCore unchanged.

- `vgg128`: ESRGAN's VGG-style classifier (BasicSR `VGGStyleDiscriminator`): strided convs down
  to 4×4, then two linear layers, one logit per image. Its linear layer fixes the input size at
  128² (or 256² with `input_size=256`).
- `unet_sn`: Real-ESRGAN's U-Net with spectral norm (BasicSR `UNetDiscriminatorSN`): one logit
  per pixel, any input whose sides are multiples of 8.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from claritycore.errors import ConfigError

# The U-Net halves the image three times and adds each upsampled map to its skip.
UNET_MULTIPLE = 8
VGG_SIZES = (128, 256)


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope=0.2, inplace=True)


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's discriminator: per stage a 3×3 conv and a stride-2 4×4 conv (BatchNorm after
    all but the first conv), channels num_feat·(1, 2, 4, 8, 8[, 8]); then 100 units, 1 logit."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in VGG_SIZES:
            raise ValueError(f"VGG discriminator input_size is {input_size}; use 128 or 256")
        self.input_size = input_size
        stages = 5 if input_size == 128 else 6
        widths = [num_feat * m for m in (1, 2, 4, 8, 8, 8)][:stages]
        channels = num_in_ch
        for stage, width in enumerate(widths):
            # Stage 0's first conv has a bias and no BatchNorm; every other conv the reverse.
            self.add_module(f"conv{stage}_0", nn.Conv2d(channels, width, 3, 1, 1, bias=stage == 0))
            if stage > 0:
                self.add_module(f"bn{stage}_0", nn.BatchNorm2d(width))
            self.add_module(f"conv{stage}_1", nn.Conv2d(width, width, 4, 2, 1, bias=False))
            self.add_module(f"bn{stage}_1", nn.BatchNorm2d(width))
            channels = width
        self.stages = stages
        self.linear1 = nn.Linear(channels * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) images, S = input_size -> (N, 1) logits."""
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            size = "×".join(map(str, x.shape[-2:]))
            raise ValueError(
                f"the VGG discriminator takes {self.input_size}×{self.input_size} patches, got "
                f"{size}; use that patch size or discriminator unet_sn (sides multiple of 8)"
            )
        for stage in range(self.stages):
            x = getattr(self, f"conv{stage}_0")(x)
            if stage > 0:
                x = getattr(self, f"bn{stage}_0")(x)
            x = _leaky(x)
            x = _leaky(getattr(self, f"bn{stage}_1")(getattr(self, f"conv{stage}_1")(x)))
        return self.linear2(_leaky(self.linear1(x.flatten(1))))


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's discriminator: three stride-2 convs down, three bilinear ×2 up with skip
    additions, two more convs, one logit per pixel; spectral norm on all but the first and
    last conv (torch's hook-based `spectral_norm`, whose `weight_orig/_u/_v` keys BasicSR
    saves)."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True):
        super().__init__()
        self.skip_connection = skip_connection
        f = num_feat

        def sn_conv(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Module:
            return spectral_norm(nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=False))

        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        self.conv1 = sn_conv(f, 2 * f, 4, 2)
        self.conv2 = sn_conv(2 * f, 4 * f, 4, 2)
        self.conv3 = sn_conv(4 * f, 8 * f, 4, 2)
        self.conv4 = sn_conv(8 * f, 4 * f, 3, 1)
        self.conv5 = sn_conv(4 * f, 2 * f, 3, 1)
        self.conv6 = sn_conv(2 * f, f, 3, 1)
        self.conv7 = sn_conv(f, f, 3, 1)
        self.conv8 = sn_conv(f, f, 3, 1)
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images, H and W multiples of 8 -> (N, 1, H, W) logits."""
        if any(side % UNET_MULTIPLE for side in x.shape[-2:]):
            size = "×".join(map(str, x.shape[-2:]))
            raise ValueError(
                f"the U-Net discriminator takes sides that are multiples of {UNET_MULTIPLE}, "
                f"got {size}"
            )
        x0 = _leaky(self.conv0(x))
        x1 = _leaky(self.conv1(x0))
        x2 = _leaky(self.conv2(x1))
        x3 = _leaky(self.conv3(x2))
        up = _leaky(self.conv4(_upsample(x3)))
        for conv, skip in ((self.conv5, x2), (self.conv6, x1)):
            if self.skip_connection:
                up = up + skip
            up = _leaky(conv(_upsample(up)))
        if self.skip_connection:
            up = up + x0
        out = _leaky(self.conv8(_leaky(self.conv7(up))))
        return self.conv9(out)


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _vgg128_patch_error(patch_size: int, scale: int) -> str | None:
    if patch_size == 128:
        return None
    return (
        f"discriminator vgg128 (ESRGAN's) takes 128² HR patches, not patch_size={patch_size}; "
        "set patch_size 128 or adversarial.discriminator unet_sn (any multiple of "
        f"{UNET_MULTIPLE})"
    )


def _unet_patch_error(patch_size: int, scale: int) -> str | None:
    if patch_size % UNET_MULTIPLE == 0:
        return None
    # Its three stride-2 convolutions must halve the side exactly for the skip sums; the
    # suggestion is also a multiple of the scale, so the LR patch aligns.
    side = math.lcm(UNET_MULTIPLE, scale)
    return (
        f"discriminator unet_sn takes patch sides that are multiples of {UNET_MULTIPLE}, not "
        f"patch_size={patch_size}; use e.g. {side * max(1, round(patch_size / side))}"
    )


@dataclass(frozen=True)
class DiscriminatorKind:
    """One discriminator: its builder from the base channel count, and why it cannot take HR
    patches of a given side at a scale (None when it can), checked when the experiment is
    resolved."""

    build: Callable[[int], nn.Module]
    patch_error: Callable[[int, int], str | None]


DISCRIMINATORS: dict[str, DiscriminatorKind] = {
    "vgg128": DiscriminatorKind(
        lambda feat: VGGStyleDiscriminator(3, feat, 128), _vgg128_patch_error
    ),
    "unet_sn": DiscriminatorKind(lambda feat: UNetDiscriminatorSN(3, feat), _unet_patch_error),
}


def build_discriminator(kind: str, num_feat: int, patch_size: int) -> nn.Module:
    """The discriminator `kind` for HR patches of `patch_size`, or a one-line ConfigError
    before any work if it cannot take them."""
    entry = DISCRIMINATORS[kind]
    error = entry.patch_error(patch_size, 1)
    if error is not None:
        raise ConfigError(error)
    return entry.build(num_feat)
