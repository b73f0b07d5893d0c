"""The base every model config derives from: a frozen dataclass that round-trips through a dict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from claritycore.errors import ConfigError
from claritycore.schema import SCALES, as_dict, check_keys, option, parse, require

ConfigT = TypeVar("ConfigT", bound="BaseConfig")


@dataclass(frozen=True)
class BaseConfig:
    """Fields every super-resolution model has. Subclasses add their architecture's fields."""

    model_type: ClassVar[str] = ""
    scale: int = option(
        4,
        help=f"upscaling factor: {' | '.join(map(str, SCALES))} (the pipeline packs this scale's "
        "LR store, and those data.scales adds)",
    )
    in_channels: int = option(3, help="input image channels (3 for RGB)")
    out_channels: int = option(3, help="output image channels (3 for RGB)")

    def __post_init__(self) -> None:
        require(
            self.scale in SCALES,
            f"scale={self.scale!r} is not supported; choose one of {', '.join(map(str, SCALES))}",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with `model_type`, safe to store in a checkpoint or YAML."""
        return {"model_type": self.model_type, **as_dict(self)}

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
        """Inverse of `to_dict`; unknown keys and wrong types are errors naming the fields."""
        values = dict(values)
        model_type = values.pop("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ConfigError(f"config is for model {model_type!r}, not {cls.model_type!r}")
        return parse(cls, values, cls.model_type)

    def replace(self: ConfigT, **changes: Any) -> ConfigT:
        """A copy with `changes` applied and checked like `from_dict`."""
        check_keys(type(self), changes, self.model_type)
        return type(self).from_dict({**self.to_dict(), **changes})

    def parameter_count(self) -> int:
        """The built model's number of parameters, computed without building it."""
        raise NotImplementedError(f"{type(self).__name__} does not count its parameters")
