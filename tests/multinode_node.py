"""One training process of tests/test_multinode.py: `claritycore <args>` as torchrun starts it.

With CLARITYCORE_TEST_DIE_AT_STEP=K, the process SIGKILLs its torchrun agent and itself when
it reaches step K: its node dies at a known step (steps < K are done, rank 0 has written the
checkpoints due before K-1), the way a machine that loses power takes its whole process tree.
"""

from __future__ import annotations

import os
import signal
import sys

from claritycore.cli import app
from claritycore.training import trainer


def die_at(step_to_die: int) -> None:
    schedule = trainer.lr_at

    def lr_or_die(step: int, cfg):  # the loop asks for the learning rate at every step
        if step == step_to_die:
            os.kill(os.getppid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        return schedule(step, cfg)

    trainer.lr_at = lr_or_die


if __name__ == "__main__":
    if "CLARITYCORE_TEST_DIE_AT_STEP" in os.environ:
        die_at(int(os.environ["CLARITYCORE_TEST_DIE_AT_STEP"]))
    app(sys.argv[1:])
