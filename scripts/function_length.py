"""No function of the four packages is longer than MAX_LINES (80): a longer one gets split into named steps.

``make lint`` runs it beside ruff's C901 (cyclomatic complexity at most 20, pyproject.toml). No file is exempt (the
last two, ``train_fold`` at 100 lines and ``fit_combine`` at 158, were split into named steps). Migrations and tests
are not checked.

Usage: ``python scripts/function_length.py`` (exit status 1 when a function is too long).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("coinsite", "registry", "predictions", "training")
SKIPPED_PARTS = {"migrations", "tests", "__pycache__"}
MAX_LINES = 80


def long_functions(path: Path, max_lines: int = MAX_LINES) -> list[tuple[int, str, int]]:
    """(line, name, length) of every function in ``path`` longer than ``max_lines``, from ``def`` to its last line
    (docstring included; decorators, such as an API view's schema, are not)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > max_lines:
                found.append((node.lineno, node.name, length))
    return found


def main() -> int:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if SKIPPED_PARTS.intersection(relative.parts):
                continue
            found += [(relative, *item) for item in long_functions(path)]
    for relative, line, name, length in found:
        print(f"{relative}:{line}: {name}() is {length} lines (at most {MAX_LINES}): split it into named steps")
    print(f"function length: {len(found)} function(s) over {MAX_LINES} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
