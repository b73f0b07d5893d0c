"""RRDBNet's config and its training presets (the table in docs: claritycore-models.md)."""

from __future__ import annotations

from dataclasses import dataclass

from claritycore.config import Preset, TrainingConfig
from claritycore.models.auto import register_config
from claritycore.models.base import BaseConfig, ConfigError

UPSAMPLERS = ("pixelshuffle", "nearest")


@register_config("rrdbnet")
@dataclass(frozen=True)
class RRDBNetConfig(BaseConfig):
    """RRDBNet architecture. Defaults are ESRGAN's full model (~16.7M parameters)."""

    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    upsampler: str = "pixelshuffle"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.upsampler not in UPSAMPLERS:
            raise ConfigError(
                f"upsampler={self.upsampler!r} is unknown; choose one of {', '.join(UPSAMPLERS)}"
            )
        if self.upsampler == "nearest" and self.scale == 3:
            raise ConfigError("upsampler='nearest' has no ×3 step; use upsampler='pixelshuffle'")
        for name in ("num_feat", "num_block", "num_grow_ch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")


def _full(scale: int, steps: int, batch_size: int, patch_size: int) -> Preset:
    return Preset(
        name=f"rrdbnetx{scale}",
        description=f"{scale}× super-resolution, full RRDBNet",
        model=RRDBNetConfig(scale=scale, num_feat=64, num_block=23, num_grow_ch=32),
        training=TrainingConfig(steps=steps, batch_size=batch_size, patch_size=patch_size),
    )


def _lite(scale: int, steps: int, batch_size: int, patch_size: int) -> Preset:
    # Growth 16 gives the documented ~1M parameters; growth 32 would give ~2.6M.
    return Preset(
        name=f"rrdbnet-litex{scale}",
        description=f"{scale}× super-resolution, lite RRDBNet",
        model=RRDBNetConfig(scale=scale, num_feat=32, num_block=6, num_grow_ch=16),
        training=TrainingConfig(steps=steps, batch_size=batch_size, patch_size=patch_size),
    )


RRDBNET_PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        _full(2, steps=400_000, batch_size=16, patch_size=128),
        _full(3, steps=400_000, batch_size=16, patch_size=192),
        _full(4, steps=400_000, batch_size=16, patch_size=256),
        _full(8, steps=500_000, batch_size=8, patch_size=512),
        _lite(2, steps=200_000, batch_size=32, patch_size=128),
        _lite(3, steps=200_000, batch_size=32, patch_size=192),
        _lite(4, steps=200_000, batch_size=32, patch_size=256),
        _lite(8, steps=250_000, batch_size=16, patch_size=512),
    )
}
