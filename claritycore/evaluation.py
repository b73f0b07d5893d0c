"""Evaluate a trained model on several image sets the way SR papers report it (`scoring` has the
protocol), beside the bicubic baseline.

With `options.degrade`, every set is also scored on a degraded copy, `<set>-realesrgan`
(`data.degraded`: made once with a fixed seed and cached), beside the set itself.

Writes, under `out_dir`: `eval.json` (one section per set: the figures `dvc exp show` lists as
`Set5.psnr_y`, `Set5-realesrgan.psnr_y`, `Set14.niqe`, `valid.lpips` and so on),
`per_image/<set>.csv`, and
`comparisons/<set>/<image>.png` (labelled bicubic | model | HR crops of each set's first
images, at the same place in every experiment).
The model's `model.pt` holds whatever training chose to ship (the EMA weights when EMA was on).
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from claritycore.config import EvaluateOptions
from claritycore.data import backbones
from claritycore.data.benchmark_sets import set_images
from claritycore.data.degraded import DEGRADED_DIR, degraded_set
from claritycore.data.images import save_png
from claritycore.data.pairs import ImagePair
from claritycore.device import resolve_device
from claritycore.errors import UserError
from claritycore.interop import load_weights
from claritycore.lpips import LPIPS, load_lpips
from claritycore.perceptual_scoring import perceptual_scores
from claritycore.scoring import COMPARISONS, ImageScores, SetScores, load_references, score_set


class NoUsableImages(UserError, ValueError):
    """Every image of a set was unreadable or too small."""


def scored_model(meta: Mapping[str, Any]) -> str:
    """What eval.json says was scored: the preset that trained it, a GAN stage with the PSNR
    preset it started from, or the architecture of weights trained elsewhere."""
    experiment = meta["experiment"]
    if experiment is None:
        return meta["model_type"]
    adversarial = experiment.get("adversarial")  # absent in L1 and older files
    suffix = f" (GAN stage from {adversarial['base']})" if adversarial else ""
    return f"{experiment['preset']}{suffix}"


# The perceptual columns of the printed table: (eval.json key, header, format).
_PERCEPTUAL_COLUMNS = (
    ("niqe", "NIQE", ".3f"),
    ("bicubic_niqe", "bicubic NIQE", ".3f"),
    ("lpips", "LPIPS", ".4f"),
)


def summary_table(result: dict[str, Any], seconds: float) -> Table:
    """One row per set: model and bicubic PSNR/SSIM, and NIQE/LPIPS where scored (the rich
    table `evaluate` prints)."""
    sets = {name: value for name, value in result.items() if isinstance(value, dict)}
    table = Table(title=f"×{result['scale']}, {seconds:.1f}s")
    headers = ["set", "images", "PSNR-Y", "SSIM-Y", "bicubic", "gain", "PSNR-RGB", "SSIM-RGB"]
    # Lower is better for both: NIQE (no reference) and LPIPS (distance to HR).
    extra = [c for c in _PERCEPTUAL_COLUMNS if any(c[0] in s for s in sets.values())]
    for header in headers + [header for _, header, _ in extra]:
        table.add_column(header, justify="left" if header == "set" else "right")
    for name, s in sets.items():
        table.add_row(
            name,
            str(s["images"]),
            f"{s['psnr_y']:.2f}",
            f"{s['ssim_y']:.4f}",
            f"{s['bicubic_psnr_y']:.2f}",
            f"{s['gain_psnr_y']:+.2f}",
            f"{s['psnr_rgb']:.2f}",
            f"{s['ssim_rgb']:.4f}",
            *(format(s[key], spec) if key in s else "-" for key, _, spec in extra),
        )
    return table


def lpips_network(options: EvaluateOptions, console: Console) -> LPIPS | None:
    """LPIPS-Alex on the evaluation device if torchvision's AlexNet weights are there (found
    and verified by `backbones`); else None and one warning line saying what to put where."""
    try:
        path = backbones.require("alexnet")
    except UserError as error:
        console.print(f"[yellow]LPIPS skipped[/]: {error}", soft_wrap=True)
        return None
    return load_lpips(path, resolve_device(options.device))


def _write_set(out_dir: Path, name: str, scores: SetScores) -> None:
    with open(out_dir / "per_image" / f"{name}.csv", "w", newline="") as f:
        rows = [asdict(row) for row in scores.rows]
        # Figures not scored (None in every row) get no column.
        columns = [key for key in rows[0] if any(row[key] is not None for row in rows)]
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    crops_dir = out_dir / "comparisons" / name
    crops_dir.mkdir(parents=True)
    for image, strip in scores.crops.items():
        save_png(strip, crops_dir / f"{image}.png")


def with_degraded(
    images: Mapping[str, list[ImagePair]],
    *,
    scale: int,
    options: EvaluateOptions,
    cache: Path,
    console: Console,
) -> dict[str, list[ImagePair]]:
    """Each set followed by its degraded copy `<set>-<options.degrade>` (LR from the cache)."""
    result: dict[str, list[ImagePair]] = {}
    for name, files in images.items():
        degraded = f"{name}-{options.degrade}"
        if degraded in images:
            raise UserError(
                f"a set is named {degraded!r}, the name of {name}'s degraded copy; rename it"
            )
        made: list[str] = []
        result[name] = files
        result[degraded] = degraded_set(
            name, files, scale=scale, seed=options.degrade_seed, cache=cache, on_make=made.append
        )
        if made:
            console.print(f"{degraded}: {len(made)} degraded LR images made (once) in {cache}")
    return result


def evaluate(
    model_path: Path,
    sets: Mapping[str, Path],
    *,
    out_dir: Path,
    options: EvaluateOptions = EvaluateOptions(),
    console: Console | None = None,
    degraded_cache: Path = DEGRADED_DIR,
) -> dict[str, Any]:
    """Score `model_path` on each set (name -> folder, any layout that
    `benchmark_sets.set_images` reads), and with `options.degrade` on its degraded copy (cached
    in `degraded_cache`); write the files above; return the eval.json dict."""
    started = time.perf_counter()
    console = console or Console(stderr=True)
    model, meta = load_weights(Path(model_path))
    scale = int(meta["scale"])
    # Every folder is checked before any work, so a missing set fails in a second.
    paths = {name: set_images(folder, scale)[: options.max_images] for name, folder in sets.items()}
    folders = dict(sets)
    if options.degrade is not None:
        paths = with_degraded(
            paths, scale=scale, options=options, cache=degraded_cache, console=console
        )
        folders |= {f"{name}-{options.degrade}": folder for name, folder in sets.items()}
    result: dict[str, Any] = {"model": scored_model(meta), "scale": scale}
    result |= {"step": meta.get("step"), "ema": meta.get("ema")}
    extra = perceptual_scores(lpips_network(options, console)) if options.perceptual else None
    scored: dict[str, SetScores] = {}
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as progress:
        for name, files in paths.items():
            skipped: list[str] = []
            task = progress.add_task(f"{name} ×{scale}", total=len(files))

            def skip(why: str, skipped: list[str] = skipped, task: TaskID = task) -> None:
                console.print(f"[yellow]skipped[/] {why}")
                skipped.append(why)
                progress.advance(task)

            def scored_one(_row: ImageScores, task: TaskID = task) -> None:
                progress.advance(task)

            scores = score_set(
                model,
                load_references(files, scale, on_skip=skip),
                scale=scale,
                options=options,
                crops=COMPARISONS,
                on_image=scored_one,
                extra=extra,
            )
            if not scores.rows:
                raise NoUsableImages(
                    f"set {name!r} ({folders[name]}) has no usable image at ×{scale}: "
                    + "; ".join(skipped)
                )
            scored[name] = scores
            result[name] = scores.means() | ({"skipped": skipped} if skipped else {})
    # Written only once every set is scored: a failure leaves the previous results whole.
    out_dir = Path(out_dir)
    for generated in ("per_image", "comparisons"):
        shutil.rmtree(out_dir / generated, ignore_errors=True)
    (out_dir / "per_image").mkdir(parents=True)
    for name, scores in scored.items():
        _write_set(out_dir, name, scores)
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(summary_table(result, time.perf_counter() - started))
    return result
