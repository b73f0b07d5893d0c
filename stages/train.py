"""`python -m stages.train`: train the PSNR stage (`build/psnr.yaml`: the experiment, or a GAN
preset's PSNR stage) with `train.*` params.

Reads data/stores/x{scale} and data/raw/<source>/valid, and starts from the files the weights
stage recorded in build/pretrained*.yaml (a GAN experiment started from a generator file has no
PSNR stage: build/psnr.yaml is then the experiment, trained whole here); writes models/psnr.pt
and its curves in dvclive-psnr/ (the `adversarial` stage charts them for an L1 experiment).
Checkpoints go to checkpoints/<run key>/ (outside DVC), so a killed run resumes and a
different config, seed or training data never picks up another's state.
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import DataOptions, TrainOptions, load_params, read_section
from claritycore.data.store import pipeline_store
from claritycore.errors import exit_on_user_error
from claritycore.experiment import read_resolved
from claritycore.pretrained import read_record
from claritycore.training import train

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file."),
    config: Path = typer.Option(Path("build/psnr.yaml"), help="The resolved PSNR stage."),
) -> None:
    """Train the resolved PSNR stage and write models/psnr.pt."""
    with exit_on_user_error("train failed"):
        settings = load_params(params)
        data = read_section(settings, "data", DataOptions)
        options = read_section(settings, "train", TrainOptions)
        experiment = read_resolved(config)
        train(
            experiment,
            train_store=pipeline_store(experiment.model.scale),
            val_dir=Path("data/raw") / data.source / "valid",
            output=Path("models/psnr.pt"),
            checkpoints=Path("checkpoints"),
            options=options,
            live_dir=Path("dvclive-psnr"),
            pretrained=read_record(Path("build/pretrained.yaml")),
            pretrained_d=read_record(Path("build/pretrained_d.yaml")),
        )


if __name__ == "__main__":
    app()
