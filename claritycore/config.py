"""Training settings and presets: frozen dataclasses, validated once when built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claritycore.models.base import BaseConfig

SCALES = (2, 3, 4, 8)
LOSSES = ("l1", "l2", "charbonnier")
SCHEDULERS = ("cosine", "multistep", "constant")


class ConfigError(ValueError):
    """A config value or name is invalid; the message lists the valid choices."""


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is trained. `patch_size` is the HR patch side; the LR patch is patch/scale."""

    steps: int
    batch_size: int
    patch_size: int
    lr: float = 2e-4
    loss: str = "l1"
    amp: bool = True
    ema: bool = False
    ema_decay: float = 0.999
    # Cosine decays to `min_lr`; multistep multiplies by `lr_gamma` at each milestone,
    # given as fractions of `steps` so a shortened run keeps the same shape.
    scheduler: str = "cosine"
    min_lr: float = 1e-7
    milestones: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95)
    lr_gamma: float = 0.5
    warmup_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "patch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r} is unknown; choose one of {', '.join(LOSSES)}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(
                f"scheduler={self.scheduler!r} is unknown; choose one of {', '.join(SCHEDULERS)}"
            )
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must lie in (0, 1), got {self.ema_decay!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be positive or null, got {self.grad_clip!r}")
        # YAML and JSON give lists; keep tuples so the config stays hashable and comparable.
        object.__setattr__(self, "milestones", tuple(self.milestones))
        object.__setattr__(self, "betas", tuple(self.betas))

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        check_fields(cls, values)
        return cls(**values)


@dataclass(frozen=True)
class Preset:
    """A named training recipe: a model config and how to train it."""

    name: str
    description: str
    model: BaseConfig
    training: TrainingConfig


def check_fields(cls: type, values: dict[str, Any]) -> None:
    """Raise ConfigError for keys of `values` that are not fields of the dataclass `cls`."""
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in valid]
    if unknown:
        raise ConfigError(
            f"unknown field(s) {', '.join(map(repr, unknown))} for {cls.__name__}; "
            f"valid fields: {', '.join(valid)}"
        )
