"""The code keeps the shape the README's Layout describes: one package per domain, no import
circles, no module reaching into another's private names, no data path computed from a module's
own place in the tree, and every module started by name still there."""

import ast
import importlib
import re
from pathlib import Path

import pytest

from pipelines import paths

pytestmark = pytest.mark.unit
PIPELINES = paths.ROOT / "pipelines"
DOMAINS = {"catalog", "warehouse", "backflow", "governance", "identity", "serving", "reports",
           "defs", "cli", "sim", "workbench", "exchange", "prereview"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(paths.ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PIPELINES.rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, name imported from it or None, line) for every import, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.module, a.name, node.lineno) for a in node.names]
    return out


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for target, name, _ in _imports(path):
            if name and f"{target}.{name}" in MODULES:
                graph[mod].add(f"{target}.{name}")  # `from package import module`
            elif target in MODULES:
                graph[mod].add(target)
    return graph


def test_the_top_level_is_one_package_per_domain():
    packages = {p.name for p in PIPELINES.iterdir() if (p / "__init__.py").exists()}
    modules = {p.name for p in PIPELINES.glob("*.py")}
    assert packages == DOMAINS
    assert modules == {"__init__.py", "paths.py", "settings.py", "file_modes.py",
                       "definitions.py"}


def test_no_import_circle():
    graph, seen, stack, cycles = _edges(), set(), [], []

    def visit(m: str) -> None:
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for n in sorted(graph[m]):
            visit(n)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_another_modules_private_names():
    found = [f"{path.relative_to(paths.ROOT)}:{line} takes {name} from {target}"
             for path in [*MODULES.values(), *(paths.ROOT / "tests").rglob("*.py"),
                          *(paths.ROOT / "benchmarks").rglob("*.py")]
             for target, name, line in _imports(path)
             if target.startswith("pipelines") and name and name.startswith("_")]
    assert not found, "\n".join(found)


def test_data_paths_come_from_paths_py():
    here = re.compile(r"Path\(__file__\)|parents\[\d\]")
    found = [f"{p.relative_to(paths.ROOT)}" for p in MODULES.values()
             if p.name != "paths.py" and here.search(p.read_text(encoding="utf-8"))]
    assert not found


def test_every_module_started_by_name_exists():
    for target in (paths.CLI_MODULE, paths.SIM_MODULE, paths.DAGSTER_DEFINITIONS,
                   paths.SERVICE_APP, paths.SERVICE_HTTP_PROTOCOL, paths.WORKBENCH_APP,
                   paths.EXCHANGE_APP):
        module, _, attribute = target.partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None, target
        if attribute:
            assert hasattr(importlib.import_module(module), attribute), target
    for name in ("__main__",):  # `python -m pipelines.cli` and `python -m pipelines.sim`
        for package in (paths.CLI_MODULE, paths.SIM_MODULE):
            assert importlib.util.find_spec(f"{package}.{name}") is not None
