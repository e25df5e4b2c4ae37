"""The layers of ``src/smartpole``: no module imports one of a higher layer, and no import circles.

The imports are read with :mod:`ast`, not by importing: every ``import`` and ``from ... import``
counts, at module level, inside functions and under ``TYPE_CHECKING`` alike, relative imports
resolved. The order is the one in ``docs/architecture.md`` ("Layers"); a module may import its own
layer and the layers below it.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "smartpole"

# Lowest first. A top-level module or package of smartpole belongs to exactly one layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("model", "errors", "config", "metrics", "child", "runtime", "loops", "outbound"),
    ("store",),
    ("registry",),
    ("ingest",),
    ("hub", "control", "lighting", "ngsild"),
    ("devices",),
    ("transport",),
    ("api", "web"),
    ("app",),
    ("cli", "sim"),
)
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
# Only the entry points may import these (and each may import itself).
TOP = frozenset({"api", "app", "cli", "sim"})
ENTRY_POINTS = frozenset({"cli", "sim"})

HOW_TO_FIX = """
How to fix: move the shared piece down to the lowest layer that needs it (a type or value into
model/, a Protocol beside its caller, a function into the lower module it works on) and import it
from there; or pass the collaborator in through a constructor (app.py is the one place that wires
parts of different layers together). Do not re-export the old name from the old module.
Layers, lowest first: """ + " < ".join("/".join(parts) for parts in LAYERS)

PRIVATE_FIX = """
How to fix: give the name a public spelling (no leading underscore, listed in __all__) in the
module that owns it, or move it where both modules can use it."""


@dataclass(frozen=True)
class Import:
    """One import statement's target, as a module of smartpole."""

    source: str
    target: str
    path: Path
    line: int


def module_name(path: Path) -> str:
    """``src/smartpole/store/series.py`` -> ``smartpole.store.series`` (a package: its __init__)."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of smartpole by dotted name."""
    return {module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


def resolve(known: dict[str, Path], name: str) -> str | None:
    """The longest prefix of ``name`` that is a module of smartpole (None for third-party names)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def imports_of(known: dict[str, Path], source: str, path: Path) -> list[Import]:
    """Every smartpole module that ``path`` imports, wherever in the file the import stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            # ``from pkg import sub`` imports the submodule; ``from pkg import name``, the package.
            names = [f"{stem}.{alias.name}" for alias in node.names]
        for name in names:
            target = resolve(known, name)
            if target is not None and target != source:
                found.append(Import(source, target, path, node.lineno))
    return found


def part_of(module: str) -> str:
    """The top-level part (``smartpole.transport.mqtt.session`` -> ``transport``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@functools.cache
def all_imports() -> tuple[Import, ...]:
    """The import graph of smartpole, one edge per import statement target."""
    known = modules()
    return tuple(edge for name, path in known.items() for edge in imports_of(known, name, path))


def where(edge: Import) -> str:
    return f"{edge.path.relative_to(SRC.parent)}:{edge.line}"


def test_the_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Relative imports, imports in functions and under TYPE_CHECKING all count (a walk that
    missed them would pass on an upward import)."""
    source = tmp_path / "consumer.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import topics\n"
        "from ..mqtt.codec import encode\n"
        "if TYPE_CHECKING:\n"
        "    from smartpole.app import Platform\n"
        "def later():\n"
        "    import smartpole.api.deps\n",
        encoding="utf-8",
    )
    known = dict.fromkeys(
        [
            "smartpole.transport.broker.topics",
            "smartpole.transport.mqtt.codec",
            "smartpole.app",
            "smartpole.api.deps",
        ],
        source,
    )
    found = imports_of(known, "smartpole.transport.broker.consumer", source)
    assert sorted((edge.line, edge.target) for edge in found) == [
        (2, "smartpole.transport.broker.topics"),
        (3, "smartpole.transport.mqtt.codec"),
        (5, "smartpole.app"),
        (7, "smartpole.api.deps"),
    ]


def test_every_part_of_smartpole_has_a_layer() -> None:
    """A new top-level module or package is placed in the order before it can be checked."""
    parts = {part_of(name) for name in modules()} - {""}
    missing = sorted(parts - RANK.keys())
    assert not missing, f"no layer for {missing}: add them to LAYERS in tests/test_layers.py"


