"""`train.pretrained` in the pipeline, DVC run for real: a run at a tiny learning rate ends where
its start file began, another file re-runs train, returning to the first comes from the run
cache, and a file that does not fit stops `resolve` in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from claritycore.data.download import sha256_file
from claritycore.models import AutoConfig, AutoModel
from claritycore.weights import load_model, save_model
from tests.pipeline_repo import Repo, set_args

# rrdbnet-litex2's model, so the file loads strictly.
LITE_X2 = {"model_type": "rrdbnet", "scale": 2, "num_feat": 32, "num_block": 6, "num_grow_ch": 16}
# Adam moves each weight by about lr per step: 4 steps at 1e-9 stay far within 1e-3.
TINY_LR = "0.000000001"


def _start_file(path: Path, seed: int, **fields) -> Path:
    torch.manual_seed(seed)
    save_model(path, AutoModel.from_config(AutoConfig.from_dict({**LITE_X2, **fields})))
    return path


def _run(repo: Repo, name: str, start: Path, **kwargs) -> str:
    args = set_args(train__pretrained=start, overrides__lr=TINY_LR)
    return repo.dvc("exp", "run", "-n", name, "-S", "preset=rrdbnet-litex2", *args, **kwargs)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path)[0].state_dict()


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.mark.e2e
def test_a_run_starts_from_its_file_and_the_run_cache_keeps_each_file(repo: Repo):
    first = _start_file(repo.path.parent / "start-a.pt", seed=11)
    second = _start_file(repo.path.parent / "start-b.pt", seed=12)
    model = repo.path / "models" / "model.pt"

    out = _run(repo, "from-a", first)
    assert "Running stage 'train'" in out, out
    trained, started = _weights(model), _weights(first)
    assert _max_difference(trained, started) < 1e-3  # it really started from the file
    assert _max_difference(trained, _weights(second)) > 1e-2  # and another file is far away
    record = load_model(model)[1]["pretrained"]["generator"]
    assert record["name"] == str(first) and record["sha256"] == sha256_file(first)
    shown = repo.experiments()["from-a"]["params"]["build/pretrained.yaml"]["data"]
    assert shown["sha256"] == sha256_file(first) and shown["name"] == str(first)

    out = _run(repo, "from-b", second)
    assert "Running stage 'train'" in out, out
    assert _max_difference(_weights(model), _weights(second)) < 1e-3

    out = _run(repo, "from-a-again", first)
    assert "Stage 'train' is cached - skipping run" in out, out
    assert _max_difference(_weights(model), trained) == 0.0


@pytest.mark.e2e
def test_a_file_that_does_not_fit_stops_resolve_in_one_line(repo: Repo):
    wide = _start_file(repo.path.parent / "wide.pt", seed=0, num_feat=48)
    out = _run(repo, "misfit", wide, check=False)
    lines = [line for line in out.splitlines() if "train.pretrained:" in line]
    assert len(lines) == 1, out
    assert "conv_first.weight is (32, 3, 3, 3) in the model and (48, 3, 3, 3) in the file" in out
    assert "Running stage 'train'" not in out and "Running stage 'weights'" not in out
