"""Every model's training presets, as one table of data (`claritycore presets` prints it).

A preset names a model config (its fields, as a mapping with `model_type`) and a training
recipe. This module imports no torch and no model: `experiment.resolve` builds and validates
the model config, and the data stages read the patch sizes from here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from claritycore.config import AdversarialConfig, DegradationConfig, TrainingConfig
from claritycore.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A named training recipe: a model config's fields and how to train it."""

    name: str
    description: str
    model: dict[str, Any]
    training: TrainingConfig
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    # A GAN preset: the second stage, trained from the model of the PSNR preset it names.
    adversarial: AdversarialConfig | None = None
    # Where the recipe differs from the published one it follows.
    notes: str = ""
    # A fine-tuning recipe: the published generator it starts from (train.pretrained replaces
    # it); for a GAN preset it takes the PSNR stage's place.
    pretrained: str | None = None

    @property
    def scale(self) -> int:
        return self.model["scale"]


RRDBNET_FULL = {"model_type": "rrdbnet", "num_feat": 64, "num_block": 23, "num_grow_ch": 32}
# Growth 16 gives the model document's ~1M parameters; growth 32 would give ~2.6M.
RRDBNET_LITE = {"model_type": "rrdbnet", "num_feat": 32, "num_block": 6, "num_grow_ch": 16}

_TABLE = (
    # name, description, model, scale, steps, batch size, HR patch side
    ("rrdbnetx2", "2× super-resolution, full RRDBNet", RRDBNET_FULL, 2, 400_000, 16, 128),
    ("rrdbnetx3", "3× super-resolution, full RRDBNet", RRDBNET_FULL, 3, 400_000, 16, 192),
    ("rrdbnetx4", "4× super-resolution, full RRDBNet", RRDBNET_FULL, 4, 400_000, 16, 256),
    ("rrdbnetx8", "8× super-resolution, full RRDBNet", RRDBNET_FULL, 8, 500_000, 8, 512),
    ("rrdbnet-litex2", "2× super-resolution, lite RRDBNet", RRDBNET_LITE, 2, 200_000, 32, 128),
    ("rrdbnet-litex3", "3× super-resolution, lite RRDBNet", RRDBNET_LITE, 3, 200_000, 32, 192),
    ("rrdbnet-litex4", "4× super-resolution, lite RRDBNet", RRDBNET_LITE, 4, 200_000, 32, 256),
    ("rrdbnet-litex8", "8× super-resolution, lite RRDBNet", RRDBNET_LITE, 8, 250_000, 16, 512),
)

_PSNR = {
    name: Preset(
        name,
        description,
        {**model, "scale": scale},
        TrainingConfig(steps=steps, batch_size=batch, patch_size=patch),
    )
    for name, description, model, scale, steps, batch, patch in _TABLE
}

# Real-ESRNet (Real-ESRGAN's first stage, train_realesrnet_x4plus.yml): L1 on an unsharp-masked
# target, Real-ESRGAN's degradations, Adam 2e-4 for 1M steps (its one milestone is the last
# step), batch 48 (12 × 4 GPUs) of 256² patches, EMA 0.999. The nearest upsampler makes the file
# load in Real-ESRGAN and chaiNNer as it is (×2: Real-ESRGAN x2plus's unshuffled input).
_REALESRNET = TrainingConfig(
    steps=1_000_000, batch_size=48, patch_size=256, lr=2e-4, ema=True, scheduler="constant"
)
_REALESRNET_NOTES = (
    "Real-ESRGAN starts it from ESRGAN's PSNR model (pass --pretrained); its 180-patch "
    "training-pair queue that mixes batches is not used (each sample's degradation is a pure "
    "function of seed and index); augmentation: 8 flips/rotations (Real-ESRGAN: h-flip only)"
)
_REALWORLD = DegradationConfig(type="realesrgan")
# ESRGAN's second stage (BasicSR train_ESRGAN_x4.yml): L1 1e-2 + VGG19 conv5_4 1.0 + RaGAN
# 5e-3, Adam 1e-4 for both nets, halved at 50k/100k/200k/300k of 400k, batch 16 of 128², EMA.
_ESRGAN = TrainingConfig(
    steps=400_000, batch_size=16, patch_size=128, lr=1e-4, ema=True, scheduler="multistep",
    milestones=(0.125, 0.25, 0.5, 0.75),
)  # fmt: skip
# Real-ESRGAN's second stage (train_realesrgan_x4plus.yml): L1 1.0 + VGG19 five layers + vanilla
# GAN 0.1 against a U-Net discriminator with spectral norm, Adam 1e-4, 400k steps, batch 48.
_REALESRGAN = TrainingConfig(
    steps=400_000, batch_size=48, patch_size=256, lr=1e-4, ema=True, scheduler="constant"
)
# AdversarialConfig keyword arguments (fields of several types).
_REALESRGAN_LOSSES: dict[str, Any] = {
    "pixel_weight": 1.0,
    "perceptual_layers": {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                          "conv5_4": 1.0},
    "gan_type": "vanilla",
    "gan_weight": 0.1,
    "discriminator": "unet_sn",
}  # fmt: skip


