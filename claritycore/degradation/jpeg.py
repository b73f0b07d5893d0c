"""Batched JPEG compression in torch, one quality per sample, as Real-ESRGAN simulates it.

Real-ESRGAN compresses with DiffJPEG (BasicSR's `utils/diffjpeg.py`), not libjpeg, and we
follow its model so the artefacts have the same strength: RGB -> YCbCr (JFIF), 4:2:0 chroma by
2×2 means, 8×8 DCT, quantisation by the standard tables scaled by libjpeg's quality factor
(not rounded to integers; DiffJPEG's tables are the standard ones transposed), then the inverse
with chroma repeated 2×2 and the result clamped to [0, 1]. The image is zero-padded at the
bottom and right to a multiple of 16 first, as DiffJPEG does. One difference: a quantiser is
never below 1 (as in libjpeg), where DiffJPEG divides by zero at quality 100; between quality
1 and 95 (Real-ESRGAN's ranges) no quantiser is below 1 and the two agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_CORNER = ((17, 18, 24, 47), (18, 21, 26, 66), (24, 26, 56, 99), (47, 66, 99, 99))
_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
_YCBCR_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))
BLOCK = 8
# 4:2:0 chroma on 8×8 blocks: the padded image must tile into 16×16 luma blocks.
MACROBLOCK = 16


def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Luma and chroma tables indexed [row frequency, column frequency] as DiffJPEG uses them."""
    luma = torch.tensor(_LUMA_TABLE, dtype=torch.float32, device=device).T
    chroma = torch.full((8, 8), 99.0, device=device)
    chroma[:4, :4] = torch.tensor(_CHROMA_CORNER, dtype=torch.float32, device=device).T
    return luma, chroma


def _dct_matrix(device: torch.device) -> torch.Tensor:
    """Orthonormal 8-point DCT-II: row u is sqrt(2/8)·α(u)·cos((2x+1)uπ/16), α(0) = 1/√2."""
    x = torch.arange(BLOCK, dtype=torch.float64)
    u = x[:, None]
    matrix = torch.cos((2 * x + 1) * u * math.pi / 16) * 0.5
    matrix[0] /= math.sqrt(2)
    return matrix.to(device=device, dtype=torch.float32)


def quality_factor(quality: torch.Tensor) -> torch.Tensor:
    """libjpeg's table scale for quality q: 50/q below 50, (200 - 2q)/100 from 50."""
    return torch.where(quality < 50, 50.0 / quality, (200.0 - 2.0 * quality) / 100.0)


def _blocks(plane: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, H/8, 8, W/8, 8): row-in-block at dim 2, column-in-block at dim 4."""
    b, h, w = plane.shape
    return plane.view(b, h // BLOCK, BLOCK, w // BLOCK, BLOCK)


def _roundtrip(plane: torch.Tensor, steps: torch.Tensor, dct: torch.Tensor) -> torch.Tensor:
    """DCT, quantise by `steps` (B, 8, 8), dequantise and invert one zero-centred plane."""
    blocks = _blocks(plane)
    # Separable 2-D DCT: C·P·Cᵀ per block, the row transform over dim 2, the column over dim 4.
    coeffs = torch.einsum("ux,bixjy,vy->biujv", dct, blocks, dct)
    steps = steps[:, None, :, None, :]
    coeffs = torch.round(coeffs / steps) * steps
    restored = torch.einsum("ux,biujv,vy->bixjy", dct, coeffs, dct)
    return restored.reshape(plane.shape)


def jpeg_compress(image: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG round trip of (B, 3, H, W) RGB in [0, 1] at per-sample `quality` (B,), in [1, 100]."""
    b, _, h, w = image.shape
    device = image.device
    padded = F.pad(image, (0, -w % MACROBLOCK, 0, -h % MACROBLOCK)) * 255.0
    rgb_to_ycbcr = torch.tensor(_RGB_TO_YCBCR, device=device)
    ycbcr = torch.einsum("kc,bchw->bkhw", rgb_to_ycbcr, padded)
    luma_table, chroma_table = _tables(device)
    factor = quality_factor(quality.to(device=device, dtype=torch.float32))[:, None, None]
    dct = _dct_matrix(device)
    # Luma is level-shifted by 128 before the DCT; Cb and Cr are already centred on 0.
    luma = _roundtrip(ycbcr[:, 0] - 128.0, (luma_table * factor).clamp(min=1.0), dct) + 128.0
    # Chroma: 2×2 means, quantised, repeated back 2×2.
    chroma = F.avg_pool2d(ycbcr[:, 1:], 2)
    hc, wc = chroma.shape[-2:]
    steps = (chroma_table * factor).clamp(min=1.0)
    chroma = _roundtrip(chroma.reshape(b * 2, hc, wc), steps.repeat_interleave(2, 0), dct)
    chroma = chroma.view(b, 2, hc, wc).repeat_interleave(2, 2).repeat_interleave(2, 3)
    ycbcr_to_rgb = torch.tensor(_YCBCR_TO_RGB, device=device)
    rgb = torch.einsum("ck,bkhw->bchw", ycbcr_to_rgb, torch.cat([luma[:, None], chroma], 1))
    return (rgb.clamp(0.0, 255.0) / 255.0)[:, :, :h, :w]
