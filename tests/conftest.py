"""Shared test setup."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_intra_op_thread():
    """One intra-op thread: on a busy 2-core machine, OpenMP threads waiting on each other make
    small convolutions up to 10× slower, and results no longer depend on the core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
