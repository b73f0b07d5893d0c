"""Training checkpoints: the one module that writes and reads them.

A checkpoint holds everything a run needs to continue bit-for-bit: the (unwrapped) model, the
EMA copy, the optimiser, the GradScaler, the step, the RNG states and the logged metric
history, plus the hash of the resolved config and the precision the steps computed in. The
learning rate is a pure function of the step and the data stream a pure function of (seed,
sample index = step × global batch), so neither needs more state than the step. Files are
written atomically (temporary file, fsync, rename) by rank 0 only; the newest two are kept, so
a kill at any moment leaves at least one complete file. Loading uses
`torch.load(weights_only=True)`: no pickled code runs.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from claritycore.data.backbones import file_sha256
from claritycore.experiment import ExperimentConfig
from claritycore.pretrained import StartFile
from claritycore.training.steps import Adversary
from claritycore.weights import atomic_torch_save, read_torch_file, unwrap

FORMAT = "claritycore-checkpoint"
FORMAT_VERSION = 1
KEEP = 2
_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"step_{step:09d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoint files in `directory`, oldest first.

    Temporary files of an interrupted write (`.step_*.pt.*.tmp`) never match the name pattern.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def capture_rng(device: torch.device) -> dict[str, Any]:
    """Python, NumPy, torch and (on CUDA) this process's GPU RNG states, in types that
    `weights_only` loading accepts. Each DDP rank owns one GPU, so only its own is saved."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(_as_tuples(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {
                "key": numpy_state["key"].numpy().astype(np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    # A checkpoint written on the CPU holds no GPU state.
    if device.type == "cuda" and isinstance(state["cuda"], torch.Tensor):
        torch.cuda.set_rng_state(state["cuda"], device)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _as_tuples(value: Any) -> Any:
    # random.setstate needs the nested tuples it produced, whatever the loader turned them into.
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def run_key(
    experiment: ExperimentConfig,
    seed: int,
    train_store: Path,
    pretrained: StartFile | None = None,
    pretrained_d: StartFile | None = None,
) -> str:
    """What a checkpoint must match to be resumed: the config, the seed, the training data
    (the store's index names every image, shape and extraction parameter) and the initial
    weights (a GAN stage started from another PSNR model is another run; so is a start file
    loaded only where it fits, or another discriminator file). Keys only where they apply, so
    earlier runs' keys stay what they were."""
    index = Path(train_store) / "index.json"
    data = hashlib.sha256(index.read_bytes()).hexdigest() if index.is_file() else str(train_store)
    identity: dict[str, Any] = {"config": experiment.config_hash(), "seed": seed, "data": data}
    if pretrained is not None:
        identity["pretrained"] = file_sha256(pretrained.path)
        if not pretrained.strict:
            identity["pretrained_strict"] = False
    if pretrained_d is not None:
        identity["pretrained_d"] = file_sha256(pretrained_d.path)
        if not pretrained_d.strict:
            identity["pretrained_d_strict"] = False
    text = json.dumps(identity)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save(
    directory: Path,
    *,
    key: str,
    step: int,
    experiment: ExperimentConfig,
    model: nn.Module,
    ema: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    history: list[dict[str, float]],
    precision: str,
    adversary: Adversary | None = None,
) -> Path:
    """Write the checkpoint for `step` atomically, then delete all but the newest `KEEP`.

    `precision` (bf16, fp16 or fp32) is recorded, not checked on resume: a run may continue
    on another device, where `amp` resolves differently."""
    path = checkpoint_path(directory, step)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run_key": key,
        "config_hash": experiment.config_hash(),
        "experiment": experiment.to_dict(),
        "step": step,
        # The data stream restarts here: sample i is a pure function of (seed, i).
        "sample_index": step * experiment.training.batch_size,
        "model": unwrap(model).state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "rng": capture_rng(_device_of(model)),
        "history": history,
        "precision": precision,
        # A GAN stage: the discriminator is trained state like the generator.
        "discriminator": None
        if adversary is None
        else unwrap(adversary.discriminator).state_dict(),
        "d_optimizer": None if adversary is None else adversary.optimizer.state_dict(),
        "d_scaler": None
        if adversary is None or not adversary.scaler.is_enabled()
        else adversary.scaler.state_dict(),
    }
    atomic_torch_save(payload, path)
    for _, old in list_checkpoints(directory)[:-KEEP]:
        old.unlink(missing_ok=True)
    return path


def remove(directory: Path) -> None:
    """Delete every checkpoint in `directory` (and temporary files of torn writes), then the
    folder itself if nothing else is in it: a finished run is never resumed."""
    directory = Path(directory)
    for path in directory.glob("*step_*.pt*"):
        path.unlink(missing_ok=True)
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def load_latest(directory: Path, key: str) -> dict[str, Any] | None:
    """The newest readable checkpoint in `directory` written for the run `key`, or None.

    A file that fails to load (torn by a crash outside our atomic writer, or corrupted) falls
    back to the previous one; a file from a different config, seed or data is never used.
    """
    for step, path in reversed(list_checkpoints(directory)):
        try:
            payload = read_torch_file(path)
        except Exception as error:  # any unreadable file: try the previous checkpoint
            warnings.warn(f"skipping unreadable checkpoint {path}: {error}", stacklevel=2)
            continue
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            warnings.warn(f"skipping {path}: not a ClarityCore training checkpoint", stacklevel=2)
            continue
        if payload.get("run_key") != key:
            warnings.warn(
                f"not resuming from {path} (step {step}): it was written for another config, "
                f"seed or training data (run {payload.get('run_key')}, this run is {key})",
                stacklevel=2,
            )
            continue
        return payload
    return None


def restore(
    payload: dict[str, Any],
    *,
    model: nn.Module,
    ema: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    adversary: Adversary | None = None,
) -> tuple[int, list[dict[str, float]]]:
    """Load a checkpoint's state into the run's objects; returns (step, metric history)."""
    unwrap(model).load_state_dict(payload["model"])
    if ema is not None:
        # `ema` is part of the config hash, so a matching checkpoint saved an EMA exactly when
        # this run keeps one.
        ema.load_state_dict(payload["ema"])
    optimizer.load_state_dict(payload["optimizer"])
    if payload["scaler"] is not None and scaler.is_enabled():
        scaler.load_state_dict(payload["scaler"])
    if adversary is not None:
        # `adversarial` is part of the config hash: a matching checkpoint has a discriminator.
        unwrap(adversary.discriminator).load_state_dict(payload["discriminator"])
        adversary.optimizer.load_state_dict(payload["d_optimizer"])
        if payload["d_scaler"] is not None and adversary.scaler.is_enabled():
            adversary.scaler.load_state_dict(payload["d_scaler"])
    restore_rng(payload["rng"], _device_of(model))
    return int(payload["step"]), list(payload["history"])
