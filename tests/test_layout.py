"""Dependencies go one way: no import cycle between modules or between stages, bpy only in blender_scenes."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nfs_synth", "blender_scenes")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module `name` imports, at module level or inside a function (a lazy import is still a
    dependency); `from pkg import sub` counts as importing the submodule."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, name, known) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, or a node importing itself (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges[v]:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def stage(module: str) -> str:
    """nfs_synth.<stage>... (scene, render, sensors, corpus, run, aif, commands, color, errors, cli), or
    the package itself for blender_scenes."""
    parts = module.split(".")
    return parts[0] if parts[0] != "nfs_synth" or len(parts) == 1 else ".".join(parts[:2])


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    assert cycles(graph()) == []


def test_no_import_cycle_between_stages():
    edges: dict[str, set[str]] = {}
    for src, targets in graph().items():
        edges.setdefault(stage(src), set()).update(
            stage(t) for t in targets if t.split(".")[0] in PACKAGES and stage(t) != stage(src))
    assert cycles(edges) == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_bpy_only_in_blender_scenes_and_blender_scenes_independent(name):
    deps = imports(modules()[name], name, set(modules()))
    if name.startswith("blender_scenes"):
        assert not {d for d in deps if d.split(".")[0] == "nfs_synth"}, f"{name} imports nfs_synth"
    else:
        assert not {d for d in deps if d.split(".")[0] == "bpy"}, f"{name} imports bpy"
