"""The scoring protocol: a model's output against HR, beside MATLAB bicubic, as SR papers print it.

Training's periodic validation and `evaluate` both call `score_set`, so for the same weights,
images and inference options their figures are equal by construction. Per image:

- HR = the image mod-cropped to a multiple of the scale; LR = MATLAB `imresize(HR, 1/scale)`,
  or the LR the set gives (a paired layout, or a degraded copy: `data.degraded`);
- SR = tiled inference of the LR, quantised to uint8 (the figures are those of the saved image);
  bicubic = MATLAB `imresize(LR, scale)` of that same LR, also uint8;
- PSNR/SSIM with a `scale`-pixel border cropped, on BT.601 Y (unrounded, BasicSR) for colour
  images and on the image's own channel for greyscale ones; the model also on all channels
  ("rgb", what BasicSR logs). Bicubic is scored on Y only: its RGB SSIM would cost as much as
  the model's, for a figure no table prints.
- Figures beyond these come from the caller (`score_set`'s `extra`): `evaluate`'s NIQE and
  LPIPS (`perceptual_scoring`), kept out of this module so that training, whose validation
  scores PSNR/SSIM only, does not import them (nor rerun when they change).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypedDict

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from claritycore.config import EvaluateOptions
from claritycore.data.images import ImageReadError, load_channels
from claritycore.data.pairs import ImagePair
from claritycore.ensemble import SelfEnsemble
from claritycore.inference import upscale_array
from claritycore.metrics import min_side, psnr, ssim
from claritycore.resize import imresize, lr_hr_pair, modcrop

# HR side of the comparison crops; labelled panels bicubic | model | HR.
CROP = 192
# Comparison crops per set: each set's first images by name, so experiments line up.
COMPARISONS = 4
_GAP = 4
LABEL_HEIGHT = 20
# What a set's section of eval.json averages, besides the gain and the image count.
FIGURES = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "bicubic_psnr_y", "bicubic_ssim_y")
# Averaged over the images that have them, when scored: None per image when not asked for,
# NaN where undefined (NIQE needs two 96×96 blocks; LPIPS a side of 31 pixels).
PERCEPTUAL_FIGURES = ("niqe", "bicubic_niqe", "lpips")


class UnusableImage(ValueError):
    """An image that cannot be scored at this scale (unreadable, or too small)."""


@dataclass(frozen=True)
class Reference:
    """An HR image ready to score against: its LR input, bicubic upscaling and bicubic scores.

    Arrays are uint8 HxWxC with the file's channels (C = 1 for greyscale, else 3).
    """

    name: str
    lr: np.ndarray
    hr: np.ndarray
    bicubic: np.ndarray
    bicubic_scores: tuple[float, float]  # psnr_y, ssim_y


class ExtraFigures(TypedDict, total=False):
    """The `ImageScores` figures a caller may add (PERCEPTUAL_FIGURES)."""

    niqe: float | None
    bicubic_niqe: float | None
    lpips: float | None


# More of an image's figures (`ImageScores` fields, e.g. `niqe`) from its reference, the model's
# output and the scale.
ExtraScores = Callable[[Reference, np.ndarray, int], ExtraFigures]


def _on_y(img: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """(psnr_y, ssim_y); a greyscale image's Y is its channel."""
    return (
        psnr(img, hr, crop_border=scale, y_channel=True),
        ssim(img, hr, crop_border=scale, y_channel=True),
    )


