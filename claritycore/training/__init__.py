"""Training: the trainer loop, checkpoints, EMA, DDP and losses."""

from claritycore.training.trainer import NonFiniteLossError, lr_at, train

__all__ = ["NonFiniteLossError", "lr_at", "train"]
