"""The package's layers, as the README's contributor map states them: no module imports a higher layer.

Imports are read from the source (``ast``), including the ones inside functions, so a lazy import
cannot hide a dependency that runs the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aekit"
#: subpackage -> layer (the README's table); the package's ``__init__`` is the public face above all of them
LAYERS = {"core": 1, "data": 2, "engine": 3, "model": 4, "families": 5, "report": 6, "workflow": 7, "apps": 7, "cli": 8}
#: the one import that runs upward on purpose: the registry loads the family modules, which register themselves
PLUGIN_LOADING = {("model/registry.py", "aekit.families")}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "aekit":
        return None
    if len(parts) == 1:
        return 9  # ``import aekit``: the public face
    return LAYERS.get(parts[1])


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "aekit" and {a.name for a in node.names} == {"__version__"}:
                continue  # the version string: a constant of the package's ``__init__``, which imports nothing eagerly
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if p.parent != SRC)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    rel = path.relative_to(SRC)
    own = LAYERS[rel.parts[0]]
    upward = [
        m for m in _imports(path)
        if (layer := _layer(m)) is not None and layer > own and (str(rel), m) not in PLUGIN_LOADING
    ]
    assert not upward, f"{rel} (layer {own}) imports {upward} from a higher layer"


def test_every_subpackage_has_a_layer() -> None:
    subpackages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert subpackages == set(LAYERS)
