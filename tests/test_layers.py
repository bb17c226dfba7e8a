"""The one-way dependency order model -> oracle -> backends -> probe/report -> fixtures/suites/cli.

Written down in the README and design.md, checked here by parsing every module with ``ast``
(module-level, function-level "lazy" and ``TYPE_CHECKING`` imports alike, plus
``importlib.import_module("netiso...")`` with a literal name), so that an upward import is
caught before it turns into an import cycle or a backend that re-derives policy semantics.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "netiso"
LAYER_OF_SUBPACKAGE = {"model": "model", "oracle": "oracle", "backends": "backends", "probe": "probe", "report": "report"}
ALL = frozenset({"model", "oracle", "backends", "probe", "report", "top"})
ALLOWED: dict[str, frozenset[str]] = {
    "model": frozenset({"model"}),
    "oracle": frozenset({"model", "oracle"}),
    "backends": frozenset({"model", "oracle", "backends"}),
    "probe": frozenset({"model", "oracle", "backends", "probe", "report"}),
    "report": frozenset({"model", "oracle", "backends", "probe", "report"}),
    "top": ALL,  # cli.py, checking.py and any other top-level module
}
OUTSIDE_FOLDERS = ("fixtures", "suites")  # top-level pytest plugin and suite folders of the product


@dataclass(frozen=True)
class Edge:
    module: str  # dotted name of the importing module
    target: str  # dotted name it imports
    line: int


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(dotted: str) -> str:
    """``netiso.oracle.paths`` -> ``oracle``; ``netiso.cli`` / ``netiso`` -> ``top``."""
    parts = dotted.split(".")
    if len(parts) >= 2 and parts[1] in LAYER_OF_SUBPACKAGE:
        return LAYER_OF_SUBPACKAGE[parts[1]]
    return "top"


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(source: str, module: str, is_package: bool = False) -> list[Edge]:
    """Every module named by an import anywhere in ``source`` (functions and branches included)."""
    edges: list[Edge] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            edges.extend(Edge(module, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node.level, node.module) if node.level else (node.module or "")
            edges.append(Edge(module, target, node.lineno))
            # ``from netiso import oracle`` imports the subpackage netiso.oracle
            edges.extend(Edge(module, f"{target}.{alias.name}", node.lineno) for alias in node.names
                         if target == "netiso" and alias.name in LAYER_OF_SUBPACKAGE)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            edges.append(Edge(module, node.args[0].value, node.lineno))
    return edges


def violations(edges: list[Edge]) -> list[str]:
    out = []
    for e in edges:
        if e.target != "netiso" and not e.target.startswith("netiso."):
            continue
        src, dst = layer_of(e.module), layer_of(e.target)
        if dst not in ALLOWED[src]:
            out.append(f"{e.module}:{e.line} ({src}) imports {e.target} ({dst})")
    return out


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def edges_of(path: Path) -> list[Edge]:
    return imports_of(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


# --------------------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(("module", "source", "bad"), [
    ("netiso.model.x", "def f():\n    from netiso.oracle import paths\n", True),
    ("netiso.model.x", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import netiso.backends.lab\n", True),
    ("netiso.model.x", "from ..oracle.paths import PathEngine\n", True),
    ("netiso.model.x", "from netiso import oracle\n", True),
    ("netiso.oracle.x", "import importlib\nimportlib.import_module('netiso.probe.engine')\n", True),
    ("netiso.backends.lab.x", "from netiso.report.table import render_table\n", True),
    ("netiso.backends.lab.x", "from ...cli import main\n", True),
    ("netiso.probe.x", "from netiso.cli import main\n", True),
    ("netiso.model.x", "from netiso.model.types import Port\nfrom . import fields\n", False),
    ("netiso.backends.lab.x", "from netiso.oracle.paths import PathEngine\nfrom .naming import x\n", False),
    ("netiso.report.x", "from netiso.probe.results import R\nfrom netiso.backends.lab import naming\n", False),
    ("netiso.cli", "from netiso.checking import run_check\n", False),
])
def test_checker_detects_upward_imports(module: str, source: str, bad: bool) -> None:
    assert bool(violations(imports_of(source, module))) is bad


def test_relative_imports_resolve_against_the_module() -> None:
    (edge,) = imports_of("from ..model import types\n", "netiso.oracle.paths")
    assert edge.target == "netiso.model"
    (edge,) = imports_of("from .naming import x\n", "netiso.backends.lab", is_package=True)
    assert edge.target == "netiso.backends.lab.naming"


# --------------------------------------------------------------------------- the tree


def test_the_package_has_every_layer() -> None:
    layers = {layer_of(module_name(p)) for p in package_modules()}
    assert layers >= {"model", "oracle", "backends", "probe", "report", "top"}


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_follow_the_layer_order(path: Path) -> None:
    assert violations(edges_of(path)) == []


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imported_netiso_modules_exist(path: Path) -> None:
    missing = []
    for e in edges_of(path):
        if not e.target.startswith("netiso.") or not e.target.split(".")[1].isidentifier():
            continue
        parts = e.target.split(".")
        # ``from netiso.x import name``: either module netiso.x exists or it is a package; names inside are not files.
        found = any((ROOT.joinpath(*parts[:n]).with_suffix(".py").is_file() or ROOT.joinpath(*parts[:n]).is_dir())
                    for n in range(len(parts), 1, -1))
        if not found:
            missing.append(f"{e.module}:{e.line} imports {e.target}")
    assert missing == []


def outside_modules() -> list[Path]:
    return sorted(p for folder in OUTSIDE_FOLDERS if (ROOT / folder).is_dir()
                  for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def test_the_package_never_imports_fixtures_suites_or_tests() -> None:
    bad = [f"{e.module}:{e.line} imports {e.target}" for p in package_modules() for e in edges_of(p)
           if e.target.split(".")[0] in (*OUTSIDE_FOLDERS, "tests", "conftest")]
    assert bad == []


@pytest.mark.skipif(not outside_modules(), reason="fixtures/ and suites/ hold no python files yet")
@pytest.mark.parametrize("path", outside_modules() or [Path("none")], ids=lambda p: str(p))
def test_fixtures_and_suites_are_the_top_layer(path: Path) -> None:
    # The top layer may import every netiso layer; what it names must exist, and the package
    # itself must never import them back (test_the_package_never_imports_fixtures_suites_or_tests).
    edges = imports_of(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
    for e in edges:
        if e.target.startswith("netiso."):
            head = ROOT.joinpath(*e.target.split(".")[:2])
            assert head.is_dir() or head.with_suffix(".py").is_file(), f"{path}:{e.line} imports {e.target}"


# --------------------------------------------------------------------------- the backend interface

BACKEND_PUBLIC = ("netiso.backends", "netiso.backends.base", "netiso.backends.processes", "netiso.backends.trace_parse")


def backend_internals(edges: list[Edge]) -> list[str]:
    """Imports of a backend's own modules (``netiso.backends.lab.*``...) from above the backends layer."""
    out = []
    for e in edges:
        if not e.target.startswith("netiso.backends") or e.target in BACKEND_PUBLIC:
            continue
        if layer_of(e.module) != "backends":
            out.append(f"{e.module}:{e.line} imports {e.target}")
    return out


def test_internals_checker_flags_a_lab_import_from_the_top() -> None:
    assert backend_internals(imports_of("from netiso.backends.lab.lab import Lab\n", "netiso.checking"))
    assert not backend_internals(imports_of("from netiso.backends import open_backend\n", "netiso.checking"))
    assert not backend_internals(imports_of("from netiso.backends.lab import topology\n", "netiso.backends.kube.x"))


@pytest.mark.parametrize("path", [*package_modules(), *outside_modules()], ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_above_backends_imports_a_backends_internals(path: Path) -> None:
    # checking, minimizing, the lab keeper, the probe and report layers and the pytest fixtures speak
    # only to netiso.backends (open_backend) and netiso.backends.base (the interface)
    assert backend_internals(edges_of(path)) == []
