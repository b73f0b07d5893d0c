"""Every model's training presets, as one table of data (`claritycore presets` prints it).

A preset names a model config (its fields, as a mapping with `model_type`) and a training
recipe. This module imports no torch and no model: `experiment.resolve` builds and validates
the model config, and the data stages read the patch sizes from here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from claritycore.config import TrainingConfig
from claritycore.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A named training recipe: a model config's fields and how to train it."""

    name: str
    description: str
    model: dict[str, Any]
    training: TrainingConfig

    @property
    def scale(self) -> int:
        return self.model["scale"]


RRDBNET_FULL = {"model_type": "rrdbnet", "num_feat": 64, "num_block": 23, "num_grow_ch": 32}
# Growth 16 gives the model document's ~1M parameters; growth 32 would give ~2.6M.
RRDBNET_LITE = {"model_type": "rrdbnet", "num_feat": 32, "num_block": 6, "num_grow_ch": 16}

_TABLE = (
    # name, description, model, scale, steps, batch size, HR patch side
    ("rrdbnetx2", "2× super-resolution, full RRDBNet", RRDBNET_FULL, 2, 400_000, 16, 128),
    ("rrdbnetx3", "3× super-resolution, full RRDBNet", RRDBNET_FULL, 3, 400_000, 16, 192),
    ("rrdbnetx4", "4× super-resolution, full RRDBNet", RRDBNET_FULL, 4, 400_000, 16, 256),
    ("rrdbnetx8", "8× super-resolution, full RRDBNet", RRDBNET_FULL, 8, 500_000, 8, 512),
    ("rrdbnet-litex2", "2× super-resolution, lite RRDBNet", RRDBNET_LITE, 2, 200_000, 32, 128),
    ("rrdbnet-litex3", "3× super-resolution, lite RRDBNet", RRDBNET_LITE, 3, 200_000, 32, 192),
    ("rrdbnet-litex4", "4× super-resolution, lite RRDBNet", RRDBNET_LITE, 4, 200_000, 32, 256),
    ("rrdbnet-litex8", "8× super-resolution, lite RRDBNet", RRDBNET_LITE, 8, 250_000, 16, 512),
)

PRESETS: dict[str, Preset] = {
    name: Preset(
        name,
        description,
        {**model, "scale": scale},
        TrainingConfig(steps=steps, batch_size=batch, patch_size=patch),
    )
    for name, description, model, scale, steps, batch, patch in _TABLE
}


def get_preset(name: str) -> Preset:
    """The preset called `name` (case-insensitive); unknown names list the close matches."""
    key = name.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    close = difflib.get_close_matches(key, PRESETS, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown preset {name!r}.{hint} Available presets: {', '.join(PRESETS)} "
        "(`claritycore presets` shows them)"
    )


def find_preset(model_type: str, scale: int, fields: dict[str, Any]) -> Preset:
    """The preset for `model_type` at `scale` whose model matches every given field (e.g. the
    lite one for num_feat=32); the first such preset when none is given."""
    candidates = [
        p for p in PRESETS.values() if p.model["model_type"] == model_type and p.scale == scale
    ]
    if not candidates:
        models = sorted({p.model["model_type"] for p in PRESETS.values()})
        raise ConfigError(
            f"no preset trains {model_type!r} at ×{scale}; presets exist for {', '.join(models)} "
            "(`claritycore presets` lists them)"
        )
    matching = [p for p in candidates if all(p.model.get(k) == v for k, v in fields.items())]
    return (matching or candidates)[0]


def largest_patch(scales: tuple[int, ...]) -> int:
    """The largest HR patch side of any preset at one of `scales`: a `folder` source drops
    images smaller than that, since no such preset could crop them."""
    return max((p.training.patch_size for p in PRESETS.values() if p.scale in scales), default=0)
