"""Fitted state is frozen, for every registered family (and every declared variant of its training path).

- ``fit``, ``transform`` and ``aekit.load`` leave the caller's global torch and NumPy random states alone;
- inference (``transform``, ``inverse_transform``, ``reconstruct``, ``score_samples``) changes neither the
  module's weights and settings nor the estimator's attributes;
- parameters set after fit change the next fit only: transform, save and load agree with the fit.

The families come from the registry and train with their own tiny configuration (``_test_params``).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
import torch
from conftest import declared_variants, digits_data, fit_args, fit_data, make_tiny

import aekit
from aekit.core.lasso import sparse_encode
from aekit.model.registry import families, get_family


def cases() -> list[Any]:
    """(family, variant) for every family: its tiny configuration, then each declared ``_test_variants`` entry."""
    out = []
    for name, info in families().items():
        variants = declared_variants(info.estimator)
        for i, variant in enumerate(variants):
            label = name if i == 0 else f"{name}-" + "-".join(f"{k}={v}" for k, v in variant.items())
            out.append(pytest.param(name, i, id=label))
    return out


def variant_params(name: str, index: int) -> dict[str, Any]:
    return declared_variants(get_family(name).estimator)[index]


@cache
def _fitted(name: str, index: int) -> Any:
    info = get_family(name)
    X = fit_data(info, **variant_params(name, index))
    return make_tiny(info, **variant_params(name, index)).fit(X, **fit_args(info, X))


def fitted(name: str, index: int) -> Any:
    """A fresh copy of one shared fit per case (tests may change it)."""
    return copy.deepcopy(_fitted(name, index))


# ------------------------------------------------------------------------------- comparing state


def frozen(value: Any) -> Any:
    """A deep snapshot of ``value`` that :func:`assert_same` can compare, modules included.

    A module is its state_dict plus the plain attributes of each submodule (settings such as
    ``max_iter`` or ``transform_algorithm`` live there, not in the state_dict).
    """
    if isinstance(value, torch.nn.Module):
        return (
            "module",
            {k: v.detach().clone() for k, v in value.state_dict().items()},
            {name: frozen({k: v for k, v in vars(m).items() if not k.startswith("_")}) for name, m in value.named_modules()},
        )
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: frozen(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(frozen(v) for v in value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return ("object", type(value), frozen(vars(value)))
    return copy.deepcopy(value)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    assert type(a) is type(b), f"{where}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b), f"{where} changed"
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=f"{where} changed")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} became {sorted(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: length {len(a)} became {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} became {b!r}"


def rng_states() -> tuple[torch.Tensor, Any]:
    return torch.get_rng_state(), np.random.get_state()


def assert_rng_unchanged(before: tuple[torch.Tensor, Any], step: str) -> None:
    torch_state, np_state = before
    assert torch.equal(torch.get_rng_state(), torch_state), f"{step} changed the global torch random state"
    now = np.random.get_state()
    assert now[0] == np_state[0] and np.array_equal(now[1], np_state[1]) and now[2:] == np_state[2:], (
        f"{step} changed the global NumPy random state"
    )


# ------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize(("name", "index"), cases())
def test_fit_transform_and_load_leave_the_callers_random_state_alone(name: str, index: int, tmp_path: Path) -> None:
    info = get_family(name)
    X = fit_data(info, **variant_params(name, index))
    torch.manual_seed(1234)
    np.random.seed(1234)
    before = rng_states()
    # random_state=None: the fit draws its own seed, and must not draw it from the global generators.
    for random_state in (0, None):
        est = make_tiny(info, random_state=random_state, **variant_params(name, index))
        est.fit(X, **fit_args(info, X))
        assert_rng_unchanged(before, f"fit with random_state={random_state}")
    est.transform(X)
    assert_rng_unchanged(before, "transform")
    loaded = aekit.load(est.save(tmp_path / "run"))
    assert_rng_unchanged(before, "save and load")
    loaded.transform(X)
    assert_rng_unchanged(before, "transform of a loaded model")


@pytest.mark.parametrize(("name", "index"), cases())
def test_inference_changes_neither_the_module_nor_the_estimator(name: str, index: int) -> None:
    est = fitted(name, index)
    X = fit_data(get_family(name), **variant_params(name, index))
    before = frozen(vars(est))
    Z = est.transform(X)
    est.inverse_transform(Z)
    est.reconstruct(X)
    est.score_samples(X)
    assert_same(before, frozen(vars(est)), type(est).__name__)


class Poison:
    """A parameter value set after fit: inference, saving and loading must never read it."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("a parameter set after fit was used by inference, save or load")

    __bool__ = __float__ = __int__ = __index__ = __str__ = __format__ = __eq__ = __lt__ = __gt__ = _refuse  # type: ignore[assignment]
    __le__ = __ge__ = __len__ = __iter__ = __hash__ = __getitem__ = __call__ = _refuse  # type: ignore[assignment]
    __add__ = __sub__ = __mul__ = __truediv__ = __floordiv__ = __neg__ = __abs__ = _refuse

    def __repr__(self) -> str:
        return "Poison()"


