"""Import hygiene that import-linter's contracts do not cover: module cycles and unexplained lazy imports.

Two checks, both run by ``make lint`` (exit status 1 when either finds something):

* **cycles**: the module graph of coinsite, registry, predictions and training is built with grimp (the graph library
  import-linter uses, so both tools see the same imports) and every strongly connected component of two or more
  modules is printed with one concrete cycle through it. A layers contract only forbids imports upward between
  layers; a cycle inside one layer (services <-> tasks, a package ``__init__`` and its submodules) still makes import
  order matter and is what pushed imports into functions in the first place.
* **lazy**: every ``import`` inside a function body in the four packages (migrations and tests excluded) must carry
  a comment on the same line or the line just above saying why it cannot be at module level. An import hidden in a
  function hides a dependency from this graph and from import-linter, so it has to be a decision, not a habit.

Usage: ``python scripts/import_cycles.py [--cycles] [--lazy]`` (both when neither is given).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("coinsite", "registry", "predictions", "training")
SKIPPED_PARTS = {"migrations", "tests", "__pycache__"}


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the module graph is deep enough that recursion would hit Python's limit."""
    index_of: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    for root in sorted(graph):
        if root in index_of:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index_of[root] = lowlink[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index_of:
                    index_of[child] = lowlink[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    lowlink[node] = min(lowlink[node], index_of[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index_of[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def cycle_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete cycle inside a component (breadth-first back to its first module), to show what to break."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        next_frontier: list[str] = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    next_frontier.append(child)
        frontier = next_frontier
    return [start]


def module_graph() -> dict[str, set[str]]:
    """Direct imports between modules of the four packages, as import-linter sees them."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {
        module: {imported for imported in graph.find_modules_directly_imported_by(module) if imported in graph.modules}
        for module in graph.modules
    }


def check_cycles() -> int:
    graph = module_graph()
    cycles = [component for component in strongly_connected_components(graph) if len(component) > 1]
    for component in cycles:
        print(f"import cycle among {len(component)} modules: {', '.join(component)}")
        print("  e.g. " + " -> ".join(cycle_through(component, graph)))
    print(f"cycles: {len(graph)} modules, {len(cycles)} cycle(s)")
    return 1 if cycles else 0


@dataclass(frozen=True)
class LazyImport:
    path: Path
    line: int
    function: str
    statement: str
    reason: str | None


def python_files(packages: Iterable[str]) -> Iterator[Path]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not SKIPPED_PARTS.intersection(path.relative_to(ROOT).parts):
                yield path


def comment_on(line: str) -> str | None:
    """The reason a source line's comment gives, if any: a bare ``noqa`` or ``type:`` directive is not a reason.

    Tokenising is not needed: import lines hold no '#' inside strings.
    """
    if "#" not in line:
        return None
    text = line.split("#", 1)[1].strip()
    text = re.sub(r"^(noqa(:\s*[A-Z0-9, ]+)?|type:\s*ignore(\[[^\]]*\])?)\s*", "", text).strip(" ()")
    return text or None


def lazy_imports(path: Path) -> Iterator[LazyImport]:
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))

    def visit(node: ast.AST, function: str | None) -> Iterator[LazyImport]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from visit(child, child.name if function is None else f"{function}.{child.name}")
            elif isinstance(child, ast.Import | ast.ImportFrom) and function is not None:
                same = comment_on(lines[child.lineno - 1])
                above = lines[child.lineno - 2].strip() if child.lineno >= 2 else ""
                reason = same or (comment_on(above) if above.startswith("#") else None)
                yield LazyImport(path, child.lineno, function, ast.get_source_segment(source, child) or "", reason)
            else:
                yield from visit(child, function)

    yield from visit(tree, None)


def check_lazy(verbose: bool) -> int:
    found = [item for path in python_files(PACKAGES) for item in lazy_imports(path)]
    missing = [item for item in found if item.reason is None]
    for item in found if verbose else missing:
        where = f"{item.path.relative_to(ROOT)}:{item.line} in {item.function}()"
        print(f"{where}: {item.statement}" + (f"  # {item.reason}" if item.reason else "  <- no comment says why"))
    print(f"lazy imports: {len(found)} inside functions, {len(missing)} without a reason")
    return 1 if missing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", action="store_true", help="only the cycle check")
    parser.add_argument("--lazy", action="store_true", help="only the lazy-import check")
    parser.add_argument("--verbose", action="store_true", help="also list the lazy imports that give a reason")
    args = parser.parse_args(argv)
    run_both = not (args.cycles or args.lazy)
    status = 0
    if args.cycles or run_both:
        status |= check_cycles()
    if args.lazy or run_both:
        status |= check_lazy(args.verbose)
    return status


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
