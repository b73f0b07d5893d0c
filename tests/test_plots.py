"""The offline plots page (plots/template.html) and `claritycore plots`, without DVC runs
(tests/test_pipeline_workflows.py renders real pipeline charts with both)."""

from __future__ import annotations

import json
import re

import yaml
from typer.testing import CliRunner

from claritycore.cli import app
from tests.pipeline_repo import ROOT

TEMPLATE = (ROOT / "plots" / "template.html").read_text(encoding="utf8")

# URLs inside the inlined Vega libraries that no chart loads: XML namespaces, links in error
# messages, the editor link that the template's defaults switch off, and schema names (read
# for the version, never fetched).
INERT_URLS = {
    "http://www.w3.org/1999/xlink",
    "http://www.w3.org/2000/svg",
    "http://www.w3.org/2000/xmlns/",
    "https://github.com/Starcounter-Jack/JSON-Patch",
    "https://github.com/vega/vega-lite/issues/2415",
    "https://vega.github.io/editor/",
    "https://vega.github.io/schema/vega/v5.json",
    "https://vega.github.io/schema/vega-lite/v5.json",
}


def external_urls(html: str) -> set[str]:
    """Every http(s) URL in `html` that a browser could load: all but the inert ones."""
    return set(re.findall(r"""https?://[^\s"'<>()\\]+""", html)) - INERT_URLS


def test_template_is_used_by_default_and_loads_nothing_from_the_network():
    assert "html_template = ../plots/template.html" in (ROOT / ".dvc" / "config").read_text()
    assert "{plot_divs}" in TEMPLATE and "{refresh_tag}" in TEMPLATE
    # Without a {scripts} placeholder DVC adds no <script src="https://cdn..."> tags.
    assert "{scripts}" not in TEMPLATE and "<script src" not in TEMPLATE
    assert not external_urls(TEMPLATE), external_urls(TEMPLATE)
    for name, version in (("vega", "5.33.1"), ("vega-lite", "5.23.0"), ("vega-embed", "6.29.0")):
        assert f"{name} {version}" in TEMPLATE
    assert re.search(r"\.vega=\{\}|vega=\{\}", TEMPLATE)  # vega's UMD bundle sets window.vega
    assert "window.vegaEmbed" in TEMPLATE


def test_external_urls_catches_a_cdn_script():
    page = TEMPLATE.replace("{plot_divs}", '<script src="https://cdn.jsdelivr.net/npm/vega@5">')
    assert external_urls(page) == {"https://cdn.jsdelivr.net/npm/vega@5"}


def test_plots_without_charts_is_one_line_and_status_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["plots"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "DVC lists no charts" in lines[0], result.output


def test_per_image_scores_are_one_chart_per_set():
    """DVC draws a stage plot and a top-level plot of the same file as two charts: the per-image
    CSVs are one stage plot whose template draws the model's and bicubic's bars together."""
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    plots = [p for p in pipeline["stages"]["evaluate"]["plots"] if isinstance(p, dict)]
    per_image = next(p["metrics/per_image"] for p in plots if "metrics/per_image" in p)
    assert per_image["template"] == "per_image_psnr" and per_image["x"] == "name"
    template = json.loads((ROOT / ".dvc" / "plots" / "per_image_psnr.json").read_text())
    assert template["transform"][0]["fold"] == ["psnr_y", "bicubic_psnr_y"]
    assert "plots" not in pipeline  # no top-level chart draws them again
