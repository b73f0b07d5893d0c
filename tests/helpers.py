"""Helpers the test files share: tiny synthetic images and stores, tiny experiments, runs."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from claritycore.config import TrainOptions
from claritycore.data.packing import extract_store
from claritycore.experiment import ExperimentConfig, resolve
from claritycore.training import train, trainer

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 8}


def tiny_images(folder: Path, count: int = 3, size: int = 48) -> Path:
    """Smooth synthetic RGB images (gradients plus a few shapes), deterministic."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        planes = [np.sin(2 * math.pi * (xx * (c + 1) + yy * (i + 1)) + c) for c in range(3)]
        pixels = (np.stack(planes, -1) * 100 + 128 + rng.normal(0, 5, (size, size, 3))).clip(0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"img{i}.png")
    return folder


def png48(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def tiny_store(root: Path, scale: int = 2) -> Path:
    """A patch store of three 48×48 synthetic images."""
    store = root / f"store_x{scale}"
    if not (store / "index.json").exists():
        extract_store(tiny_images(root / "images"), store, scale, workers=1)
    return store


def tiny_experiment(**overrides) -> ExperimentConfig:
    values = {"steps": 6, "batch_size": 4, "patch_size": 16, **TINY, **overrides}
    return resolve("rrdbnet-litex2", values)


def quick_options(**changes) -> TrainOptions:
    """CPU, no workers, fp32: results do not depend on whether this CPU has native bf16. The
    finished run's checkpoints are kept: tests read their state and history."""
    values = {"workers": 0, "device": "cpu", "log_every": 1, "save_every": 3, "val_every": 1000}
    values |= {"precision": "fp32", "keep_checkpoints": True}
    return TrainOptions(**{**values, **changes})


def run(tmp: Path, experiment: ExperimentConfig, options: TrainOptions, store: Path, **kw) -> Path:
    """`train` into `tmp` (model.pt, checkpoints under tmp/ckpt/<run key>/)."""
    return train(
        experiment,
        train_store=store,
        val_dir=kw.get("val_dir"),
        output=tmp / "model.pt",
        checkpoints=kw.get("checkpoints", tmp / "ckpt"),
        options=options,
        live_dir=kw.get("live_dir"),
        resume=kw.get("resume", True),
        pretrained=kw.get("pretrained"),
    )


def checkpoint_files(checkpoints: Path) -> list[Path]:
    """Every checkpoint under `checkpoints` (all run keys), oldest first."""
    return sorted(checkpoints.glob("*/*.pt"), key=lambda p: p.stat().st_mtime_ns)


def latest(checkpoints: Path) -> dict:
    """The newest checkpoint under `checkpoints`, whatever run wrote it."""
    return torch.load(checkpoint_files(checkpoints)[-1], weights_only=True)


def history(checkpoints: Path) -> list[dict]:
    return latest(checkpoints)["history"]


def forward_dtypes(monkeypatch) -> list[torch.dtype]:
    """The dtypes the trainer's model computes its first convolution in, one per forward."""
    seen = []
    build = trainer.AutoModel.from_config

    def spying_build(config):
        model = build(config)
        model.conv_first.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
        return model

    monkeypatch.setattr(trainer.AutoModel, "from_config", spying_build)
    return seen


def random_vgg19(path: Path, seed: int = 0) -> Path:
    """A VGG19 file with random weights in torchvision's layout (`features.N.*`, as
    vgg19-dcbb9e9d.pth has them): what the perceptual loss loads, without the 548 MB file."""
    from claritycore.training.perceptual import VGG19Features

    torch.manual_seed(seed)
    torch.save(VGG19Features().state_dict(), path)
    return path
