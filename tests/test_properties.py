"""Property tests (Hypothesis) of the core: losses, scaling, input checks, networks, and invariants that
every registered family must keep."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from conftest import N_DIGITS, digits_data, family_params, fit_args, make_tiny
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import aekit
from aekit.core import losses
from aekit.core.nets import build_encoder_decoder
from aekit.data.preprocessing import SCALINGS, Scaler, check_array
from aekit.model.registry import get_family

FAST = settings(max_examples=25, deadline=None)

finite = st.floats(-1e3, 1e3)


def tensors(shape: tuple[int, ...], elements: Any = finite) -> Any:
    """float64 tensors of ``shape``."""
    return arrays(np.float64, shape, elements=elements).map(torch.from_numpy)


# ------------------------------------------------------------------------------------------ losses


@FAST
@given(mu=tensors((3, 4), st.floats(-5, 5)), logvar=tensors((3, 4), st.floats(-5, 5)))
def test_kl_is_nonnegative_and_zero_exactly_at_the_prior(mu: torch.Tensor, logvar: torch.Tensor) -> None:
    kl = losses.kl_normal_std(mu, logvar)
    assert kl.shape == (3,)
    assert (kl >= -1e-12).all()
    assert torch.equal(losses.kl_normal_std(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))
    at_prior = (mu.abs().sum(1) == 0) & (logvar.abs().sum(1) == 0)
    assert (kl[at_prior] == 0).all()


def test_kl_matches_monte_carlo() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.3, -0.7]])
    z = mu + torch.randn(200_000, 2) * torch.exp(0.5 * logvar)
    log_q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert math.isclose(float((log_q - log_p).mean()), float(losses.kl_normal_std(mu, logvar)), rel_tol=2e-2)


@FAST
@given(x=tensors((4, 5)), y=tensors((4, 5)))
def test_squared_error_is_a_sum_over_features(x: torch.Tensor, y: torch.Tensor) -> None:
    se = losses.squared_error(x, y)
    torch.testing.assert_close(se, ((x - y) ** 2).sum(dim=1))
    assert (se >= 0).all() and torch.equal(losses.squared_error(x, x), torch.zeros(4, dtype=x.dtype))
    # Images are flattened per sample.
    torch.testing.assert_close(losses.squared_error(x.reshape(4, 1, 5), y.reshape(4, 1, 5)), se)


@FAST
@given(logits=tensors((3, 6), st.floats(-15, 15)), x=tensors((3, 6), st.floats(0, 1)))
def test_bce_with_logits_matches_the_formula(logits: torch.Tensor, x: torch.Tensor) -> None:
    # In this range the textbook formula is accurate in float64; the loss must be stable beyond it.
    p = torch.sigmoid(logits)
    manual = -(x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum(dim=1)
    out = losses.binary_cross_entropy_with_logits(logits, x)
    torch.testing.assert_close(out, manual, rtol=1e-7, atol=1e-7)
    assert torch.isfinite(losses.binary_cross_entropy_with_logits(logits * 100, x)).all()
    torch.testing.assert_close(losses.reconstruction("bce", x, p, logits), out)
    torch.testing.assert_close(losses.reconstruction("mse", x, p, logits), losses.squared_error(p, x))


def test_reconstruction_kind_errors() -> None:
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match=r"loss='bce' needs a sigmoid output; use output='sigmoid' or loss='mse'"):
        losses.reconstruction("bce", x, x, None)
    with pytest.raises(ValueError, match=r"unknown reconstruction loss 'l1'; valid: 'bce', 'mse'"):
        losses.reconstruction("l1", x, x, None)


@FAST
@given(mean=tensors((2, 3), st.floats(-5, 5)), x=tensors((2, 3), st.floats(-5, 5)),
       logvar=st.floats(-3, 3))
def test_gaussian_nll_matches_log_density(mean: torch.Tensor, x: torch.Tensor, logvar: float) -> None:
    from scipy.stats import norm

    expected = -norm.logpdf(x.numpy(), mean.numpy(), math.exp(0.5 * logvar)).sum(axis=1)
    np.testing.assert_allclose(losses.gaussian_nll(mean, logvar, x).numpy(), expected, rtol=1e-9, atol=1e-9)
    full = losses.gaussian_nll(mean, torch.full_like(mean, logvar), x)
    np.testing.assert_allclose(full.numpy(), expected, rtol=1e-9, atol=1e-9)


@FAST
@given(rho=st.floats(0.01, 0.99), h=tensors((8, 3), st.floats(0.001, 0.999)))
def test_kl_sparsity_is_zero_at_target_and_nonnegative(rho: float, h: torch.Tensor) -> None:
    assert float(losses.kl_sparsity(h, rho)) >= -1e-9
    at_target = torch.full((8, 3), rho, dtype=torch.float64)
    assert abs(float(losses.kl_sparsity(at_target, rho))) < 1e-9


@FAST
@given(h=tensors((3, 4)))
def test_l1_penalty(h: torch.Tensor) -> None:
    torch.testing.assert_close(losses.l1_penalty(h), h.abs().sum(dim=1))


# ------------------------------------------------------------------------------- scaling and input


@FAST
@given(
    X=arrays(np.float32, st.tuples(st.integers(2, 12), st.integers(1, 6)), elements=st.floats(-100, 100)),
    kind=st.sampled_from(SCALINGS),
)
def test_scaler_round_trip(X: np.ndarray, kind: str) -> None:
    sc = Scaler.fit(kind, X)
    Xs = sc.transform(X)
    assert Xs.dtype == np.float32 and Xs.shape == X.shape
    np.testing.assert_allclose(sc.inverse_transform(Xs), X, rtol=1e-4, atol=1e-3)
    if sc.kind == "minmax":
        assert Xs.min() >= -1e-6 and Xs.max() <= 1 + 1e-6
    if sc.kind == "standard":
        spread = X.std(axis=0) > 1e-3  # constant features are left unscaled
        np.testing.assert_allclose(Xs.mean(axis=0), 0, atol=1e-3)
        np.testing.assert_allclose(Xs.std(axis=0)[spread], 1, rtol=1e-3)


@FAST
@given(
    X=arrays(
        st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.bool_]),
        st.tuples(st.integers(1, 5), st.integers(1, 4)),
    ).filter(lambda a: np.isfinite(a.astype(np.float64)).all() and np.abs(a.astype(np.float64)).max(initial=0) < 1e30)
)
def test_check_array_returns_float32_copy_safe_array(X: np.ndarray) -> None:
    out = check_array(X)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_allclose(out, X.astype(np.float32))
    ro = X.copy()
    ro.flags.writeable = False
    assert check_array(ro).flags.writeable
    assert check_array(X.tolist()).shape == X.shape
    assert check_array(np.asfortranarray(X)).flags.c_contiguous


# -------------------------------------------------------------------------------------- networks


@settings(max_examples=20, deadline=None)
@given(
    shape=st.one_of(
        st.tuples(st.integers(1, 3), st.integers(1, 19), st.integers(1, 19)),  # images (C, H, W)
        st.tuples(st.integers(1, 3), st.integers(1, 30)),  # signals (C, L)
    ),
    architecture=st.sampled_from(["mlp", "conv"]),
    hidden=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
    latent=st.integers(1, 4),
)
def test_networks_are_sized_from_the_data(
    shape: tuple[int, ...], architecture: str, hidden: tuple[int, ...], latent: int
) -> None:
    encoder, decoder = build_encoder_decoder(shape, architecture, hidden, latent, "relu")
    x = torch.randn(2, *shape)
    z = encoder(x)
    assert z.shape == (2, latent)
    assert decoder(z).shape == x.shape


@FAST
@given(hidden=st.lists(st.integers(1, 6), max_size=2).map(tuple), latent=st.integers(1, 4))
def test_tied_decoder_owns_only_biases(hidden: tuple[int, ...], latent: int) -> None:
    encoder, decoder = build_encoder_decoder((7,), "mlp", hidden, latent, "tanh", tied=True)
    assert all(p.ndim == 1 for p in decoder.parameters())
    assert sum(p.numel() for p in decoder.parameters()) == sum(hidden) + 7
    assert decoder(encoder(torch.randn(3, 7))).shape == (3, 7)


# --------------------------------------------------------------------------- properties per family


@cache
def fitted(name: str) -> Any:
    info = get_family(name)
    X = digits_data()
    return make_tiny(info).fit(X, **fit_args(info, X))


@pytest.mark.parametrize("name", family_params())
@settings(max_examples=5, deadline=None)
@given(perm=st.permutations(list(range(N_DIGITS))))
def test_codes_follow_row_order(name: str, perm: list[int]) -> None:
    est = fitted(name)
    X = digits_data()
    np.testing.assert_allclose(est.transform(X[perm]), est.transform(X)[perm], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", family_params())
def test_reconstruct_is_decode_of_encode(name: str) -> None:
    est = fitted(name)
    X = digits_data()
    np.testing.assert_allclose(est.reconstruct(X), est.inverse_transform(est.transform(X)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", family_params())
def test_transform_does_not_change_the_model(name: str) -> None:
    est = fitted(name)
    before = {k: v.clone() for k, v in est.module_.state_dict().items()}
    X = digits_data()
    est.transform(X)
    est.reconstruct(X)
    est.score_samples(X)
    after = est.module_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not est.module_.training


@settings(max_examples=10, deadline=None)
@given(k=st.integers(1, 8))
def test_pca_error_decreases_with_latent_dim(k: int) -> None:
    X = digits_data()[:, :8]
    X = X + np.random.default_rng(0).normal(0, 0.1, X.shape).astype(np.float32)
    err = [aekit.LinearAutoencoder(latent_dim=j).fit(X).reconstruction_error(X).mean() for j in (k, min(k + 1, 8))]
    assert err[1] <= err[0] * (1 + 1e-5) + 1e-6
    if k == 8:
        assert err[0] < 1e-8 * (X**2).sum(1).mean()


def test_standard_scaling_leaves_constant_features_alone() -> None:
    # float32 rounding gives a constant column a spread of about 1e-7 of its value; it must not be
    # blown up to unit variance.
    X = np.full((7, 2), 1.8145822, np.float32)
    X[:, 1] = np.arange(7)
    sc = Scaler.fit("standard", X)
    assert sc.scale[0] == 1.0
    Xs = sc.transform(X)
    assert np.abs(Xs[:, 0]).max() < 1e-6
    np.testing.assert_allclose(Xs[:, 1].std(), 1.0, rtol=1e-5)
