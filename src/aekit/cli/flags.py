"""Command-line flags generated from a family's parameter declarations."""


from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any

from aekit.core.params import field_types

# ------------------------------------------------------------------------------ family flags


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter of a family as the command line sees it."""

    name: str
    type: str  # the annotation as written, e.g. "tuple[int, ...] | None"
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def optional(self) -> bool:
        return "None" in _type_parts(self.type)

    @property
    def is_switch(self) -> bool:
        return _type_parts(self.type) == ["bool"]


def _type_parts(type_str: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in type_str:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return [p.replace("NoneType", "None").replace("typing.", "") for p in parts if p]


def _type_string(tp: Any) -> str:
    """A declared field type as this parser's plain type string: ``Annotated`` metadata and literals dropped."""
    from typing import Literal, get_args, get_origin

    from aekit.core.params import members

    parts: list[str] = []
    for base, _ in members(tp):
        if get_origin(base) is Literal:
            name = type(get_args(base)[0]).__name__
        elif base is type(None):
            name = "None"
        elif get_origin(base) is tuple:
            args = get_args(base)
            elem = members(args[0])[0][0]
            name = f"tuple[{elem.__name__}, ...]" if len(args) == 2 and args[1] is Ellipsis else "tuple"
        else:
            name = getattr(base, "__name__", str(base))
        if name not in parts:
            parts.append(name)
    return " | ".join(parts)


def _parse_one(base: str, text: str) -> Any:
    text = text.strip()
    if base == "int":
        return int(text)
    if base == "float":
        return float(text)
    if base == "bool":
        low = text.lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise ValueError(text)
    m = re.fullmatch(r"tuple\[(\w+), \.\.\.\]", base)
    if m:
        return tuple(_parse_one(m.group(1), x) for x in text.split(",") if x.strip())
    m = re.fullmatch(r"tuple\[(.+)\]", base)
    if m:
        kinds = [k.strip() for k in m.group(1).split(",")]
        items = [x for x in text.split(",") if x.strip()]
        if len(items) != len(kinds):
            raise ValueError(text)
        return tuple(_parse_one(k, x) for k, x in zip(kinds, items))
    return text  # "str" and anything this parser does not know: the estimator validates it


def _metavar(spec: ParamSpec) -> str:
    base = [p for p in _type_parts(spec.type) if p != "None"]
    b = base[0] if base else "str"
    m = re.fullmatch(r"tuple\[(\w+), \.\.\.\]", b)
    name = f"{m.group(1).upper()},{m.group(1).upper()},..." if m else b.upper()
    return name


def _converter(spec: ParamSpec) -> Callable[[str], Any]:
    parts = _type_parts(spec.type)
    base = [p for p in parts if p != "None"] or ["str"]

    def convert(text: str) -> Any:
        if spec.optional and text.strip().lower() in ("none", "null"):
            return None
        for b in base:
            try:
                return _parse_one(b, text)
            except ValueError:
                continue
        hint = " (a comma-separated list, e.g. 1000,500,250)" if "tuple" in spec.type else ""
        raise argparse.ArgumentTypeError(f"expected {spec.type}{hint}, got {text!r}")

    convert.__name__ = spec.type
    return convert


def _field_comments(cls: type) -> dict[str, str]:
    """The comment after each field of a config dataclass: the why of its default, shown in --help."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    for line in src.splitlines():
        m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
        if m:
            out.setdefault(m.group(1), m.group(2).strip())
    return out


def family_params(estimator_cls: type) -> list[ParamSpec]:
    """Every hyperparameter of a family, in declaration order, with its type, default and comment."""
    defaults = estimator_cls().get_params(deep=False)
    specs: list[ParamSpec] = []
    for cfg in getattr(estimator_cls, "_param_configs", ()):
        comments = _field_comments(cfg)
        types = field_types(cfg)
        for f in dataclasses.fields(cfg):
            specs.append(ParamSpec(f.name, _type_string(types[f.name]), defaults.get(f.name, f.default), comments.get(f.name, "")))
    known = {s.name for s in specs}
    # Parameters outside the declared dataclasses (a hand-written __init__) are passed as strings.
    specs += [ParamSpec(k, "str", v, "") for k, v in defaults.items() if k not in known]
    return specs


def _fmt_default(v: Any) -> str:
    if isinstance(v, tuple | list):
        return ",".join(str(x) for x in v) or "()"
    return str(v)


