"""Every model's presets in one table, and the resolved experiment config built from one.

The CLI, the `resolve` stage and the tests all read presets from here.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from claritycore.config import ConfigError, Preset, TrainingConfig
from claritycore.models import AutoConfig, BaseConfig
from claritycore.models.rrdbnet import RRDBNET_PRESETS

PRESETS: dict[str, Preset] = {**RRDBNET_PRESETS}


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


@dataclass(frozen=True)
class ExperimentConfig:
    """A preset with its overrides applied: the one config that training and evaluation read."""

    preset: str
    model: BaseConfig
    training: TrainingConfig

    def __post_init__(self) -> None:
        patch, scale = self.training.patch_size, self.model.scale
        if patch % scale:
            raise ConfigError(
                f"patch_size={patch} is not a multiple of scale={scale}, so the LR patch "
                f"would not align; use a multiple of {scale}, e.g. {scale * max(1, patch // scale)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "model": self.model.to_dict(),
            "training": self.training.to_dict(),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ExperimentConfig:
        missing = {"preset", "model", "training"} - set(values)
        if missing:
            raise ConfigError(f"experiment config lacks {', '.join(sorted(missing))}")
        return cls(
            preset=values["preset"],
            model=AutoConfig.from_dict(values["model"]),
            training=TrainingConfig.from_dict(values["training"]),
        )

    def config_hash(self) -> str:
        """Short stable hash of the whole config: checkpoints are keyed by it."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def override_keys(preset: Preset) -> list[str]:
    """Every key an override may set for `preset`: training fields, then model fields."""
    training = [f.name for f in dataclasses.fields(TrainingConfig)]
    model = [f.name for f in dataclasses.fields(preset.model)]
    return training + [k for k in model if k not in training]


def _check_type(key: str, current: Any, value: Any) -> Any:
    """`value` converted to the type of the preset's `current` value, or a ConfigError."""
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float) or current is None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(current, tuple):
        ok = isinstance(value, (list, tuple))
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, type(current))
    if not ok:
        kind = "null" if current is None else type(current).__name__
        raise ConfigError(f"override {key}={value!r} has the wrong type; expected {kind}")
    return value


def resolve(preset_name: str, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """The preset `preset_name` with every non-null override applied and validated."""
    preset = get_preset(preset_name)
    valid = override_keys(preset)
    model_changes: dict[str, Any] = {}
    training_changes: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown override {key!r}.{hint} Valid keys: {', '.join(valid)}")
        if hasattr(preset.training, key):
            training_changes[key] = _check_type(key, getattr(preset.training, key), value)
        else:
            model_changes[key] = _check_type(key, getattr(preset.model, key), value)
    return ExperimentConfig(
        preset=preset.name,
        model=preset.model.replace(**model_changes),
        training=dataclasses.replace(preset.training, **training_changes),
    )
