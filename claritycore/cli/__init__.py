"""`claritycore …`: the command-line interface. Each command group lives in its own module."""

from __future__ import annotations

import typer

from claritycore import __version__
from claritycore.cli import evaluate, export, launch, models, plots, presets, train, upscale
from claritycore.presets import PRESETS

app = typer.Typer(
    name="claritycore",
    help="Reproducible super-resolution training: presets, training, evaluation, inference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"claritycore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """ClarityCore command-line interface."""


app.command("presets")(presets.presets_command)
app.command("list", help="Alias of `presets`.")(presets.presets_command)
app.command("models")(models.models_command)
app.command("upscale")(upscale.upscale_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("export")(export.export_command)
app.command("plots")(plots.plots_command)
# Training: `claritycore train …` and one command per preset (`claritycore rrdbnetx4 …`).
app.command("train")(train.train_command)
# Multi-node training: torchrun with a bounded rendezvous (docs/multi-node.md).
app.command("torchrun", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            add_help_option=False)(launch.torchrun_command)  # fmt: skip
for _preset in PRESETS:
    app.command(_preset)(train.preset_command(_preset))
