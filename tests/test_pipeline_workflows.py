"""The documented workflows beyond the first runs, with DVC for real: recovering from a failed
`dvc exp run`, sharing experiments through a remote (docs/training.md), offline charts,
benchmark sets (docs/benchmarks.md) and README command 1's readable `dvc exp show`.

Runs in the worker's shared repository, after tests/test_pipeline_e2e.py where the same worker
ran it (see tests/conftest.py).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
from PIL import Image

from tests.pipeline_repo import ROOT, Repo, set_args
from tests.test_plots import external_urls
from tests.test_readme import command_1

TRAINING_PAGE = (ROOT / "docs" / "training.md").read_text()


def training_section(title: str) -> str:
    """docs/training.md's text under the heading `title`, up to the next heading."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", TRAINING_PAGE, re.S | re.M)
    assert match, f"docs/training.md has no section {title!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def good(repo: Repo) -> str:
    """A finished experiment: test_pipeline_e2e's `first`, or made here when run alone."""
    if "first" not in repo.experiments():
        repo.dvc("exp", "run", "-n", "first", "-S", "preset=rrdbnet-litex2", *set_args())
    return "first"


@pytest.mark.e2e
def test_failed_run_is_undone_by_the_documented_recipe(repo: Repo, good: str, tmp_path):
    recipe = training_section("When a run fails")
    assert "dvc exp apply <experiment>" in recipe
    repo.dvc("exp", "apply", good)
    config = (repo.path / "build" / "config.yaml").read_text()
    sample = sorted(p.name for p in (repo.path / "data" / "raw" / "sample" / "train").iterdir())

    # A bad preset fails in resolve, which runs first: no other stage starts, and the
    # resolved config of the last good run stays (persist: DVC does not delete it first).
    out = repo.dvc("exp", "run", *set_args(preset="rrdbnetx5"), check=False)
    assert "resolve failed: unknown preset 'rrdbnetx5'" in out, out
    assert re.findall(r"Running stage '([^']+)'", out) == ["resolve"], out
    assert (repo.path / "build" / "config.yaml").read_text() == config
    # What DVC itself does: the failed run's -S values stay in params.yaml.
    assert repo.read_yaml("params.yaml")["preset"] == "rrdbnetx5"

    # A run that switches data.source: before any stage, DVC's checkout unlinks the data of the
    # old source (data/raw/sample), though the failing stage is fetch.
    missing = tmp_path / "no-such-folder"
    args = set_args(preset="rrdbnet-litex2", data__source="folder", data__root=missing)
    out = repo.dvc("exp", "run", *args, check=False)
    assert "fetch failed" in out and str(missing) in out, out
    assert not (repo.path / "data" / "raw" / "sample").exists()

    # The recipe: back to the last good experiment, data included; the next run works.
    repo.dvc("exp", "apply", good)
    params = repo.read_yaml("params.yaml")
    assert (params["preset"], params["data"]["source"]) == ("rrdbnet-litex2", "sample")
    assert sorted(p.name for p in (repo.path / "data/raw/sample/train").iterdir()) == sample
    assert (repo.path / "build" / "config.yaml").read_text() == config
    out = repo.dvc("exp", "run", "-n", "after-failure", *set_args(preset="rrdbnet-litex4"))
    assert "Ran experiment(s): after-failure" in out, out


@pytest.mark.e2e
def test_editing_a_perceptual_metric_reruns_evaluate_only(repo: Repo, good: str):
    """NIQE and LPIPS are deps of evaluate, not of train or adversarial (training's validation
    scores PSNR/SSIM only): an edit to them retrains no experiment."""
    repo.dvc("exp", "apply", good)
    metrics = [repo.path / "claritycore" / name for name in ("niqe.py", "lpips.py")]
    originals = [path.read_text() for path in metrics]
    before = json.loads(repo.dvc("status", "--json"))
    try:
        for path, text in zip(metrics, originals, strict=True):
            path.write_text(text + "# an edit\n")
        after = json.loads(repo.dvc("status", "--json"))
    finally:
        for path, text in zip(metrics, originals, strict=True):
            path.write_text(text)
    assert not {"train", "adversarial", "evaluate"} & set(before), before
    changed = {stage: what for stage, what in after.items() if before.get(stage) != what}
    edited = {"claritycore/niqe.py": "modified", "claritycore/lpips.py": "modified"}
    assert changed == {"evaluate": [{"changed deps": edited}]}, after


