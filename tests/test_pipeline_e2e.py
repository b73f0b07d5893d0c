"""The DVC pipeline end to end: DVC runs for real on the bundled sample images.

One temporary git repository (a copy of this one, tests/conftest.py's `repo`) is shared by the
e2e tests, which run in order: each builds on the cache and experiments of the ones before, as
a user's session would (tests/test_pipeline_workflows.py continues the session).
A fast check that every stage's dvc.yaml deps cover the code it imports runs without DVC.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.pipeline_repo import ROOT, Repo, config_param, metric, set_args

STAGES = (
    "fetch",
    "extract_hr",
    "extract",
    "resolve",
    "weights",
    "train",
    "adversarial",
    "evaluate",
)


def lr_scales_packed(repo: Repo) -> list[int]:
    """The scales whose store in data/stores holds LR planes (the others hold an index only)."""
    return [s for s in (2, 3, 4, 8) if (repo.path / f"data/stores/x{s}/lr.u8").is_file()]


@pytest.mark.e2e
def test_first_experiment_runs_every_stage(repo: Repo):
    out = repo.dvc("exp", "run", "-n", "first", "-S", "preset=rrdbnet-litex2", *set_args())
    for stage in ("fetch", "extract_hr", "extract@2", "extract@3", "extract@4", "extract@8"):
        assert f"Running stage '{stage}'" in out, out
    assert "Running stage 'train'" in out and "Running stage 'evaluate'" in out, out
    assert lr_scales_packed(repo) == [2]  # data.scales untouched: the experiment's scale only
    # The cache link type: the patch store is linked to the DVC cache, not copied beside it.
    store = repo.path / "data" / "stores" / "hr" / "hr.u8"
    assert store.is_symlink() or store.stat().st_nlink >= 2
    data = repo.experiments()["first"]
    assert 5.0 < metric(data, "metrics/eval.json", "valid/psnr_y") < 60.0
    assert config_param(data, "model", "scale") == 2
    assert config_param(data, "training", "steps") == 4
    assert config_param(data, "training", "patch_size") == 32
    assert config_param(data, "model", "num_feat") == 32  # the lite preset's width


@pytest.mark.e2e
def test_a_x4_experiment_packs_no_x2_x3_or_x8_store(repo: Repo):
    """params.yaml's data section as shipped (only data.source set to the bundled sample): the
    HR is reused, extract@4 packs the ×4 LR, and no ×2, ×3 or ×8 LR is packed."""
    params = repo.read_yaml("params.yaml")["data"]
    assert params["scales"] == [] and params["mix"] == [] and params["multiscale"] is False
    out = repo.dvc("exp", "run", "-n", "second", "-S", "preset=rrdbnet-litex4", *set_args())
    for stage in ("fetch", "extract_hr", "extract@3", "extract@8"):
        assert f"Stage '{stage}' didn't change, skipping" in out, out
        assert f"Running stage '{stage}'" not in out
    # ×4's LR packed; ×2's dropped from the workspace (kept in the cache for `first`).
    for stage in ("extract@4", "extract@2", "resolve", "train", "evaluate"):
        assert f"Running stage '{stage}'" in out, out
    assert lr_scales_packed(repo) == [4]
    stores = repo.path / "data" / "stores"
    hr_bytes = (stores / "hr" / "hr.u8").stat().st_size
    total = sum(f.stat().st_size for f in stores.rglob("*") if f.is_file())
    assert total < hr_bytes * (1 + 1 / 16) + 100_000  # the HR, ×4's LR and four indexes
    data = repo.experiments()["second"]
    assert config_param(data, "model", "scale") == 4
    assert "psnr_y" in data["metrics"]["metrics/eval.json"]["data"]["valid"]


@pytest.mark.e2e
def test_returning_to_a_config_restores_from_run_cache(repo: Repo):
    out = repo.dvc("exp", "run", "-n", "third", "-S", "preset=rrdbnet-litex2", *set_args())
    # ×2's LR store comes back from the run cache, not extracted again.
    assert "Stage 'extract@2' is cached - skipping run" in out, out
    assert lr_scales_packed(repo) == [2]
    assert "Running stage 'train'" not in out, out
    assert "Stage 'train' is cached - skipping run" in out, out
    assert "Running stage 'evaluate'" not in out, out
    runs = repo.experiments()
    first, third = runs["first"], runs["third"]
    for path, key in (
        ("metrics/eval.json", "valid/psnr_y"),
        ("dvclive/metrics.json", "val/psnr_y"),
    ):
        assert metric(third, path, key) == metric(first, path, key)


@pytest.mark.e2e
def test_queued_experiments_complete(repo: Repo):
    # One new config (it trains) and the first experiment's (the run cache restores it).
    queued = {"queued-new": ("rrdbnet-litex4", 3), "queued-cached": ("rrdbnet-litex2", 4)}
    for name, (preset, steps) in queued.items():
        args = set_args(preset=preset, overrides__steps=steps)
        repo.dvc("exp", "run", "--queue", "-n", name, *args)
    # The worker this starts inherits stdout/stderr: a pipe would stay open until it exits.
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start"],
        cwd=repo.path,
        env=repo.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=120,
    )
    deadline = time.monotonic() + 240
    status = ""
    while time.monotonic() < deadline:
        time.sleep(5)
        status = repo.dvc("queue", "status")
        if not any(state in status for state in ("Queued", "Running")):
            break
    assert status.count("Success") == 2, status
    assert "Running stage 'train'" in repo.dvc("queue", "logs", "queued-new")
    assert "Stage 'train' is cached" in repo.dvc("queue", "logs", "queued-cached")
    runs = repo.experiments()
    for name, (preset, steps) in queued.items():
        assert runs[name]["params"]["build/config.yaml"]["data"]["preset"] == preset
        assert config_param(runs[name], "training", "steps") == steps
        assert "psnr_y" in runs[name]["metrics"]["metrics/eval.json"]["data"]["valid"]


def read_steps(tsv: Path) -> list[int]:
    lines = tsv.read_text().splitlines()
    column = lines[0].split("\t").index("step")
    return [int(line.split("\t")[column]) for line in lines[1:]]


@pytest.mark.e2e
def test_killed_training_resumes_from_checkpoint(repo: Repo):
    # A checkpoint every 2 steps; the kill comes at the first, 38 steps before the end.
    params = repo.read_yaml("params.yaml")
    params["preset"] = "rrdbnet-litex4"
    params["overrides"].update(steps=40, batch_size=2, patch_size=32)
    params["train"].update(save_every=2, val_every=40, log_every=2)
    (repo.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repo.dvc("repro", "resolve")
    checkpoints = repo.path / "checkpoints"  # one folder per run key below it

    def new_checkpoints() -> set[Path]:
        # Earlier experiments' run keys have checkpoints of their own there.
        return set(checkpoints.glob("*/step_*.pt")) - earlier

    earlier = set(checkpoints.glob("*/step_*.pt"))

    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "train"],
        cwd=repo.path,
        env=repo.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches the trainer too
    )
    deadline = time.monotonic() + 120
    while not new_checkpoints() and time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert new_checkpoints(), "no checkpoint appeared"
    assert not (repo.path / "models" / "psnr.pt").exists(), "training finished before the kill"

    out = repo.dvc("repro", "train")
    assert "resuming from step" in out, out
    resumed_at = int(out.split("resuming from step")[1].split()[0].replace(",", ""))
    assert 0 < resumed_at < 40
    # The curves stay continuous from the start: the history was replayed from the checkpoint.
    steps = read_steps(repo.path / "dvclive-psnr" / "plots" / "metrics" / "train" / "loss.tsv")
    assert steps == list(range(2, 41, 2))
    assert (repo.path / "models" / "psnr.pt").exists()
    assert not new_checkpoints(), "the finished run kept its checkpoints"
    assert "up to date" in repo.dvc("status", "train")


@pytest.mark.e2e
def test_plots_show_renders_training_curves(repo: Repo):
    plots = json.loads(repo.dvc("plots", "show", "--json"))
    assert not plots.get("errors"), plots["errors"]
    rendered = plots["data"]
    for title in ("dvclive/plots/metrics/train/loss.tsv", "dvclive/plots/metrics/val/psnr_y.tsv"):
        assert title in rendered, list(rendered)
        assert rendered[title], f"{title} has no data"
    out = repo.dvc("plots", "show", "-o", "dvc_plots")
    html = (repo.path / "dvc_plots" / "index.html").read_text()
    assert "train/loss.tsv" in html and "loss" in html, out


def stage_deps() -> dict[str, list[str]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stages[name]["deps"] for name in STAGES}


def imported_files(module: str) -> set[Path]:
    """Every project file `module` imports, transitively, read from the source (so imports
    inside functions count too), with the packages each import passes through."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        base = ROOT.joinpath(*name.split("."))
        path = next(
            (p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None
        )
        if path is None or path in seen:
            continue
        seen.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                todo += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return {p for p in seen if p.parts[len(ROOT.parts)] in ("claritycore", "stages")}


def test_imported_files_sees_lazy_imports():
    """The deps check below reads imports inside functions, which sys.modules would miss."""
    assert ROOT / "claritycore" / "presets.py" in imported_files("claritycore.data.fetch")
    assert ROOT / "claritycore" / "models" / "rrdbnet" / "model.py" in imported_files(
        "claritycore.experiment"
    )


@pytest.mark.parametrize("stage", STAGES)
def test_stage_deps_cover_imported_code(stage: str):
    """Every claritycore file a stage imports is a dep in dvc.yaml, so editing it reruns it."""
    deps = [ROOT / d for d in stage_deps()[stage]]
    assert ROOT / "stages" / f"{stage}.py" in deps
    imported = [f for f in imported_files(f"stages.{stage}") if f.parent != ROOT / "stages"]
    # A package's __init__ only re-exports; the modules it imports are checked on their own.
    missing = [
        str(f.relative_to(ROOT))
        for f in imported
        if f.name != "__init__.py" and not any(d == f or d in f.parents for d in deps)
    ]
    assert not missing, f"dvc.yaml stage {stage!r} lacks deps: {missing}"
    # And no code dep it does not import: an edit there would rerun the stage for nothing.
    # (claritycore/metrics_data holds data files that niqe.py and lpips.py read, no code.)
    data = ROOT / "claritycore" / "metrics_data"
    code = [d for d in deps if d.is_relative_to(ROOT / "claritycore") and d != data]
    unused = [str(d) for d in code if not any(d == f or d in f.parents for f in imported)]
    assert not unused, f"dvc.yaml stage {stage!r} has deps it does not import: {unused}"


def test_training_imports_no_perceptual_metric():
    """NIQE and LPIPS are evaluate's: training's validation does not import them, so they are
    no deps of train or adversarial (above) and an edit to them retrains nothing."""
    perceptual = {"niqe.py", "lpips.py", "perceptual_scoring.py"}
    for stage in ("train", "adversarial"):
        assert not perceptual & {f.name for f in imported_files(f"stages.{stage}")}, stage
    assert perceptual <= {f.name for f in imported_files("stages.evaluate")}


# The code above the data layer: scoring and what runs or trains models. A data module that
# imported it would be a dep of, and rerun, the data stages with every edit there.
ABOVE_DATA = {"scoring.py", "perceptual_scoring.py", "evaluation.py", "inference.py"}
ABOVE_DATA |= {"niqe.py", "lpips.py", "training", "models", "cli"}
DATA_MODULES = sorted((ROOT / "claritycore" / "data").glob("*.py"))


@pytest.mark.parametrize("path", DATA_MODULES, ids=lambda p: p.name)
def test_data_modules_import_nothing_above_them(path: Path):
    imported = imported_files(f"claritycore.data.{path.stem}")
    above = [f for f in imported if f.relative_to(ROOT / "claritycore").parts[0] in ABOVE_DATA]
    assert not above, f"{path.name} imports {[str(f.relative_to(ROOT)) for f in above]}"
