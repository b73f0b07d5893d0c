"""`python -m stages.resolve`: params.yaml's preset and its changes -> build/config.yaml,
build/psnr.yaml and build/stores.yaml.

build/config.yaml is the experiment (`adversarial` and `evaluate` read it) and a params file for
`dvc exp show`, so every experiment row shows the real scale, steps, batch size and learning
rate of its run. build/psnr.yaml is what `train` trains: for a GAN preset its PSNR stage, else
the experiment itself (the same file as an experiment of that preset writes, so DVC's run cache
serves it). build/stores.yaml says which scales' LR extract@S packs: the experiment's own and
`data.scales`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from claritycore.config import (
    DataOptions,
    TrainOptions,
    load_params,
    read_experiment_params,
    read_section,
)
from claritycore.data.store import write_store_plan
from claritycore.errors import exit_on_user_error
from claritycore.experiment import (
    lr_scales,
    pretrained_generator,
    psnr_stage,
    resolve,
    write_resolved,
)
from claritycore.pretrained import check_starts, describe_fit

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Params file with preset/overrides."),
    output: Path = typer.Option(Path("build/config.yaml"), help="Where to write the config."),
    psnr: Path = typer.Option(Path("build/psnr.yaml"), help="Where to write the PSNR stage's."),
    stores: Path = typer.Option(Path("build/stores.yaml"), help="Which LR stores to pack."),
) -> None:
    """Merge the preset with its overrides, validate (start files too), write the configs."""
    with exit_on_user_error("resolve failed"):
        settings = load_params(params)
        selection = read_experiment_params(settings)
        data = read_section(settings, "data", DataOptions)
        experiment = resolve(
            selection.preset,
            selection.overrides,
            degradation=selection.degradation,
            adversarial=selection.adversarial,
        )
        options = read_section(settings, "train", TrainOptions)
        generator = pretrained_generator(experiment, options.pretrained)
        # The start files must fit before any data stage runs (a published name by the table).
        fits = check_starts(experiment, generator, strict=options.pretrained_strict)
        first = psnr_stage(experiment, selection.psnr_overrides, pretrained=generator)
        write_resolved(first, psnr)
        write_resolved(experiment, output)
        write_store_plan(lr_scales(experiment, data.scales), stores)
    model, training = experiment.model, experiment.training
    console = Console(stderr=True)
    for role, fit in fits.items():
        if note := describe_fit(role, "its start file", fit):
            console.print(note, highlight=False, soft_wrap=True)
    console.print(
        f"resolved [bold]{experiment.preset}[/bold] -> {output} (hash "
        f"{experiment.config_hash()}): x{model.scale}, {training.steps} steps, batch "
        f"{training.batch_size}, patch {training.patch_size}, lr {training.lr:g}"
        + (
            f"; its PSNR stage {first.preset} -> {psnr} (hash {first.config_hash()})"
            if first is not experiment
            else ""
        ),
        highlight=False,
        soft_wrap=True,
    )


if __name__ == "__main__":
    app()
