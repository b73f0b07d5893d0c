"""Training across nodes: two `claritycore torchrun` "nodes" on 127.0.0.1 (gloo, c10d
rendezvous), each with its own folder, its own copy of the store and one training process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from claritycore.data.store import ImageStore
from claritycore.errors import ConfigError
from claritycore.models import AutoModel
from claritycore.training import distributed
from tests.helpers import TINY, quick_options, run, tiny_experiment, tiny_store

STEPS, SAVE_EVERY = 6, 3
NODE = Path(__file__).with_name("multinode_node.py")
TRAIN_FLAGS = [
    "train", "--preset", "rrdbnet-litex2", "--steps", str(STEPS), "--batch-size", "4",
    "--patch-size", "16", "--workers", "0", "--device", "cpu", "--log-every", "1",
    "--save-every", str(SAVE_EVERY), "--val-every", "1000", "--precision", "fp32",
    "--keep-checkpoints",
]  # fmt: skip
TRAIN_FLAGS += [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(folder: Path, address: str, port: int, nnodes: int = 2, **env: str):
    """`claritycore torchrun` for one node, training from `folder`/store into `folder`/run,
    in its own session (so a test can kill the node's whole process tree). torchrun's c10d
    rendezvous ranks nodes by their address: 127.0.0.1's process is rank 0, 127.0.0.2's rank 1
    (both loopback)."""
    launcher = [sys.executable, "-m", "claritycore.cli", "torchrun", "--nnodes", str(nnodes)]
    launcher += ["--nproc-per-node", "1", "--local-addr", address, "--rdzv-backend", "c10d"]
    launcher += ["--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "test"]
    launcher += ["--rdzv-conf", f"join_timeout={env.pop('join_timeout', '60')}"]
    flags = ["--data", str(folder / "store"), "--output", str(folder / "run")]
    return subprocess.Popen(
        [*launcher, str(NODE), *TRAIN_FLAGS, *flags],
        cwd=folder,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(node: subprocess.Popen, timeout: float = 90) -> tuple[int, str]:
    try:
        output, _ = node.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, 9)
        output, _ = node.communicate()
        pytest.fail(f"node did not end within {timeout} s:\n{output[-3000:]}")
    return node.returncode, output


def run_nodes(rank0: Path, rank1: Path, **env_of_rank1: str) -> list[tuple[int, str]]:
    """Two nodes, the one in `rank0` as global rank 0; (exit status, output) of each."""
    port = free_port()
    started = [
        start_node(rank0, "127.0.0.1", port),
        start_node(rank1, "127.0.0.2", port, **env_of_rank1),
    ]
    return [finish(node) for node in started]


def listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The same run in one process with the whole global batch."""
    tmp = tmp_path_factory.mktemp("one")
    experiment = tiny_experiment(steps=STEPS, batch_size=4, patch_size=16)
    run(tmp, experiment, quick_options(save_every=SAVE_EVERY), tiny_store(tmp))
    trained = final_weights(tmp)
    torch.manual_seed(0)  # the trainer's seed: the initial weights
    initial = AutoModel.from_config(experiment.model).state_dict()
    assert all(not torch.equal(trained[k], initial[k]) for k in initial if "weight" in k)
    return trained


@pytest.fixture
def nodes(tmp_path) -> list[Path]:
    """Two node folders, each with its own copy of the store and of the HR store it reads
    (as `dvc pull data/stores/hr data/stores/x2` leaves them, side by side)."""
    store = tiny_store(tmp_path / "source")
    hr_store = ImageStore.open(store).hr_store.path
    folders = [tmp_path / "node0", tmp_path / "node1"]
    for folder in folders:
        shutil.copytree(store, folder / "store")
        shutil.copytree(hr_store, folder / os.path.relpath(hr_store, store.parent))
    return folders


def assert_same_weights(run_dir: Path, expected: dict[str, torch.Tensor]) -> None:
    result = final_weights(run_dir)
    assert result.keys() == expected.keys()
    for name, tensor in expected.items():
        # fp32: the two-rank gradient all-reduce rounds differently from one batch mean.
        torch.testing.assert_close(result[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_two_nodes_train_as_one_process_and_resume_after_a_node_dies(nodes, one_process):
    """One test, two launches (each costs two torchrun agents and two workers): a run whose
    second node dies, then the job restarted, each step of it on two nodes with no shared
    storage. After the restart the other node is rank 0: it finds no checkpoint of its own and
    gets the newest from the node that wrote it."""
    first, second = nodes
    before = listing(second)
    # Rank 1 dies at step 5; rank 0 wrote the checkpoint of step 3 before step 4 could start.
    (code0, log0), (code1, _) = run_nodes(first, second, CLARITYCORE_TEST_DIE_AT_STEP="5")
    assert code1 == -9 and code0 != 0, log0[-3000:]  # the survivor ends too, it does not hang
    assert not (first / "run" / "model.pt").exists()
    saved = sorted(p.name for p in (first / "run" / "checkpoints").glob("*/*.pt"))
    assert saved == [f"step_{SAVE_EVERY:09d}.pt"]
    assert listing(second) == before  # rank 1 read its own store and wrote nothing

    before = listing(first)
    (code0, log0), (code1, log1) = run_nodes(second, first)  # restarted; now `second` is rank 0
    assert (code0, code1) == (0, 0), log0[-3000:] + log1[-3000:]
    assert f"resuming from step {SAVE_EVERY}" in log0 and "done" in log0
    assert "done" not in log1
    assert_same_weights(second / "run", one_process)
    assert listing(first) == before  # rank 1 sent its checkpoint and wrote nothing


def test_a_rendezvous_that_cannot_form_ends_with_one_line_and_status_2(nodes):
    # Node 0 waits for a second node that never comes (as with a wrong endpoint or id).
    started = time.monotonic()
    code, output = finish(
        start_node(nodes[0], "127.0.0.1", free_port(), join_timeout="2"), timeout=60
    )
    assert code == 2, output[-3000:]
    assert time.monotonic() - started < 45
    last = output.strip().splitlines()[-1]
    assert last.startswith("rendezvous failed:") and "--rdzv-endpoint" in last, output[-3000:]
    assert not (nodes[0] / "run").exists()


def test_a_node_with_other_training_data_is_refused(monkeypatch):
    # What all_gather_object hands every rank when rank 2's store index differs from rank 0's
    # (a real three-process group would cost ~10 s of the suite's time for a comparison).
    gathered = [("key0", "store0", "host0"), ("key0", "store0", "host0"), ("key1", "s1", "h1")]

    def all_gather_object(out: list, _) -> None:
        out[:] = gathered

    monkeypatch.setattr(distributed.dist, "all_gather_object", all_gather_object)
    info = distributed.Dist(rank=1, world_size=3, device=torch.device("cpu"))
    with pytest.raises(
        ConfigError, match=r"^rank 2 on h1 trains on s1, .* rank 0's store0 on host0"
    ):
        distributed.require_same_data("key0", "store0", info)
    gathered[2] = gathered[0]
    distributed.require_same_data("key0", "store0", info)  # the same data everywhere: no error
