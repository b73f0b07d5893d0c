"""Real-ESRGAN's second-order degradation, batched in torch on the tensors' device.

The steps and their order are those of Real-ESRGAN's training (`RealESRGANModel.feed_data` in
BasicSR 1.4.2): the unsharp-masked HR is blurred, resized, noised and JPEG-compressed; then
blurred again (sometimes), resized, noised; then resized to the LR size with a sinc filter and
JPEG-compressed, in either order; then clamped and rounded to 1/255. The random choices come
from `draws` (per sample) and `draw_step` (per batch), so the result is a pure function of the
HR, the seed, the sample indices and the step.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from claritycore.config import DegradationConfig
from claritycore.degradation.draws import (
    FINAL_SINC_SIZE,
    BatchedDraws,
    ResizeDraw,
    StepDraw,
    collate_draws,
    draw_sample,
    draw_step,
)
from claritycore.degradation.jpeg import jpeg_compress
from claritycore.resize import modcrop

# BasicSR's USMSharp: a 51-tap Gaussian (OpenCV's sigma for that size, 0.3·(25 - 1) + 0.8 = 8),
# residuals above 10/255 sharpened by half, blended through the blurred mask.
USM_RADIUS, USM_WEIGHT, USM_THRESHOLD = 51, 0.5, 10 / 255
# torchvision's (ITU-R 601) grey, as Real-ESRGAN's grey Poisson noise uses it.
_GREY = (0.2989, 0.587, 0.114)


def _pad(image: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect padding as Real-ESRGAN's filter2D; replicate where an image is too small for it."""
    mode = "reflect" if pad < min(image.shape[-2:]) else "replicate"
    return F.pad(image, (pad, pad, pad, pad), mode=mode)


