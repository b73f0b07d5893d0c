"""The experiment: a preset with its overrides applied, the one config train and evaluate read.

`resolve` builds it from params.yaml's `preset` + `overrides` (or the CLI's flags); the resolve
stage writes it with its hash to build/config.yaml, and `read_resolved` reads it back.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from claritycore.config import AdversarialConfig, DegradationConfig, TrainingConfig
from claritycore.errors import ConfigError
from claritycore.models import AutoConfig, BaseConfig
from claritycore.models.discriminators import UNET_MULTIPLE
from claritycore.presets import get_preset
from claritycore.schema import as_dict, field_names, parse

RESOLVED_HEADER = (
    "# Written by `python -m stages.resolve` from params.yaml; edit params.yaml instead.\n"
)
# The hash stands in a comment: dvc.yaml makes this file params, and `dvc exp show` would give
# a key its own column of 16 hex digits that says nothing the other columns do not.
HASH_COMMENT = re.compile(r"^# config_hash: ([0-9a-f]+)$", re.M)
# The keys of a resolved config: `to_dict` writes the last two only where they apply.
SECTIONS = ("preset", "model", "training", "degradation", "adversarial")


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
        patch, scale = self.training.patch_size, self.model.scale
        adversarial = self.adversarial
        if adversarial is not None and adversarial.discriminator == "vgg128" and patch != 128:
            raise ConfigError(
                f"discriminator vgg128 (ESRGAN's) takes 128² HR patches, not patch_size={patch}; "
                "set patch_size 128 or adversarial.discriminator unet_sn (any multiple of "
                f"{UNET_MULTIPLE})"
            )
        if patch % scale:
            raise ConfigError(
                f"patch_size={patch} is not a multiple of scale={scale}, so the LR patch "
                f"would not align; use a multiple of {scale}, e.g. {scale * max(1, patch // scale)}"
            )
        if adversarial is None:
            return
        if adversarial.discriminator == "unet_sn" and patch % UNET_MULTIPLE:
            # Its three stride-2 convolutions must halve the side exactly for the skip sums.
            side = math.lcm(UNET_MULTIPLE, scale)
            raise ConfigError(
                f"discriminator unet_sn takes patch sides that are multiples of {UNET_MULTIPLE}, "
                f"not patch_size={patch}; use e.g. {side * max(1, round(patch / side))}"
            )
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
        if self.degradation.type != "bicubic":
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
    model = AutoConfig.from_dict(get_preset(preset_name).model)
    training = field_names(TrainingConfig)
    return training + [k for k in field_names(type(model)) if k not in training]


def _replace(section: Any, changes: Mapping[str, Any] | None, cls: type, where: str) -> Any:
    """The dataclass `section` with the non-null `changes` applied, validated as `where`."""
    values = {k: v for k, v in (changes or {}).items() if v is not None}
    if not values:
        return section
    return parse(cls, {**as_dict(section), **values}, where)


def resolve(
    preset_name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    degradation: Mapping[str, Any] | None = None,
    adversarial: Mapping[str, Any] | None = None,
    scales: tuple[int, ...] | None = None,
) -> ExperimentConfig:
    """The preset `preset_name` with every non-null override applied and validated.

    `overrides` replace training and model fields, `degradation` and `adversarial` fields of
    those sections (a GAN preset's only). With `scales` (the pipeline's `data.scales`), a scale
    that is not extracted is refused here, before extract and train would fail on a missing
    store.
    """
    preset = get_preset(preset_name)
    adversarial_changes = {k: v for k, v in (adversarial or {}).items() if v is not None}
    if adversarial_changes and preset.adversarial is None:
        raise ConfigError(
            f"{preset.name} has no adversarial stage, so adversarial."
            f"{next(iter(adversarial_changes))} cannot apply; choose a GAN preset (esrgan*, "
            "realesrgan*) or set the adversarial values to null"
        )
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
    degradation = _replace(preset.degradation, degradation, DegradationConfig, "degradation")
    if degradation.type == "bicubic":
        # Its other fields do not act: one bicubic config, whatever they say.
        degradation = DegradationConfig()
    experiment = ExperimentConfig(
        preset=preset.name,
        model=AutoConfig.from_dict({**preset.model, **model_changes}),
        training=parse(
            TrainingConfig, {**as_dict(preset.training), **training_changes}, "overrides"
        ),
        degradation=degradation,
        adversarial=_replace(preset.adversarial, adversarial_changes, AdversarialConfig,
                             "adversarial"),
    )  # fmt: skip
    scale = experiment.model.scale
    if scales is not None and scale not in scales:
        raise ConfigError(
            f"{preset.name} trains at scale {scale}, but data.scales is {list(scales)}, so no "
            f"store is extracted for it; add {scale} to data.scales or choose a preset with "
            "one of those scales"
        )
    return experiment


def resolve_base(
    experiment: ExperimentConfig,
    overrides: Mapping[str, Any] | None = None,
    *,
    degradation: Mapping[str, Any] | None = None,
) -> ExperimentConfig:
    """The PSNR stage a GAN experiment starts from: its `adversarial.base` preset with the
    experiment's model and `overrides` (training fields of that stage) applied, and the same
    degradation changes. An experiment without a GAN stage is its own base.

    The result is what an experiment of the base preset with these values resolves to, so DVC
    finds that stage's model in its run cache."""
    if experiment.adversarial is None:
        changed = [k for k, v in (overrides or {}).items() if v is not None]
        if changed:
            raise ConfigError(
                f"base_overrides.{changed[0]} is set, but {experiment.preset} has no PSNR stage "
                "before it (only GAN presets do); use overrides instead"
            )
        return experiment
    model_keys = set(experiment.model.to_dict()) - set(field_names(TrainingConfig))
    training = set(field_names(TrainingConfig))
    for key, value in (overrides or {}).items():
        if value is not None and key not in training:
            raise ConfigError(
                f"base_overrides.{key}: only training fields apply to the PSNR stage (the model "
                f"is the GAN preset's); valid keys: {', '.join(sorted(training))}"
            )
    preset_model = get_preset(experiment.adversarial.base).model
    model = experiment.model.to_dict()
    changes = {k: model[k] for k in model_keys if preset_model.get(k) != model[k]}
    return resolve(
        experiment.adversarial.base,
        {**changes, **(overrides or {})},
        degradation=degradation,
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
