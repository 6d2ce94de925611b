"""The simulated world and the drivers depend one way: the sim uses the driver seam's types
(``opsmgr.drivers.base``), the sim driver (``opsmgr.drivers.sim``) names the sim's world as a type only (its
callers hand it the world), and nothing in the sim reaches the sim driver, the ``mongod`` driver or anything
that imports them back. At run time no driver loads the sim."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import opsmgr

SRC = Path(opsmgr.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The ``modules`` that ``path`` imports, anywhere in it (lazy imports in functions included); ``from
    package import module`` depends on that module, not on the package's own code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found & modules


def _graph(*packages: str) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports."""
    files = {_module(p): p for pkg in packages for p in (SRC / pkg).rglob("*.py")}
    return {m: _imports(p, set(files)) - {m} for m, p in files.items()}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_sim_reaches_only_the_driver_seam_and_no_driver_reaches_back() -> None:
    graph = _graph("sim", "drivers")
    sim = [m for m in graph if m == "opsmgr.sim" or m.startswith("opsmgr.sim.")]
    assert sim, "the sim's modules are found"
    for module in sim:
        reached = _reachable(graph, module)
        assert {m for m in reached if m.startswith("opsmgr.drivers.")} <= {"opsmgr.drivers.base"}, module
        assert module not in reached, f"{module} imports itself back"
    assert not {m for m in _reachable(graph, "opsmgr.drivers.base") if m.startswith("opsmgr.sim")}
    assert not {m for m in _reachable(graph, "opsmgr.drivers.mongod") if m.startswith("opsmgr.sim")}
    assert "opsmgr.sim.world" in graph["opsmgr.drivers.sim"]


def _loaded(module: str) -> list[str]:
    """The modules importing ``module`` in a fresh interpreter loads."""
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded: list[str] = json.loads(out.stdout)
    assert module in loaded
    return loaded


def test_importing_the_sim_loads_no_driver() -> None:
    loaded = _loaded("opsmgr.sim")
    assert [m for m in loaded if m.startswith("opsmgr.drivers.")] == ["opsmgr.drivers.base"]


def test_importing_the_drivers_loads_no_sim() -> None:
    loaded = _loaded("opsmgr.drivers.sim")
    assert [m for m in loaded if m == "opsmgr.sim" or m.startswith("opsmgr.sim.")] == []
