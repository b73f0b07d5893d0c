"""`python -m stages.weights`: the pretrained networks the experiment's losses need and the
files it starts from (train.pretrained, adversarial.pretrained_d), verified, in data/weights/
(a DVC output: `dvc push` keeps them, `dvc pull` brings them to a node without internet).
Writes build/pretrained.yaml and build/pretrained_d.yaml: each start file's name, path and
sha256, which the training stages depend on and `dvc exp show` shows.

Runs right after resolve, so a GAN experiment without its VGG19 stops before any data stage or
training, with one line naming the file, its size, its hash and where to put it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from claritycore.config import TrainOptions, load_params, read_section
from claritycore.data.backbones import PIPELINE_WEIGHTS, fetch_needed
from claritycore.data.published import Role
from claritycore.errors import exit_on_user_error
from claritycore.experiment import pretrained_generator, read_resolved
from claritycore.pretrained import place_starts

RECORDS: dict[Role, Path] = {
    "generator": Path("build/pretrained.yaml"),
    "discriminator": Path("build/pretrained_d.yaml"),
}

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Pipeline params file."),
    config: Path = typer.Option(Path("build/config.yaml"), help="The resolved experiment."),
) -> None:
    """Fetch (or take from torch's hub cache) and verify the backbones and start files."""
    with exit_on_user_error("weights failed"):
        options = read_section(load_params(params), "train", TrainOptions)
        experiment = read_resolved(config)
        for path in fetch_needed(experiment.adversarial, options.vgg_weights, PIPELINE_WEIGHTS):
            typer.echo(f"{path}: verified", err=True)
        generator = pretrained_generator(experiment, options.pretrained)
        starts = place_starts(
            experiment, generator, strict=options.pretrained_strict,
            dest_dir=PIPELINE_WEIGHTS, records=RECORDS, vgg_weights=options.vgg_weights,
        )  # fmt: skip
        for role, start in starts.items():
            if start is not None:
                typer.echo(f"{role} starts from {start.path} ({start.name})", err=True)


if __name__ == "__main__":
    app()
