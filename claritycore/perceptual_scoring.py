"""The perceptual figures `evaluate` adds to the scoring protocol: NIQE and LPIPS per image.

PSNR rewards blur; these show what a GAN changes. A module of their own, passed to
`scoring.score_set` as its `extra`: training's validation scores PSNR/SSIM only, so it imports
neither metric, and an edit to NIQE or LPIPS reruns `evaluate` but no training (dvc.yaml).
"""

from __future__ import annotations

import numpy as np

from claritycore.lpips import LPIPS, lpips_distance
from claritycore.niqe import niqe
from claritycore.scoring import ExtraFigures, ExtraScores, Reference


def perceptual_scores(lpips: LPIPS | None) -> ExtraScores:
    """Per image, with the `scale`-pixel border cropped: NIQE of the model's and of bicubic's
    output (no reference; BasicSR's, on Y) and, when an LPIPS network is given, LPIPS-Alex of
    the model's output against HR (else None)."""

    def scores(reference: Reference, sr: np.ndarray, scale: int) -> ExtraFigures:
        return {
            "niqe": niqe(sr, crop_border=scale),
            "bicubic_niqe": niqe(reference.bicubic, crop_border=scale),
            "lpips": None if lpips is None else lpips_distance(lpips, sr, reference.hr, scale),
        }

    return scores
