"""What the weights-taking commands share: the --model help and loading with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from claritycore.errors import UserError
from claritycore.interop import load_weights

MODEL_HELP = (
    "Weights: a ClarityCore model.pt, a BasicSR/Real-ESRGAN/ESRGAN .pth, a claritycore 0.0.5 "
    "model folder or checkpoint, or .safetensors."
)
PRECISION_HELP = "auto, fp32, bf16 or fp16 (auto: bf16 where the device computes it natively)."


def load_model(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """`load_weights(path)`, with an unreadable file as a UserError (one line, exit status 2)."""
    try:
        return load_weights(path)
    except (ValueError, ImportError) as error:
        raise UserError(str(error)) from None
