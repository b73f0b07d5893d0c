"""`python -m stages.train`: train the resolved config (`build/config.yaml`) with `train.*` params.

Reads data/patches/x{scale} and data/raw/<source>/valid; writes models/model.pt and dvclive/.
Checkpoints go to checkpoints/<config hash>/ (outside DVC), so a killed run resumes and a
different config never picks up another's state.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from claritycore.config import ConfigError, check_fields
from claritycore.presets import ExperimentConfig
from claritycore.training import RunOptions, train

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml")),
    config: Path = typer.Option(Path("build/config.yaml")),
) -> None:
    """Train the resolved experiment and write models/model.pt."""
    settings = yaml.safe_load(params.read_text())
    resolved = yaml.safe_load(config.read_text())
    experiment = ExperimentConfig.from_dict(
        {k: resolved[k] for k in ("preset", "model", "training")}
    )
    if resolved.get("config_hash") != experiment.config_hash():
        raise ConfigError(f"{config} is stale (its config_hash differs); run `dvc repro resolve`")
    check_fields(RunOptions, settings["train"])
    train(
        experiment,
        train_store=Path(f"data/patches/x{experiment.model.scale}"),
        val_dir=Path(f"data/raw/{settings['data']['source']}/valid"),
        output=Path("models/model.pt"),
        checkpoint_dir=Path("checkpoints") / experiment.config_hash(),
        options=RunOptions(**settings["train"]),
        live_dir=Path("dvclive"),
    )


if __name__ == "__main__":
    app()
