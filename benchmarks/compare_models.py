"""A labelled comparison picture of several models on one image of a set (run by hand).

Panels: the LR input (nearest-neighbour enlarged, so its pixels show; or with `--first bicubic`
its bicubic upscaling), each model's output
with its PSNR-Y, and the HR, all cropped to the window where bicubic upscaling errs most (as
`evaluate`'s comparison crops). The set may carry its own LR (a paired layout: a degraded set),
else its LR is MATLAB bicubic of the HR.

    python -m benchmarks.compare_models --set /tmp/Set14-realesrgan-ref --scale 2 \
        --image barbara --model bicubic-trained=runs/a/model.pt \
        --model degradation-trained=runs/b/model.pt --out docs/realworld-comparison.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from claritycore.data.benchmark_sets import set_images
from claritycore.data.images import save_png
from claritycore.inference import upscale_array
from claritycore.interop import load_weights
from claritycore.metrics import psnr
from claritycore.scoring import detail_window, labelled_strip, load_reference

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    set_folder: Path = typer.Option(..., "--set", help="The set's folder (any layout)."),
    scale: int = typer.Option(..., help="Upscaling factor of the models."),
    image: str = typer.Option(..., help="The image's name (file stem)."),
    models: list[str] = typer.Option(..., "--model", help="LABEL=PATH, in panel order."),
    out: Path = typer.Option(..., help="The PNG to write."),
    first: str = typer.Option("lr", help="First panel: lr (enlarged input) or bicubic."),
) -> None:
    """Write the comparison picture and print each panel's PSNR-Y."""
    pairs = [p for p in set_images(set_folder, scale) if p.hr.stem == image]
    if not pairs:
        raise typer.BadParameter(f"no image {image!r} in {set_folder}")
    reference = load_reference(pairs[0], scale)
    bicubic = psnr(reference.bicubic, reference.hr, crop_border=scale, y_channel=True)
    if first == "bicubic":
        panels = [(f"bicubic {bicubic:.2f} dB", reference.bicubic)]
    else:
        panels = [("LR input", np.repeat(np.repeat(reference.lr, scale, axis=0), scale, axis=1))]
    for item in models:
        label, _, path = item.partition("=")
        sr = upscale_array(load_weights(Path(path))[0], reference.lr)
        score = psnr(sr, reference.hr, crop_border=scale, y_channel=True)
        panels.append((f"{label} {score:.2f} dB", sr))
        typer.echo(f"{label}: PSNR-Y {score:.3f} dB")
    typer.echo(f"bicubic: PSNR-Y {bicubic:.3f} dB")
    panels.append(("HR", reference.hr))
    save_png(labelled_strip(panels, detail_window(reference)), out)
    typer.echo(f"wrote {out}")


if __name__ == "__main__":
    app()
