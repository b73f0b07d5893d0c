"""`claritycore train …` and one command per preset (`claritycore rrdbnetx4 …`).

Each model, recipe and run field is a flag made from the field (`cli.common.field_options`), or
a `--set KEY=VALUE`. Flags are parsed once: recipe and model flags become overrides of a preset
(`experiment.resolve`), run flags a `TrainOptions`; unset flags stay None, so every default lives
in the preset or in `TrainOptions`. The data folder goes through `data.packing.ensure_store`, as
the pipeline's extract stage does.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from claritycore.cli.common import field_options, flagless_help, given, with_options
from claritycore.config import DegradationConfig, TrainingConfig, TrainOptions
from claritycore.data.images import list_images
from claritycore.data.packing import ensure_store, pipeline_valid_dir
from claritycore.data.store import INDEX_FILE, pipeline_store
from claritycore.errors import ConfigError, exit_on_user_error
from claritycore.experiment import ExperimentConfig, pretrained_generator, resolve
from claritycore.models import AutoConfig, config_classes
from claritycore.presets import find_preset, get_preset
from claritycore.pretrained import local_starts
from claritycore.schema import field_help, field_names, load_yaml, parse
from claritycore.training import train


@dataclass(frozen=True)
class TrainRun:
    """Everything `train` is called with, resolved from the command line."""

    experiment: ExperimentConfig
    data: Path
    val_dir: Path | None
    output: Path
    options: TrainOptions


def base_preset(model: str, overrides: dict[str, Any]) -> str:
    """The preset `claritycore train` starts from: the one for `model` at the given scale
    (default: the model's), the lite one when num_feat/num_block are the lite preset's."""
    scale = overrides.get("scale") or AutoConfig.from_name(model).scale
    fields = {k: overrides[k] for k in ("num_feat", "num_block") if overrides.get(k) is not None}
    return find_preset(model, scale, fields).name


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are read as YAML (`0.5`, `1e-4`, `true`, `[0.5, 0.8]`)."""
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is not KEY=VALUE, e.g. --set scheduler=multistep")
        values[key.strip().replace("-", "_")] = load_yaml(text, f"--set {item!r}")
    return values


def run_name(experiment: ExperimentConfig) -> str:
    """The default run folder's name: the preset's, or for another architecture the model,
    scale and changed fields (`rrdbnet-x2-num_feat48-num_block10`), never a preset it is not."""
    changes = experiment.model_changes()
    if not changes:
        return experiment.preset
    parts = [experiment.model.model_type, f"x{experiment.model.scale}"]
    return "-".join(parts + [f"{k}{v}" for k, v in changes.items() if k != "scale"])


SECTIONS = ("degradation", "adversarial")


def split_sections(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flag and `--set` values by what they change: `degradation.KEY`/`adversarial.KEY` those
    sections, a `TrainOptions` field the run (`train`), any other key the preset's training or
    model fields (`overrides`)."""
    split: dict[str, dict[str, Any]] = {"overrides": {}, "train": {}}
    split |= {name: {} for name in SECTIONS}
    run = field_names(TrainOptions)
    for key, value in values.items():
        section, dot, field = key.partition(".")
        if dot and section in SECTIONS:
            split[section][field] = value
        elif dot:
            raise ConfigError(
                f"--set {key}=...: {section!r} is no section; use KEY=VALUE for training, "
                "model and run fields, or degradation.KEY / adversarial.KEY"
            )
        else:
            split["train" if key in run else "overrides"][key] = value
    return split


def build_run(preset: str | None, model: str | None, data: Path | None, val_data: Path | None,
              output: Path | None, name: str | None, overrides: dict[str, Any],
              run: dict[str, Any], *, degradation: dict[str, Any] | None = None,
              adversarial: dict[str, Any] | None = None) -> TrainRun:  # fmt: skip
    """Resolve the flags: the experiment config, the data folders and the run options."""
    if preset is None:
        preset = base_preset(model or "rrdbnet", overrides)
    elif model is not None and get_preset(preset).model["model_type"] != model:
        raise ConfigError(f"--model {model} contradicts --preset {preset}; give one of them")
    experiment = resolve(preset, overrides, degradation=degradation, adversarial=adversarial)
    if data is None:
        data = pipeline_store(experiment.model.scale)
        if not data.is_dir():
            raise ConfigError(
                f"no --data given and no pipeline store at {data}; pass --data with a folder of "
                "HR images (e.g. --data data/sample/train) or an extracted store"
            )
    if not data.is_dir():
        raise ConfigError(f"--data {data} is not a folder of HR images or an extracted store")
    is_root = not (data / INDEX_FILE).exists() and not list_images(data)
    if is_root and (data / "train").is_dir():
        data = data / "train"  # a dataset root such as datasets/DIV2K with train/ and valid/
    if val_data is None:
        beside = data.parent / "valid"
        val_data = beside if beside.is_dir() else pipeline_valid_dir(data)
    output = output or Path("runs") / (name or run_name(experiment))
    options = parse(TrainOptions, {k: v for k, v in run.items() if v is not None}, "options")
    return TrainRun(experiment, data, val_data, output, options)


# Every field a flag can take is one (`cli.common.field_options`): a new field needs no edit here.
FIELD_CLASSES = (*config_classes(), TrainingConfig, TrainOptions)
FIELD_OPTIONS = [
    *field_options(*config_classes(), panel="Model (the preset's unless given)", defaults=False),
    *field_options(TrainingConfig, panel="Recipe (the preset's unless given)", defaults=False),
    *field_options(TrainOptions, panel="Run (params.yaml's train section)"),
]
SET_HELP = (
    "KEY=VALUE, the value read as YAML: any field above, and those no flag takes: "
    + "; ".join(f"{k} ({v})" for k, v in flagless_help(*FIELD_CLASSES).items())
    + ". degradation.KEY / adversarial.KEY set those sections (params.yaml lists their keys)."
)


@with_options(*FIELD_OPTIONS)
def train_command(
    preset: str | None = typer.Option(None, help="Preset to start from (`claritycore presets`)."),
    model: str | None = typer.Option(None, help="Model type; with --scale picks the preset."),
    data: Path | None = typer.Option(None, help="Folder of HR images, or an extracted store."),
    val_data: Path | None = typer.Option(
        None,
        help="HR validation images (default: valid/ beside --data; for a pipeline store, "
        "data/raw/<source>/valid).",
    ),
    output: Path | None = typer.Option(None, help="Run folder (default: runs/<name>)."),
    name: str | None = typer.Option(
        None, help="Run name (default: the preset, or the model and its changed fields)."
    ),
    degradation: str | None = typer.Option(
        None, help="degradation.type: " + escape(field_help(DegradationConfig)["type"])
    ),
    set_values: list[str] = typer.Option([], "--set", help=escape(SET_HELP)),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue a run."),
    **fields: Any,
) -> None:
    """Train a model: a preset with flags as overrides (`claritycore presets` lists them)."""
    with exit_on_user_error("error"):
        flags, values = given(fields), parse_set(set_values)
        if repeated := sorted(flags.keys() & values.keys()):
            raise ConfigError(f"--set {repeated[0]}=... repeats a flag; give the value once")
        changes = split_sections(flags | values)
        if degradation is not None:
            changes["degradation"].setdefault("type", degradation)
        job = build_run(
            preset, model, data, val_data, output, name, changes["overrides"], changes["train"],
            degradation=changes["degradation"], adversarial=changes["adversarial"],
        )  # fmt: skip
        base = job.experiment.adversarial and job.experiment.adversarial.base
        generator = pretrained_generator(job.experiment, job.options.pretrained)
        if base and generator is None:
            raise ConfigError(
                f"{job.experiment.preset} trains from a PSNR model: pass --pretrained with "
                f"one, e.g. runs/{base}/model.pt from `claritycore {base}`, or a published "
                "generator (`claritycore models`)"
            )
        # Before any extraction: a start file that does not fit fails here.
        starts = local_starts(job.experiment, generator, strict=job.options.pretrained_strict)
        scale, workers = job.experiment.model.scale, job.options.loader_workers
        # A run that degrades its HR crops on the fly reads no LR: its store packs HR only.
        hr_only = not job.experiment.degradation.reads_store_lr
        store = ensure_store(job.data, scale, workers=workers, hr_only=hr_only)
        if job.val_dir is None and job.options.val_images:
            typer.echo(
                f"note: no validation images found for {job.data} (no valid/ beside it); this "
                "run validates nothing: pass --val-data FOLDER (HR images) to score it",
                err=True,
            )
        train(
            job.experiment,
            train_store=store,
            val_dir=job.val_dir,
            output=job.output / "model.pt",
            checkpoints=job.output / "checkpoints",
            options=job.options,
            live_dir=job.output / "dvclive",
            resume=resume,
            pretrained=starts["generator"],
            pretrained_d=starts["discriminator"],
        )


def preset_command(preset: str) -> Any:
    """`claritycore <preset> …`: `train_command` with the preset fixed."""

    fixed = ("preset", "model", "scale")

    def command(**kwargs: Any) -> None:
        train_command(preset=preset, model=None, scale=None, **kwargs)

    signature = inspect.signature(train_command)
    kept = [p for p in signature.parameters.values() if p.name not in fixed]
    command.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
    command.__annotations__ = {
        k: v for k, v in train_command.__annotations__.items() if k not in fixed
    }
    command.__doc__ = f"Train the {preset} preset ({get_preset(preset).description})."
    return command
