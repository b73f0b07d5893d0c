"""The base every model config derives from: a frozen dataclass that round-trips through a dict."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from claritycore.config import SCALES, ConfigError, check_fields

ConfigT = TypeVar("ConfigT", bound="BaseConfig")


@dataclass(frozen=True)
class BaseConfig:
    """Fields every super-resolution model has. Subclasses add their architecture's fields."""

    model_type: ClassVar[str] = ""
    scale: int = 4
    in_channels: int = 3
    out_channels: int = 3

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ConfigError(
                f"scale={self.scale!r} is not supported; "
                f"choose one of {', '.join(map(str, SCALES))}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with `model_type`, safe to store in a checkpoint or YAML."""
        return {"model_type": self.model_type, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
        """Inverse of `to_dict`; unknown keys are an error naming the valid fields."""
        values = dict(values)
        model_type = values.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ConfigError(f"config is for model {model_type!r}, not {cls.model_type!r}")
        check_fields(cls, values)
        return cls(**values)

    def replace(self: ConfigT, **changes: Any) -> ConfigT:
        """A copy with `changes` applied; unknown fields are an error naming the valid fields."""
        check_fields(type(self), changes)
        return dataclasses.replace(self, **changes)
