"""`claritycore evaluate`: PSNR/SSIM of a model on one or more image sets, beside bicubic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from claritycore.cli.common import MODEL_HELP, field_options, given, with_options
from claritycore.config import EvaluateOptions
from claritycore.data.benchmark_sets import set_name
from claritycore.data.degraded import DEGRADED_DIR
from claritycore.errors import UserError, exit_on_user_error
from claritycore.evaluation import evaluate
from claritycore.pretrained import weights_path
from claritycore.schema import parse

DATA_HELP = (
    "A set to score: PATH or NAME=PATH, a folder of HR images (flat, or HR/, GTmod12/, GT/, "
    "original/, image_SRF_<scale>/ inside), or of HR images with their own LR (HR/ + LR/, "
    "GT/ + LQ/, *_HR + *_LR<scale>), scored on that LR. Repeat for several sets, e.g. "
    "--data Set5=data/benchmarks/Set5 --data data/benchmarks/Set14."
)


def parse_sets(specs: list[str]) -> dict[str, Path]:
    """`NAME=PATH` or `PATH` (named after its folder) -> {name: path}; a name used twice fails."""
    sets: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        folder = Path(path if sep else spec)
        name = name if sep else set_name(folder)
        if not name:
            raise UserError(f"--data {spec!r}: empty set name; use NAME=PATH")
        if name in sets:
            raise UserError(
                f"--data: two sets are named {name!r} ({sets[name]}, {folder}); "
                "name them with NAME=PATH"
            )
        sets[name] = folder
    return sets


@with_options(
    *field_options(
        EvaluateOptions, names={"degrade_seed": "--seed"}, panel="params.yaml's evaluate section"
    )
)
def evaluate_command(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    data: list[str] = typer.Option(..., "--data", help=DATA_HELP),
    out: Path = typer.Option(Path("eval"), help="Folder for eval.json, per_image/, comparisons/."),
    degraded_cache: Path = typer.Option(
        DEGRADED_DIR, help="Folder caching the degraded copies, one subfolder per set and seed."
    ),
    **fields: Any,
) -> None:
    """PSNR/SSIM (Y and RGB) of a model against the bicubic baseline, as papers report them,
    and NIQE/LPIPS: one row per set."""
    console = Console()
    with exit_on_user_error("error"):
        options = parse(EvaluateOptions, given(fields), "options")
        sets = parse_sets(data)
        evaluate(
            weights_path(model),
            sets,
            out_dir=out,
            options=options,
            console=console,
            degraded_cache=degraded_cache,
        )
    console.print(f"wrote {out / 'eval.json'}, {out / 'per_image'}/, {out / 'comparisons'}/")
