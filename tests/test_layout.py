"""The layout shows the pipeline: imports flow one way, and the wheel has one import root.

Each stage may import the stages before it in ``LAYERS`` (and its own folder), never one
after it, so a reader can stop at any stage and have read everything it rests on.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# (import prefix, folder): the order in which a reader meets them, and the only direction
# imports may take. A layer lists several prefixes when they are peers.
LAYERS: list[list[tuple[str, Path]]] = [
    [("poolcheck.pool", ROOT / "pool")],
    [("poolcheck.model", ROOT / "model")],
    [("poolcheck.errors", ROOT / "stress" / "errors.py"),
     ("poolcheck.settings", ROOT / "stress" / "settings.py"),
     ("poolcheck.causes", ROOT / "stress" / "causes.py")],
    [("poolcheck.load", ROOT / "stress" / "load")],
    [("poolcheck.observe", ROOT / "stress" / "observe")],
    [("poolcheck.judge", ROOT / "stress" / "judge")],
    [("poolcheck.run", ROOT / "stress" / "run")],
    [("poolcheck.report", ROOT / "stress" / "report")],
    [("poolcheck.app", ROOT / "stress" / "app")],
    [("poolcheck.__main__", ROOT / "stress" / "__main__.py"),
     ("poolcheck", ROOT / "stress" / "__init__.py")],
]


def _layer_of_module(name: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the matching prefix, layer)
    for i, layer in enumerate(LAYERS):
        for prefix, _ in layer:
            matches = name == prefix or name.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), i)
    return None if best is None else best[1]


def _files() -> list[tuple[int, Path]]:
    out = []
    for i, layer in enumerate(LAYERS):
        for _, where in layer:
            out += [(i, where)] if where.is_file() else [
                (i, f) for f in where.rglob("*.py")
                if not any(part.startswith("starter_kit") for part in f.parts)]
    return sorted(out)  # the same ids on every xdist worker


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every poolcheck module the file imports, at any depth (TYPE_CHECKING included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module != "poolcheck":  # `from poolcheck import model` names model
                found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found
            if name == "poolcheck" or name.startswith("poolcheck.")]


def test_every_module_belongs_to_a_layer() -> None:
    listed = {f for _, f in _files()}
    shipped = set((ROOT / "stress").rglob("*.py")) | set((ROOT / "pool").rglob("*.py")) | set(
        (ROOT / "model").rglob("*.py"))
    kit = {f for f in (ROOT / "stress" / "app").rglob("*.py")
           if any(part.startswith("starter_kit") for part in f.parts)}
    assert shipped - kit <= listed, sorted(str(f) for f in shipped - kit - listed)


@pytest.mark.parametrize("layer,path", _files(), ids=lambda v: str(v).replace(str(ROOT), ""))
def test_imports_flow_one_way(layer: int, path: Path) -> None:
    late = []
    for line, name in _imports(path):
        other = _layer_of_module(name)
        if other is not None and other > layer:
            late.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not late, "an import against the pipeline's direction:\n" + "\n".join(late)


def test_the_old_top_level_names_are_gone() -> None:
    """Nothing imports the pre-0.2 roots ``pool``, ``model`` or ``stress``: a learner's
    ``pool.py`` or ``model.py`` in the current folder would shadow them."""
    bad = []
    for folder in ("stress", "pool", "model", "tests", "examples", "bench", "findings"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                bad += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                        if n.split(".")[0] in ("pool", "model", "stress")]
    assert not bad, bad
