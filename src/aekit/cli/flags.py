"""Command-line flags generated from a family's parameter declarations.

Everything a flag shows comes from the config dataclasses the family declares (see
:mod:`aekit.core.params`): the value's type, choices and placeholder from the field's resolved type
(``typing.get_type_hints``), the default from the estimator, "from the data (...)" where ``"auto"`` is
decided from the data, and the help from the comment the field carries in its source. TOML values go
through the same parsing as flags, and the estimator checks both the same way.
"""


from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
from collections.abc import Iterator
from typing import Any

from aekit.core import params as P

# ------------------------------------------------------------------------------ family flags


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter of a family as the command line sees it."""

    name: str
    type: Any  # the field's resolved annotation, Annotated metadata kept
    default: Any
    comment: str  # the comment on the field in its dataclass: why the default is what it is

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_switch(self) -> bool:
        return P.is_switch(self.type)

    @property
    def metavar(self) -> str:
        return P.metavar(self.type)

    def parse(self, text: str) -> Any:
        """A flag's or TOML string's value, of the field's type (range checks are the estimator's)."""
        try:
            return P.parse_text(text, self.type)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def from_toml(self, value: Any) -> Any:
        """A TOML value as the estimator takes it: strings parsed like a flag, arrays as tuples."""
        if isinstance(value, str):
            return self.parse(value)
        if isinstance(value, list):
            return tuple(value)
        return value

    @property
    def default_text(self) -> str:
        """The default as the help shows it: the value, or "from the data (rule)" where that is the truth."""
        if self.default is None and P.accepts_none(self.type):
            return "none"
        return P.describe_default(self.default, self.type)

    @property
    def help(self) -> str:
        """The comment, then the default."""
        text = _sentence(self.comment)
        return f"{text} (default: {self.default_text})" if text else f"default: {self.default_text}"


def _sentence(comment: str) -> str:
    """A comment as help text: a phrase starting with a capital letter (unless it starts with a symbol such as
    ``q(x'|x)`` or ``K``), no trailing period."""
    text = " ".join(comment.split()).rstrip(".")
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first.isalpha() and first.islower() else text


_FIELD = re.compile(r"^\s+(\w+)\s*:")
_COMMENT = re.compile(r"^\s*#\s?(.*)$")


_TOOL_COMMENT = re.compile(r"\s*(type:\s*ignore|noqa)\b")


@functools.cache
def _field_comments(cls: type) -> dict[str, str]:
    """The comment of each field defined in ``cls``'s own source: the comment lines just above the field,
    then the comment at the end of the field's line, joined. Read once per class (parsing the source is
    the slow part of building a family's flags)."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    above: list[str] = []
    depth = 0  # open brackets of a field whose type spans several lines
    current: str | None = None
    for line in lines[1:]:
        code, _, trailing = _split_comment(line)
        if _TOOL_COMMENT.match(trailing):
            trailing = ""  # a note to a checker ("type: ignore[...]", "noqa"), not to the user
        if depth == 0:
            m = _COMMENT.match(line)
            if m and not code.strip():
                above.append(m.group(1).strip())
                continue
            f = _FIELD.match(code)
            if f and f.group(1) in names:
                current = f.group(1)
                # What the field is (its line's comment) first, then why its default is what it is (above it).
                parts = [trailing.strip(), " ".join(above)]
                out[current] = ". ".join(_sentence(p) for p in parts if p.strip())
                above = []
            else:
                above, current = [], None
        elif current is not None and trailing.strip() and not out[current].endswith(trailing.strip()):
            out[current] = f"{out[current]} {trailing.strip()}".strip()
        depth += code.count("[") + code.count("(") - code.count("]") - code.count(")")
    return out


def _split_comment(line: str) -> tuple[str, str, str]:
    """Split a source line into code and comment, ignoring '#' inside string literals."""
    quote: str | None = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i], "#", line[i + 1 :]
    return line, "", ""


def _declared_fields(configs: tuple[type, ...]) -> Iterator[tuple[dataclasses.Field[Any], Any, str]]:
    """Each field of ``configs`` with its resolved type and the comment of the class that defines it last."""
    for cfg in configs:
        types = P.field_types(cfg)
        comments: dict[str, str] = {}
        for klass in reversed(cfg.__mro__):  # a subclass's comment replaces its base's for a redefined field
            if dataclasses.is_dataclass(klass):
                comments.update(_field_comments(klass))
        for f in dataclasses.fields(cfg):
            yield f, types[f.name], comments.get(f.name, "")


def family_params(estimator_cls: type) -> list[ParamSpec]:
    """Every hyperparameter of a family, in declaration order, with its type, default and comment."""
    defaults = estimator_cls().get_params(deep=False)
    configs = getattr(estimator_cls, "_param_configs", ())
    return [ParamSpec(f.name, tp, defaults.get(f.name, f.default), comment) for f, tp, comment in _declared_fields(configs)]


def add_family_flags(group: argparse._ArgumentGroup, specs: list[ParamSpec], skip: set[str]) -> None:
    """Add a flag per parameter (a ``--x/--no-x`` switch for a plain bool) to ``group``."""
    for spec in specs:
        if spec.name in skip:
            continue
        help_text = spec.help.replace("%", "%%")
        if spec.is_switch:
            group.add_argument(spec.flag, dest=spec.name, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(spec.flag, dest=spec.name, type=spec.parse, metavar=spec.metavar, help=help_text)
