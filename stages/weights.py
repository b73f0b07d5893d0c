"""`python -m stages.weights`: the pretrained networks the experiment's losses need, verified,
in data/weights/ (a DVC output: `dvc push` keeps them, `dvc pull` brings them to a node without
internet).

Runs right after resolve, so a GAN experiment without its VGG19 stops before any data stage or
training, with one line naming the file, its size, its hash and where to put it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import TrainOptions, load_params, read_section
from claritycore.data.backbones import PIPELINE_WEIGHTS, fetch_needed
from claritycore.errors import exit_on_user_error
from claritycore.experiment import read_resolved

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file."),
    config: Path = typer.Option(Path("build/config.yaml"), help="The resolved experiment."),
) -> None:
    """Fetch (or take from torch's hub cache) and verify the backbones the experiment needs."""
    with exit_on_user_error("weights failed"):
        options = read_section(load_params(params), "train", TrainOptions)
        experiment = read_resolved(config)
        for path in fetch_needed(experiment.adversarial, options.vgg_weights, PIPELINE_WEIGHTS):
            typer.echo(f"{path}: verified", err=True)


if __name__ == "__main__":
    app()
