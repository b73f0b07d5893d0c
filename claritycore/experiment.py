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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from claritycore.config import AdversarialConfig, DegradationConfig, TrainingConfig
from claritycore.degradation import crop_error
from claritycore.errors import ConfigError
from claritycore.models import AutoConfig, BaseConfig
from claritycore.models.discriminators import DISCRIMINATORS
from claritycore.presets import Preset, get_preset
from claritycore.schema import as_dict, field_names, parse

RESOLVED_HEADER = (
    "# Written by `python -m stages.resolve` from params.yaml; edit params.yaml instead.\n"
)
# The hash stands in a comment: dvc.yaml makes this file params, and `dvc exp show` would give
# a key its own column of 16 hex digits that says nothing the other columns do not.
HASH_COMMENT = re.compile(r"^# config_hash: ([0-9a-f]+)$", re.M)
# The keys of a resolved config: `to_dict` writes the last two only where they apply.
SECTIONS = ("preset", "model", "training", "degradation", "adversarial")
T = TypeVar("T")


@dataclass(frozen=True)
class ExperimentConfig:
    """What one run trains: the preset's name, the model config, the training recipe, how its
    LR inputs are made and, for a GAN stage, its losses and discriminator."""

    preset: str
    model: BaseConfig
    training: TrainingConfig
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    adversarial: AdversarialConfig | None = None

    def __post_init__(self) -> None:
        patch, scale, adversarial = self.training.patch_size, self.model.scale, self.adversarial
        if adversarial is not None:
            error = DISCRIMINATORS[adversarial.discriminator].patch_error(patch, scale)
            if error is not None:
                raise ConfigError(error)
        if patch % scale:
            raise ConfigError(
                f"patch_size={patch} is not a multiple of scale={scale}, so the LR patch "
                f"would not align; use a multiple of {scale}, e.g. {scale * max(1, patch // scale)}"
            )
        if not self.degradation.reads_store_lr:
            error = crop_error(self.degradation, scale, patch)
            if error is not None:
                raise ConfigError(error)
        if adversarial is None:
            return
        if adversarial.d_init_steps >= self.training.steps:
            raise ConfigError(
                f"adversarial.d_init_steps is {adversarial.d_init_steps}, but the run has only "
                f"{self.training.steps} steps, so the generator would never train; use fewer"
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as data. Bicubic degradation and no GAN stage write no section, so an
        L1 preset's config (and its hash, run key and `dvc exp show` columns) is as before."""
        values = {
            "preset": self.preset,
            "model": self.model.to_dict(),
            "training": self.training.to_dict(),
        }
        if not self.degradation.reads_store_lr:
            values["degradation"] = self.degradation.to_dict()
        if self.adversarial is not None:
            values["adversarial"] = self.adversarial.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ExperimentConfig:
        missing = {"preset", "model", "training"} - set(values)
        if missing:
            raise ConfigError(f"experiment config lacks {', '.join(sorted(missing))}")
        adversarial = values.get("adversarial")
        return cls(
            preset=values["preset"],
            model=AutoConfig.from_dict(values["model"]),
            training=parse(TrainingConfig, values["training"], "training"),
            degradation=parse(DegradationConfig, values.get("degradation"), "degradation"),
            adversarial=None
            if adversarial is None
            else parse(AdversarialConfig, adversarial, "adversarial"),
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
    return _override_keys(get_preset(preset_name))


def _override_keys(preset: Preset) -> list[str]:
    training = field_names(TrainingConfig)
    model = AutoConfig.from_dict(preset.model)
    return training + [k for k in field_names(type(model)) if k not in training]


def _set(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keys a params section or flag set: null means "keep the preset's value"."""
    return {k: v for k, v in (values or {}).items() if v is not None}


def _apply(section: T, changes: Mapping[str, Any], where: str) -> T:
    """The config dataclass `section` with `changes` applied, validated as `where` (a model
    config goes through its own parser, which dispatches on `model_type`)."""
    if not changes:
        return section
    if isinstance(section, BaseConfig):
        # `changes` are fields only: from_dict dispatches on section's model_type, to its class.
        return cast(T, AutoConfig.from_dict({**section.to_dict(), **changes}))
    return parse(type(section), {**as_dict(section), **changes}, where)


def resolve(
    preset_name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    degradation: Mapping[str, Any] | None = None,
    adversarial: Mapping[str, Any] | None = None,
) -> ExperimentConfig:
    """The preset `preset_name` with every non-null override applied and validated.

    `overrides` replace training and model fields, `degradation` and `adversarial` fields of
    those sections (a GAN preset's only).
    """
    preset = get_preset(preset_name)
    changes, adversarial_changes = _set(overrides), _set(adversarial)
    if adversarial_changes and preset.adversarial is None:
        raise ConfigError(
            f"{preset.name} has no adversarial stage, so adversarial."
            f"{next(iter(adversarial_changes))} cannot apply; choose a GAN preset (esrgan*, "
            "realesrgan*) or set the adversarial values to null"
        )
    valid = _override_keys(preset)
    for key in changes:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown override {key!r}.{hint} Valid keys: {', '.join(valid)}")
    training_keys = set(field_names(TrainingConfig))
    training_changes = {k: v for k, v in changes.items() if k in training_keys}
    model_changes = {k: v for k, v in changes.items() if k not in training_keys}
    chosen_degradation = _apply(preset.degradation, _set(degradation), "degradation")
    if chosen_degradation.reads_store_lr:
        # Its other fields do not act: one such config, whatever they say.
        chosen_degradation = DegradationConfig(type=chosen_degradation.type)
    experiment = ExperimentConfig(
        preset=preset.name,
        model=_apply(AutoConfig.from_dict(preset.model), model_changes, "overrides"),
        training=_apply(preset.training, training_changes, "overrides"),
        degradation=chosen_degradation,
        adversarial=None
        if preset.adversarial is None
        else _apply(preset.adversarial, adversarial_changes, "adversarial"),
    )
    return experiment


def lr_scales(experiment: ExperimentConfig, extra: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The scales whose LR the pipeline packs: the experiment's own when it reads the store's
    LR (not when it degrades the HR on the fly), and the `extra` ones `data.scales` asks for."""
    own = (experiment.model.scale,) if experiment.degradation.reads_store_lr else ()
    return tuple(sorted({*own, *extra}))


def pretrained_generator(experiment: ExperimentConfig, pretrained: str | None) -> str | None:
    """The generator the experiment starts from: `train.pretrained` if set, else its preset's
    (a fine-tuning preset names one), else None (random weights)."""
    return pretrained or get_preset(experiment.preset).pretrained


def psnr_stage(
    experiment: ExperimentConfig,
    overrides: Mapping[str, Any] | None = None,
    *,
    pretrained: str | None = None,
) -> ExperimentConfig:
    """The PSNR stage a GAN experiment trains first, derived from it: the preset its
    `adversarial.base` names, with the experiment's model and degradation, and `overrides`
    (params.yaml's `psnr_overrides`: that stage's training fields). An experiment without a
    GAN stage is its own PSNR stage, and so is one started from a `pretrained` generator (the
    file takes the PSNR model's place, as Real-ESRGAN's GAN stage starts from RealESRNet).

    A GAN preset shares its model and degradation with its PSNR preset (tested), so the result
    is what an experiment of that preset with these values resolves to, and DVC finds its
    model in the run cache."""
    changes = _set(overrides)
    if experiment.adversarial is None or pretrained is not None:
        if changes:
            why = (
                f"starts from {pretrained}, which takes the PSNR stage's place"
                if experiment.adversarial is not None
                else "has no PSNR stage before it (only GAN presets do)"
            )
            raise ConfigError(
                f"psnr_overrides.{next(iter(changes))} is set, but {experiment.preset} {why}; "
                "use overrides instead"
            )
        return experiment
    training_keys = field_names(TrainingConfig)
    for key in changes:
        if key not in training_keys:
            raise ConfigError(
                f"psnr_overrides.{key}: only training fields apply to the PSNR stage (the model "
                f"is the GAN preset's); valid keys: {', '.join(sorted(training_keys))}"
            )
    preset = get_preset(experiment.adversarial.base)
    return ExperimentConfig(
        preset=preset.name,
        model=experiment.model,
        training=_apply(preset.training, changes, "psnr_overrides"),
        degradation=experiment.degradation,
    )


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
        experiment = ExperimentConfig.from_dict({k: values[k] for k in SECTIONS if k in values})
    except ConfigError as error:
        raise ConfigError(f"{path} is stale or edited ({error}); run `dvc repro resolve`") from None
    written = HASH_COMMENT.search(text)
    if written is None or written.group(1) != experiment.config_hash():
        raise ConfigError(f"{path} is stale (its config_hash differs); run `dvc repro resolve`")
    return experiment
