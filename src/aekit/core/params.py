"""Hyperparameters declared once: the type of a config field says what values it accepts.

A family declares its hyperparameters as a stdlib dataclass whose field types use the standard typing
vocabulary, with :class:`Interval`, :class:`Explain` and :class:`Auto` as ``Annotated`` metadata::

    latent_dim: Annotated[int, Interval(1)] = 32                    # an integer >= 1
    alpha: Annotated[float, Interval(0), Explain("the weight of the penalty", "use alpha=0 to turn it off")] = 0.1
    rho: Annotated[float, Interval(0, 1, closed="neither")] = 0.05  # a number in (0, 1)
    penalty: Literal["l1", "kl", "topk"] = "l1"
    hidden_dims: tuple[Annotated[int, Interval(1)], ...] = (256, 128)
    k: Annotated[int | Literal["auto"], Interval(1), Auto("latent_dim // 4")] = "auto"
    output: Annotated[Literal["auto", "sigmoid", "linear"], Auto("sigmoid for data in [0, 1]", from_data=True)] = "auto"
    random_state: int | None = None

:func:`check_value` checks one value against such a type with one wording for every family (scikit-learn's
"unknown ...; valid: ..." for choices, "NAME must be ..., got VALUE" otherwise), and the estimator base class
calls it once for every parameter. The command line reads the same declarations (:func:`field_types`,
:func:`choices`, :func:`parse_text`, :func:`describe_default`) for its flags' types, choices and defaults, so
the help cannot disagree with what the estimator accepts.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np

__all__ = [
    "AUTO",
    "Auto",
    "Explain",
    "Interval",
    "check_count",
    "check_value",
    "choices",
    "describe",
    "describe_default",
    "field_types",
    "members",
    "parse_text",
]

#: The value of a field whose setting is chosen by the family (from other parameters or from the data).
AUTO = "auto"


@dataclass(frozen=True)
class Interval:
    """Bounds on a number: ``low`` and ``high`` (None: unbounded), ``closed`` says which ends belong."""

    low: float | None = None
    high: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"

    def contains(self, v: float) -> bool:
        lo_ok = self.low is None or (v >= self.low if self.closed in ("both", "left") else v > self.low)
        hi_ok = self.high is None or (v <= self.high if self.closed in ("both", "right") else v < self.high)
        return lo_ok and hi_ok

    def text(self) -> str:
        """``>= 1``, ``> 0``, ``in (0, 1)``, ``in [0, 1)``."""
        if self.high is None and self.low is not None:
            return f"{'>=' if self.closed in ('both', 'left') else '>'} {_num(self.low)}"
        if self.low is None and self.high is not None:
            return f"{'<=' if self.closed in ('both', 'right') else '<'} {_num(self.high)}"
        if self.low is None or self.high is None:
            return ""
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"in {left}{_num(self.low)}, {_num(self.high)}{right}"


@dataclass(frozen=True)
class Explain:
    """What a value means and the usual way out, both added to the error message of a bad value."""

    meaning: str = ""  # e.g. "the weight of the sparsity penalty"
    fix: str = ""  # e.g. "use alpha=0 to turn the penalty off"


@dataclass(frozen=True)
class Auto:
    """The field accepts ``"auto"``, resolved by the family's ``resolve`` step by ``rule``.

    ``from_data``: the rule reads the training data (the help then says "from the data").
    """

    rule: str
    from_data: bool = False


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


# ------------------------------------------------------------------------------------ annotations


def field_types(config: type) -> dict[str, Any]:
    """The resolved annotations of a config dataclass, ``Annotated`` metadata kept, by field name."""
    hints = get_type_hints(config, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


def _split(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[T, m...]`` -> (T, (m, ...)); anything else -> (tp, ())."""
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        return base, tuple(meta)
    return tp, ()


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def members(tp: Any) -> list[tuple[Any, tuple[Any, ...]]]:
    """The alternatives of a type, each with the metadata that applies to it (outer metadata is inherited)."""
    base, meta = _split(tp)
    if _is_union(base):
        out: list[tuple[Any, tuple[Any, ...]]] = []
        for arg in get_args(base):
            for b, m in members(arg):
                out.append((b, meta + m))
        return out
    if get_origin(base) is Literal:
        return [(Literal[v], meta) for v in get_args(base)]  # type: ignore[misc]
    return [(base, meta)]


def _meta(tp: Any, kind: type) -> Any:
    for _, meta in members(tp):
        for m in meta:
            if isinstance(m, kind):
                return m
    return None


def auto_rule(tp: Any) -> Auto | None:
    """The :class:`Auto` declaration of a field type, if it has one."""
    return _meta(tp, Auto)  # type: ignore[no-any-return]


