"""RRDBNet, ESRGAN's generator (Wang et al., 2018), with BasicSR's parameter names."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# ESRGAN scales residual branches by 0.2 so a deep stack starts close to the identity.
RESIDUAL_SCALE = 0.2


def _init_scaled_kaiming(module: nn.Module, scale: float) -> None:
    """ESRGAN's initialisation: Kaiming-normal weights times `scale`, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            m.weight.data.mul_(scale)
            if m.bias is not None:
                m.bias.data.zero_()


class _DenseCat(torch.autograd.Function):
    """`torch.cat` along channels whose backward hands each input a contiguous gradient.

    A cat's input gradients are channel slices of one tensor, strided in channels-last, and
    the dense block sums several per feature map (the block input feeds all five convs).
    On the CPU, bf16 sums of such slices run 9× slower than of contiguous tensors (686 vs 73 µs
    for 8×16×24², one thread), so each slice is copied once first. The values and the order of
    the sums are autograd's own: the result is bit-identical.
    """

    @staticmethod
    def forward(ctx: Any, *features: torch.Tensor) -> torch.Tensor:
        ctx.channels = [f.shape[1] for f in features]
        return torch.cat(features, 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        pieces = grad.split(ctx.channels, 1)
        strided = not grad.is_contiguous() and grad.is_contiguous(memory_format=torch.channels_last)
        return tuple(
            (piece.contiguous(memory_format=torch.channels_last) if strided else piece)
            if needed
            else None
            for piece, needed in zip(pieces, ctx.needs_input_grad, strict=True)
        )


def _dense_cat(features: tuple[torch.Tensor, ...]) -> torch.Tensor:
    # Plain torch.cat where no gradient flows (inference, export: no custom op in the graph).
    return _DenseCat.apply(*features) if torch.is_grad_enabled() else torch.cat(features, 1)


class ResidualDenseBlock(nn.Module):
    """Five 3×3 convs, each seeing the block input and every earlier output."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        _init_scaled_kaiming(self, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(_dense_cat((x, x1))))
        x3 = self.lrelu(self.conv3(_dense_cat((x, x1, x2))))
        x4 = self.lrelu(self.conv4(_dense_cat((x, x1, x2, x3))))
        x5 = self.conv5(_dense_cat((x, x1, x2, x3, x4)))
        return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks inside a scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE + x


def pixel_shuffle_steps(scale: int) -> list[int]:
    """Factors of the sub-pixel upsampling: ×3 in one step, powers of two as ×2 steps."""
    if scale == 3:
        return [3]
    steps = []
    while scale > 1:
        steps.append(2)
        scale //= 2
    return steps


class RRDBNet(nn.Module):
    """conv_first → RRDB × num_block → conv_body (+ global residual) → upsample → conv_hr
    → LeakyReLU → conv_last. No batch norm.

    `upsampler="pixelshuffle"` upsamples with conv + PixelShuffle steps (`upsample.N`);
    `"nearest"` is ESRGAN/Real-ESRGAN's nearest ×2 + conv + LeakyReLU steps (`conv_up1..3`),
    where ×2 pixel-unshuffles the input and upsamples ×4, as Real-ESRGAN's ×2 model does
    (`x2_unshuffle=False`: one ×2 step, the original ESRGAN's ×2); `"nearest_noact"` is
    claritycore 0.0.5's nearest + conv steps (`upsample.1`, `.3`, …) with one LeakyReLU after
    the last.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        upsampler: str = "pixelshuffle",
        x2_unshuffle: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.upsampler = upsampler
        # Real-ESRGAN's ×2: fold 2×2 input pixels into channels, then upsample ×4.
        self.unshuffle = 2 if (upsampler == "nearest" and scale == 2 and x2_unshuffle) else 1
        self.conv_first = nn.Conv2d(in_channels * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if upsampler == "pixelshuffle":
            layers: list[nn.Module] = []
            for factor in pixel_shuffle_steps(scale):
                conv = nn.Conv2d(num_feat, num_feat * factor**2, 3, 1, 1)
                layers += [conv, nn.PixelShuffle(factor)]
            self.upsample = nn.Sequential(*layers)
        elif upsampler == "nearest_noact":
            layers = []
            for factor in pixel_shuffle_steps(scale):
                layers += [nn.Upsample(scale_factor=factor), nn.Conv2d(num_feat, num_feat, 3, 1, 1)]
            self.upsample = nn.Sequential(*layers)
        else:
            num_up = len(pixel_shuffle_steps(scale * self.unshuffle))
            for i in range(1, num_up + 1):
                self.add_module(f"conv_up{i}", nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.num_up = num_up
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, out_channels, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.unshuffle > 1:
            # Pixel-unshuffle needs even sides; reflect-pad and crop the output back.
            mode = "reflect" if min(height, width) > 1 else "replicate"
            x = F.pad(x, (0, width % 2, 0, height % 2), mode=mode)
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        # Each step rebinds `feat`, so no high-resolution map outlives the conv that reads it
        # (a kept upsampled map was the largest tensor alive in conv_hr); the values are the
        # same, and training's autograd keeps what it needs regardless.
        if self.upsampler == "pixelshuffle":
            feat = self.upsample(feat)
        elif self.upsampler == "nearest_noact":
            feat = self.lrelu(self.upsample(feat))
        else:
            for i in range(1, self.num_up + 1):
                conv_up = getattr(self, f"conv_up{i}")
                feat = self.lrelu(conv_up(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_hr(feat))
        out = self.conv_last(feat)
        return out[..., : height * self.scale, : width * self.scale]