@pytest.mark.parametrize(("name", "index"), cases())
def test_parameters_set_after_fit_change_only_the_next_fit(name: str, index: int, tmp_path: Path) -> None:
    est = fitted(name, index)
    X = fit_data(get_family(name), **variant_params(name, index))
    fit_params = copy.deepcopy(est.get_params(deep=False))
    Z, R, S = est.transform(X), est.reconstruct(X), est.score_samples(X)
    # Every parameter replaced by a value that fails as soon as it is read.
    est.set_params(**{k: Poison() for k in fit_params})
    np.testing.assert_array_equal(est.transform(X), Z)
    np.testing.assert_array_equal(est.reconstruct(X), R)
    np.testing.assert_array_equal(est.score_samples(X), S)
    path = est.save(tmp_path / "run")
    saved = json.loads((path / "config.json").read_text())["params"]
    assert saved.keys() == fit_params.keys()
    loaded = aekit.load(path)
    reloaded_params = loaded.get_params(deep=False)
    for k, v in fit_params.items():
        if isinstance(v, int | float | str | bool | tuple) or v is None:
            assert reloaded_params[k] == v, f"{k}: saved {reloaded_params[k]!r}, fitted with {v!r}"
    np.testing.assert_array_equal(loaded.transform(X), Z)
    np.testing.assert_array_equal(loaded.reconstruct(X), R)
    np.testing.assert_array_equal(loaded.score_samples(X), S)


def test_sparse_coding_encodes_with_the_alpha_of_its_fit(tmp_path: Path) -> None:
    """The review's case: alpha (and the solver's budget) set after fit, in memory and saved-and-reloaded."""
    X = digits_data()
    sc = aekit.SparseCoding(latent_dim=16, alpha=0.5, fit_algorithm="alternating", max_epochs=2, random_state=0)
    sc.fit(X)
    H = sc.transform(X)
    np.testing.assert_allclose(H, sparse_encode(X, sc.components_, 0.5, max_iter=1000, tol=1e-4), atol=1e-5)
    other = sparse_encode(X, sc.components_, 0.05)
    assert np.abs(other - H).max() > 0.1  # the codes of alpha=0.05 differ: the checks below can fail
    sc.set_params(alpha=0.05, transform_max_iter=1, tol=0.5)
    np.testing.assert_array_equal(sc.transform(X), H)
    loaded = aekit.load(sc.save(tmp_path / "sc"))
    assert loaded.get_params()["alpha"] == 0.5 and loaded.get_params()["transform_max_iter"] == 1000
    np.testing.assert_array_equal(loaded.transform(X), H)


def test_psd_infers_with_the_settings_of_its_fit(tmp_path: Path) -> None:
    X = digits_data()
    psd = aekit.PredictiveSparseDecomposition(latent_dim=16, alpha=0.5, max_epochs=1, random_state=0, verbose=0).fit(X)
    fast, exact = psd.transform(X), psd.sparse_codes(X)
    assert np.abs(fast - exact).max() > 0.1  # the fast encoder is not the exact solver: the checks below can fail
    psd.set_params(transform_algorithm="optimize")
    np.testing.assert_array_equal(psd.transform(X), fast)
    loaded = aekit.load(psd.save(tmp_path / "psd"))
    np.testing.assert_array_equal(loaded.transform(X), fast)
    np.testing.assert_array_equal(loaded.sparse_codes(X), exact)
