"""Shared test setup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.pipeline_repo import Repo, make_repo


@pytest.fixture(autouse=True, scope="session")
def one_intra_op_thread():
    """One intra-op thread: on a busy 2-core machine, OpenMP threads waiting on each other make
    small convolutions up to 10× slower, and results no longer depend on the core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """The e2e tests' DVC repository, shared by the e2e modules one pytest-xdist worker runs
    (DVC runs are slow). Each module runs whole and in order on its worker (`--dist
    loadfile`); a module that builds on another's experiment makes it when it is missing."""
    repo = make_repo(tmp_path_factory.mktemp("pipeline") / "repo")
    yield repo
    # Queue workers are background processes; make sure none outlives the test.
    repo.dvc("queue", "stop", "--kill", check=False, timeout=60)
