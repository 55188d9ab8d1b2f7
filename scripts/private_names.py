"""No module uses another module's private names (``_name``): what other modules need gets a public name.

``make lint`` runs it (exit status 1 when it finds one). Two forms are found, in the four packages (migrations and
tests excluded):

* ``from training.services.lease import _run_finish`` (also relative: ``from .lease import _run_finish``);
* ``synthetic._font(...)`` where ``synthetic`` names a module of this repository imported in that file.

A leading underscore says "only this module relies on it", so whoever changes it checks this module alone; nine
such names were imported across the service modules and five reached into the coin generator before this check.
Dunder names (``__version__``) are not private.

Usage: ``python scripts/private_names.py [paths...]`` (the four packages when none is given).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("coinsite", "registry", "predictions", "training")
SKIPPED_PARTS = {"migrations", "tests", "__pycache__"}


@dataclass(frozen=True)
class Use:
    path: Path
    line: int
    text: str


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The absolute module an ImportFrom reads from (relative imports resolved against ``current``)."""
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def is_repo_module(dotted: str, root: Path) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def private_uses(path: Path, root: Path = ROOT) -> Iterator[Use]:
    tree = ast.parse(path.read_text(), filename=str(path))
    current = module_of(path, root)
    modules: set[str] = set()  # local names bound to modules of this repository
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = resolve(node, current, path.name == "__init__.py")
            for alias in node.names:
                if is_private(alias.name):
                    yield Use(path, node.lineno, f"from {source} import {alias.name}")
                elif is_repo_module(f"{source}.{alias.name}", root):
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and is_repo_module(alias.name, root):
                    modules.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and is_private(node.attr)
        ):
            yield Use(path, node.lineno, f"{node.value.id}.{node.attr}")


def python_files(paths: list[Path]) -> Iterator[Path]:
    for base in paths:
        for path in sorted(base.rglob("*.py")) if base.is_dir() else [base]:
            if not SKIPPED_PARTS.intersection(path.relative_to(ROOT).parts):
                yield path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [ROOT / arg for arg in args] or [ROOT / package for package in PACKAGES]
    found = [use for path in python_files(paths) for use in private_uses(path)]
    for use in found:
        print(f"{use.path.relative_to(ROOT)}:{use.line}: {use.text}  <- another module's private name")
    print(f"private names: {len(found)} used across modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
