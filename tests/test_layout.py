"""README's "Project layout" matches the source tree: a newcomer finds every package there.

The layout is the code block under README's ``## Project layout``. Each line names a path, then
what it holds; an indented line's path is relative to the directory line above it with less
indentation (``src/smartpole/`` at the margin, then ``  transport/``, then ``    mqtt/``; a line
may also name ``transport/mqtt/`` at once). Every package under ``src/smartpole`` (a directory
with an ``__init__.py``) and every top-level module must be listed; nothing listed may be
missing from the repository.

And the tests' own layout: no test module imports another (shared fixtures live in the plugin
modules ``conftest.py`` registers, shared plain functions in ``helpers.py``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PACKAGE = "src/smartpole/"


def layout_lines() -> list[str]:
    """The lines of the code block under ``## Project layout``."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"^## Project layout\n+```[^\n]*\n(.*?)^```", text, re.M | re.S)
    assert found, 'README.md has no "## Project layout" section with a code block'
    return [line for line in found.group(1).splitlines() if line.strip()]


def listed_paths() -> list[str]:
    """The repository paths the layout names (directories end with ``/``)."""
    paths: list[str] = []
    parents: list[tuple[int, str]] = []  # (indentation, directory path) of enclosing lines
    for line in layout_lines():
        indent = len(line) - len(line.lstrip(" "))
        name = line.split()[0]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = (parents[-1][1] if parents else "") + name
        paths.append(path)
        if path.endswith("/"):
            parents.append((indent, path))
    return paths


def tree_paths() -> set[str]:
    """Every package under src/smartpole (``/`` at the end) and its top-level modules."""
    src = ROOT / PACKAGE
    packages = {
        f"{init.parent.relative_to(ROOT).as_posix()}/"
        for init in src.rglob("__init__.py")
        if init.parent != src
    }
    modules = {f"{PACKAGE}{m.name}" for m in src.glob("*.py") if m.name != "__init__.py"}
    return packages | modules


def where_to_add(path: str, listed: set[str]) -> str:
    """``path`` as the line to add: relative to its nearest listed directory, named."""
    parent = max((d for d in listed if d.endswith("/") and path.startswith(d)), key=len, default="")
    return f"{path[len(parent) :]}  under the {parent or 'repository root'} line"


def test_every_package_and_top_level_module_is_in_the_readme_layout() -> None:
    listed = set(listed_paths())
    missing = sorted(tree_paths() - listed)
    assert not missing, (
        'README.md "Project layout" does not list these packages or top-level modules; add a '
        "line for each (its path, then what it holds):\n  "
        + "\n  ".join(where_to_add(path, listed) for path in missing)
    )


def test_the_readme_layout_lists_nothing_that_is_not_in_the_tree() -> None:
    gone = [path for path in listed_paths() if not (ROOT / path).exists()]
    assert not gone, (
        'README.md "Project layout" lists these, which are not in the repository; remove '
        "their lines (or fix the path):\n  " + "\n  ".join(gone)
    )


def test_no_test_module_imports_another() -> None:
    found = []
    for module in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [
                f"{module.name}:{node.lineno} imports {n}" for n in names if n.startswith("test_")
            ]
    assert not found, (
        "a test module imports another; move what it takes to tests/helpers.py (plain functions)"
        " or to a fixtures plugin module registered in conftest.py (fixtures):\n  "
        + "\n  ".join(found)
    )
