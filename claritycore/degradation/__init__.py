"""Real-ESRGAN's second-order degradation: random choices drawn per sample in the data loader
(`draw_sample`, `collate_draws`), the heavy work batched on the training device (`degrade`)."""

from claritycore.degradation.draws import (
    BatchedDraws,
    SampleDraw,
    StepDraw,
    collate_draws,
    draw_sample,
    draw_step,
)
from claritycore.degradation.jpeg import jpeg_compress
from claritycore.degradation.pipeline import (
    crop_error,
    degrade,
    degrade_image,
    degrade_with,
    usm_sharp,
)

__all__ = [
    "BatchedDraws",
    "SampleDraw",
    "StepDraw",
    "collate_draws",
    "crop_error",
    "degrade",
    "degrade_image",
    "degrade_with",
    "draw_sample",
    "draw_step",
    "jpeg_compress",
    "usm_sharp",
]
