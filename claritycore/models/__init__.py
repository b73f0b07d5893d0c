"""Model registry and the models ClarityCore ships. Each model package is imported by name."""

from claritycore.models.auto import (
    AutoConfig,
    AutoModel,
    config_classes,
    register_config,
    register_model,
    registered_models,
)
from claritycore.models.base import BaseConfig
from claritycore.models.rrdbnet import RRDBNetConfig, RRDBNetModel

__all__ = [
    "AutoConfig",
    "AutoModel",
    "BaseConfig",
    "RRDBNetConfig",
    "RRDBNetModel",
    "config_classes",
    "register_config",
    "register_model",
    "registered_models",
]
