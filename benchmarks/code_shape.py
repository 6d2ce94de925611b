"""The shape of the code at a git revision, for issue 12's before/after: modules over 600 lines, functions
over 60 lines, and the explicit ``Any`` of each package (each ``Any`` name in the source, counted with
``ast``: annotations, aliases and casts alike). Reads the revision with ``git show``, so the working tree
is not touched. Asserts nothing.

    .venv/bin/python benchmarks/code_shape.py [REV ...]     # default: HEAD
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def shape(rev: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]], Counter[str]]:
    modules, functions, anys = [], [], Counter[str]()
    for path in git("ls-tree", "-r", "--name-only", rev, "src/opsmgr").split():
        if not path.endswith(".py"):
            continue
        source = git("show", f"{rev}:{path}")
        if source.count("\n") > MAX_MODULE_LINES:
            modules.append((source.count("\n"), path))
        package = path.split("/")[2] if path.count("/") > 2 else "(top-level modules)"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    functions.append((length, f"{path}:{node.name}"))
            elif isinstance(node, ast.Name) and node.id == "Any":
                anys[package] += 1
    return sorted(modules, reverse=True), sorted(functions, reverse=True), anys


def main(revs: list[str]) -> None:
    for rev in revs or ["HEAD"]:
        modules, functions, anys = shape(rev)
        print(f"{rev}: modules over {MAX_MODULE_LINES} lines: {len(modules)}")
        for lines, path in modules:
            print(f"  {lines:5d}  {path}")
        print(f"{rev}: functions over {MAX_FUNCTION_LINES} lines: {len(functions)}")
        for lines, name in functions:
            print(f"  {lines:5d}  {name}")
        print(f"{rev}: explicit Any per package:")
        for package, count in sorted(anys.items()):
            print(f"  {count:5d}  {package}")


if __name__ == "__main__":
    main(sys.argv[1:])
