"""Training: the trainer loop, checkpoints, EMA, DDP and losses."""

from claritycore.training.trainer import NonFiniteLossError, RunOptions, lr_at, train

__all__ = ["NonFiniteLossError", "RunOptions", "lr_at", "train"]
