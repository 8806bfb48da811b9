"""The families' names, descriptions and capabilities, read without importing them.

Importing a family imports PyTorch (about two seconds), which ``aekit list`` and ``aekit --help`` do not
need. This module reads the ``@register(...)`` decorator calls of the modules in ``aekit/families/``
with :mod:`ast`, so the decorator stays the one place a family is declared: the catalog is what the
registry will hold once the families are imported, and a test holds the two equal.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FamilyEntry", "catalog"]

_FAMILIES_DIR = Path(__file__).resolve().parent.parent / "families"


@dataclass(frozen=True)
class FamilyEntry:
    """What the source declares of one family: the arguments of its ``register`` call."""

    name: str
    description: str
    capabilities: frozenset[str] = field(default_factory=frozenset)
    estimator: str = ""  # the class name, e.g. "Autoencoder"
    module: str = ""  # e.g. "aekit.families.autoencoder"


def _is_register(node: ast.expr) -> bool:
    func = node.func if isinstance(node, ast.Call) else None
    return (isinstance(func, ast.Name) and func.id == "register") or (
        isinstance(func, ast.Attribute) and func.attr == "register"
    )


def _entry(call: ast.Call, cls: ast.ClassDef, module: str, path: Path) -> FamilyEntry:
    # Same parameters as aekit.model.registry.register(name, description, capabilities=()).
    names = ("name", "description", "capabilities")
    values: dict[str, object] = {}
    try:
        for key, arg in zip(names, call.args):
            values[key] = ast.literal_eval(arg)
        for kw in call.keywords:
            if kw.arg in names:
                values[kw.arg] = ast.literal_eval(kw.value)
    except ValueError:
        raise ValueError(
            f"{path}:{call.lineno}: the register(...) call of {cls.name} must use literal arguments (strings and a "
            "tuple of strings), so `aekit list` can read it without importing the family"
        ) from None
    name, description = values.get("name"), values.get("description")
    caps = values.get("capabilities", ())
    if not isinstance(name, str) or not isinstance(description, str) or not isinstance(caps, tuple | list):
        raise ValueError(f"{path}:{call.lineno}: register(...) of {cls.name} needs a name and a description string")
    return FamilyEntry(name, description, frozenset(str(c) for c in caps), cls.name, module)


def catalog(directory: Path | None = None) -> dict[str, FamilyEntry]:
    """Every family declared in ``aekit/families/``, sorted by name, read from the source alone.

    Parameters
    ----------
    directory : Path, optional
        The folder of family modules; by default the installed ``aekit/families``.

    Returns
    -------
    dict of str to FamilyEntry
        Keyed by family name, in the order of :func:`aekit.model.registry.families`.
    """
    folder = _FAMILIES_DIR if directory is None else Path(directory)
    found: dict[str, FamilyEntry] = {}
    # The same modules that importing aekit.families registers: every public module of the folder.
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and _is_register(deco):
                    entry = _entry(deco, node, f"aekit.families.{path.stem}", path)
                    found[entry.name] = entry
    return dict(sorted(found.items()))
