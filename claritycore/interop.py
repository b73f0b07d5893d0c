"""Weights from the ESRGAN family: every layout people have, loaded with the right config.

Reads our `model.pt`; BasicSR/Real-ESRGAN files (`params_ema` preferred over `params`,
`module.` prefixes dropped); the original ESRGAN names, at ×2 too, and its older
`model.N.sub…` layout; claritycore 0.0.5's `save_pretrained` folders and training
checkpoints (EMA weights preferred); and `.safetensors` of any of these. The architecture is
read off the tensor shapes. Pickled objects are never executed.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from claritycore.errors import MissingExtraError
from claritycore.models import BaseConfig, RRDBNetConfig
from claritycore.weights import (
    WeightsError,
    build_model,
    is_model_pt,
    model_from_payload,
    read_torch_file,
    sniff,
)

SUPPORTED = (
    "ClarityCore model.pt, BasicSR/Real-ESRGAN .pth (params_ema/params), ESRGAN .pth "
    "(RRDB_trunk…, model.N.sub…), claritycore 0.0.5 model.pt/checkpoints, and .safetensors "
    "of any of these"
)
# Wrappers that prefix state-dict keys: DataParallel/DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_ESRGAN_NAMES = {"trunk_conv": "conv_body", "HRconv": "conv_hr", "upconv": "conv_up"}
_OLD_RDB = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_TOP = re.compile(r"model\.(\d+)\.(weight|bias)$")
_OLD_TRUNK = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")


def optional_import(module: str) -> Any:
    """Import an optional dependency (the `export` extra) or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{module.split('.')[0]} is not installed; install the extra: "
            "pip install 'claritycore[export]'"
        ) from None


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def _from_esrgan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original ESRGAN repository's names (`RRDB_trunk.N.RDBk.convM`, `trunk_conv`, …)."""
    out = {}
    for key, value in state.items():
        key = re.sub(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2.", key)
        for old, new in _ESRGAN_NAMES.items():
            key = re.sub(rf"^{old}", new, key)
        out[key] = value
    return out


def _from_esrgan_old(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """ESRGAN's first `model.N.sub…` layout: one flat Sequential.

    model.0 conv_first, model.1.sub.N the RRDBs and trunk conv, then per ×2 step an
    (upsample, conv, lrelu) triple at 2–4, 5–7, …, then HR conv and the last conv.
    """
    top = [int(m.group(1)) for k in state if (m := _OLD_TOP.match(k))]
    num_up = (max(top) - 4) // 3
    names = {0: "conv_first", 3 * num_up + 2: "conv_hr", 3 * num_up + 4: "conv_last"}
    names.update({3 * i: f"conv_up{i}" for i in range(1, num_up + 1)})
    out = {}
    for key, value in state.items():
        if m := _OLD_RDB.match(key):
            block, rdb, conv, kind = m.groups()
            out[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
        elif m := _OLD_TRUNK.match(key):
            out[f"conv_body.{m.group(2)}"] = value
        elif (m := _OLD_TOP.match(key)) and int(m.group(1)) in names:
            out[f"{names[int(m.group(1))]}.{m.group(2)}"] = value
        else:
            raise WeightsError(f"{path}: unexpected key {key!r} in an old-layout ESRGAN file")
    return out


def keys_found(state: Mapping[str, Any]) -> str:
    """The first keys of a state dict and how many there are, for messages."""
    keys = list(state)
    shown = ", ".join(keys[:6])
    return f"{shown}{', …' if len(keys) > 6 else ''} ({len(keys)} keys)"


def infer_config(state: dict[str, torch.Tensor], path: Path) -> RRDBNetConfig:
    """RRDBNet's config read off the tensor shapes of a state dict in our key names."""
    required = ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_last.weight")
    if any(k not in state for k in required):
        raise WeightsError(
            f"{path} has an unknown layout (found {keys_found(state)}); supported: {SUPPORTED}"
        )
    num_feat, in_total = state["conv_first.weight"].shape[:2]
    out_channels = state["conv_last.weight"].shape[0]
    fields: dict[str, Any] = {  # RRDBNetConfig's keyword arguments
        "out_channels": out_channels,
        "num_feat": num_feat,
        "num_block": 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body.")),
        "num_grow_ch": state["body.0.rdb1.conv1.weight"].shape[0],
    }
    upsample = sorted(int(k.split(".")[1]) for k in state if re.match(r"upsample\.\d+\.weight", k))
    convs = [state[f"upsample.{i}.weight"] for i in upsample]
    if convs and all(w.shape[0] == num_feat for w in convs):
        # claritycore 0.0.5: nearest + conv steps; its ×2 (and ×1) unshuffled the input.
        if in_total != out_channels:
            raise WeightsError(
                f"{path} is a claritycore 0.0.5 ×2 (or ×1) model: it pixel-unshuffled the "
                "input and then upsampled only ×2, so its output had the input's size (it did "
                "not upscale) and there is nothing to load; train a ×2 model with ClarityCore"
            )
        steps = {1: 3, 2: 4, 3: 8}.get(len(convs), 0)
        fields |= {"upsampler": "nearest_noact", "scale": steps, "in_channels": in_total}
    elif convs:
        factors = [math.isqrt(w.shape[0] // num_feat) for w in convs]
        fields |= {"upsampler": "pixelshuffle", "scale": math.prod(factors)}
        fields["in_channels"] = in_total
    else:
        num_up = sum(1 for k in state if re.fullmatch(r"conv_up\d+\.weight", k))
        # Real-ESRGAN's x2 folds 2×2 pixels into channels (in = 4 × out) and upsamples ×4.
        unshuffle = 2 if in_total == 4 * out_channels else 1
        fields |= {"upsampler": "nearest", "in_channels": in_total // unshuffle**2}
        fields["scale"] = 2**num_up // unshuffle
        if num_up == 1 and unshuffle == 1:
            fields["x2_unshuffle"] = False
    try:
        return RRDBNetConfig(**fields)
    except ValueError as error:
        raise WeightsError(
            f"{path} describes an RRDBNet ClarityCore cannot build: {error}"
        ) from None


def _state_dict_of(payload: Any, path: Path) -> tuple[dict[str, torch.Tensor], str, bool]:
    """The tensors in a loaded torch file, which layout held them, and whether they are EMA
    weights (preferred wherever a file holds both)."""
    if isinstance(payload, dict):
        for key in ("params_ema", "params"):
            if isinstance(payload.get(key), dict):
                return payload[key], "basicsr", key == "params_ema"
        # claritycore 0.0.5: save_pretrained's {net, net_ema}; training checkpoints hold the
        # whole model (net.*, net_ema.*, loss modules) under model_state_dict.
        if isinstance(payload.get("net"), dict):
            ema = bool(payload.get("net_ema"))
            return payload["net_ema" if ema else "net"], "claritycore-0.0.5", ema
        whole = payload.get("model_state_dict")
        if isinstance(whole, dict) and any(k.startswith("net.") for k in whole):
            ema = any(k.startswith("net_ema.") for k in whole)
            prefix = "net_ema." if ema else "net."
            state = {k[len(prefix) :]: v for k, v in whole.items() if k.startswith(prefix)}
            return state, "claritycore-0.0.5", ema
        for key in ("state_dict", "model"):
            if isinstance(payload.get(key), dict):
                return payload[key], "state_dict", False
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            return payload, "state_dict", False
    found = keys_found(payload) if isinstance(payload, dict) else type(payload).__name__
    raise WeightsError(
        f"{path} has an unknown layout (found {found}); expected a dict of tensors or one "
        f"under params_ema / params / state_dict / net; supported: {SUPPORTED}"
    )


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a .safetensors file; a damaged one is a WeightsError."""
    safetensors = optional_import("safetensors.torch")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as error:  # SafetensorError derives from Exception only
        raise WeightsError(
            f"{path} is not a valid .safetensors file ({str(error).strip()}); "
            "copy or export it again"
        ) from None
    if not state:
        raise WeightsError(f"{path} is a .safetensors file with no tensors in it")
    return state, metadata


def _check_v005_config(path: Path, source: str, scale: int) -> None:
    """A 0.0.5 folder's config.json must agree with the shapes (a mixed-up folder does not)."""
    config_json = path.parent / "config.json"
    if source != "claritycore-0.0.5" or not config_json.is_file():
        return
    try:
        stated = json.loads(config_json.read_text()).get("scale")
    except (OSError, ValueError, AttributeError):
        raise WeightsError(f"{config_json} is not a readable JSON object") from None
    if stated != scale:
        raise WeightsError(
            f"{config_json} says scale={stated} but the tensors of {path} are a ×{scale} model; "
            "the folder mixes files of two models"
        )


def _model_pt_in(path: Path) -> Path:
    """A folder stands for its model.pt (claritycore 0.0.5's save_pretrained folders)."""
    return path / "model.pt" if path.is_dir() and (path / "model.pt").is_file() else path


def _torch_payload(path: Path) -> Any:
    """A torch file's loaded contents, or None for a .safetensors file (read apart)."""
    is_safetensors = sniff(path) == "safetensors" or path.suffix == ".safetensors"
    return None if is_safetensors else read_torch_file(path)


def _read_state(
    path: Path, payload: Any
) -> tuple[dict[str, torch.Tensor], str, bool, dict[str, str]]:
    """The tensors of a file other than our model.pt (`payload`: its torch contents, None for
    safetensors), in our key names: (state, layout, whether EMA weights, safetensors metadata)."""
    meta: dict[str, str] = {}
    ema = False
    if payload is None:
        state, meta = read_safetensors(path)
        source = "safetensors"
    else:
        state, source, ema = _state_dict_of(payload, path)
    state = _strip_wrappers(state)
    if "model.0.weight" in state:
        state, source = _from_esrgan_old(state, path), "esrgan-old"
    elif any(k.startswith(("RRDB_trunk.", "trunk_conv.")) for k in state):
        state, source = _from_esrgan(state), "esrgan"
    return state, source, ema, meta


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of any supported weights file in ClarityCore's key names (a generator's, or
    a BasicSR discriminator's), and its layout; nothing is built."""
    path = _model_pt_in(Path(path))
    payload = _torch_payload(path)
    if is_model_pt(payload):
        return payload["state_dict"], "claritycore"
    state, source, _, _ = _read_state(path, payload)
    return state, source


def load_weights(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Build the right model from any supported weights file (or a 0.0.5 model folder), in
    eval mode, with its metadata: format, model_type, config, scale, preset, step, ema and
    training precision (None where the file does not say)."""
    path = _model_pt_in(Path(path))
    payload = _torch_payload(path)
    if is_model_pt(payload):
        return model_from_payload(payload, path)
    state, source, ema, meta = _read_state(path, payload)
    if "config" in meta:
        config: Any = json.loads(meta["config"])
    else:
        config = infer_config(state, path)
        _check_v005_config(path, source, config.scale)
    model = build_model(config, state, path)
    built = cast(BaseConfig, model.config)  # a built model keeps its config
    metadata = {
        "format": meta.get("format", source),
        "model_type": built.model_type,
        "config": built.to_dict(),
        "scale": built.scale,
        "preset": meta.get("preset") or None,
        "experiment": None,
        "step": int(meta["step"]) if meta.get("step") else None,
        "ema": ema or meta.get("ema") == "true",
        "precision": meta.get("precision") or None,
    }
    return model, metadata
