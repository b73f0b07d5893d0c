"""House rules that code review keeps forgetting, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# style.md rule 6: no function over ~100 lines; the training loop itself about 60.
LONGEST_FUNCTION = 100


def _functions(package: Path):
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(ROOT), node


def test_no_function_in_the_library_is_longer_than_100_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, node in _functions(ROOT / "claritycore")
        if node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION
    ]
    assert not long, long


def test_the_training_loop_reads_on_one_screen():
    loops = [
        n
        for p, n in _functions(ROOT / "claritycore")
        if p.name == "trainer.py" and n.name == "_run"
    ]
    assert len(loops) == 1 and loops[0].end_lineno - loops[0].lineno + 1 <= 60
