"""RRDBNet's architecture config (its presets are rows of the table in claritycore/presets.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from claritycore.models.auto import register_config
from claritycore.models.base import BaseConfig
from claritycore.models.rrdbnet.architecture import pixel_shuffle_steps
from claritycore.schema import option, require

Upsampler = Literal["pixelshuffle", "nearest", "nearest_noact"]


def _conv3x3(inputs: int, outputs: int) -> int:
    return 9 * inputs * outputs + outputs


@register_config("rrdbnet")
@dataclass(frozen=True)
class RRDBNetConfig(BaseConfig):
    """RRDBNet architecture. Defaults are ESRGAN's full model (~16.7M parameters)."""

    num_feat: int = option(64, help="RRDBNet feature channels, e.g. 64 (full) or 32 (lite)")
    num_block: int = option(23, help="RRDBNet number of RRDB blocks, e.g. 23 (full) or 6 (lite)")
    num_grow_ch: int = option(
        32, help="RRDBNet growth channels in each dense block, e.g. 32 (full) or 16 (lite)"
    )
    upsampler: Upsampler = option(
        "pixelshuffle",
        help="pixelshuffle (conv + PixelShuffle steps) | nearest (ESRGAN's nearest ×2 + conv + "
        "LeakyReLU steps) | nearest_noact (claritycore 0.0.5's nearest + conv steps, one "
        "LeakyReLU after the last and ×3 in one step, kept so its files compute what they did)",
    )
    x2_unshuffle: bool = option(
        True,
        help="nearest ×2 only: true is Real-ESRGAN's x2 (2×2 pixels folded into channels, then "
        "×4), false ESRGAN's single ×2 step on the image itself",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            not (self.upsampler == "nearest" and self.scale == 3),
            "upsampler='nearest' has no ×3 step; use upsampler='pixelshuffle'",
        )
        require(
            not (self.upsampler == "nearest_noact" and self.scale == 2),
            "upsampler='nearest_noact' has no ×2 (claritycore 0.0.5's ×2 did not upscale); "
            "use upsampler='nearest' or 'pixelshuffle'",
        )
        require(
            self.x2_unshuffle or (self.upsampler, self.scale) == ("nearest", 2),
            "x2_unshuffle=False applies only to upsampler='nearest' at scale=2; "
            "leave it True for other configs",
        )
        for name in ("num_feat", "num_block", "num_grow_ch"):
            value = getattr(self, name)
            require(value >= 1, f"{name} must be a positive integer, got {value!r}")

    def parameter_count(self) -> int:
        feat, grow = self.num_feat, self.num_grow_ch
        dense_block = sum(_conv3x3(feat + k * grow, grow) for k in range(4))
        dense_block += _conv3x3(feat + 4 * grow, feat)
        # Real-ESRGAN's nearest ×2 pixel-unshuffles the input 2×2 into channels, then goes ×4.
        unshuffle = (
            2 if (self.upsampler, self.scale, self.x2_unshuffle) == ("nearest", 2, True) else 1
        )
        count = _conv3x3(self.in_channels * unshuffle**2, feat)
        count += self.num_block * 3 * dense_block + _conv3x3(feat, feat)  # body + conv_body
        if self.upsampler == "pixelshuffle":
            count += sum(_conv3x3(feat, feat * f * f) for f in pixel_shuffle_steps(self.scale))
        else:
            count += len(pixel_shuffle_steps(self.scale * unshuffle)) * _conv3x3(feat, feat)
        return count + _conv3x3(feat, feat) + _conv3x3(feat, self.out_channels)
