"""Reading and writing trained weights. Loading uses `weights_only=True`: no pickled code runs."""

from __future__ import annotations

import importlib
import json
import math
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from claritycore.errors import ConfigError
from claritycore.models import AutoConfig, AutoModel, RRDBNetConfig

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
        # mkstemp creates 0600 files; give the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
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


def read_torch_file(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load` with `weights_only=True`; a file that needs pickled code is refused."""
    try:
        return torch.load(Path(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message is long advice to disable the check; keep only what was found.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        raise ValueError(
            f"{path} contains pickled Python objects{what}, and ClarityCore never executes "
            "pickles. Re-save it as a plain state dict (torch.save(model.state_dict(), ...)) "
            "or as .safetensors."
        ) from None


def load_model(path: Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a `model.pt` written by `save_model`: the model (eval mode) and the file's metadata."""
    return _model_from_payload(read_torch_file(path, map_location), path)


def _model_from_payload(payload: Any, path: Path) -> tuple[nn.Module, dict]:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ClarityCore model.pt (no 'format: {FORMAT}' entry)")
    model = AutoModel.from_config(AutoConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    metadata = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, metadata


# ---- Weights from the ESRGAN ecosystem -------------------------------------------------------

# Wrappers that prefix state-dict keys: DataParallel/DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_ESRGAN_NAMES = {"trunk_conv": "conv_body", "HRconv": "conv_hr", "upconv": "conv_up"}
_OLD_RDB = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_TOP = re.compile(r"model\.(\d+)\.(weight|bias)$")
_OLD_TRUNK = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")


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


def _from_esrgan_old(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
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
            raise ValueError(f"unexpected key {key!r} in an old-layout ESRGAN state dict")
    return out


def _infer_config(state: dict[str, torch.Tensor]) -> RRDBNetConfig:
    """RRDBNet's config read off the tensor shapes of a state dict in our key names."""
    required = ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_last.weight")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(
            f"not an RRDBNet/ESRGAN state dict: missing {', '.join(missing)}. Supported: "
            "ClarityCore model.pt, BasicSR/Real-ESRGAN (params/params_ema), ESRGAN "
            "(RRDB_trunk…, model.N.sub…), safetensors of any of these"
        )
    num_feat, in_total = state["conv_first.weight"].shape[:2]
    out_channels = state["conv_last.weight"].shape[0]
    num_block = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    num_grow_ch = state["body.0.rdb1.conv1.weight"].shape[0]
    upsample = sorted(int(k.split(".")[1]) for k in state if re.match(r"upsample\.\d+\.weight", k))
    if upsample:
        scale = math.prod(
            math.isqrt(state[f"upsample.{i}.weight"].shape[0] // num_feat) for i in upsample
        )
        upsampler, in_channels = "pixelshuffle", in_total
    else:
        num_up = sum(1 for k in state if re.fullmatch(r"conv_up\d+\.weight", k))
        # Real-ESRGAN's x2 folds 2×2 pixels into channels (in = 4 × out) and upsamples ×4.
        unshuffle = 2 if in_total == 4 * out_channels else 1
        upsampler, in_channels, scale = "nearest", in_total // unshuffle**2, 2**num_up // unshuffle
    try:
        return RRDBNetConfig(
            scale=scale,
            in_channels=in_channels,
            out_channels=out_channels,
            num_feat=num_feat,
            num_block=num_block,
            num_grow_ch=num_grow_ch,
            upsampler=upsampler,
        )
    except ConfigError as error:
        raise ValueError(
            f"these weights describe an RRDBNet ClarityCore cannot build: {error}"
        ) from None


def _state_dict_of(payload: Any, path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The tensors in a loaded file and the key they were under (params_ema preferred)."""
    if isinstance(payload, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if isinstance(payload.get(key), dict):
                return payload[key], key
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            return payload, None
    raise ValueError(
        f"{path} holds no state dict (expected a dict of tensors, or one under "
        "params_ema / params / state_dict)"
    )


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    safetensors = _optional("safetensors.torch")
    with safetensors.safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        return {k: f.get_tensor(k) for k in f.keys()}, metadata  # noqa: SIM118


def load_weights(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Build the right model from a weights file, in eval mode, with its metadata.

    Reads our `model.pt`, BasicSR/Real-ESRGAN files (`params_ema` preferred over `params`,
    `module.` prefixes dropped), the original ESRGAN names and its older `model.N.sub…`
    layout, and `.safetensors` of any of these. The architecture is inferred from the tensor
    shapes. Pickled objects are never executed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        state, stored = _read_safetensors(path)
        source, key, meta = "safetensors", None, stored
    else:
        payload = read_torch_file(path)
        if isinstance(payload, dict) and payload.get("format") == FORMAT:
            return _model_from_payload(payload, path)
        state, key = _state_dict_of(payload, path)
        source, meta = "basicsr" if key in ("params", "params_ema") else "state_dict", {}
    state = _strip_wrappers(state)
    if "model.0.weight" in state:
        state, source = _from_esrgan_old(state), "esrgan-old"
    elif any(k.startswith(("RRDB_trunk.", "trunk_conv.")) for k in state):
        state, source = _from_esrgan(state), "esrgan"
    if "config" in meta:
        config = AutoConfig.from_dict(json.loads(meta["config"]))
    else:
        config = _infer_config(state)
    model = AutoModel.from_config(config)
    model.load_state_dict(state)
    model.eval()
    metadata = {
        "format": meta.get("format", source),
        "model_type": config.model_type,
        "config": config.to_dict(),
        "scale": config.scale,
        "preset": meta.get("preset") or None,
        "step": int(meta["step"]) if meta.get("step") else None,
        "ema": key == "params_ema" or meta.get("ema") == "true",
    }
    return model, metadata


# ---- Export ---------------------------------------------------------------------------------

EXPORT_FORMATS = ("basicsr", "safetensors", "onnx")


def _optional(module: str) -> Any:
    """Import an optional dependency (the `export` extra) or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{module.split('.')[0]} is not installed; install the extra: "
            "pip install 'claritycore[export]'"
        ) from None


def export_weights(
    model: nn.Module, path: Path, format: str, *, ema: bool = False, metadata: dict | None = None
) -> Path:
    """Write `model` as `basicsr` (a `params_ema`/`params` dict), `safetensors` or `onnx`.

    ONNX has dynamic batch, height and width and is checked against PyTorch with onnxruntime
    (within 1e-3) when onnxruntime is installed. `ema` picks BasicSR's key.
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format {format!r} is unknown; choose one of {', '.join(EXPORT_FORMATS)}")
    model = unwrap(model).cpu().eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if format == "basicsr":
        atomic_torch_save({"params_ema" if ema else "params": state}, path)
    elif format == "safetensors":
        # safetensors metadata is str -> str: the config goes in as JSON so it loads exactly.
        info = {"format": FORMAT, "config": json.dumps(model.config.to_dict())}
        info |= {k: str(v) for k, v in (metadata or {}).items() if k in ("preset", "step") and v}
        info["ema"] = "true" if ema else "false"
        _optional("safetensors.torch").save_file(state, str(path), metadata=info)
    else:
        _export_onnx(model, path)
    return path


def _export_onnx(model: nn.Module, path: Path) -> None:
    _optional("onnx")
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript exporter warns about traced shape arithmetic, which is what we want.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.rand(1, model.config.in_channels, 32, 32),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": axes, "output": axes},
            opset_version=17,
        )
    try:
        import onnxruntime
    except ImportError:
        return
    # Odd sizes unlike the traced 32×32 check the dynamic axes as well as the values.
    x = torch.rand(1, model.config.in_channels, 19, 27)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.inference_mode():
        expected = model(x).numpy()
    error = float(abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if error > 1e-3:
        raise RuntimeError(f"ONNX export of {path} differs from PyTorch by {error:.3g} (> 1e-3)")
