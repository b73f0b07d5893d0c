"""Evaluate a trained model the way SR papers report it, beside the bicubic baseline.

LR = MATLAB `imresize` of the mod-cropped HR; SR by tiled inference; both SR and bicubic are
quantised to uint8 before PSNR/SSIM, on Y (BT.601, crop = scale: what papers print) and on
RGB (what BasicSR logs). The model's `model.pt` holds whatever training chose to ship (the EMA
weights when EMA was on), so that is what is evaluated.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from claritycore.config import EvalOptions
from claritycore.data.images import IMAGE_SUFFIXES, list_images, load_rgb, save_png
from claritycore.inference import upscale
from claritycore.interop import load_weights
from claritycore.metrics import psnr, ssim
from claritycore.resize import imresize, lr_hr_pair

# HR side of the comparison crops, and how many best/worst images get one.
CROP = 192
COMPARISONS = 3
_GAP = 4


@dataclass(frozen=True)
class ImageScores:
    """One validation image's metrics (the columns of `per_image.csv`)."""

    name: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    ssim_rgb: float
    bicubic_psnr_y: float
    bicubic_ssim_y: float
    bicubic_psnr_rgb: float
    bicubic_ssim_rgb: float
    gain_psnr_y: float
    seconds: float


def _scores(name: str, sr: np.ndarray, bicubic: np.ndarray, hr: np.ndarray, scale: int, seconds):
    def four(img: np.ndarray) -> list[float]:
        return [
            psnr(img, hr, crop_border=scale, y_channel=True),
            ssim(img, hr, crop_border=scale, y_channel=True),
            psnr(img, hr, crop_border=scale),
            ssim(img, hr, crop_border=scale),
        ]

    model, base = four(sr), four(bicubic)
    return ImageScores(name, *model, *base, model[0] - base[0], seconds)


def _detail_crop(bicubic: np.ndarray, hr: np.ndarray) -> tuple[int, int, int]:
    """(top, left, size) of the square where bicubic errs most: where upscaling shows."""
    size = min(CROP, *hr.shape[:2])
    error = np.square(bicubic.astype(np.float32) - hr.astype(np.float32)).sum(axis=2)
    # Sums over every size×size window from an integral image; stride size/4 is plenty.
    integral = np.pad(error.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    stride = max(1, size // 4)
    tops = np.arange(0, hr.shape[0] - size + 1, stride)
    lefts = np.arange(0, hr.shape[1] - size + 1, stride)
    t, left = tops[:, None], lefts[None, :]
    sums = (
        integral[t + size, left + size]
        - integral[t, left + size]
        - integral[t + size, left]
        + integral[t, left]
    )
    i, j = np.unravel_index(np.argmax(sums), sums.shape)
    return int(tops[i]), int(lefts[j]), size


def _side_by_side(bicubic: np.ndarray, sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """bicubic | model | HR crops of the same window, separated by white gaps."""
    top, left, size = _detail_crop(bicubic, hr)
    gap = np.full((size, _GAP, 3), 255, dtype=np.uint8)
    panels = [img[top : top + size, left : left + size] for img in (bicubic, sr, hr)]
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)


def _mean(rows: list[ImageScores], field: str) -> float:
    return float(np.mean([getattr(r, field) for r in rows]))


def summary_table(result: dict[str, Any]) -> Table:
    """Model vs bicubic: PSNR/SSIM on Y and RGB (the rich table `evaluate` prints)."""
    title = f"×{result['scale']} on {result['images']} images ({result['seconds']:.1f}s)"
    table = Table(title=title)
    for column in ("", "PSNR-Y", "SSIM-Y", "PSNR-RGB", "SSIM-RGB"):
        table.add_column(column, justify="right" if column else "left")
    for label, prefix in (("bicubic", "bicubic_"), ("model", "")):
        values = [result[f"{prefix}{m}"] for m in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")]
        table.add_row(
            label, *(f"{v:.2f}" if i % 2 == 0 else f"{v:.4f}" for i, v in enumerate(values))
        )
    table.add_row("gain", f"{result['gain_psnr_y']:+.2f}", "", "", "", style="bold")
    return table


def evaluate(
    model_path: Path,
    valid_dir: Path,
    *,
    out_dir: Path,
    options: EvalOptions = EvalOptions(),
    console: Console | None = None,
) -> dict[str, Any]:
    """Evaluate `model_path` on the HR images in `valid_dir`; write `eval.json`,
    `per_image.csv` and `comparisons/*.png` under `out_dir`; return the eval.json dict."""
    tile, tile_pad, max_images = options.tile, options.tile_pad, options.max_images
    started = time.perf_counter()
    console = console or Console(stderr=True)
    model, meta = load_weights(Path(model_path))
    scale = int(meta["scale"])
    paths = list_images(Path(valid_dir))
    if max_images is not None:
        paths = paths[:max_images]
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {valid_dir}")
    out_dir = Path(out_dir)
    crops_dir = out_dir / "comparisons"
    crops_dir.mkdir(parents=True, exist_ok=True)
    for stale in crops_dir.glob("*.png"):
        stale.unlink()

    rows: list[ImageScores] = []
    crops: dict[str, np.ndarray] = {}
    columns = [TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        for path in progress.track(paths):
            lr, hr = lr_hr_pair(load_rgb(path), scale)
            tic = time.perf_counter()
            sr = upscale(
                model,
                lr,
                tile=tile,
                tile_pad=tile_pad,
                device=options.device,
                precision=options.precision,
                progress=False,
            )
            seconds = time.perf_counter() - tic
            bicubic = imresize(lr, scale)
            rows.append(_scores(path.stem, sr, bicubic, hr, scale, seconds))
            # Only the small crops are kept: all SR images of DIV2K would not fit in memory.
            crops[path.stem] = _side_by_side(bicubic, sr, hr)

    ranked = sorted(rows, key=lambda r: r.gain_psnr_y, reverse=True)
    count = min(COMPARISONS, math.ceil(len(ranked) / 2))
    for i, row in enumerate(ranked[:count], 1):
        save_png(crops[row.name], crops_dir / f"best{i}_{row.name}.png")
    for i, row in enumerate(reversed(ranked[count:][-count:]), 1):
        save_png(crops[row.name], crops_dir / f"worst{i}_{row.name}.png")

    with open(out_dir / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)

    fields = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")
    result: dict[str, Any] = {name: _mean(rows, name) for name in fields}
    result |= {f"bicubic_{name}": _mean(rows, f"bicubic_{name}") for name in fields}
    result |= {
        "gain_psnr_y": result["psnr_y"] - result["bicubic_psnr_y"],
        "images": len(rows),
        "seconds": time.perf_counter() - started,
        "max_images": max_images,
        "scale": scale,
        "preset": meta.get("preset"),
        "step": meta.get("step"),
        "ema": meta.get("ema"),
        "tile": tile,
        "tile_pad": tile_pad,
        "precision": options.precision,
    }
    (out_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(summary_table(result))
    return result
