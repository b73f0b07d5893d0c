"""The pretrained networks an experiment's training loads: VGG19 for a GAN stage's perceptual
loss. The pipeline's `weights` stage puts them in data/weights/ before any other work."""

from __future__ import annotations

from pathlib import Path

from claritycore.data import backbones
from claritycore.experiment import ExperimentConfig


def needed_backbones(experiment: ExperimentConfig, vgg_weights: Path | None) -> list[str]:
    """The backbones training `experiment` loads from the table: VGG19 for a GAN stage's
    perceptual loss, unless `train.vgg_weights` names another file."""
    adversarial = experiment.adversarial
    uses_vgg = adversarial is not None and adversarial.perceptual_weight > 0
    return ["vgg19"] if uses_vgg and vgg_weights is None else []


def fetch_needed(
    experiment: ExperimentConfig,
    vgg_weights: Path | None,
    dest_dir: Path = backbones.PIPELINE_WEIGHTS,
) -> list[Path]:
    """`fetch` every backbone `experiment` needs into `dest_dir` (created even when none is
    needed: it is the pipeline's output); offline and without a copy, the one-line error."""
    Path(dest_dir).mkdir(parents=True, exist_ok=True)
    return [backbones.fetch(name, dest_dir) for name in needed_backbones(experiment, vgg_weights)]
