"""The folders are the architecture: which package may import which (docs/ARCHITECTURE.md), and no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

#: Packages from the bottom up: each may import its own package and those below it, never one above or
#: beside it. ``analyzer``'s own modules (config, errors, the version) sit with core; the command line on top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("service",),
    ("backends", "outputs"),  # side by side: a backend never publishes, an output never classifies
    ("pipeline",),
    ("datasets",),
    ("train",),
    ("tools",),
    ("commands",),
)
TOP_LEVEL_CORE = {"analyzer", "analyzer.config", "analyzer.errors"}
COMMAND_LINE = {"analyzer.cli", "analyzer.__main__"}


def package_of(module: str) -> str:
    """The layer package of an ``analyzer`` module."""
    if module in TOP_LEVEL_CORE:
        return "core"
    if module in COMMAND_LINE:
        return "commands"
    return module.split(".")[1]


def rank(package: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if package in layer)


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Every ``analyzer`` module and the ``analyzer`` modules it imports, at the top, in functions or for typing."""
    modules = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("analyzer"):
                for alias in node.names:  # ``from analyzer.outputs import messages`` imports a module
                    candidate = f"{node.module}.{alias.name}"
                    imported.add(candidate if candidate in modules else node.module)  # type: ignore[arg-type]
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("analyzer")}
        graph[module] = {name for name in imported if name in modules and name != module}
    return graph


def wrong_arrows(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every import against the layers."""
    wrong = []
    for importer, imported in sorted(graph.items()):
        for target in sorted(imported):
            here, there = package_of(importer), package_of(target)
            if here != there and rank(there) >= rank(here):
                wrong.append(f"{importer} -> {target}")
    return wrong


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles between modules (deferred imports in functions included)."""
    found, state = [], dict.fromkeys(graph, 0)  # 0 unseen, 1 on the path, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state[target] == 1:
                found.append([*path[path.index(target) :], target])
            elif state[target] == 0:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module, [module])
    return found


def test_every_package_imports_only_its_own_and_those_below_it() -> None:
    graph = import_graph(REPO / "analyzer")
    assert {package_of(module) for module in graph} <= {package for layer in LAYERS for package in layer}
    assert wrong_arrows(graph) == []
    assert cycles(graph) == []


@pytest.mark.parametrize(
    ("importer", "source"),
    [
        ("pipeline/stage.py", "from analyzer.tools.simulate import simulate"),  # a stage importing a tool
        ("train/step.py", "from analyzer.tools import accuracy"),  # training importing a tool
        ("outputs/sink.py", "import analyzer.pipeline.track"),  # an output importing a stage
        ("backends/engine.py", "def later():\n    from analyzer.outputs.metrics import Metrics"),  # beside it
        ("core/shape.py", "if TYPE_CHECKING:\n    from analyzer.service.console import how_many"),  # above it
    ],
)
def test_an_import_against_the_layers_is_caught(tmp_path: Path, importer: str, source: str) -> None:
    root = tmp_path / "analyzer"
    for path in (
        "__init__.py",
        importer,
        "tools/simulate.py",
        "tools/accuracy.py",
        "tools/__init__.py",
        "pipeline/track.py",
        "outputs/metrics.py",
        "service/console.py",
    ):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).touch()
    (root / importer).write_text(source + "\n")
    (wrong,) = wrong_arrows(import_graph(root))
    assert wrong.startswith("analyzer." + importer.removesuffix(".py").replace("/", ".") + " -> ")


def test_a_cycle_is_caught_even_through_a_deferred_import(tmp_path: Path) -> None:
    root = tmp_path / "analyzer"
    (root / "backends").mkdir(parents=True)
    (root / "backends" / "base.py").write_text("def load():\n    from analyzer.backends.engine import Engine\n")
    (root / "backends" / "engine.py").write_text("from analyzer.backends.base import load\n")
    assert cycles(import_graph(root)) == [
        ["analyzer.backends.base", "analyzer.backends.engine", "analyzer.backends.base"]
    ]
