"""The experiment: a preset with its overrides applied, the one config train and evaluate read.

`resolve` builds it from params.yaml's `preset` + `overrides` (or the CLI's flags); the resolve
stage writes it with its hash to build/config.yaml, and `read_resolved` reads it back.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from claritycore.config import TrainingConfig
from claritycore.errors import ConfigError
from claritycore.models import AutoConfig, BaseConfig
from claritycore.presets import get_preset
from claritycore.schema import as_dict, field_names, parse

RESOLVED_HEADER = (
    "# Written by `python -m stages.resolve` from params.yaml; edit params.yaml instead.\n"
)
# The hash stands in a comment: dvc.yaml makes this file params, and `dvc exp show` would give
# a key its own column of 16 hex digits that says nothing the other columns do not.
HASH_COMMENT = re.compile(r"^# config_hash: ([0-9a-f]+)$", re.M)


@dataclass(frozen=True)
class ExperimentConfig:
    """What one run trains: the preset's name, the model config and the training recipe."""

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
            training=parse(TrainingConfig, values["training"], "training"),
        )

    def model_changes(self) -> dict[str, Any]:
        """The model fields that differ from the preset's model (empty for the preset's own)."""
        preset = AutoConfig.from_dict(get_preset(self.preset).model).to_dict()
        return {k: v for k, v in self.model.to_dict().items() if preset.get(k) != v}

    @property
    def label(self) -> str:
        """What the run trains, in words: the preset's name, or for another architecture the
        model and its differences ("rrdbnet ×2 num_feat=48 (rrdbnetx2's recipe)")."""
        changes = self.model_changes()
        if not changes:
            return self.preset
        fields = [f"{k}={v}" for k, v in changes.items() if k != "scale"]
        model = [self.model.model_type, f"×{self.model.scale}", *fields]
        return f"{' '.join(model)} ({self.preset}'s recipe)"

    def config_hash(self) -> str:
        """Short stable hash of the whole config: the one identity of what a run trains."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def override_keys(preset_name: str) -> list[str]:
    """Every key an override may set for the preset: training fields, then model fields."""
    model = AutoConfig.from_dict(get_preset(preset_name).model)
    training = field_names(TrainingConfig)
    return training + [k for k in field_names(type(model)) if k not in training]


def resolve(
    preset_name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    scales: tuple[int, ...] | None = None,
) -> ExperimentConfig:
    """The preset `preset_name` with every non-null override applied and validated.

    With `scales` (the pipeline's `data.scales`), a scale that is not extracted is refused here,
    before extract and train would fail on a missing store.
    """
    preset = get_preset(preset_name)
    valid = override_keys(preset.name)
    training = set(field_names(TrainingConfig))
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in changes:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown override {key!r}.{hint} Valid keys: {', '.join(valid)}")
    model_changes = {k: v for k, v in changes.items() if k not in training}
    training_changes = {k: v for k, v in changes.items() if k in training}
    experiment = ExperimentConfig(
        preset=preset.name,
        model=AutoConfig.from_dict({**preset.model, **model_changes}),
        training=parse(
            TrainingConfig, {**as_dict(preset.training), **training_changes}, "overrides"
        ),
    )
    scale = experiment.model.scale
    if scales is not None and scale not in scales:
        raise ConfigError(
            f"{preset.name} trains at scale {scale}, but data.scales is {list(scales)}, so no "
            f"store is extracted for it; add {scale} to data.scales or choose a preset with "
            "one of those scales"
        )
    return experiment


def write_resolved(experiment: ExperimentConfig, path: Path) -> None:
    """build/config.yaml: the experiment, with its hash in a comment (train refuses a stale
    file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"{RESOLVED_HEADER}# config_hash: {experiment.config_hash()}\n"
    path.write_text(header + yaml.safe_dump(experiment.to_dict(), sort_keys=False))


def read_resolved(path: Path) -> ExperimentConfig:
    """The experiment `write_resolved` wrote, or a ConfigError saying how to refresh it."""
    if not path.is_file():
        raise ConfigError(
            f"{path} not found; run `dvc repro resolve` (or python -m stages.resolve)"
        )
    text = path.read_text()
    values = yaml.safe_load(text) or {}
    try:
        experiment = ExperimentConfig.from_dict(
            {k: values[k] for k in ("preset", "model", "training") if k in values}
        )
    except ConfigError as error:
        raise ConfigError(f"{path} is stale or edited ({error}); run `dvc repro resolve`") from None
    written = HASH_COMMENT.search(text)
    if written is None or written.group(1) != experiment.config_hash():
        raise ConfigError(f"{path} is stale (its config_hash differs); run `dvc repro resolve`")
    return experiment
