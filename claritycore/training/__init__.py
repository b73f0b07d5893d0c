"""Training: the trainer loop, checkpoints, EMA, DDP and losses."""

from claritycore.training.trainer import NonFiniteLossError, finish_stage, lr_at, train

__all__ = ["NonFiniteLossError", "finish_stage", "lr_at", "train"]
