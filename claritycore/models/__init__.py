"""Model registry and the models ClarityCore ships. Each model package is imported by name."""

from claritycore.models.auto import (
    AutoConfig,
    AutoModel,
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
    "register_config",
    "register_model",
    "registered_models",
]
