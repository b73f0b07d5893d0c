"""Crash safety and DDP, with real processes: SIGKILL after a checkpoint and inside a checkpoint
write, then resume bit-for-bit; two gloo ranks with B/2 each match one process with B."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from claritycore.models import AutoModel
from claritycore.training import checkpoint as ckpt
from tests.helpers import latest, quick_options, run, tiny_experiment, tiny_store

ROOT = Path(__file__).resolve().parents[1]
# 20 steps: the trainer logs at least 10 rows, so log_every=2 stays 2.
EXPERIMENT = {"steps": 20, "ema": True}
OPTIONS = {"save_every": 3, "log_every": 2}

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import torch
    from tests.helpers import quick_options, run, tiny_experiment
    from claritycore.training import checkpoint

    mode, root, store = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if mode == "kill-after-first-save":
        save = checkpoint.save
        def save_then_die(*args, **kwargs):
            save(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.save = save_then_die
    elif mode == "kill-inside-write":
        def torn_write(obj, f, *args, **kwargs):
            with open(f, "wb") as out:  # the atomic writer hands torch.save its temp path
                out.write(b"the first bytes of a checkpoint")
                out.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        torch.save = torn_write
    run(root, tiny_experiment(**{experiment!r}), quick_options(**{options!r}), store)
    """
).format(experiment=EXPERIMENT, options=OPTIONS)


def child(mode: str, root: Path, store: Path) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(root), str(store)],
        cwd=ROOT,  # so the child imports this checkout's `tests.helpers`
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child {mode} failed:\n{result.stdout}\n{result.stderr}")
    return result.returncode


def test_killed_runs_resume_to_the_same_weights_bitwise(tmp_path):
    store = tiny_store(tmp_path)
    experiment = tiny_experiment(**EXPERIMENT)
    crashed = tmp_path / "crashed"
    ckpt_dir = crashed / "ckpt" / ckpt.run_key(experiment, 0, store)

    assert child("kill-after-first-save", crashed, store) == -signal.SIGKILL
    assert [s for s, _ in ckpt.list_checkpoints(ckpt_dir)] == [3]
    assert not (crashed / "model.pt").exists()

    # Resumes from step 3, then dies in the middle of writing the step-6 checkpoint.
    assert child("kill-inside-write", crashed, store) == -signal.SIGKILL
    assert [s for s, _ in ckpt.list_checkpoints(ckpt_dir)] == [3]
    torn = list(ckpt_dir.glob(".step_000000006.pt.*.tmp"))
    assert torn and torn[0].read_bytes() == b"the first bytes of a checkpoint"
    assert latest(crashed / "ckpt")["step"] == 3

    assert child("finish", crashed, store) == 0
    reference = tmp_path / "reference"
    run(reference, experiment, quick_options(**OPTIONS), store)

    resumed = torch.load(crashed / "model.pt", weights_only=True)
    straight = torch.load(reference / "model.pt", weights_only=True)
    assert resumed["ema"] and resumed["step"] == 20
    for name, tensor in straight["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), name
    last_resumed = latest(crashed / "ckpt")
    last_straight = latest(reference / "ckpt")
    for name, tensor in last_straight["model"].items():
        assert torch.equal(last_resumed["model"][name], tensor), name
    # The logged curve of the crashed run is whole: every log step once, from the start.
    assert [r["step"] for r in last_resumed["history"]] == list(range(2, 21, 2))
    losses = [[r["train/loss"] for r in c["history"]] for c in (last_resumed, last_straight)]
    # Row 4 averages steps 3-4 in one run, only step 4 after the resume at 3; the rest match.
    assert losses[0][:1] + losses[0][2:] == losses[1][:1] + losses[1][2:]


def test_ddp_two_gloo_ranks_match_one_process(tmp_path):
    store = tiny_store(tmp_path)
    experiment = tiny_experiment(steps=4, batch_size=4)
    run(tmp_path / "one", experiment, quick_options(save_every=4), store)
    run(tmp_path / "two", experiment, quick_options(save_every=4, devices=2), store)
    one = latest(tmp_path / "one" / "ckpt")
    two = latest(tmp_path / "two" / "ckpt")
    assert two["step"] == 4 and (tmp_path / "two" / "model.pt").exists()
    torch.manual_seed(0)  # the trainer's seed: the initial weights
    initial = AutoModel.from_config(experiment.model).state_dict()
    for name, tensor in one["model"].items():
        assert not torch.equal(tensor, initial[name]), f"{name} did not train"
        torch.testing.assert_close(two["model"][name], tensor, rtol=0, atol=1e-5, msg=name)
    # The logged loss is the mean over both ranks: the full batch's loss.
    losses_one = [r["train/loss"] for r in one["history"]]
    losses_two = [r["train/loss"] for r in two["history"]]
    torch.testing.assert_close(losses_two, losses_one, rtol=1e-5, atol=0)
