"""params.yaml's key comments and the docs' key tables, made from the fields' `option` help.

`python -m claritycore.params_doc` (from the repository root) rewrites them in place;
tests/test_params_doc.py fails while a committed file differs from what this makes, so neither
can drift from the dataclasses.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from claritycore.config import SECTIONS, AdversarialConfig, DegradationConfig, TrainingConfig
from claritycore.models import config_classes
from claritycore.presets import get_preset
from claritycore.schema import as_dict, field_help

# The GAN presets whose `adversarial` values params.yaml and docs/perceptual.md show.
FAMILIES = {"ESRGAN": "esrganx4", "Real-ESRGAN": "realesrganx4"}
WIDTH = 100  # params.yaml's comments wrap here
# A key line longer than this puts its comment two spaces after it, not in the column.
ALIGNED = 28
Row = tuple[str, str, str]  # key, YAML value, comment


def yaml_value(value: Any) -> str:
    """A plain value (`as_dict`'s) as one line of YAML: null, 0.5, [0.9, 0.99], {conv5_4: 1.0}."""
    return yaml.safe_dump([value], default_flow_style=True, width=float("inf")).strip()[1:-1]


def override_help() -> dict[str, str]:
    """The keys of params.yaml's `overrides`: training fields, then every model's fields."""
    helps: dict[str, str] = {}
    classes: list[type] = [TrainingConfig, *config_classes()]
    for cls in classes:
        helps |= {k: v for k, v in field_help(cls).items() if k not in helps}
    return helps


def family_values(key: str) -> str:
    """`(ESRGAN 0.01, Real-ESRGAN 1.0)`: an adversarial key's value in each family's preset,
    once where they agree."""
    values = {
        label: yaml_value(as_dict(get_preset(name).adversarial)[key])
        for label, name in FAMILIES.items()
    }
    if len(set(values.values())) == 1:
        return f"({next(iter(values.values()))})"
    return "(" + ", ".join(f"{label} {value}" for label, value in values.items()) + ")"


def section_rows() -> dict[str, list[Row]]:
    """Each params.yaml section's keys, values and comments. The experiment's sections hold
    nulls (null keeps the preset's value); the others hold the defaults."""
    defaults = as_dict(DegradationConfig())
    adversarial = field_help(AdversarialConfig)
    del adversarial["base"]  # the preset's own PSNR stage, never overridden
    rows = {
        "overrides": [(k, "null", text) for k, text in override_help().items()],
        "degradation": [
            (k, "null", f"{text} ({yaml_value(defaults[k])})")
            for k, text in field_help(DegradationConfig).items()
        ],
        "adversarial": [(k, "null", f"{t} {family_values(k)}") for k, t in adversarial.items()],
        # The same keys as `overrides`, described there.
        "psnr_overrides": [(k, "null", "") for k in field_help(TrainingConfig)],
    }
    for name, cls in SECTIONS.items():
        values = as_dict(cls())
        rows[name] = [(k, yaml_value(values[k]), t) for k, t in field_help(cls).items()]
    return rows


def section_lines(rows: list[Row]) -> list[str]:
    """`  key: value  # comment` lines, comments in one column and wrapped at WIDTH."""
    keys = [f"  {key}: {value}" for key, value, _ in rows]
    column = max((len(line) for line in keys if len(line) <= ALIGNED), default=0) + 2
    lines = []
    for line, (_, _, comment) in zip(keys, rows, strict=True):
        if not comment:
            lines.append(line)
            continue
        first = line.ljust(column) if len(line) + 2 <= column else line + "  "
        lines += textwrap.wrap(
            comment, WIDTH, initial_indent=first + "# ", subsequent_indent=" " * column + "# ",
            break_long_words=False, break_on_hyphens=False,
        )  # fmt: skip
    return lines


def render_params(text: str) -> str:
    """params.yaml's `text` with every section's key lines made anew; the other lines (the
    comments between sections, `preset`) kept as they are."""
    bodies = {name: section_lines(rows) for name, rows in section_rows().items()}
    lines, out = text.splitlines(), []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        name = re.fullmatch(r"(\w+):\s*", lines[i])
        i += 1
        if name and name[1] in bodies:
            while i < len(lines) and lines[i].startswith(" "):  # the old keys and comments
                i += 1
            out += bodies.pop(name[1])
    if bodies:
        raise ValueError(f"params.yaml lacks the sections {', '.join(bodies)}")
    return "\n".join(out) + "\n"


def key_table(cls: type, columns: dict[str, dict[str, Any]], skip: tuple[str, ...] = ()) -> str:
    """A Markdown table of `cls`'s keys: a column of values per entry of `columns` and what
    each key does. A key ending in 2 shares its twin's row where the two have the same help."""
    helps = {k: v for k, v in field_help(cls).items() if k not in skip}
    rows = [["key", *columns, "what it does"]]
    for key, text in helps.items():
        if key.endswith("2") and helps.get(key[:-1]) == text:
            continue  # in its twin's row
        keys = [key, key + "2"] if helps.get(key + "2") == text else [key]
        cells = [
            " / ".join(dict.fromkeys(f"`{yaml_value(values[k])}`" for k in keys))
            for values in columns.values()
        ]
        rows.append([", ".join(f"`{k}`" for k in keys), *cells, text.replace("|", r"\|")])
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(rows[0]))
    return "\n".join(lines)


def degradation_table() -> str:
    return key_table(DegradationConfig, {"default": as_dict(DegradationConfig())})


def adversarial_table() -> str:
    columns = {
        f"{label} (`{name}`)": as_dict(get_preset(name).adversarial)
        for label, name in FAMILIES.items()
    }
    return key_table(AdversarialConfig, columns, skip=("base",))


TABLES: dict[str, Callable[[], str]] = {
    "degradation": degradation_table,
    "adversarial": adversarial_table,
}
_TABLE = re.compile(r"(<!-- params-table: (\w+) [^\n]*-->\n).*?(\n<!-- /params-table -->)", re.S)


def render_tables(text: str) -> str:
    """A Markdown page with the table between each pair of params-table markers made anew."""
    return _TABLE.sub(lambda m: m[1] + TABLES[m[2]]() + m[3], text)


# Each generated file, relative to the repository root, and what makes it from its text.
FILES: dict[str, Callable[[str], str]] = {
    "params.yaml": render_params,
    "docs/real-world.md": render_tables,
    "docs/perceptual.md": render_tables,
}


def main(root: Path = Path()) -> None:
    """Rewrite every generated file under `root` that differs from what is made of it."""
    for name, render in FILES.items():
        path = root / name
        text = path.read_text()
        if render(text) != text:
            path.write_text(render(text))
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
