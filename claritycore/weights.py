"""Reading and writing trained weights. Loading uses `weights_only=True`: no pickled code runs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from claritycore.models import AutoConfig, AutoModel

FORMAT = "claritycore"
FORMAT_VERSION = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and `torch.compile` wrappers, so saved keys have no prefixes."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def atomic_torch_save(payload: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(
    path: Path,
    model: nn.Module,
    *,
    experiment: dict[str, Any] | None = None,
    step: int = 0,
    ema: bool = False,
) -> None:
    """Save a `model.pt` that records everything inference needs: model type, config, scale,
    the experiment (preset and training config), the step and whether the weights are EMA."""
    model = unwrap(model)
    config = model.config
    atomic_torch_save(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_type": config.model_type,
            "config": config.to_dict(),
            "scale": config.scale,
            "preset": (experiment or {}).get("preset"),
            "experiment": experiment,
            "step": step,
            "ema": ema,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
        Path(path),
    )


def load_model(path: Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a `model.pt` written by `save_model`: the model (eval mode) and the file's metadata."""
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ClarityCore model.pt (no 'format: {FORMAT}' entry)")
    model = AutoModel.from_config(AutoConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    metadata = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, metadata
