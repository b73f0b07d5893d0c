"""Our weights files: safe reading and atomic writing, and the `model.pt` format.

Training, inference and evaluation go through here. Loading uses `weights_only=True`: no
pickled code runs. Files from other tools (BasicSR, ESRGAN, claritycore 0.0.5, safetensors)
are read by `claritycore.interop`, exports written by `claritycore.export`.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from claritycore.errors import ConfigError, UserError
from claritycore.models import AutoConfig, AutoModel, BaseConfig

FORMAT = "claritycore"
# 1: scale, model_type and preset also stood at the top level, the model config also inside
# `experiment`. 2: each fact once (config, preset, training). Both are read.
FORMAT_VERSION = 2
_ZIP_MAGIC = b"PK\x03\x04"
# torch.save's legacy (pre-1.6) format starts with a pickle protocol-2 header.
_LEGACY_PICKLE_MAGIC = b"\x80\x02"


class WeightsError(UserError, ValueError):
    """A weights file that cannot be used; the message names the file, the problem and a fix."""


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and `torch.compile` wrappers, so saved keys have no prefixes."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` for a temporary file in `path`'s folder, fsync it and rename it to
    `path`: never a torn file. The file gets the permissions a plain open() would give
    (0644 under umask 022; mkstemp alone makes 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_torch_save(payload: Any, path: Path) -> None:
    """`torch.save` through `write_atomic`."""
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def sniff(path: Path) -> str:
    """What a weights file is by its first bytes: "zip" (torch.save), "legacy" (old
    torch.save), "safetensors" or "unknown"; a missing or empty file is a WeightsError."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder without a model.pt" if path.is_dir() else "does not exist"
        raise WeightsError(f"weights file {path} {what}")
    with open(path, "rb") as f:
        head = f.read(9)
    if not head:
        raise WeightsError(f"weights file {path} is empty (0 bytes); copy or export it again")
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head.startswith(_LEGACY_PICKLE_MAGIC):
        return "legacy"
    # safetensors: an 8-byte little-endian header length, then the JSON header.
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def read_torch_file(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load` with `weights_only=True`. A file that needs pickled code, a truncated or
    corrupt one and one that is no torch file at all each raise a one-line WeightsError."""
    path = Path(path)
    kind = sniff(path)
    if kind == "safetensors":
        raise WeightsError(f"{path} is a .safetensors file; read it with claritycore.interop")
    if kind == "unknown":
        raise WeightsError(
            f"{path} is not a PyTorch file (no torch.save header); give a ClarityCore model.pt, "
            "a BasicSR/ESRGAN .pth or a .safetensors file"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if found is None:
            raise WeightsError(
                f"{path} is a corrupt torch.save file ({_first_line(error)}); "
                "copy or export it again"
            ) from None
        # torch's message is long advice to disable the check; keep only what was found.
        raise WeightsError(
            f"{path} contains pickled Python objects ({found.group(1)}), and ClarityCore "
            "never executes pickles. Re-save it as a plain state dict "
            "(torch.save(model.state_dict(), ...)) or as .safetensors."
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        problem = "truncated or corrupt zip archive" if kind == "zip" else "truncated file"
        raise WeightsError(
            f"{path} is a {problem} ({_first_line(error)}); copy or export it again"
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def build_model(
    config: BaseConfig | dict[str, Any], state: dict[str, torch.Tensor], path: Path
) -> nn.Module:
    """The model for `config` with `state` loaded, in eval mode; a config we cannot build or
    tensors that do not fit it are a one-line WeightsError naming `path`."""
    try:
        if isinstance(config, dict):
            config = AutoConfig.from_dict(config)
        model = AutoModel.from_config(config)
    except ConfigError as error:
        raise WeightsError(f"{path} describes a model ClarityCore cannot build: {error}") from None
    own = model.state_dict()
    problems = [
        f"{label} {', '.join(keys[:4])}{' …' if len(keys) > 4 else ''}"
        for label, keys in (
            ("missing", [k for k in own if k not in state]),
            ("unexpected", [k for k in state if k not in own]),
            ("wrong shape", [k for k in own if k in state and state[k].shape != own[k].shape]),
        )
        if keys
    ]
    if problems:
        raise WeightsError(
            f"{path}: the tensors do not fit {config} ({'; '.join(problems)}); "
            "the file is damaged or from a different architecture"
        )
    model.load_state_dict(state)
    return model.eval()


def save_model(
    path: Path,
    model: nn.Module,
    *,
    experiment: dict[str, Any] | None = None,
    step: int = 0,
    ema: bool = False,
    precision: str | None = None,
    vgg19_sha256: str | None = None,
    pretrained: dict[str, Any] | None = None,
) -> None:
    """Save a `model.pt`: the model config, the preset and training config of `experiment`
    (whose model config must be the model's; with its degradation and adversarial sections
    where it has them), the step, whether the weights are EMA, the precision training computed
    in (bf16, fp16 or fp32: what `amp` resolved to on the device it ran on), the sha256 of the
    VGG19 file a perceptual loss used, the files the run started from (`pretrained`: per role
    its name, file, sha256 and the tensors that started fresh), and the state dict. Each fact
    is stored once."""
    model = unwrap(model)
    config = cast(BaseConfig, model.config).to_dict()  # a built model keeps its config
    experiment = experiment or {}
    if experiment.get("model", config) != config:
        raise ValueError(f"experiment model config {experiment['model']} is not {config}")
    atomic_torch_save(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": config,
            "preset": experiment.get("preset"),
            "training": experiment.get("training"),
            "step": step,
            "ema": ema,
            "precision": precision,
            # Only where they apply: an L1 model on bicubic LR has neither section.
            **{k: experiment[k] for k in ("degradation", "adversarial") if k in experiment},
            **({"vgg19_sha256": vgg19_sha256} if vgg19_sha256 else {}),
            **({"pretrained": pretrained} if pretrained else {}),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
        Path(path),
    )


def is_model_pt(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def model_metadata(payload: dict[str, Any]) -> dict[str, Any]:
    """What a `model.pt` says besides its tensors, the same for every format version:
    format, model_type, config, scale, preset, experiment (or None), step, ema, precision
    (None in files written before it was recorded)."""
    config = payload["config"]
    preset = payload.get("preset")
    if payload.get("format_version", 1) == 1:
        experiment = payload.get("experiment")
    else:
        training = payload.get("training")
        experiment = (
            None if training is None else {"preset": preset, "model": config, "training": training}
        )
        for section in ("degradation", "adversarial"):
            if experiment is not None and payload.get(section) is not None:
                experiment[section] = payload[section]
    return {
        "format": FORMAT,
        "model_type": config["model_type"],
        "config": config,
        "scale": config["scale"],
        "preset": preset,
        "experiment": experiment,
        "step": payload.get("step"),
        "ema": bool(payload.get("ema")),
        "precision": payload.get("precision"),
        "vgg19_sha256": payload.get("vgg19_sha256"),
        "pretrained": payload.get("pretrained"),
    }


def model_from_payload(payload: dict[str, Any], path: Path) -> tuple[nn.Module, dict]:
    """The model (eval mode) and metadata of a loaded `model.pt` payload."""
    if payload.get("format_version", 1) > FORMAT_VERSION:
        raise WeightsError(
            f"{path} is model.pt format version {payload['format_version']}, newer than this "
            f"ClarityCore reads ({FORMAT_VERSION}); upgrade claritycore"
        )
    model = build_model(payload["config"], payload["state_dict"], path)
    return model, model_metadata(payload)


def load_model(path: Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a `model.pt` written by `save_model` (any format version): the model in eval mode
    and the file's metadata."""
    payload = read_torch_file(path, map_location)
    if not is_model_pt(payload):
        raise WeightsError(f"{path} is not a ClarityCore model.pt (no 'format: {FORMAT}' entry)")
    return model_from_payload(payload, path)
