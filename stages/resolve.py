"""`python -m stages.resolve`: params.yaml's `preset` + `overrides` -> build/config.yaml.

build/config.yaml is the one config `train` reads, and a params file for `dvc exp show`, so
every experiment row shows the real scale, steps, batch size and learning rate of its run.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from claritycore.config import DataParams, load_params, read_experiment_params, read_section
from claritycore.errors import exit_on_user_error
from claritycore.experiment import resolve, write_resolved

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Params file with preset/overrides."),
    output: Path = typer.Option(Path("build/config.yaml"), help="Where to write the config."),
) -> None:
    """Merge the preset with its overrides, validate, and write the resolved config."""
    with exit_on_user_error("resolve failed"):
        settings = load_params(params)
        selection = read_experiment_params(settings)
        data = read_section(settings, "data", DataParams)
        experiment = resolve(selection.preset, selection.overrides, scales=data.scales)
        write_resolved(experiment, output)
    model, training = experiment.model, experiment.training
    Console(stderr=True).print(
        f"resolved [bold]{experiment.preset}[/bold] -> {output} (hash "
        f"{experiment.config_hash()}): x{model.scale}, {training.steps} steps, batch "
        f"{training.batch_size}, patch {training.patch_size}, lr {training.lr:g}",
        highlight=False,
        soft_wrap=True,
    )


if __name__ == "__main__":
    app()
