"""README.md stays true to the code: its preset table and its test command."""

from __future__ import annotations

import re
from pathlib import Path

from claritycore.cli.presets import markdown_table, preset_rows

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_presets_table_is_the_generated_one():
    match = re.search(r"<!-- presets-table:[^>]*-->\n(.*?)\n<!-- /presets-table -->", README, re.S)
    assert match, "README.md lost its presets-table markers"
    assert match.group(1) == markdown_table(preset_rows()), (
        "README's preset table is stale: paste `claritycore presets --markdown` between the markers"
    )


def test_ci_runs_the_readme_test_command():
    command = re.search(r"(python -m pytest[^`\n]*)", README).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()


def test_readme_plots_diff_commands_name_what_they_compare():
    """Bare `dvc plots diff` compares the workspace with HEAD, which has no plots until a run is
    committed ("failed to load some plots for 'HEAD'"): every command the README shows names
    the experiments."""
    commands = re.findall(r"^(dvc plots diff\b[^#\n]*)", README, re.M)
    assert commands, "README shows no `dvc plots diff` command"
    for command in commands:
        assert len(command.split()) >= 4, command