def choices(tp: Any) -> list[Any] | None:
    """The values of a field that accepts only literals (and perhaps None), else None."""
    vals: list[Any] = []
    for base, _ in members(tp):
        if get_origin(base) is Literal:
            vals.append(get_args(base)[0])
        elif base is type(None):
            continue
        else:
            return None
    return vals


# ------------------------------------------------------------------------------------------ checks


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _accepts(value: Any, base: Any, meta: tuple[Any, ...]) -> bool:
    interval = next((m for m in meta if isinstance(m, Interval)), None)
    origin = get_origin(base)
    if origin is Literal:
        lit = get_args(base)[0]
        return type(value) is type(lit) and value == lit
    if base is type(None):
        return value is None
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return _is_int(value) and (interval is None or interval.contains(int(value)))
    if base is float:
        if not _is_real(value) or not math.isfinite(float(value)):
            return False
        return interval is None or interval.contains(float(value))
    if base is str:
        return isinstance(value, str)
    if origin is tuple:
        args = get_args(base)
        if not isinstance(value, tuple | list):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(any(_accepts(v, b, meta + m) for b, m in members(args[0])) for v in value)
        return len(value) == len(args) and all(
            any(_accepts(v, b, m) for b, m in members(a)) for v, a in zip(value, args)
        )
    if base is Any or base is object:
        return True
    if isinstance(base, type):
        return isinstance(value, base)
    raise TypeError(f"aekit.core.params cannot check values of type {base!r}")


def _same_kind(value: Any, base: Any) -> bool:
    """``value`` is of ``base``'s kind, whatever its range (an infinite float is still a float)."""
    if base is float:
        return _is_real(value)
    return _accepts(value, base, ())


def describe(tp: Any) -> str:
    """What a field accepts, in words: ``an integer >= 1``, ``a finite number in (0, 1)``, ``'auto'``."""
    parts: list[str] = []
    lits: list[Any] = []
    for base, meta in members(tp):
        if get_origin(base) is Literal:
            lits.append(get_args(base)[0])
            continue
        parts.append(_describe_one(base, meta))
    if lits:
        parts.append(", ".join(repr(v) for v in lits))
    return ", or ".join(p for p in parts if p)


def _describe_one(base: Any, meta: tuple[Any, ...]) -> str:
    interval = next((m for m in meta if isinstance(m, Interval)), None)
    bound = f" {interval.text()}" if interval is not None and interval.text() else ""
    if base is type(None):
        return "None"
    if base is bool:
        return "True or False"
    if base is int:
        return f"an integer{bound}"
    if base is float:
        if interval is not None and interval.low is not None and interval.high is not None:
            return f"a number{bound}"
        return f"a finite number{bound}"
    if base is str:
        return "a string"
    if get_origin(base) is tuple:
        args = get_args(base)
        if len(args) == 2 and args[1] is Ellipsis:
            inner = describe(args[0]) if not meta else _describe_one(_split(args[0])[0], meta + _split(args[0])[1])
            return "a tuple of " + _plural(inner)
        return "a tuple (" + ", ".join(describe(a) for a in args) + ")"
    return str(base)


def _plural(desc: str) -> str:
    for single, many in (("an integer", "integers"), ("a finite number", "finite numbers"), ("a number", "numbers"),
                         ("a string", "strings")):
        if desc.startswith(single):
            return many + desc[len(single):]
    return desc


def check_value(name: str, value: Any, tp: Any) -> None:
    """Raise a ValueError naming ``name``, the rule and the way out when ``value`` does not fit ``tp``."""
    if any(_accepts(value, base, meta) for base, meta in members(tp)):
        return
    explain = _meta(tp, Explain)
    meaning = f" ({explain.meaning})" if explain is not None and explain.meaning else ""
    fix = f"; {explain.fix}" if explain is not None and explain.fix else ""
    opts = choices(tp)
    if opts is not None and all(isinstance(o, str) or o is None for o in opts):
        valid = ", ".join("None" if o is None else str(o) for o in opts)
        raise ValueError(f"unknown {name} {value!r}{meaning}; valid: {valid}{fix}")
    # A value of the right kind but out of range is told the rule of its kind only ("an integer >= 1"),
    # not every alternative of the field ("an integer >= 1, or 'auto'").
    same_kind = [(b, m) for b, m in members(tp) if get_origin(b) is not Literal and _same_kind(value, b)]
    rule = "; ".join(_describe_one(b, m) for b, m in same_kind) if same_kind else describe(tp)
    raise ValueError(f"{name} must be {rule}{meaning}, got {value!r}{fix}")


def is_whole(value: Any, at_least: int | None = None) -> bool:
    """Whether ``value`` is an integer (Python's or NumPy's, not a bool), and at least ``at_least`` if given:
    the test behind checks that word their own message."""
    ok = not isinstance(value, bool) and isinstance(value, int | np.integer)
    return ok and (at_least is None or value >= at_least)


