"""`claritycore upscale`, `claritycore evaluate` and `claritycore export`."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from PIL import Image, UnidentifiedImageError
from rich.console import Console

from claritycore.data.images import IMAGE_SUFFIXES, list_images, png_rawmode
from claritycore.device import resolve_device
from claritycore.inference import upscale
from claritycore.weights import EXPORT_FORMATS, export_weights, load_weights

MODEL_HELP = "Weights: a ClarityCore model.pt, a BasicSR/Real-ESRGAN/ESRGAN .pth or .safetensors."


def _fail(console: Console, message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def _load(console: Console, path: Path):
    try:
        return load_weights(path)
    except (OSError, ValueError, ImportError) as error:
        raise _fail(console, str(error)) from None


def upscale_command(
    input: Path = typer.Argument(..., help="An image file or a folder of images."),
    model: Path = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the upscaled PNGs."),
    tile: int = typer.Option(512, help="Tile side in LR pixels; 0 = whole image at once."),
    tile_pad: int = typer.Option(16, help="Context pixels around each tile (hides seams)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, …"),
    overwrite: bool = typer.Option(False, help="Replace outputs that already exist."),
) -> None:
    """Upscale an image or every image in a folder; results are PNGs named after the inputs."""
    console = Console()
    if input.is_dir():
        sources = list_images(input)
    elif input.is_file():
        sources = [input]
    else:
        raise _fail(console, f"input {input} does not exist (give an image file or a folder)")
    if not sources:
        raise _fail(console, f"no images ({', '.join(IMAGE_SUFFIXES)}) in {input}")
    net, meta = _load(console, model)
    dev = resolve_device(device)
    console.print(f"{model.name}: ×{meta['scale']} {meta['format']} model on {dev}")
    output.mkdir(parents=True, exist_ok=True)
    done, skipped, failed = 0, 0, []
    claimed: set[Path] = set()
    started = time.perf_counter()
    for source in sources:
        # PNG keeps every mode we return (16-bit, alpha, palette) without a lossy re-encode.
        target = output / f"{source.stem}.png"
        if target in claimed:
            failed.append((source, f"another input already writes {target.name}"))
            continue
        claimed.add(target)
        if target.exists() and not overwrite:
            console.print(f"[yellow]skip[/yellow] {source.name}: {target} exists (--overwrite)")
            skipped += 1
            continue
        try:
            with Image.open(source) as image:
                reduced = png_rawmode(image) in ("RGB;16B", "RGBA;16B")
                image.load()
                icc = image.info.get("icc_profile")
                if reduced:
                    console.print(f"[yellow]note[/yellow] {source.name}: read as 8-bit RGB")
                tic = time.perf_counter()
                result = upscale(net, image, tile=tile, tile_pad=tile_pad, device=dev)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            console.print(f"[red]failed[/red] {source.name}: {error}")
            failed.append((source, str(error)))
            continue
        result.save(target, icc_profile=icc)
        size = "×".join(map(str, result.size))
        console.print(f"{source.name} → {target} ({size}, {time.perf_counter() - tic:.1f}s)")
        done += 1
    elapsed = time.perf_counter() - started
    console.print(
        f"[bold]{done} upscaled[/bold], {skipped} skipped (exist), {len(failed)} failed "
        f"in {elapsed:.1f}s"
    )
    for source, reason in failed:
        console.print(f"  [red]✗[/red] {source}: {reason}")
    if failed:
        raise typer.Exit(1)


def evaluate_command(
    model: Path = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    data: Path = typer.Option(..., "--data", help="Folder of HR validation images."),
    max_images: int | None = typer.Option(None, help="Evaluate only the first N images."),
    tile: int = typer.Option(512, help="Tile side in LR pixels; 0 = whole image at once."),
    tile_pad: int = typer.Option(16, help="Context pixels around each tile."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, …"),
    out: Path = typer.Option(Path("eval"), help="Folder for eval.json, per_image.csv, crops."),
) -> None:
    """PSNR/SSIM (Y and RGB) of a model against the bicubic baseline, as papers report them."""
    from claritycore.evaluation import evaluate

    console = Console()
    try:
        evaluate(
            model,
            data,
            out_dir=out,
            tile=tile,
            tile_pad=tile_pad,
            max_images=max_images,
            device=device,
            console=console,
        )
    except (OSError, ValueError, ImportError) as error:
        raise _fail(console, str(error)) from None
    console.print(f"wrote {out / 'eval.json'}, {out / 'per_image.csv'}, {out / 'comparisons'}/")


def export_command(
    model: Path = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    format: str = typer.Option(..., "--format", help=f"One of {', '.join(EXPORT_FORMATS)}."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
) -> None:
    """Export weights for other tools: BasicSR/Real-ESRGAN .pth, safetensors or ONNX."""
    console = Console()
    net, meta = _load(console, model)
    if format == "basicsr" and net.config.upsampler != "nearest":
        console.print(
            "[yellow]note[/yellow] pixel-shuffle upsampler: Real-ESRGAN/spandrel expect "
            "conv_up (upsampler=nearest); ClarityCore loads this file either way"
        )
    try:
        export_weights(net, output, format, ema=bool(meta["ema"]), metadata=meta)
    except (OSError, ValueError, ImportError, RuntimeError) as error:
        raise _fail(console, str(error)) from None
    console.print(f"wrote {output} ({format}, ×{meta['scale']}, ema={meta['ema']})")
