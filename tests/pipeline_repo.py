"""The temporary DVC repository the e2e tests share (tests/conftest.py's `repo` fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.committed import export_project

ROOT = Path(__file__).resolve().parents[1]

# The smallest run that still exercises everything: 4 steps of 2 patches of 32 px, a checkpoint
# every 2 steps, validation (on one image; a full-image inference) only at the end.
TINY = {
    "data.source": "sample",
    "overrides.steps": 4,
    "overrides.batch_size": 2,
    "overrides.patch_size": 32,
    "train.workers": 0,
    "train.device": "cpu",
    "train.log_every": 1,
    "train.val_every": 4,
    "train.save_every": 2,
    "train.val_images": 1,
    "evaluate.max_images": 1,
    # Five small images: one process packs them faster than a pool that starts workers.
    "extract.workers": 1,
    "evaluate.device": "cpu",
}


def set_args(**changes: Any) -> list[str]:
    """`-S key=value` arguments for `dvc exp run`: TINY updated with `changes`."""
    values = {**TINY, **{key.replace("__", "."): value for key, value in changes.items()}}
    return [arg for key, value in values.items() for arg in ("-S", f"{key}={value}")]


class Repo:
    """A temporary copy of the project as its own git repository, with DVC run inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "ClarityCore Test",
            "GIT_AUTHOR_EMAIL": "test@claritycore.invalid",
            "GIT_COMMITTER_NAME": "ClarityCore Test",
            "GIT_COMMITTER_EMAIL": "test@claritycore.invalid",
            "DVC_NO_ANALYTICS": "1",
            # One intra-op thread per stage process, as tests/conftest.py does in-process: on a
            # busy 2-core machine, OpenMP threads spinning on each other slow small convs 10x.
            "OMP_NUM_THREADS": "1",
            # Stage commands say `python`: make it this interpreter, with its packages.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def run(self, *args: str, timeout: float = 240, check: bool = True) -> str:
        proc = subprocess.run(
            args, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        output = proc.stdout + proc.stderr
        if check and proc.returncode:
            raise AssertionError(f"`{' '.join(args)}` failed ({proc.returncode}):\n{output}")
        return output

    def dvc(self, *args: str, **kwargs: Any) -> str:
        return self.run(sys.executable, "-m", "dvc", *args, **kwargs)

    def read_yaml(self, relpath: str) -> Any:
        return yaml.safe_load((self.path / relpath).read_text())

    def experiments(self) -> dict[str, dict[str, Any]]:
        """`dvc exp show --json` as {experiment name: its data (params, metrics, ...)}."""
        rows = json.loads(self.dvc("exp", "show", "--json"))
        found = {}
        for baseline in rows:
            for group in baseline.get("experiments") or []:
                for rev in group["revs"]:
                    if rev.get("name"):
                        found[rev["name"]] = rev["data"]
        return found


def metric(data: dict[str, Any], path: str, key: str) -> float:
    """Metric `key` of file `path`; dvclive nests "val/psnr_y" as {"val": {"psnr_y": ...}}."""
    value = data["metrics"][path]["data"]
    for part in key.split("/"):
        value = value[part]
    return value


def config_param(data: dict[str, Any], section: str, key: str) -> Any:
    return data["params"]["build/config.yaml"]["data"][section][key]


def make_repo(path: Path) -> Repo:
    """The project as git holds it (tests/committed.py: not the workspace's params.yaml, build/
    and dvc.lock, which README command 1 rewrites) at `path`, a fresh git repository with one
    commit."""
    path.mkdir(parents=True)
    export_project(path)
    repo = Repo(path)
    repo.run("git", "init", "-q", "-b", "main")
    repo.run("git", "add", "-A")
    repo.run("git", "commit", "-q", "-m", "ClarityCore snapshot")
    return repo