def test_no_module_imports_a_higher_layer() -> None:
    """``model`` < ``store`` < ``registry`` < ``ingest`` < ``hub``/``control`` < ``devices`` <
    ``transport`` < ``api`` < ``app`` < ``cli``/``sim``: each imports only its own layer and
    those below."""
    upward = []
    for edge in all_imports():
        low, high = part_of(edge.source), part_of(edge.target)
        if RANK.get(high, 0) > RANK.get(low, 0):
            upward.append(
                f"{where(edge)}: {edge.source} ({low}) imports {edge.target} ({high}),"
                f" a higher layer"
            )
    assert not upward, "\n".join([*upward, HOW_TO_FIX])


def test_only_entry_points_import_api_app_cli_sim() -> None:
    """Nothing outside ``api``, ``app``, ``cli`` and ``sim`` imports them (which of them may
    import which is the layers' rule: ``app`` builds what ``api`` serves, ``api`` never imports
    ``app``); and ``app`` and the entry points reach the REST API only through its front door,
    ``smartpole.api`` (``create_app``, ``Services``): its route modules are no library."""
    wrong = []
    for edge in all_imports():
        source, target = part_of(edge.source), part_of(edge.target)
        if target in TOP and source != target and source not in TOP:
            wrong.append(f"{where(edge)}: {edge.source} imports {edge.target}")
        elif (
            target == "api" and source in {*ENTRY_POINTS, "app"} and edge.target != f"{PACKAGE}.api"
        ):
            wrong.append(
                f"{where(edge)}: {edge.source} imports {edge.target}, not smartpole.api's"
                " create_app (move what both need below the API)"
            )
    assert not wrong, "\n".join([*wrong, HOW_TO_FIX])


def package_of(module: str) -> str:
    """The package a module is in (its name without the last part)."""
    return module.rpartition(".")[0]


def test_no_module_imports_another_modules_private_names() -> None:
    """``from smartpole.x import _name`` borrows what ``x`` keeps to itself: make it public
    (a name without the underscore, in ``__all__``) or move it where both can use it. The modules
    of one package may share its private names (``transport/mqtt/codec/`` split one module by
    packet family; its helpers stay private to the package)."""
    known = modules()
    wrong = []
    for source, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module is None:
                continue
            target = resolve(known, node.module)
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                same_package = target is not None and package_of(target) == package_of(source)
                if target is not None and target != source and private and not same_package:
                    wrong.append(
                        f"{path.relative_to(SRC.parent)}:{node.lineno}: {source}"
                        f" imports {alias.name} from {target}"
                    )
    assert not wrong, "\n".join([*wrong, PRIVATE_FIX])


def cycles(edges: tuple[Import, ...]) -> list[list[Import]]:
    """One cycle (as its import statements) per strongly connected group of modules."""
    graph: dict[str, dict[str, Import]] = {}
    for edge in edges:
        graph.setdefault(edge.source, {}).setdefault(edge.target, edge)
    # Tarjan's strongly connected components, iteratively (the graph is a few hundred modules).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(group)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, {})))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    found = []
    for group in groups:
        # The shortest way back to the group's first module: a breadth-first walk inside it.
        start = min(group)
        paths: dict[str, list[Import]] = {start: []}
        queue = [start]
        cycle: list[Import] = []
        while queue and not cycle:
            node = queue.pop(0)
            for child, edge in sorted(graph.get(node, {}).items()):
                if child == start:
                    cycle = [*paths[node], edge]
                    break
                if child in group and child not in paths:
                    paths[child] = [*paths[node], edge]
                    queue.append(child)
        found.append(cycle)
    return found


def test_no_import_circles() -> None:
    """No module imports, directly or through others, one that imports it (a circle makes the
    import order matter and the two modules one piece in effect)."""
    found = cycles(all_imports())
    report = [
        " -> ".join([cycle[0].source, *(edge.target for edge in cycle)])
        + "".join(f"\n    {where(edge)}: imports {edge.target}" for edge in cycle)
        for cycle in found
    ]
    assert not report, "import circles:\n" + "\n".join(report) + HOW_TO_FIX
