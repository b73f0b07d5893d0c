"""Write plots/template.html: DVC's plots page with Vega, Vega-Lite and Vega-Embed inlined.

`dvc plots show` / `dvc plots diff` fill the page (.dvc/config: plots.html_template); DVC's own
page loads the three libraries from a CDN, so it draws no chart offline. Run from the repo root
after unpacking the npm packages named in plots/README.md:

    npm pack vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0
    for f in vega-*.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
    python plots/build_template.py .
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LIBRARIES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
# DVC's chart divs call `vegaEmbed(el, spec)`: keep the menu's PNG/SVG export, which works
# offline, and drop its links to the online Vega editor.
EMBED_DEFAULTS = """const embedChart = vegaEmbed;
window.vegaEmbed = (el, spec, opt) =>
  embedChart(el, spec, {actions: {export: true, source: false, compiled: false, editor: false},
                        ...opt});"""

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>ClarityCore plots</title>
    <!-- Written by plots/build_template.py: {versions}, inlined from their npm packages
         (BSD-3-Clause, see plots/README.md) so the charts draw without a network. -->
{scripts_inline}
    <style>
        table { border-spacing: 15px; }
        body { font-family: sans-serif; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def build(unpacked: Path) -> str:
    """The page, from `<unpacked>/<name>-<version>/package/build/<name>.min.js`."""
    scripts = []
    for name, version in LIBRARIES.items():
        package = unpacked / f"{name}-{version}" / "package"
        found = json.loads((package / "package.json").read_text())["version"]
        if found != version:
            raise SystemExit(f"{package} holds {name} {found}, not {version}")
        code = (package / "build" / f"{name}.min.js").read_text(encoding="utf8")
        # The source maps are not shipped with the page.
        code = "\n".join(line for line in code.splitlines() if "sourceMappingURL" not in line)
        if "</script" in code or "{plot_divs}" in code or "{scripts}" in code:
            raise SystemExit(f"{name}.min.js holds text that would break the inlined page")
        scripts.append(f"    <script>\n{code}\n    </script>")
    scripts.append(f"    <script>\n{EMBED_DEFAULTS}\n    </script>")
    versions = ", ".join(f"{name} {version}" for name, version in LIBRARIES.items())
    # str.replace, not format: DVC fills the {refresh_tag} and {plot_divs} placeholders later.
    return PAGE.replace("{versions}", versions).replace("{scripts_inline}", "\n".join(scripts))


if __name__ == "__main__":
    unpacked = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out = Path(__file__).resolve().parent / "template.html"
    out.write_text(build(unpacked), encoding="utf8")
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
