"""`claritycore upscale`: upscale an image or a folder of images with a trained model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from PIL import Image, UnidentifiedImageError
from rich.console import Console

from claritycore.cli.common import MODEL_HELP, field_options, given, with_options
from claritycore.config import EvaluateOptions
from claritycore.data.images import IMAGE_SUFFIXES, list_images, png_rawmode
from claritycore.device import resolve_device
from claritycore.ensemble import SelfEnsemble
from claritycore.errors import UserError, exit_on_user_error
from claritycore.inference import inference_precision, upscale
from claritycore.interop import load_weights
from claritycore.pretrained import weights_path
from claritycore.schema import parse

# The keys of params.yaml's evaluate section that upscaling takes too.
INFERENCE_KEYS = ("tile", "tile_pad", "self_ensemble", "device", "precision")


@with_options(
    *field_options(EvaluateOptions, only=INFERENCE_KEYS, panel="params.yaml's evaluate keys")
)
def upscale_command(
    input: Path = typer.Argument(..., help="An image file or a folder of images."),
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the upscaled PNGs."),
    overwrite: bool = typer.Option(False, help="Replace outputs that already exist."),
    **fields: Any,
) -> None:
    """Upscale an image or every image in a folder; results are PNGs named after the inputs."""
    console = Console()
    if input.is_dir():
        sources = list_images(input)
    elif input.is_file():
        sources = [input]
    else:
        sources = []
    with exit_on_user_error("error"):
        if not input.exists():
            raise UserError(f"input {input} does not exist (give an image file or a folder)")
        if not sources:
            raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {input}")
        options = parse(EvaluateOptions, given(fields), "options")
        net, meta = load_weights(weights_path(model))
        dev = resolve_device(options.device)
    if options.self_ensemble:
        net = SelfEnsemble(net)
    precision = options.precision
    runs = inference_precision(dev) if precision == "auto" else precision
    ensemble = ", self-ensemble ×8" if options.self_ensemble else ""
    described = f"×{meta['scale']} {meta['format']} model on {dev}, {runs}{ensemble}"
    console.print(f"{Path(model).name}: {described}")
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
                    # Pillow decodes 16-bit colour PNGs to 8 bits per channel (the high byte)
                    # and cannot write 48/64-bit PNGs; 16-bit greyscale keeps its 16 bits.
                    console.print(
                        f"[yellow]warning[/yellow] {source.name}: 16-bit colour is read, and "
                        "written, as 8-bit RGB(A): the low byte of each channel is lost",
                        soft_wrap=True,
                    )
                tic = time.perf_counter()
                result = upscale(
                    net,
                    image,
                    tile=options.tile,
                    tile_pad=options.tile_pad,
                    device=dev,
                    precision=precision,
                )
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