def _on_rgb(img: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """(psnr_rgb, ssim_rgb) over all channels; for a greyscale image, its channel."""
    if img.shape[2] == 1:
        return _on_y(img, hr, scale)
    return psnr(img, hr, crop_border=scale), ssim(img, hr, crop_border=scale)


def make_reference(
    name: str, pixels: np.ndarray, scale: int, lr: np.ndarray | None = None
) -> Reference:
    """The reference for HR `pixels`, scored on `lr` when given (its size must be the HR's,
    mod-cropped, / scale), else on the HR's MATLAB bicubic downscale; UnusableImage if too
    small to score at `scale`."""
    height, width = (side - side % scale for side in pixels.shape[:2])
    if min(height, width) < min_side(scale):
        raise UnusableImage(
            f"{pixels.shape[1]}×{pixels.shape[0]} is too small for ×{scale}: scoring needs "
            f"sides of {min_side(scale)} pixels (SSIM's window after the {scale}-pixel border crop)"
        )
    if lr is None:
        lr, hr = lr_hr_pair(pixels, scale)
    else:
        hr = modcrop(pixels, scale)
        if lr.shape[:2] != (height // scale, width // scale):
            raise UnusableImage(
                f"its LR is {lr.shape[1]}×{lr.shape[0]}, not {width // scale}×{height // scale}"
            )
        if lr.shape[2] != hr.shape[2]:  # a grey HR with a colour LR, or the reverse
            lr, hr = (np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in (lr, hr))
    hr = np.ascontiguousarray(hr)
    bicubic = imresize(lr, scale)
    return Reference(name, lr, hr, bicubic, _on_y(bicubic, hr, scale))


def load_reference(image: ImagePair, scale: int) -> Reference:
    """The reference for one image of a set (HR file, and its LR file if the set gives one);
    UnusableImage naming the file if it is not one."""
    try:
        lr = None if image.lr is None else load_channels(image.lr)
        return make_reference(image.hr.stem, load_channels(image.hr), scale, lr)
    except ImageReadError as error:
        raise UnusableImage(str(error)) from error
    except UnusableImage as error:
        raise UnusableImage(f"{image.hr}: {error}") from error


def load_references(
    images: Iterable[ImagePair], scale: int, on_skip: Callable[[str], None]
) -> Iterator[Reference]:
    """References for a set's `images` (`benchmark_sets.set_images`), one at a time; an
    unusable file goes to `on_skip(why)` (the reason names the file)."""
    for image in images:
        try:
            yield load_reference(image, scale)
        except UnusableImage as error:
            on_skip(str(error))


@dataclass(frozen=True)
class ImageScores:
    """One image's figures (the columns of a per-image CSV)."""

    name: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    ssim_rgb: float
    bicubic_psnr_y: float
    bicubic_ssim_y: float
    gain_psnr_y: float
    seconds: float
    niqe: float | None = None
    bicubic_niqe: float | None = None
    lpips: float | None = None


@dataclass
class SetScores:
    """A set's per-image figures and its comparison crops."""

    rows: list[ImageScores] = field(default_factory=list)
    crops: dict[str, np.ndarray] = field(default_factory=dict)

    def means(self) -> dict[str, float | int]:
        """The set's figures: mean model and bicubic PSNR/SSIM, the gain and the image count;
        each perceptual figure that was scored, over the images where it is defined."""
        result: dict[str, float | int] = {
            name: float(np.mean([getattr(row, name) for row in self.rows])) for name in FIGURES
        }
        for name in PERCEPTUAL_FIGURES:
            values = [getattr(row, name) for row in self.rows]
            defined = [v for v in values if v is not None and not np.isnan(v)]
            if defined:
                result[name] = float(np.mean(defined))
        result["gain_psnr_y"] = result["psnr_y"] - result["bicubic_psnr_y"]
        result["images"] = len(self.rows)
        return result


def _detail_window(bicubic: np.ndarray, hr: np.ndarray) -> tuple[int, int, int]:
    """(top, left, size) of the square where bicubic errs most: where upscaling shows.

    It depends on the image alone, so an image's crop sits at the same place in every
    experiment and `dvc plots diff` shows like beside like.
    """
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


def comparison(reference: Reference, sr: np.ndarray, psnr_y: float) -> np.ndarray:
    """bicubic | model | HR crops of one window, each labelled, as HxWx3 uint8."""
    bicubic_psnr = reference.bicubic_scores[0]
    panels = [(f"bicubic {bicubic_psnr:.2f} dB", reference.bicubic)]
    panels += [(f"model {psnr_y:.2f} dB", sr), ("HR", reference.hr)]
    return labelled_strip(panels, _detail_window(reference.bicubic, reference.hr))


def labelled_strip(
    panels: list[tuple[str, np.ndarray]], window: tuple[int, int, int]
) -> np.ndarray:
    """The (top, left, size) `window` of each (label, HR-sized image), side by side with its
    label above it, as HxWx3 uint8."""
    top, left, size = window
    width = len(panels) * size + (len(panels) - 1) * _GAP
    strip = Image.new("RGB", (width, size + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=LABEL_HEIGHT - 6)
    for i, (label, image) in enumerate(panels):
        crop = image[top : top + size, left : left + size]
        if crop.shape[2] == 1:
            crop = np.repeat(crop, 3, axis=2)
        x = i * (size + _GAP)
        strip.paste(Image.fromarray(np.ascontiguousarray(crop)), (x, LABEL_HEIGHT))
        draw.text((x + 3, 3), label, fill="black", font=font)
    return np.asarray(strip)


def detail_window(reference: Reference) -> tuple[int, int, int]:
    """The window `comparison` crops for this image: where bicubic errs most."""
    return _detail_window(reference.bicubic, reference.hr)


def score_set(
    model: nn.Module,
    references: Iterable[Reference],
    *,
    scale: int,
    options: EvaluateOptions = EvaluateOptions(),
    crops: int = 0,
    on_image: Callable[[ImageScores], None] | None = None,
    extra: ExtraScores | None = None,
) -> SetScores:
    """Score `model` on `references`; keep labelled crops of the first `crops` images.

    `options` gives the inference: tiling, device, precision and `self_ensemble`.
    `model` is moved to the device and put in eval mode (pass a copy of a training model).
    `extra` adds figures to each image's row (`perceptual_scoring.perceptual_scores`).
    """
    network = SelfEnsemble(model) if options.self_ensemble else model
    result = SetScores()
    for reference in references:
        tic = time.perf_counter()
        sr = upscale_array(
            network,
            reference.lr,
            tile=options.tile,
            tile_pad=options.tile_pad,
            device=options.device,
            precision=options.precision,
            progress=False,
        )
        seconds = time.perf_counter() - tic
        model_scores = _on_y(sr, reference.hr, scale) + _on_rgb(sr, reference.hr, scale)
        gain = model_scores[0] - reference.bicubic_scores[0]
        row = ImageScores(reference.name, *model_scores, *reference.bicubic_scores, gain, seconds)
        if extra is not None:
            row = replace(row, **extra(reference, sr, scale))
        result.rows.append(row)
        if len(result.crops) < crops:
            result.crops[reference.name] = comparison(reference, sr, model_scores[0])
        if on_image is not None:
            on_image(row)
    return result
