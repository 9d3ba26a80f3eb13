"""Layers import downward only (docs/architecture.md): a module may import its own layer's modules and lower
layers, never a higher one, and two layers of the same height stay independent of each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "mig_conformance"
#: folder -> the package it ships as (setup.py)
FOLDERS = {"mig_conformance": NAMESPACE, "simulators": f"{NAMESPACE}.simulators", "suites": f"{NAMESPACE}.suites"}
#: layer of each package (longest prefix wins), low to high; equal heights must not import each other
LAYERS = {
    "common": 0,
    "gpus": 1,
    "mig": 2,
    "capture": 3,
    "simulators": 4,
    "k8s": 4,
    "validation": 5,
    "diagnose": 5,
    "simulators.agents": 5,
    "cluster": 6,
    "report": 7,
    "plugin": 8,
    "cli": 9,
    "suites": 9,
    "__main__": 10,
}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _layer(module: str) -> tuple[str, int] | None:
    rest = module.removeprefix(NAMESPACE).lstrip(".")
    best = max((p for p in LAYERS if rest == p or rest.startswith(p + ".")), key=len, default=None)
    return (best, LAYERS[best]) if best is not None else None


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{module}: relative import (the kit uses absolute imports)")
    return {m for m in out if m == NAMESPACE or m.startswith(NAMESPACE + ".")}


def test_every_module_belongs_to_a_layer() -> None:
    unplaced = [m for m in _modules() if m != NAMESPACE and _layer(m) is None]
    assert not unplaced, f"add these packages to LAYERS and docs/architecture.md: {unplaced}"


def test_layers_import_downward_only() -> None:
    wrong = []
    for module, path in sorted(_modules().items()):
        mine = _layer(module)
        if mine is None:
            continue
        for target in sorted(_imports(module, path)):
            theirs = _layer(target)
            if theirs is None or theirs[0] == mine[0]:
                continue
            if theirs[1] > mine[1] or (theirs[1] == mine[1]):
                wrong.append(f"{module} ({mine[0]}, layer {mine[1]}) imports {target} ({theirs[0]}, layer {theirs[1]})")
    assert not wrong, "\n".join(wrong)


def test_domain_layers_do_not_need_pytest() -> None:
    """gpus, mig, capture, the simulators, k8s, validation and report are plain Python (usable without pytest)."""
    plain = ("common", "gpus", "mig", "capture", "simulators", "k8s", "validation", "report", "cluster")
    users = [m for m, p in _modules().items() if (_layer(m) or ("", 0))[0].split(".")[0] in plain
             and "pytest" in {a.split(".")[0] for a in _all_imports(p)}]
    assert not users, users


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names
