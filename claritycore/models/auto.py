"""The model registry: one dict from model name to its config and model classes.

A model registers its config with `@register_config("name")` and its module with
`@register_model("name")`; `claritycore/models/__init__.py` imports each model package
explicitly, so every name can be traced to one import.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from claritycore.errors import ConfigError
from claritycore.models.base import BaseConfig

_CONFIGS: dict[str, type[BaseConfig]] = {}
_MODELS: dict[str, type[nn.Module]] = {}

T = TypeVar("T")


def _register(table: dict[str, Any], kind: str, name: str) -> Callable[[T], T]:
    def decorator(obj: T) -> T:
        if name in table:
            raise ValueError(f"{kind} {name!r} is already registered by {table[name].__module__}")
        table[name] = obj
        return obj

    return decorator


def register_config(name: str) -> Callable[[type[BaseConfig]], type[BaseConfig]]:
    """Class decorator: make a config class available as `AutoConfig.from_name(name)`."""

    def decorator(cls: type[BaseConfig]) -> type[BaseConfig]:
        cls.model_type = name
        return _register(_CONFIGS, "config", name)(cls)

    return decorator


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: the nn.Module that `AutoModel.from_config` builds for `name` configs."""
    return _register(_MODELS, "model", name)


def registered_models() -> list[str]:
    return sorted(_CONFIGS)


def config_classes() -> list[type[BaseConfig]]:
    """Each registered model's config class, by model name (their fields are the model keys)."""
    return [_CONFIGS[name] for name in registered_models()]


def _lookup(table: dict[str, T], name: str) -> T:
    if name not in table:
        close = difflib.get_close_matches(name, table, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown model {name!r}.{hint} Registered models: {', '.join(sorted(table))}"
        )
    return table[name]


class AutoConfig:
    """Builds a registered model's config by name."""

    @staticmethod
    def from_name(name: str, **fields: Any) -> BaseConfig:
        """`AutoConfig.from_name("rrdbnet", scale=4, num_feat=32)`: defaults plus `fields`."""
        cls = _lookup(_CONFIGS, name.lower())
        return cls.from_dict(fields)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> BaseConfig:
        """Rebuild a config stored with `config.to_dict()`."""
        if "model_type" not in values:
            raise ConfigError("config dict has no 'model_type'; it was not written by to_dict()")
        return _lookup(_CONFIGS, values["model_type"]).from_dict(values)


class AutoModel:
    """Builds the registered model for a config."""

    @staticmethod
    def from_config(config: BaseConfig) -> nn.Module:
        return _lookup(_MODELS, config.model_type)(config)
