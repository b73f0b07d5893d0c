"""The project as git holds it, for the tests that check the shipped params.yaml and build/ and
for the e2e tests' repository: `dvc exp run` rewrites params.yaml, build/*.yaml and dvc.lock in
the workspace (README command 1 leaves them so), but never stages them.

In a git clone that is git's index: HEAD, plus whatever was `git add`ed (so an edit is tested
once staged, before it is committed). Where the project is not its own git work tree (an
unpacked archive), it is the files as they lie, less what the .gitignore files exclude.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


@functools.cache
def _in_git(root: Path) -> bool:
    """Whether `root` is the top of a git work tree (not a folder inside some other one)."""
    try:
        top = _git("rev-parse", "--show-toplevel", cwd=root).strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return Path(top).resolve() == root.resolve()


def committed_text(relpath: str, root: Path = ROOT) -> str:
    """The text of `relpath` (relative to `root`) as git's index holds it."""
    if _in_git(root):
        return _git("show", f":{relpath}", cwd=root)
    return (root / relpath).read_text()


def committed_yaml(relpath: str, root: Path = ROOT) -> Any:
    return yaml.safe_load(committed_text(relpath, root))


def export_project(dest: Path, root: Path = ROOT) -> None:
    """The project's files into `dest`, an existing empty folder, as git's index holds them."""
    if _in_git(root):
        _git("checkout-index", "--all", f"--prefix={dest.resolve()}/", cwd=root)
        return
    # No index to read: a scratch one, filled from `root` by the rules `git add` keeps.
    with tempfile.TemporaryDirectory() as scratch:
        _git("--git-dir", scratch, "init", "-q", cwd=root)
        _git("--git-dir", scratch, "--work-tree", str(root), "add", "-A", cwd=root)
        _git("--git-dir", scratch, "--work-tree", str(dest), "checkout-index", "--all", cwd=root)