def _realesrnet(name: str, model: dict[str, Any], scale: int, size: str) -> Preset:
    upsampler = {"upsampler": "nearest", "x2_unshuffle": True}
    return Preset(
        name,
        f"{scale}× Real-ESRNet (real-world degradations, L1), {size} RRDBNet",
        {**model, **upsampler, "scale": scale},
        _REALESRNET,
        degradation=_REALWORLD,
        notes=_REALESRNET_NOTES,
    )


def _esrgan(name: str, base: Preset) -> Preset:
    notes = ""
    adversarial = AdversarialConfig(base=base.name)
    training = _ESRGAN
    if base.scale == 3:
        # No HR side is both a multiple of 3 and the 128 that ESRGAN's VGG discriminator takes.
        adversarial = AdversarialConfig(base=base.name, discriminator="unet_sn")
        training = TrainingConfig(**{**_ESRGAN.to_dict(), "patch_size": 192})
        notes = "×3: 192² patches and the U-Net SN discriminator (ESRGAN's VGG one takes 128²)"
    kind = "lite" if base.model["num_feat"] < 64 else "full"
    return Preset(
        name,
        f"{base.scale}× ESRGAN (perceptual + RaGAN) from {base.name}, {kind} RRDBNet",
        base.model,
        training,
        adversarial=adversarial,
        notes=notes,
    )


def _realesrgan(name: str, base: Preset) -> Preset:
    kind = "lite" if base.model["num_feat"] < 64 else "full"
    return Preset(
        name,
        f"{base.scale}× Real-ESRGAN (perceptual + GAN, real-world degradations) from "
        f"{base.name}, {kind} RRDBNet",
        base.model,
        _REALESRGAN,
        degradation=_REALWORLD,
        adversarial=AdversarialConfig(base=base.name, **_REALESRGAN_LOSSES),
        notes=_REALESRNET_NOTES.split("; ", 1)[1],
    )


_REALESRNETS = {
    p.name: p
    for p in (
        _realesrnet("realesrnetx4", RRDBNET_FULL, 4, "full"),
        _realesrnet("realesrnetx2", RRDBNET_FULL, 2, "full"),
        _realesrnet("realesrnet-litex4", RRDBNET_LITE, 4, "lite"),
        _realesrnet("realesrnet-litex2", RRDBNET_LITE, 2, "lite"),
    )
}
_GANS = [_esrgan(name.replace("rrdbnet", "esrgan"), base) for name, base in _PSNR.items()] + [
    _realesrgan(name.replace("realesrnet", "realesrgan"), base)
    for name, base in _REALESRNETS.items()
]

