"""The README's workflows beyond the first runs, with DVC for real: recovering from a failed
`dvc exp run`, sharing experiments through a remote, offline charts, a readable `dvc exp show`.

Runs in the session's shared repository after tests/test_pipeline_e2e.py (see tests/conftest.py).
"""

from __future__ import annotations

import re

import pytest

from tests.pipeline_repo import ROOT, Repo, set_args

README = (ROOT / "README.md").read_text()


def readme_section(title: str) -> str:
    """The README text under the heading `title`, up to the next heading."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def good(repo: Repo) -> str:
    """A finished experiment: test_pipeline_e2e's `first`, or made here when run alone."""
    if "first" not in repo.experiments():
        repo.dvc("exp", "run", "-n", "first", "-S", "preset=rrdbnet-litex2", *set_args())
    return "first"


@pytest.mark.e2e
def test_failed_run_is_undone_by_the_readme_recipe(repo: Repo, good: str, tmp_path):
    recipe = readme_section("When a run fails")
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
