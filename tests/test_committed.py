"""tests/committed.py: the tests read the project as git holds it, not a workspace that
`dvc exp run` has rewritten (README command 1, then command 2, on one clone)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.committed import committed_text, committed_yaml, export_project


def git(root: Path, *args: str) -> None:
    identity = ("-c", "user.name=ClarityCore Test", "-c", "user.email=test@claritycore.invalid")
    subprocess.run(["git", *identity, *args], cwd=root, check=True, capture_output=True)


def project(root: Path) -> Path:
    """A tiny project: params, a resolved config, and outputs its .gitignore excludes."""
    (root / "build").mkdir(parents=True)
    (root / "params.yaml").write_text("preset: rrdbnetx4\n")
    (root / "build" / "config.yaml").write_text("steps: 400000\n")
    (root / ".gitignore").write_text("/models/\n")
    (root / "models").mkdir()
    (root / "models" / "model.pt").write_bytes(b"weights")
    return root


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_clone_is_read_from_its_index(tmp_path):
    root = project(tmp_path / "clone")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    # What `dvc exp run -S preset=rrdbnet-litex2` leaves behind, and an edit staged for commit.
    (root / "params.yaml").write_text("preset: rrdbnet-litex2\n")
    (root / "build" / "config.yaml").write_text("steps: 1000\n")
    (root / "dvc.lock").write_text("schema: '2.0'\n")
    (root / "staged.py").write_text("STAGED = True\n")
    git(root, "add", "staged.py")

    assert committed_yaml("params.yaml", root) == {"preset": "rrdbnetx4"}
    assert committed_text("build/config.yaml", root) == "steps: 400000\n"
    (tmp_path / "copy").mkdir()
    export_project(tmp_path / "copy", root)
    assert files(tmp_path / "copy") == {".gitignore", "params.yaml", "build/config.yaml",
                                        "staged.py"}  # fmt: skip
    assert (tmp_path / "copy" / "params.yaml").read_text() == "preset: rrdbnetx4\n"


def test_an_unpacked_archive_is_read_as_it_lies(tmp_path):
    """Without a git work tree of its own (even inside another one): its files, less ignored."""
    outer = tmp_path / "outer"
    outer.mkdir()
    git(outer, "init", "-q")
    root = project(outer / "archive")

    assert committed_yaml("params.yaml", root) == {"preset": "rrdbnetx4"}
    (tmp_path / "copy").mkdir()
    export_project(tmp_path / "copy", root)
    assert files(tmp_path / "copy") == {".gitignore", "params.yaml", "build/config.yaml"}
    assert (tmp_path / "copy" / "build" / "config.yaml").read_text() == "steps: 400000\n"
