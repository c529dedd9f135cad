"""The house's shape, held against the code: folders that show the loop, arrows that point down, no circle.

The floors, top to bottom (docs/architecture.md draws them):

    faces       __init__ __main__ magics cli demo notebook     the only IPython importers; thin
    loop        executor                                       runs a Plan; knows no directive by name
    directives  directives/                                    one module per directive
    state       session                                        what the directives established (typed)
    model       model/        detections, evaluation, export
    train       train/        a run: plan, watch, verdict, foreground, background, keeper
    view        view/         charts, the live view, the report
    data        data/         staging, formats, labels, datasets, obj.data, cfg, checks, anchors, weights
    setup       setup/        the machine, darknet's binary and flavor, clone and build
    output      output/       darknet's text in, events, problems, verdicts and dataframes out (pure)
    run         run/          the pty runner with its watchdog
    language    language/     the directive language (pure)
    ground      errors report fileio synth safenames media jsonread untrusted

A module may import its own folder and any floor below its own, never one above, and `train/` never imports
`view/` (the directive plugs the live view into the watch as a sink). The imports are read from the source
(every `import`, function-local ones included: a lazy import is still an arrow).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "darknet_magics"
FLOORS = ["faces", "loop", "directives", "state", "model", "train", "view", "data", "setup", "output", "run",
          "language", "ground"]
TOP_LEVEL = {
    "__init__": "faces", "__main__": "faces", "magics": "faces", "cli": "faces", "demo": "faces",
    "notebook": "faces", "executor": "loop", "session": "state", "errors": "ground", "report": "ground",
    "fileio": "ground", "synth": "ground", "media": "ground", "safenames": "ground", "jsonread": "ground",
    "untrusted": "ground",
}
# Pairs of floors that never import each other even where the order would allow it.
FORBIDDEN = {("train", "view")}

pytestmark = pytest.mark.timeout(60)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "faces"
    if len(parts) == 2 and not (PACKAGE / parts[1]).is_dir():
        return TOP_LEVEL[parts[1]]  # a new top-level module must be given its floor here
    return parts[1]


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports, relative and absolute, at any depth of the file."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + (node.module.split(".") if node.module else []))
            elif (node.module or "").split(".")[0] == "darknet_magics":
                target = node.module
            else:
                continue
            for alias in node.names:  # `from . import runner` names a module; `from .x import f` a name in x
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
    return (found & modules) - {name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(paths)) for name, path in paths.items()}


def test_every_top_level_module_has_a_floor():
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOP_LEVEL)
    assert not loose, f"give these modules a floor (a folder, or TOP_LEVEL here and in docs/architecture.md): {loose}"
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert set(folders) <= set(FLOORS), f"a folder with no floor: {sorted(set(folders) - set(FLOORS))}"


def test_arrows_point_down():
    upward = []
    for module, targets in import_graph().items():
        for target in targets:
            here, there = floor_of(module), floor_of(target)
            if (here, there) in FORBIDDEN:
                upward.append(f"{module} -> {target} ({here} must not import {there})")
            elif FLOORS.index(there) < FLOORS.index(here):
                upward.append(f"{module} -> {target} ({here} is below {there})")
    assert not upward, "imports that point up:\n" + "\n".join(sorted(upward))


def test_no_import_circle():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components; the graph is ~100 modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_the_reader_finds_real_arrows():
    """The graph is not empty by mistake: arrows we know of are there."""
    graph = import_graph()
    assert "darknet_magics.run.runner" in graph["darknet_magics.train.training"]
    assert "darknet_magics.output.logparse" in graph["darknet_magics.output.logs"]
    assert "darknet_magics.directives" in graph["darknet_magics.executor"]
