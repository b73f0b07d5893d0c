"""`python -m stages.adversarial`: the experiment's second stage (`build/config.yaml`).

A GAN preset trains its generator from models/psnr.pt (the PSNR stage) against a
discriminator (from build/pretrained_d.yaml's file, if any); any other experiment's model is the
PSNR stage's, copied, and so is that of a GAN experiment started from a generator file (the
`train` stage trained it whole). Writes
models/model.pt (what evaluate scores) and its curves in dvclive/ (for an L1 experiment the first
stage's, from dvclive-psnr/).
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import DataOptions, TrainOptions, load_params, read_section
from claritycore.data.store import pipeline_store
from claritycore.errors import exit_on_user_error
from claritycore.experiment import read_resolved
from claritycore.pretrained import read_record
from claritycore.training import finish_stage

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file."),
    config: Path = typer.Option(Path("build/config.yaml"), help="The resolved experiment."),
) -> None:
    """Train the GAN stage from models/psnr.pt, or take that model as it is."""
    with exit_on_user_error("adversarial failed"):
        settings = load_params(params)
        data = read_section(settings, "data", DataOptions)
        options = read_section(settings, "train", TrainOptions)
        experiment = read_resolved(config)
        finish_stage(
            experiment,
            psnr_model=Path("models/psnr.pt"),
            train_store=pipeline_store(experiment.model.scale),
            val_dir=Path("data/raw") / data.source / "valid",
            output=Path("models/model.pt"),
            checkpoints=Path("checkpoints"),
            options=options,
            psnr_live_dir=Path("dvclive-psnr"),
            live_dir=Path("dvclive"),
            started_from=read_record(Path("build/pretrained.yaml")),
            pretrained_d=read_record(Path("build/pretrained_d.yaml")),
        )


if __name__ == "__main__":
    app()