def check_count(name: str, value: Any) -> int:
    """``value`` as an int when it is an integer >= 1 (a count of samples, draws or steps given to a method
    rather than declared as a field); else :func:`check_value`'s ValueError."""
    check_value(name, value, Annotated[int, Interval(1)])
    return int(value)


def seed_from(random_state: Any, name: str = "random_state", high: int = 2**31 - 1) -> int:
    """An integer seed in [0, ``high``) from a ``random_state`` as scikit-learn takes it: an int is used as it is,
    a ``numpy.random.RandomState`` (or Generator) draws one, None draws fresh entropy without touching NumPy's
    global state. Anything else is a TypeError naming ``name``."""
    import secrets

    if is_whole(random_state):
        return int(random_state)
    if random_state is None:
        return secrets.randbelow(high)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, min(high, 2**31 - 1)))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, high))
    raise TypeError(f"{name}={random_state!r} must be an int, a numpy.random.RandomState or None; e.g. {name}=0")


# ------------------------------------------------------------------------------ the command line


def parse_text(text: str, tp: Any) -> Any:
    """Read a command-line or TOML string as a value of ``tp``; ValueError says what was expected."""
    raw = text.strip()
    candidates: list[Any] = []
    for base, _ in members(tp):
        try:
            candidates.append(_parse_one(raw, base))
        except ValueError:
            continue
    for c in candidates:
        if any(_accepts(c, b, m) for b, m in members(tp)):
            return c
    if candidates:
        return candidates[0]  # parsed but out of range: check_value says why, with the parameter's name
    hint = " (a comma-separated list, e.g. 1000,500,250)" if "tuple" in describe(tp) else ""
    raise ValueError(f"expected {describe(tp)}{hint}, got {text!r}")


def _parse_one(text: str, base: Any) -> Any:
    origin = get_origin(base)
    if origin is Literal:
        lit = get_args(base)[0]
        if str(lit) == text:
            return lit
        raise ValueError(text)
    if base is type(None):
        if text.lower() in ("none", "null"):
            return None
        raise ValueError(text)
    if base is bool:
        low = text.lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise ValueError(text)
    if base is int:
        return int(text)
    if base is float:
        return float(text)
    if base is str:
        return text
    if origin is tuple:
        args = get_args(base)
        inner = text.strip()
        if inner.startswith("(") and inner.endswith(")"):
            inner = inner[1:-1]  # Python's spelling, as messages write it: (), (16,), (32, 64)
        if inner.strip().lower() in ("", "none"):
            if not text.strip():
                raise ValueError(text)  # nothing typed: not the empty tuple by accident
            return ()
        items = inner.split(",")
        if items[-1].strip() == "" and len(items) > 1:
            items = items[:-1]  # a trailing comma, as in (16,)
        if any(not x.strip() for x in items):
            raise ValueError(text)  # 16,,8: an empty item is a typing slip
        if len(args) == 2 and args[1] is Ellipsis:
            elem = _split(args[0])[0]
            return tuple(_parse_one(x.strip(), elem) for x in items)
        if len(items) != len(args):
            raise ValueError(text)
        return tuple(_parse_one(x.strip(), _split(a)[0]) for x, a in zip(items, args))
    return text


def metavar(tp: Any) -> str:
    """A short placeholder for a flag's value: ``INT``, ``FLOAT``, ``INT,INT,...``, ``{l1,kl,topk}``."""
    opts = choices(tp)
    if opts is not None:
        return "{" + ",".join("none" if o is None else str(o) for o in opts) + "}"
    names = []
    for base, _ in members(tp):
        if get_origin(base) is Literal or base is type(None):
            continue
        if get_origin(base) is tuple:
            args = get_args(base)
            elem = _split(args[0])[0]
            n = getattr(elem, "__name__", "X").upper()
            names.append(f"{n},{n},..." if len(args) == 2 and args[1] is Ellipsis else ",".join(
                getattr(_split(a)[0], "__name__", "X").upper() for a in args))
        else:
            names.append(getattr(base, "__name__", "VALUE").upper())
    return names[0] if names else "VALUE"


def describe_default(value: Any, tp: Any) -> str:
    """The default as the help shows it: the value, or what ``"auto"`` resolves to."""
    rule = auto_rule(tp)
    if rule is not None and value == AUTO:
        return f"from the data ({rule.rule})" if rule.from_data else f"auto ({rule.rule})"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value) if value else "()"
    return str(value)


def is_switch(tp: Any) -> bool:
    """A plain ``bool`` field: a ``--flag/--no-flag`` switch on the command line."""
    return _split(tp)[0] is bool


def accepts_none(tp: Any) -> bool:
    return any(base is type(None) for base, _ in members(tp))

