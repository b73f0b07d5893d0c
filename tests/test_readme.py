"""README.md and the pages it links stay true to the code and to each other: the preset table,
the test command CI runs, the commands the pages show, and links that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from claritycore.cli.presets import markdown_table, preset_rows

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# The front page and every page of the documentation (docs/README.md: how the picture was made).
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def command_1() -> list[str]:
    """README command 1, split into the commands it chains with `&&`."""
    match = re.search(r"^python -m pip install -e \"\.\[dev\]\" && dvc exp run .*$", README, re.M)
    assert match, "README has no command 1 (install && dvc exp run ...)"
    return match.group(0).split(" && ")


def _prose(text: str) -> str:
    """Markdown without its fenced code blocks (a `#` in a shell comment is no heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces
    to hyphens."""
    headings = re.findall(r"^#+ (.+)$", _prose(page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def _links(page: Path) -> list[str]:
    """Targets of the page's Markdown links and images that point into the repository."""
    targets = re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text()))
    return [target for target in targets if not re.match(r"[a-z]+:", target)]


def test_readme_presets_table_is_the_generated_one():
    match = re.search(r"<!-- presets-table:[^>]*-->\n(.*?)\n<!-- /presets-table -->", README, re.S)
    assert match, "README.md lost its presets-table markers"
    assert match.group(1) == markdown_table(preset_rows()), (
        "README's preset table is stale: paste `claritycore presets --markdown` between the markers"
    )


def test_ci_runs_the_readme_test_command():
    command = re.search(r"(python -m pytest[^`\n]*)", README).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()


def test_readme_command_1_ends_with_the_compact_table():
    """Its last command is the headline `dvc exp show` (tests/test_pipeline_workflows.py runs
    it and holds it to 120 columns), not one that prints every column."""
    *_, last = command_1()
    assert last.startswith("dvc exp show --drop '.*' --keep '^("), last
    assert "--only-changed" not in last


def test_picture_was_made_by_readme_command_1():
    """docs/README.md's recipe for the picture is command 1's run, word for word."""
    recipe = (ROOT / "docs" / "README.md").read_text()
    runs = re.findall(r"^dvc exp run .*$", recipe, re.M)
    assert runs == [command_1()[1]], runs


def test_plots_diff_commands_name_what_they_compare():
    """Bare `dvc plots diff` compares the workspace with HEAD, which has no plots until a run is
    committed ("failed to load some plots for 'HEAD'"): every command the pages show names
    the experiments."""
    commands = [
        command
        for page in PAGES
        for command in re.findall(r"^(dvc plots diff\b[^#\n]*)", page.read_text(), re.M)
    ]
    assert commands, "no page shows a `dvc plots diff` command"
    for command in commands:
        assert len(command.split()) >= 4, command


def test_every_page_is_linked_from_the_readme():
    linked = {(ROOT / target.split("#")[0]).resolve() for target in _links(ROOT / "README.md")}
    unlinked = [page.relative_to(ROOT) for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, f"README.md links no page {unlinked}"


def test_links_between_pages_lead_somewhere():
    broken = []
    for page in PAGES:
        for target in _links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists() or (anchor and anchor not in _anchors(dest)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
