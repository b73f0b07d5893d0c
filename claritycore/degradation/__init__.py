"""Real-ESRGAN's second-order degradation: random choices drawn per sample in the data loader
(`draw_sample`, `collate_hr_draws`), the heavy work batched on the training device (`degrade`)."""

from claritycore.degradation.draws import (
    BatchedDraws,
    SampleDraw,
    StepDraw,
    collate_draws,
    collate_hr_draws,
    draw_sample,
    draw_step,
)
from claritycore.degradation.jpeg import jpeg_compress
from claritycore.degradation.pipeline import degrade, degrade_image, degrade_with, usm_sharp

__all__ = [
    "BatchedDraws",
    "SampleDraw",
    "StepDraw",
    "collate_draws",
    "collate_hr_draws",
    "degrade",
    "degrade_image",
    "degrade_with",
    "draw_sample",
    "draw_step",
    "jpeg_compress",
    "usm_sharp",
]