@pytest.mark.e2e
def test_readme_command_1_table_fits_120_columns(repo: Repo, good: str):
    """The headline table README command 1 ends with: that exact command, its columns, and no
    config hash or diagnostic among what DVC shows as params and metrics."""
    program, *args = shlex.split(command_1()[-1])
    assert program == "dvc" and args[:2] == ["exp", "show"], args
    env = {**repo.env, "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo.path, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = proc.stdout.rstrip().splitlines()
    assert max(map(len, lines)) <= 120, proc.stdout
    header = lines[1].split()
    headline = ["valid.psnr_y", "valid.gain_psnr_y"]
    expected = ["Experiment", *headline, "params.yaml:preset", "training.steps"]
    assert header == expected, proc.stdout
    row = next(line for line in lines if f"[{good}]" in line).split()
    assert all(float(value) for value in row[-4:-2]) and row[-2] == "rrdbnet-litex2", row
    data = repo.experiments()[good]
    assert "config_hash" not in data["params"]["build/config.yaml"]["data"]
    logged = data["metrics"]["dvclive/metrics.json"]["data"]
    assert set(logged["train"]) == {"loss"}, logged  # diagnostics are curves, not columns


@pytest.mark.e2e
def test_plots_pages_draw_offline_each_chart_once(repo: Repo, good: str):
    runs = [good, "second"] if "second" in repo.experiments() else [good]
    for command in (["show"], ["diff", *runs]):
        out = repo.dvc("plots", *command, "-o", "dvc_plots")
        html = (repo.path / "dvc_plots" / "index.html").read_text()
        assert "<title>ClarityCore plots</title>" in html, out  # our template, not DVC's
        assert "<script src" not in html and "cdn.jsdelivr" not in html
        assert not external_urls(html), external_urls(html)
        charts = re.findall(r"vegaEmbed\('#", html)
        specs = json.loads(repo.dvc("plots", *command, "--json"))["data"]
        vega = [title for title, entries in specs.items() if entries[0]["type"] == "vega"]
        # One per dvclive curve (8) and one of per-image bars per set (here only valid/).
        assert len(charts) == len(vega) == 9, vega
        chart = specs["metrics/per_image/valid.csv"][0]["content"]
        bars = chart["data"]["values"]
        assert {"psnr_y", "bicubic_psnr_y"} <= set(bars[0])  # the template folds both
        assert chart["transform"][0]["fold"] == ["psnr_y", "bicubic_psnr_y"]
        # `dvc plots diff <one rev>` adds the workspace; with two revisions it shows just them.
        revs = {row["rev"] for row in bars}
        assert revs == {"workspace"} if command == ["show"] else set(runs) <= revs


@pytest.mark.e2e
def test_claritycore_plots_draws_pngs(repo: Repo, good: str):
    out = repo.run(sys.executable, "-m", "claritycore.cli", "plots", good, "-o", "png")
    names = sorted(p.name for p in (repo.path / "png").iterdir())
    assert (
        "dvclive_plots_metrics_train_loss_tsv.png" in names
        and "metrics_per_image_valid_csv.png" in names
    ), out
    with Image.open(repo.path / "png" / "dvclive_plots_metrics_train_loss_tsv.png") as chart:
        assert chart.format == "PNG" and chart.width > 400 and chart.height > 300
        # Drawn, not blank: the curve and axes give the image many distinct colours.
        assert len(chart.convert("RGB").getcolors(1 << 16) or range(1 << 16)) > 20
    bad = repo.run(sys.executable, "-m", "claritycore.cli", "plots", "nothing", check=False)
    assert "error: `dvc plots diff nothing` failed" in bad, bad
    assert len(bad.strip().splitlines()) == 1, bad


@pytest.mark.e2e
def test_remote_recipe_moves_an_experiment_to_a_second_clone(repo: Repo, good: str, tmp_path):
    """docs/training.md "Share data and experiments", with a local DVC remote and a bare git
    repository.
    Last in this module: it commits, so later experiments would have a new baseline."""
    recipe = training_section("Share data and experiments")
    for step in ("git commit .dvc/config", "dvc exp push origin", "dvc exp pull origin"):
        assert step in recipe, step
    storage, origin = tmp_path / "storage", tmp_path / "origin.git"
    repo.run("git", "init", "-q", "--bare", "--initial-branch=main", str(origin))
    repo.run("git", "remote", "add", "origin", str(origin))
    repo.dvc("exp", "apply", good)
    # The remote is committed before the experiment runs: DVC pushes an experiment's outputs
    # to the remote named in the experiment's own commit.
    repo.dvc("remote", "add", "-d", "storage", str(storage))
    repo.run("git", "commit", "-q", ".dvc/config", "-m", "DVC remote")
    repo.dvc("exp", "run", "-n", "shared", *set_args(preset="rrdbnet-litex2"))
    model = (repo.path / "models" / "model.pt").read_bytes()
    repo.run("git", "push", "-q", "origin", "main")
    repo.dvc("exp", "push", "origin", "shared")

    clone = Repo(tmp_path / "clone")
    repo.run("git", "clone", "-q", "--branch", "main", str(origin), str(clone.path))
    clone.dvc("exp", "pull", "origin", "shared")
    clone.dvc("exp", "apply", "shared")
    clone.dvc("pull")
    assert (clone.path / "models" / "model.pt").read_bytes() == model
    assert len(list((clone.path / "data" / "raw" / "sample" / "train").iterdir())) == 5
    assert "up to date" in clone.dvc("status")


def _small_copies(folder, count: int) -> list:
    """96×96 crops of the shared benchmark images (CI has them), else of the sample's."""
    shared = ROOT.parent / "shared" / "benchmarks" / "Set14"
    source = shared if shared.is_dir() else ROOT / "data" / "sample" / "valid"
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.png"))[:count]:
        with Image.open(path) as image:
            image.crop((0, 0, 96, 96)).save(folder / path.name)
    return sorted(p.stem for p in folder.iterdir())


@pytest.mark.e2e
def test_benchmark_sets_add_per_set_columns(repo: Repo, good: str, tmp_path):
    """docs/benchmarks.md: two sets in two layouts; only evaluate re-runs."""
    five = _small_copies(repo.path / "data" / "benchmarks" / "Set5", 2)  # flat
    fourteen = _small_copies(repo.path / "data" / "benchmarks" / "Set14" / "GTmod12", 3)
    args = set_args(preset="rrdbnet-litex2")
    out = repo.dvc("exp", "run", "-n", "bench", "-S", "evaluate.benchmarks=[Set5,Set14]", *args)
    assert "Running stage 'train'" not in out and "Running stage 'evaluate'" in out, out
    data = repo.experiments()["bench"]["metrics"]["metrics/eval.json"]["data"]
    assert set(data) >= {"valid", "Set5", "Set14"}
    # The session's runs score one image per set (evaluate.max_images=1): each set's first.
    assert data["Set5"]["images"] == data["Set14"]["images"] == 1
    for name in ("Set5", "Set14"):
        assert 10 < data[name]["bicubic_psnr_y"] < 50 and data[name]["psnr_y"] > 5
    assert data["valid"]["images"] == 1 and data["valid"]["psnr_y"] > 5
    crops = sorted(p.stem for p in (repo.path / "metrics" / "comparisons" / "Set14").iterdir())
    assert crops == fourteen[:1]
    with open(repo.path / "metrics" / "per_image" / "Set5.csv") as f:
        assert f.read().splitlines()[1].startswith(f"{five[0]},")

    # A listed set that is not there: one line saying where it goes, before any scoring.
    bad = tmp_path / "params.yaml"
    params = repo.read_yaml("params.yaml")
    params["evaluate"]["benchmarks"] = ["Set5", "Urban100"]
    bad.write_text(json.dumps(params))
    failed = repo.run(sys.executable, "-m", "stages.evaluate", "--params", str(bad), check=False)
    assert "data/benchmarks/Urban100 does not exist: put the set's HR images there" in failed
    assert len(failed.strip().splitlines()) == 1, failed
