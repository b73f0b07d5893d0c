"""What evaluating a set costs beyond the model's inference: the bicubic baseline, metrics, crops.

    python -m benchmarks.bench_eval                                  # Set14 ×4, rrdbnet-litex4
    python -m benchmarks.bench_eval --set ../shared/benchmarks/Set5 --preset rrdbnet-litex2

Runs `evaluate` on one set and splits its time, per image, into reading the HR and making the
reference (LR, bicubic upscaling, bicubic PSNR/SSIM: the baseline), the model's tiled inference,
and the model's PSNR/SSIM plus the comparison crop. The model has random weights: the time does
not depend on their values. Prints images/s and the share of inference the rest takes (the
target: at most 25%); `--repeats` runs the whole set several times and reports medians.

With `--perceptual` (the default, as `evaluate.perceptual`), also seconds per image of NIQE
(model and bicubic output: two calls), LPIPS-Alex (randomly initialised, as the time does not
depend on the weights, so torchvision's file is not needed) and, for scale, of all PSNR/SSIM
calls (model Y and RGB, bicubic Y).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import typer
from rich.console import Console
from rich.table import Table

from claritycore import evaluation, perceptual_scoring, scoring
from claritycore.config import EvaluateOptions
from claritycore.evaluation import evaluate
from claritycore.experiment import resolve
from claritycore.lpips import LPIPS
from claritycore.models import AutoModel
from claritycore.weights import save_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


def timed(module, name: str, totals: dict[str, float]):
    """Wrap `module.name` so its seconds add up in `totals[name]`; returns the original."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        tic = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - tic

    setattr(module, name, wrapper)
    return original


def run_once(model_path: Path, folder: Path, options: EvaluateOptions) -> dict[str, float]:
    """Seconds of each part of one `evaluate` of `folder`."""
    totals: dict[str, float] = dict.fromkeys(("niqe", "lpips_distance", "psnr", "ssim"), 0.0)
    parts = [(perceptual_scoring, "niqe"), (perceptual_scoring, "lpips_distance")]
    parts += [(scoring, name) for name in ("load_reference", "upscale_array", "comparison")]
    parts += [(scoring, "psnr"), (scoring, "ssim")]
    originals = {(module, name): timed(module, name, totals) for module, name in parts}
    lpips_network = evaluation.lpips_network
    evaluation.lpips_network = lambda options, console: LPIPS()
    try:
        with tempfile.TemporaryDirectory() as out:
            tic = time.perf_counter()
            result = evaluate(model_path, {"set": folder}, out_dir=Path(out), options=options,
                              console=Console(quiet=True))  # fmt: skip
            totals["total"] = time.perf_counter() - tic
    finally:
        for (module, name), original in originals.items():
            setattr(module, name, original)
        evaluation.lpips_network = lpips_network
    totals["images"] = result["set"]["images"]
    # What is neither the reference nor inference: the model's metrics, crops, CSV, JSON.
    totals["metrics_and_crops"] = (
        totals["total"] - totals["load_reference"] - totals["upscale_array"]
    )
    return totals


def main(
    folder: Path = typer.Option(SHARED / "Set14", "--set", help="A folder of HR images."),
    preset: str = typer.Option("rrdbnet-litex4", help="The model (random weights)."),
    tile: int = typer.Option(EvaluateOptions.tile, help="Tile side (LR pixels), 0 = whole image."),
    precision: str = typer.Option("auto", help="auto, fp32, bf16."),
    repeats: int = typer.Option(3, help="Runs over the whole set; medians are reported."),
    perceptual: bool = typer.Option(EvaluateOptions.perceptual, help="Also NIQE and LPIPS."),
) -> None:
    """images/s of evaluate, and the share of inference the rest of it takes."""
    console = Console()
    experiment = resolve(preset, {})
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "model.pt"
        torch.manual_seed(0)
        save_model(model_path, AutoModel.from_config(experiment.model), experiment={}, step=0)
        options = EvaluateOptions(
            tile=tile, precision=precision, device="cpu", perceptual=perceptual
        )
        run_once(model_path, folder, options)  # warm-up: first-call costs
        runs = [run_once(model_path, folder, options) for _ in range(repeats)]
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    inference = median["upscale_array"]
    table = Table(title=f"evaluate {folder.name} ×{experiment.model.scale}, {preset}, "
                        f"{int(median['images'])} images, median of {repeats}")  # fmt: skip
    for column in ("part", "seconds", "share of inference"):
        table.add_column(column, justify="left" if column == "part" else "right")
    parts = {
        "inference (tiled)": inference,
        "read HR + LR + bicubic + its metrics": median["load_reference"],
        "model metrics + crops + files": median["metrics_and_crops"],
        "  of which crops": median["comparison"],
        "  of which NIQE": median["niqe"],
        "  of which LPIPS": median["lpips_distance"],
    }
    for part, seconds in parts.items():
        table.add_row(part, f"{seconds:.2f}", f"{100 * seconds / inference:.1f}%")
    console.print(table)
    images = median["images"]
    metrics = Table(title="seconds per image (median of the runs)")
    for column in ("metric", "s/image", "vs PSNR+SSIM"):
        metrics.add_column(column, justify="left" if column == "metric" else "right")
    reference = (median["psnr"] + median["ssim"]) / images
    per_image = {
        "PSNR + SSIM (model Y, RGB; bicubic Y)": reference,
        "NIQE (model + bicubic)": median["niqe"] / images,
        "LPIPS-Alex (model vs HR)": median["lpips_distance"] / images,
        "inference": inference / images,
    }
    for metric, seconds in per_image.items():
        metrics.add_row(metric, f"{seconds:.3f}", f"{seconds / reference:.2f}x")
    console.print(metrics)
    overhead = median["total"] - inference
    console.print(
        f"{median['images'] / median['total']:.2f} images/s; everything but inference: "
        f"{100 * overhead / inference:.1f}% of inference (target <= 25%); "
        f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    typer.run(main)
