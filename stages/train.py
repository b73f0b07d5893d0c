"""`python -m stages.train`: train the first stage (`build/base.yaml`: the experiment, or a GAN
preset's PSNR stage) with `train.*` params.

Reads data/stores/x{scale} and data/raw/<source>/valid; writes models/base.pt and its curves
in dvclive-base/ (the `adversarial` stage charts them for an L1 experiment).
Checkpoints go to checkpoints/<run key>/ (outside DVC), so a killed run resumes and a
different config, seed or training data never picks up another's state.
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import DataParams, RunOptions, load_params, read_section
from claritycore.data.store import pipeline_store
from claritycore.errors import exit_on_user_error
from claritycore.experiment import read_resolved
from claritycore.training import train

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file."),
    config: Path = typer.Option(Path("build/base.yaml"), help="The resolved first stage."),
) -> None:
    """Train the resolved first stage and write models/base.pt."""
    with exit_on_user_error("train failed"):
        settings = load_params(params)
        data = read_section(settings, "data", DataParams)
        options = read_section(settings, "train", RunOptions)
        experiment = read_resolved(config)
        train(
            experiment,
            train_store=pipeline_store(experiment.model.scale),
            val_dir=Path("data/raw") / data.source / "valid",
            output=Path("models/base.pt"),
            checkpoints=Path("checkpoints"),
            options=options,
            live_dir=Path("dvclive-base"),
        )


if __name__ == "__main__":
    app()
