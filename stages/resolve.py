"""Stage `resolve`: params.yaml's `preset` + `overrides` -> build/config.yaml.

build/config.yaml is the one config `train` reads, and a params file for `dvc exp show`, so
every experiment row shows the real scale, steps, batch size and learning rate of its run.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.console import Console

from claritycore.config import ConfigError
from claritycore.presets import resolve

HEADER = "# Written by `python -m stages.resolve` from params.yaml; edit params.yaml instead.\n"

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def read_params(path: Path) -> tuple[str, dict, list[int]]:
    """`preset`, `overrides` and `data.scales` from the params file, or a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path} not found; run from the repository root")
    params = yaml.safe_load(path.read_text()) or {}
    preset = params.get("preset")
    if not isinstance(preset, str):
        raise ConfigError(f"{path}: `preset` must be a preset name, got {preset!r}")
    overrides = params.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: `overrides` must be a mapping of key: value, got {overrides!r}")
    scales = (params.get("data") or {}).get("scales")
    if not isinstance(scales, list):
        raise ConfigError(f"{path}: `data.scales` must be a list such as [2, 3, 4, 8]")
    return preset, overrides, scales


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), help="Params file with preset/overrides."),
    output: Path = typer.Option(Path("build/config.yaml"), help="Where to write the config."),
) -> None:
    """Merge the preset with its overrides, validate, and write the resolved config."""
    console = Console(stderr=True)
    try:
        preset, overrides, scales = read_params(params)
        experiment = resolve(preset, overrides)
        # Caught here, not after `extract` has run: train reads data/patches/x<scale>.
        if experiment.model.scale not in scales:
            raise ConfigError(
                f"{experiment.preset} trains at scale {experiment.model.scale}, but data.scales "
                f"is {scales}, so no patches are extracted for it; add {experiment.model.scale} "
                "to data.scales or choose a preset with one of those scales"
            )
    except ConfigError as err:
        console.print(f"[red]resolve failed:[/red] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    config_hash = experiment.config_hash()
    output.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"config_hash": config_hash, **experiment.to_dict()}, sort_keys=False)
    output.write_text(HEADER + text)
    model, training = experiment.model, experiment.training
    console.print(
        f"resolved [bold]{experiment.preset}[/bold] -> {output} (hash {config_hash}): "
        f"x{model.scale}, {training.steps} steps, batch {training.batch_size}, "
        f"patch {training.patch_size}, lr {training.lr:g}",
        highlight=False,
        soft_wrap=True,
    )


if __name__ == "__main__":
    app()