def filter2d(image: torch.Tensor, kernels: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Correlate each (3, H, W) sample with its own kernel (B, K, K), padded by reflection, as
    one grouped convolution; samples whose kernel side `sizes` is 1 (a pulse) are kept as
    they are. (The CPU's depthwise convolution vectorises over channels: splitting the batch
    by kernel side to skip the zero padding made it slower, not faster.)"""
    _, c, h, w = image.shape
    chosen = (sizes > 1).nonzero().flatten()
    if len(chosen) == 0:
        return image
    side = kernels.shape[-1]
    weight = kernels[chosen].to(image)[:, None].repeat_interleave(c, 0)
    chosen = chosen.to(image.device)
    padded = _pad(image[chosen], side // 2).reshape(1, len(chosen) * c, h + side - 1, -1)
    blurred = F.conv2d(padded, weight, groups=len(chosen) * c).view(len(chosen), c, h, w)
    if len(chosen) == len(image):
        return blurred
    out = image.clone()
    out[chosen] = blurred
    return out


def _band_matrix(taps: torch.Tensor, length: int) -> torch.Tensor:
    """(length + K - 1, length) matrix whose product with a padded row correlates it with
    `taps` (K): one matrix product is ~10× faster on a CPU than a 51-tap convolution."""
    k = len(taps)
    rows = torch.arange(k, device=taps.device)[:, None] + torch.arange(length, device=taps.device)
    band = torch.zeros(length + k - 1, length, dtype=taps.dtype, device=taps.device)
    band[rows, torch.arange(length, device=taps.device).expand(k, -1)] = taps[:, None]
    return band


def _gaussian_blur(image: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable blur of (B, C, H, W) by the 1-D kernel `taps`, reflect-padded."""
    h, w = image.shape[-2:]
    padded = _pad(image, len(taps) // 2)
    rows = padded @ _band_matrix(taps, w)
    return _band_matrix(taps, h).T @ rows


def usm_sharp(image: torch.Tensor) -> torch.Tensor:
    """Unsharp masking of (B, 3, H, W) in [0, 1] as Real-ESRGAN sharpens its targets."""
    sigma = 0.3 * ((USM_RADIUS - 1) * 0.5 - 1) + 0.8
    x = torch.arange(USM_RADIUS, dtype=torch.float64) - USM_RADIUS // 2
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    taps = (taps / taps.sum()).to(image)
    residual = image - _gaussian_blur(image, taps)
    mask = _gaussian_blur((residual.abs() > USM_THRESHOLD).to(image.dtype), taps)
    sharp = (image + USM_WEIGHT * residual).clamp(0, 1)
    return mask * sharp + (1 - mask) * image


def _resize(image: torch.Tensor, draw: ResizeDraw, size: tuple[int, int] | None) -> torch.Tensor:
    """Resize by `draw.factor` (Real-ESRGAN's first resize) or to `size`, in `draw.mode`."""
    if size is None and min(image.shape[-2:]) * draw.factor >= 1:
        return F.interpolate(image, scale_factor=draw.factor, mode=draw.mode)
    if size is None:  # an image so small the factor would leave no pixel
        height, width = image.shape[-2:]
        size = (max(1, int(height * draw.factor)), max(1, int(width * draw.factor)))
    return F.interpolate(image, size=size, mode=draw.mode)


def _level_counts(image: torch.Tensor) -> torch.Tensor:
    """Per sample, the power of two at or above its number of distinct 8-bit levels (the
    Poisson model's photon count per unit intensity), without a device sync."""
    b = image.shape[0]
    levels = (image * 255).round().clamp(0, 255).long().flatten(1)
    levels = levels + 256 * torch.arange(b, device=image.device)[:, None]
    present = torch.bincount(levels.flatten(), minlength=256 * b).view(b, 256) > 0
    return torch.exp2(torch.ceil(torch.log2(present.sum(1).to(image.dtype))))


def add_noise(
    image: torch.Tensor, draws: BatchedDraws, stage: int, generators: list[torch.Generator]
) -> torch.Tensor:
    """Gaussian (σ/255) or Poisson (scaled shot) noise per sample, grey or colour, clamped."""
    _, c, h, w = image.shape
    grey = torch.tensor(_GREY, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    luminance = (image * grey).sum(1, keepdim=True)
    # Poisson: the signal is the image rounded to 8 bits, the noise its shot noise.
    rounded = [(x * 255).round().clamp(0, 255) / 255 for x in (image, luminance)]
    counts = [_level_counts(x) for x in rounded]
    per_sample = []
    for i, generator in enumerate(generators):
        gray = bool(draws.gray_noise[i, stage])
        channels = 1 if gray else c
        if draws.gaussian_noise[i, stage]:
            field = torch.randn(
                (channels, h, w), generator=generator, device=image.device, dtype=image.dtype
            )
            per_sample.append(field * (float(draws.noise_sigma[i, stage]) / 255))
        else:
            signal, vals = rounded[gray][i], counts[gray][i]
            shot = torch.poisson(signal * vals, generator=generator) / vals - signal
            per_sample.append(shot * float(draws.poisson_scale[i, stage]))
    noise = torch.stack([n.expand(c, h, w) for n in per_sample])
    return (image + noise).clamp(0, 1)


def _jpeg(image: torch.Tensor, draws: BatchedDraws, stage: int) -> torch.Tensor:
    return jpeg_compress(image.clamp(0, 1), draws.jpeg_quality[:, stage])


def degrade_with(
    hr_usm: torch.Tensor, draws: BatchedDraws, step: StepDraw, *, scale: int
) -> torch.Tensor:
    """The pipeline on the unsharp-masked HR with the choices given (see `degrade`)."""
    h, w = hr_usm.shape[-2:]
    generators = [
        torch.Generator(device=hr_usm.device).manual_seed(int(s)) for s in draws.noise_seed
    ]
    # First degradation.
    out = filter2d(hr_usm, draws.kernel1, draws.kernel1_size)
    out = _resize(out, step.resize1, None)
    out = add_noise(out, draws, 0, generators)
    out = _jpeg(out, draws, 0)
    # Second degradation; its blur only where the sample drew it.
    out = filter2d(out, draws.kernel2, torch.where(draws.second_blur, draws.kernel2_size, 1))
    factor = step.resize2.factor
    # At least one pixel: a small evaluation image at the smallest factor would reach 0.
    size = (max(1, int(h / scale * factor)), max(1, int(w / scale * factor)))
    out = _resize(out, step.resize2, size)
    out = add_noise(out, draws, 1, generators)
    # Final step: [resize to the LR size + sinc] and JPEG, in the order drawn.
    final = ResizeDraw(1.0, step.final_mode)
    if step.final_resize_first:
        out = _resize(out, final, (h // scale, w // scale))
        out = filter2d(out, draws.sinc, draws.sinc_size)
        out = _jpeg(out, draws, 1)
    else:
        out = _jpeg(out, draws, 1)
        out = _resize(out, final, (h // scale, w // scale))
        out = filter2d(out, draws.sinc, draws.sinc_size)
    return (out * 255).round().clamp(0, 255) / 255


@torch.no_grad()
def degrade(
    hr: torch.Tensor,
    draws: BatchedDraws,
    config: DegradationConfig,
    *,
    scale: int,
    seed: int,
    step: int,
    hr_usm: torch.Tensor | None = None,
) -> torch.Tensor:
    """Real-ESRGAN's degraded LR (B, 3, H/scale, W/scale) of HR (B, 3, H, W) in [0, 1].

    `draws` are the batch's samples' (from `draw_sample`), `step` the training step whose
    per-batch choices are used. As in Real-ESRGAN the degradation starts from the unsharp-masked
    HR: pass `hr_usm=usm_sharp(hr)` where the caller computes it anyway. Values are multiples
    of 1/255 in [0, 1]; the result does not depend on how the batch is split.
    """
    sharpened = usm_sharp(hr) if hr_usm is None else hr_usm
    return degrade_with(sharpened, draws, draw_step(config, seed, step), scale=scale)


def degrade_image(
    hr: np.ndarray, config: DegradationConfig, *, scale: int, seed: int, index: int
) -> np.ndarray:
    """Degraded LR (uint8 h×w×3) of one HR image (uint8 H×W×3, mod-cropped to `scale`), with
    the choices of sample `index` and step `index`: for degraded evaluation sets."""
    image = torch.from_numpy(np.ascontiguousarray(modcrop(hr, scale))).permute(2, 0, 1)[None]
    image = image.float() / 255
    draws = collate_draws([draw_sample(config, seed, index)])
    lr = degrade(image, draws, config, scale=scale, seed=seed, step=index)
    return (lr[0] * 255).round().byte().permute(1, 2, 0).numpy()


def crop_error(config: DegradationConfig, scale: int, patch_size: int) -> str | None:
    """Why the region `config.crop` cannot be degraded at `scale` and cut into `patch_size`
    patches, or None. Real-ESRGAN's reflect padding needs each side above half the kernel: the
    first blur runs on the region, the second after the first resize (at most down to
    resize_range[0]), the final sinc at the LR size; and the patch is cut from the region at
    an aligned place."""
    crop = config.region(scale, patch_size)
    if crop % scale or crop < patch_size:
        return (
            f"degradation.crop={crop} must be a multiple of the scale {scale} and hold the "
            f"{patch_size}px patch; use e.g. {max(patch_size, scale * -(-crop // scale))}"
        )

    def fits(side: int) -> bool:
        first = side > config.blur_kernel_size // 2
        second = int(side * config.resize_range[0]) > config.blur_kernel_size2 // 2
        return first and second and side // scale > FINAL_SINC_SIZE // 2

    if fits(crop):
        return None
    smallest = next(side for side in range(scale, 1 << 16, scale) if fits(side))
    return (
        f"degradation.crop={crop} is too small at ×{scale}: after the first resize (down to "
        f"×{config.resize_range[0]:g}) or at the LR size its sides no longer take the "
        f"{config.blur_kernel_size2}-tap blur or the {FINAL_SINC_SIZE}-tap sinc; use crop >= "
        f"{max(smallest, patch_size)}"
    )
