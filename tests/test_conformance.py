"""One conformance suite run on every registered family.

The families are read from the registry, so a new family is covered as soon as it registers. Tests
differ only by declared capabilities ("gradient", "images", "labels", "sample", "loglik"), never by
family name. Each family trains with its own tiny configuration (``_test_params``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import N_DIGITS, digits_data, family_params, family_variants, fit_args, fit_data, make_tiny
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

import aekit
from aekit.model.registry import get_family


@cache
def fitted(name: str, images: bool = False) -> Any:
    """One fit per family and input kind, shared by the read-only tests below."""
    info = get_family(name)
    X = digits_data()
    if images:
        X = X.reshape(-1, 1, 8, 8)
    return make_tiny(info).fit(X, **fit_args(info, X))


def data(images: bool = False) -> np.ndarray:
    X = digits_data()
    return X.reshape(-1, 1, 8, 8) if images else X


def kinds(capability: str | None = None) -> list[Any]:
    """(family, images) pairs: tabular for every family, images for those declaring "images"."""
    out = []
    for p in family_params(capability):
        (name,) = p.values
        out.append(pytest.param(name, False, id=f"{name}-tabular"))
        if "images" in get_family(name).capabilities:
            out.append(pytest.param(name, True, id=f"{name}-images"))
    return out


def fitted_attributes(est: Any) -> list[str]:
    """Public names ending in ``_`` that a fitted estimator has (sklearn's fitted-state convention)."""
    return [a for a in dir(est) if a.endswith("_") and not a.startswith("_") and hasattr(est, a)]


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ----------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(("name", "images"), kinds())
def test_shapes(name: str, images: bool) -> None:
    est = fitted(name, images)
    X = data(images)
    n = X.shape[0]
    Z = est.transform(X)
    assert Z.ndim == 2 and Z.shape[0] == n
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    assert est.n_features_in_ == 64
    X_back = est.inverse_transform(Z)
    assert X_back.shape == X.shape
    assert np.isfinite(X_back).all()
    R = est.reconstruct(X)
    assert R.shape == X.shape
    assert np.isfinite(R).all()
    s = est.score_samples(X)
    assert s.shape == (n,) and np.isfinite(s).all()
    err = est.reconstruction_error(X)
    assert err.shape == (n,) and (err >= 0).all()
    np.testing.assert_allclose(err, ((R - X) ** 2).reshape(n, -1).sum(axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", family_params("images"))
def test_images_accept_flat_rows(name: str) -> None:
    """A model fitted on images encodes the same images given as flat rows of the same length."""
    est = fitted(name, True)
    X = data(True)
    np.testing.assert_array_equal(est.transform(X.reshape(X.shape[0], -1)), est.transform(X))


@pytest.mark.parametrize("name", family_params())
def test_fit_returns_self_and_keeps_params(name: str) -> None:
    info = get_family(name)
    est = make_tiny(info)
    before = est.get_params()
    X = data()
    assert est.fit(X, **fit_args(info, X)) is est
    after = est.get_params()
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] or after[k] == before[k] for k in before)


@pytest.mark.parametrize("name", family_params())
def test_sample_shape(name: str) -> None:
    """A family samples exactly when it declares "sample"; its samples have the data's shape."""
    info = get_family(name)
    assert callable(getattr(info.estimator, "sample", None)) == ("sample" in info.capabilities)
    if "sample" not in info.capabilities:
        return
    est = fitted(name)
    S = est.sample(5)
    assert S.shape == (5, 64)
    assert np.isfinite(S).all()


@pytest.mark.parametrize("name", family_params("loglik"))
def test_loglik_is_a_density(name: str) -> None:
    """A log-likelihood score is finite and ranks a far-off point below the training data."""
    est = fitted(name)
    X = data()
    s = est.score_samples(X)
    far = est.score_samples(X[:1] + 10.0)
    assert np.isfinite(s).all() and far[0] < s.min()


# -------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", family_params("gradient"))
def test_loss_history_finite(name: str) -> None:
    est = fitted(name)
    assert len(est.history_) >= 1
    for row in est.history_:
        assert {"epoch", "loss"} <= row.keys()
        assert all(np.isfinite(v) for v in row.values()), row


@pytest.mark.parametrize("name", family_params("gradient"))
def test_weights_change_after_one_epoch(name: str) -> None:
    info = get_family(name)
    est = make_tiny(info, max_epochs=1)
    initial: dict[str, torch.Tensor] = {}
    build = est._build_module

    def spy(sample_shape: tuple[int, ...]) -> torch.nn.Module:
        module = build(sample_shape)
        initial.update(state(module))
        return module

    est._build_module = spy
    X = data()
    est.fit(X, **fit_args(info, X))
    trained = state(est.module_)
    assert trained.keys() == initial.keys()
    changed = [k for k in trained if not torch.equal(trained[k], initial[k])]
    assert changed, "no weight changed after one epoch of training"
    assert all(torch.isfinite(v).all() for v in trained.values() if v.is_floating_point())


@pytest.mark.parametrize(("name", "variant"), [p for p in family_variants() if p.values[1]])
def test_declared_variants_train_and_round_trip(name: str, variant: dict[str, Any], tmp_path: Path) -> None:
    """Each declared variant (another training path) trains, saves and loads back to the same model."""
    info = get_family(name)
    X = fit_data(info, **variant)
    est = make_tiny(info, **variant).fit(X, **fit_args(info, X))
    assert all(k in est.resolved_ and est.resolved_[k] == v for k, v in variant.items())
    assert all(np.isfinite(row["loss"]) for row in est.history_)
    loaded = aekit.load(est.save(tmp_path / "run"))
    np.testing.assert_allclose(loaded.transform(X), est.transform(X), rtol=0, atol=1e-6)
    # A sample's code does not depend on the samples it is passed with: not in number, not alone.
    np.testing.assert_array_equal(est.transform(X[:7])[3:], est.transform(X[3:7]))
    np.testing.assert_array_equal(est.transform(X)[5], est.transform(X[5:6])[0])


# ----------------------------------------------------------------------------------- persistence


@pytest.mark.parametrize(("name", "images"), kinds())
def test_save_load_identical(name: str, images: bool, tmp_path: Path) -> None:
    est = fitted(name, images)
    X = data(images)
    path = est.save(tmp_path / "run")
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    loaded = aekit.load(tmp_path / "run")
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    Z = est.transform(X)
    np.testing.assert_allclose(loaded.transform(X), Z, rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.reconstruct(X), est.reconstruct(X), rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.inverse_transform(Z), est.inverse_transform(Z), rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.score_samples(X), est.score_samples(X), rtol=1e-6, atol=1e-6)
    # Every public fitted attribute (instance attribute or property) survives the round trip.
    for attr in fitted_attributes(est):
        assert hasattr(loaded, attr), f"{attr} is lost by save/load"
        ours, theirs = getattr(est, attr), getattr(loaded, attr)
        if isinstance(ours, np.ndarray | list) and np.asarray(ours).dtype.kind in "fiu":
            np.testing.assert_allclose(np.asarray(theirs), np.asarray(ours), rtol=1e-6, atol=1e-6, err_msg=attr)
    # Loading the model file directly finds its run directory.
    again = aekit.load(tmp_path / "run" / "model.safetensors")
    np.testing.assert_array_equal(again.transform(X), loaded.transform(X))


@pytest.mark.parametrize("name", family_params())
def test_same_random_state_same_fit(name: str) -> None:
    info = get_family(name)
    X = data()
    again = make_tiny(info).fit(X, **fit_args(info, X))
    first = fitted(name)
    np.testing.assert_array_equal(again.transform(X), first.transform(X))
    np.testing.assert_array_equal(again.reconstruct(X), first.reconstruct(X))


@pytest.mark.parametrize("name", family_params())
def test_unfitted_raises(name: str, tmp_path: Path) -> None:
    est = make_tiny(get_family(name))
    X = data()
    for call in (
        lambda: est.transform(X),
        lambda: est.inverse_transform(np.zeros((2, 2), np.float32)),
        lambda: est.reconstruct(X),
        lambda: est.score_samples(X),
        lambda: est.save(tmp_path / "run"),
    ):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()
    assert not (tmp_path / "run").exists()
    assert fitted_attributes(est) == []


# -------------------------------------------------------------------------------------- properties


@pytest.mark.parametrize("name", family_params())
@settings(max_examples=8, deadline=None)
@given(rows=st.lists(st.integers(0, N_DIGITS - 1), min_size=1, max_size=12))
def test_batch_encoding_equals_row_by_row(name: str, rows: list[int]) -> None:
    """Encoding is per sample: no batch statistic leaks into a code (also for repeated rows)."""
    est = fitted(name)
    X = data()[rows]
    batch = est.transform(X)
    one_by_one = np.concatenate([est.transform(X[i : i + 1]) for i in range(len(rows))])
    np.testing.assert_allclose(batch, one_by_one, rtol=1e-4, atol=1e-5)
