"""The family registry: every autoencoder family registers its estimator here by name.

The CLI, the loader, ``aekit list`` and the shared conformance tests all loop over this table,
so adding a family is one decorator, never a new ``elif``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class FamilyInfo:
    """What the registry knows of one family."""

    name: str
    estimator: type
    description: str
    # Declared capabilities; the conformance suite tests by these, never by family name.
    capabilities: frozenset[str] = field(default_factory=frozenset)


FAMILIES: dict[str, FamilyInfo] = {}


def register(name: str, description: str, capabilities: tuple[str, ...] = ()) -> Callable[[T], T]:
    """Class decorator that registers an estimator class under ``name``.

    Capabilities used by the shared tests: ``"gradient"`` (trained by the training loop),
    ``"sample"`` (has ``sample``), ``"labels"`` (uses ``y`` in ``fit``), ``"images"`` (accepts
    (N, C, H, W) input), ``"loglik"`` (``score_samples`` is a log-likelihood). ``"stackable"``: the
    family can be the layer of a stacked autoencoder (its estimator has ``layer_options``,
    ``layer_module`` and ``layer_corruption``).
    """

    def decorate(cls: T) -> T:
        if name in FAMILIES and FAMILIES[name].estimator is not cls:
            raise RuntimeError(f"family {name!r} registered twice")
        FAMILIES[name] = FamilyInfo(name, cls, description, frozenset(capabilities))  # type: ignore[arg-type]
        cls._family_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def get_family(name: str) -> FamilyInfo:
    """Return the registered family ``name`` or raise a ValueError listing the valid names."""
    _ensure_loaded()
    try:
        return FAMILIES[name]
    except KeyError:
        valid = ", ".join(sorted(FAMILIES))
        raise ValueError(f"unknown family {name!r}; valid families are: {valid}") from None


def declared_capabilities(est: object) -> frozenset[str]:
    """The capabilities the estimator's family declares (empty for an unregistered class)."""
    name = getattr(est, "_family_name", None)
    if not isinstance(name, str):
        return frozenset()
    try:
        return get_family(name).capabilities
    except ValueError:
        return frozenset()


def families() -> dict[str, FamilyInfo]:
    """All registered families, sorted by name."""
    _ensure_loaded()
    return dict(sorted(FAMILIES.items()))


def _ensure_loaded() -> None:
    import aekit.families  # noqa: F401  (importing registers every family)

