"""Help texts the weights-taking commands share."""

from __future__ import annotations

MODEL_HELP = (
    "Weights: a ClarityCore model.pt, a BasicSR/Real-ESRGAN/ESRGAN .pth, a claritycore 0.0.5 "
    "model folder or checkpoint, or .safetensors."
)
PRECISION_HELP = "auto, fp32, bf16 or fp16 (auto: bf16 where the device computes it natively)."
SELF_ENSEMBLE_HELP = (
    "Average the model over the 8 flips/rotations of the input (EDSR's '+'): a little higher "
    "PSNR, 8× the time."
)
