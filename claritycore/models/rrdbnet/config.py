"""RRDBNet's architecture config (its presets are rows of the table in claritycore/presets.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from claritycore.models.auto import register_config
from claritycore.models.base import BaseConfig
from claritycore.models.rrdbnet.architecture import pixel_shuffle_steps
from claritycore.schema import require

Upsampler = Literal["pixelshuffle", "nearest"]


def _conv3x3(inputs: int, outputs: int) -> int:
    return 9 * inputs * outputs + outputs


@register_config("rrdbnet")
@dataclass(frozen=True)
class RRDBNetConfig(BaseConfig):
    """RRDBNet architecture. Defaults are ESRGAN's full model (~16.7M parameters)."""

    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    upsampler: Upsampler = "pixelshuffle"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            not (self.upsampler == "nearest" and self.scale == 3),
            "upsampler='nearest' has no ×3 step; use upsampler='pixelshuffle'",
        )
        for name in ("num_feat", "num_block", "num_grow_ch"):
            value = getattr(self, name)
            require(value >= 1, f"{name} must be a positive integer, got {value!r}")

    def parameter_count(self) -> int:
        feat, grow = self.num_feat, self.num_grow_ch
        dense_block = sum(_conv3x3(feat + k * grow, grow) for k in range(4))
        dense_block += _conv3x3(feat + 4 * grow, feat)
        # Real-ESRGAN's nearest ×2 pixel-unshuffles the input 2×2 into channels, then goes ×4.
        unshuffle = 2 if (self.upsampler == "nearest" and self.scale == 2) else 1
        count = _conv3x3(self.in_channels * unshuffle**2, feat)
        count += self.num_block * 3 * dense_block + _conv3x3(feat, feat)  # body + conv_body
        if self.upsampler == "pixelshuffle":
            count += sum(_conv3x3(feat, feat * f * f) for f in pixel_shuffle_steps(self.scale))
        else:
            count += len(pixel_shuffle_steps(self.scale * unshuffle)) * _conv3x3(feat, feat)
        return count + _conv3x3(feat, feat) + _conv3x3(feat, self.out_channels)
