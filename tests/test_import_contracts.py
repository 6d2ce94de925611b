"""Import contracts: every module of opsmgr says in its docstring what it may import, and these tests hold
the code to it.

The contract is the docstring's one sentence that begins "May import": the opsmgr modules it names in double
backticks, up to the first ";" or the end of the sentence, are what the module may import (``opsmgr.x`` covers
``opsmgr.x`` and the modules under it; ``opsmgr`` alone covers only the root package, its version). Anything
else in the sentence (libraries, the standard library, remarks in parentheses) is prose these tests do not
read; "May import the standard library only." names nothing of opsmgr. A package's ``__init__`` speaks for
the whole package: what any of its modules imports from outside the package must be in the package's
sentence too, and the ``__init__`` itself may import its own modules.

Every import counts: at the top of the module, inside a function (lazy), and under ``if TYPE_CHECKING:``
(a type is a dependency too); the summary counts them apart. Package cycles are counted on the imports that
run (TYPE_CHECKING ones left out).

Known violations are named below with who removes them; each must still be a violation (the lists shrink).
Run with ``-s`` to see the summary.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import opsmgr

ROOT = Path(opsmgr.__file__).resolve().parent
CLAUSE = re.compile(r"\b(?:May|[Pp]ackage may)\s+import\b(.*?)(?:;|\.(?=\s|$)|\Z)", re.S)
NAME = re.compile(r"``(opsmgr(?:\.\w+)*)``")

# Cycles between packages still there, each with who removes it. The test fails on any other cycle, and on an
# entry here that is no longer a cycle.
EXPECTED_PACKAGE_CYCLES: dict[frozenset[str], str] = {}
# Contract violations still there, as (module, imported module), each with who removes it.
EXPECTED_VIOLATIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the opsmgr module imported
    kind: str  # "top", "lazy" (inside a function) or "typing" (under TYPE_CHECKING)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool
    contract: tuple[str, ...] | None  # None: no "May import" sentence, or more than one

    @property
    def package(self) -> str:
        """The package whose ``__init__`` speaks for this module (itself, for an ``__init__``)."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def _contract(docstring: str | None) -> tuple[str, ...] | None:
    clauses = CLAUSE.findall(docstring or "")
    return tuple(NAME.findall(clauses[0])) if len(clauses) == 1 else None


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["opsmgr", *path.relative_to(ROOT).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[name] = Module(name, path, is_package, _contract(ast.get_docstring(tree)))
    return found


class _Imports(ast.NodeVisitor):
    def __init__(self, module: Module) -> None:
        self.module = module
        self.found: list[Import] = []
        self._functions = 0
        self._typing = 0

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" not in ast.unparse(node.test):
            self.generic_visit(node)
            return
        self._typing += 1
        for child in node.body:
            self.visit(child)
        self._typing -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._functions += 1
        self.generic_visit(node)
        self._functions -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        self._add(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            package = self.module.name.split(".")
            if not self.module.is_package:
                package.pop()
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        # ``from opsmgr.x import y`` imports module ``opsmgr.x.y`` when there is one, else a name of opsmgr.x.
        self._add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules() else base for a in node.names)

    def _add(self, targets: Iterable[str]) -> None:
        kind = "typing" if self._typing else "lazy" if self._functions else "top"
        for target in targets:
            if (target == "opsmgr" or target.startswith("opsmgr.")) and target != self.module.name:
                self.found.append(Import(self.module.name, target, kind))


@cache
def imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for module in modules().values():
        visitor = _Imports(module)
        visitor.visit(ast.parse(module.path.read_text(encoding="utf-8")))
        found += sorted(set(visitor.found), key=lambda i: (i.target, i.kind))
    return tuple(found)


def covers(contract: tuple[str, ...], target: str) -> bool:
    return any(
        target == entry or (entry != "opsmgr" and target.startswith(entry + ".")) for entry in contract
    )


def inside(package: str, target: str) -> bool:
    return target == package or target.startswith(package + ".")


def violations() -> list[tuple[str, str, str]]:
    """(module, imported module, the contract it breaks) for every import outside a contract."""
    mods = modules()
    found = []
    for imp in imports():
        module = mods[imp.module]
        own = module.contract or ()
        if not (covers(own, imp.target) or (module.is_package and inside(module.name, imp.target))):
            found.append((imp.module, imp.target, "its contract"))
        # Every enclosing package (one with an __init__) bounds what its modules import from outside it.
        package = module.package
        while package != "opsmgr":
            enclosing = mods.get(package)
            if (
                enclosing is not None
                and enclosing.name != module.name
                and not inside(package, imp.target)
                and not covers(enclosing.contract or (), imp.target)
            ):
                found.append((imp.module, imp.target, f"the contract of package {package}"))
            package = package.rpartition(".")[0]
    return sorted(set(found))


def test_every_module_states_its_contract_once() -> None:
    missing = [m.name for m in modules().values() if m.contract is None]
    assert not missing, (
        "modules without exactly one 'May import' sentence in their docstring:\n  " + "\n  ".join(missing)
    )


def test_every_package_has_an_init_that_speaks_for_it() -> None:
    packages = {m.name.rpartition(".")[0] for m in modules().values() if not m.is_package}
    assert sorted(p for p in packages if p not in modules()) == []


def test_imports_keep_to_the_contracts() -> None:
    found = violations()
    unexpected = [
        f"{m} imports {t}, not in {what}" for m, t, what in found if (m, t) not in EXPECTED_VIOLATIONS
    ]
    gone = [
        f"{m} -> {t}" for (m, t) in EXPECTED_VIOLATIONS if (m, t) not in {(m2, t2) for m2, t2, _ in found}
    ]
    kinds = Counter(i.kind for i in imports())
    print(
        f"\nimport contracts: {len(modules())} modules checked, {len(imports())} imports of opsmgr modules "
        f"checked ({kinds['top']} at the top, {kinds['lazy']} inside functions, {kinds['typing']} under "
        f"TYPE_CHECKING); {len(found) - len(unexpected)} expected violations, {len(unexpected)} unexpected"
    )
    assert not unexpected, "\n".join(unexpected)
    assert not gone, "no longer violated, remove from EXPECTED_VIOLATIONS: " + ", ".join(gone)


def _package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _edges(of: Callable[[str], str]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for imp in imports():
        if imp.kind == "typing":
            continue
        a, b = of(imp.module), of(imp.target)
        if a != b:
            edges.setdefault(a, set()).add(b)
    return edges


def test_no_import_cycle_between_packages() -> None:
    edges = _edges(_package_of)
    cycles = _cycles(edges)

    def how(cycle: frozenset[str]) -> str:
        through = [
            f"{i.module} -> {i.target}"
            for i in imports()
            if i.kind != "typing"
            and _package_of(i.module) in cycle
            and _package_of(i.target) in cycle
            and _package_of(i.module) != _package_of(i.target)
        ]
        return " <-> ".join(sorted(cycle)) + " (" + ", ".join(through) + ")"

    unexpected = [how(c) for c in cycles if c not in EXPECTED_PACKAGE_CYCLES]
    gone = [" <-> ".join(sorted(c)) for c in EXPECTED_PACKAGE_CYCLES if c not in cycles]
    assert edges
    assert not unexpected, "import cycles between packages:\n  " + "\n  ".join(unexpected)
    assert not gone, "no longer a cycle, remove from EXPECTED_PACKAGE_CYCLES: " + ", ".join(gone)


def test_no_import_cycle_between_the_cli_modules() -> None:
    cli = {m: t for m, t in _edges(lambda name: name).items() if m.startswith("opsmgr.cli.")}
    assert _cycles(cli) == []


def test_the_checker_sees_what_it_must() -> None:
    """The parser on sentences as the docstrings write them, and the import kinds it tells apart."""
    assert _contract(
        "Owns x. May import ``opsmgr.errors`` and ``opsmgr.store`` (types only); never ``opsmgr.server``."
    ) == ("opsmgr.errors", "opsmgr.store")
    assert _contract("May import the standard library only.") == ()
    assert _contract("Owns x.") is None
    assert _contract("May import ``opsmgr.errors``. Later: May import ``opsmgr.store``.") is None
    assert covers(("opsmgr.backup",), "opsmgr.backup.wire") and not covers(
        ("opsmgr.backup",), "opsmgr.backups"
    )
    assert not covers(("opsmgr",), "opsmgr.server") and covers(("opsmgr",), "opsmgr")
    kinds = {(i.target, i.kind) for i in imports() if i.module == "opsmgr.agent.backing"}
    assert {("opsmgr.errors", "top"), ("opsmgr.conf", "lazy"), ("opsmgr.store", "typing")} <= kinds