# Real-ESRGAN's fine-tuning recipes (Training.md, "Finetune Real-ESRGAN on your own dataset";
# options/finetune_realesrgan_x4plus*.yml): train_realesrgan_x4plus.yml's values, started from
# the published generator and discriminator instead of RealESRNet and a random D.
_FINETUNE_NOTES = (
    "starts from the published RealESRGAN_x4plus and RealESRGAN_x4plus_netD (the weights "
    "stage fetches them); {data}; augmentation: 8 flips/rotations (Real-ESRGAN: h-flip only)"
)
_FINETUNES = [
    Preset(
        "finetune_realesrgan_x4plus",
        "4× Real-ESRGAN fine-tuned from RealESRGAN_x4plus (+ its netD), degradations on the fly",
        _REALESRNETS["realesrnetx4"].model,
        _REALESRGAN,
        degradation=_REALWORLD,
        adversarial=AdversarialConfig(
            base="realesrnetx4", pretrained_d="RealESRGAN_x4plus_netD", **_REALESRGAN_LOSSES
        ),
        notes=_FINETUNE_NOTES.format(
            data="its 180-patch queue that mixes batches is not used (each sample's degradation "
            "is a pure function of seed and index)"
        ),
        pretrained="RealESRGAN_x4plus",
    ),
    Preset(
        "finetune_realesrgan_x4plus_pairdata",
        "4× Real-ESRGAN fine-tuned from RealESRGAN_x4plus (+ its netD) on your own LR/HR pairs",
        _REALESRNETS["realesrnetx4"].model,
        _REALESRGAN,
        adversarial=AdversarialConfig(
            base="realesrnetx4", pretrained_d="RealESRGAN_x4plus_netD", **_REALESRGAN_LOSSES
        ),
        notes=_FINETUNE_NOTES.format(
            data="set data.source: paired (the pairs' own LR, as RealESRGANPairedDataset reads "
            "them); the L1 and VGG targets are the plain HR (Real-ESRGAN unsharp-masks them)"
        ),
        pretrained="RealESRGAN_x4plus",
    ),
    Preset(
        "finetune_realesrnet_x4plus",
        "4× Real-ESRNet (L1, real-world degradations) fine-tuned from RealESRNet_x4plus",
        _REALESRNETS["realesrnetx4"].model,
        _REALESRNET,
        degradation=_REALWORLD,
        notes="Real-ESRGAN publishes no PSNR fine-tuning recipe: train_realesrnet_x4plus.yml's "
        "values, started from RealESRNet_x4plus instead of ESRGAN_SRx4_DF2KOST_official "
        "(shorten it with overrides.steps); " + _REALESRNET_NOTES.split("; ", 1)[1],
        pretrained="RealESRNet_x4plus",
    ),
]

# The model document's eight presets first, unchanged; then the real-world, GAN and
# fine-tuning rows.
PRESETS: dict[str, Preset] = {
    **_PSNR, **_REALESRNETS, **{p.name: p for p in _GANS}, **{p.name: p for p in _FINETUNES}
}  # fmt: skip


def get_preset(name: str) -> Preset:
    """The preset called `name` (case-insensitive); unknown names list the close matches."""
    key = name.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    close = difflib.get_close_matches(key, PRESETS, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown preset {name!r}.{hint} Available presets: {', '.join(PRESETS)} "
        "(`claritycore presets` shows them)"
    )


def find_preset(model_type: str, scale: int, fields: dict[str, Any]) -> Preset:
    """The preset for `model_type` at `scale` whose model matches every given field (e.g. the
    lite one for num_feat=32); the first such preset when none is given."""
    candidates = [
        p for p in PRESETS.values() if p.model["model_type"] == model_type and p.scale == scale
    ]
    if not candidates:
        models = sorted({p.model["model_type"] for p in PRESETS.values()})
        raise ConfigError(
            f"no preset trains {model_type!r} at ×{scale}; presets exist for {', '.join(models)} "
            "(`claritycore presets` lists them)"
        )
    matching = [p for p in candidates if all(p.model.get(k) == v for k, v in fields.items())]
    return (matching or candidates)[0]


def largest_patch(scales: tuple[int, ...]) -> int:
    """The largest HR patch side of the model document's presets at one of `scales`: a `folder`
    source drops images smaller than that, since no such preset could crop them. (The
    real-world and GAN presets' larger patches do not raise it: a dataset skips, with a
    warning, the images too small for its patch.)"""
    return max((p.training.patch_size for p in _PSNR.values() if p.scale in scales), default=0)
