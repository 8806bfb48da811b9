"""Tests against references: PCA for the linear autoencoder, scikit-learn's FactorAnalysis for factor
analysis, hand-written formulas, and autograd through an untied copy for tied weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import digits_data, low_rank_data
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA, FactorAnalysis

import aekit
from aekit.core import losses
from aekit.core.nets import build_encoder_decoder
from aekit.families.autoencoder import AutoencoderModule


def random_data(n: int = 300, d: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Distinct scales per feature, so the principal axes are well separated.
    return (rng.standard_normal((n, d)) * np.linspace(3.0, 0.5, d) + 1.0).astype(np.float32)


def pca_error(pca: PCA, X: np.ndarray) -> np.ndarray:
    X64 = X.astype(np.float64)
    R = pca.inverse_transform(pca.transform(X64))
    return ((R - X64) ** 2).sum(axis=1)


def max_angle_degrees(A: np.ndarray, B: np.ndarray) -> float:
    """Largest principal angle between the column spaces of A and B, in degrees."""
    return float(np.degrees(subspace_angles(np.asarray(A, np.float64), np.asarray(B, np.float64)).max()))


# ------------------------------------------------------------------------------ linear vs PCA


@pytest.mark.parametrize(
    ("X", "k"), [pytest.param(digits_data(), 5, id="digits"), pytest.param(random_data(), 4, id="random")]
)
def test_linear_svd_matches_pca(X: np.ndarray, k: int) -> None:
    est = aekit.LinearAutoencoder(latent_dim=k).fit(X)
    pca = PCA(n_components=k, svd_solver="full").fit(X.astype(np.float64))
    ours, theirs = est.reconstruction_error(X).mean(), pca_error(pca, X).mean()
    assert abs(ours - theirs) <= 1e-5 * theirs
    assert max_angle_degrees(est.components_.T, pca.components_.T) < 1e-3
    # Same sign convention as scikit-learn, so the components themselves agree.
    np.testing.assert_allclose(est.components_, pca.components_, atol=1e-4)
    np.testing.assert_allclose(est.explained_variance_, pca.explained_variance_, rtol=1e-5)
    np.testing.assert_allclose(np.abs(est.transform(X)), np.abs(pca.transform(X.astype(np.float64))), atol=1e-3)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_linear_gradient_finds_pca_subspace(tied: bool) -> None:
    """Baldi & Hornik: the trained decoder W spans the top-K principal subspace."""
    X, _ = low_rank_data(n=2000, d=20, rank=3, noise=0.05)
    est = aekit.LinearAutoencoder(
        latent_dim=3, solver="gradient", tied=tied, max_epochs=20, learning_rate=0.03, lr_schedule="cosine",
        batch_size=64, patience=None, verbose=0, random_state=0,
    ).fit(X)
    W = est.module_.decoder_matrix().detach().numpy()  # (D, K)
    P = PCA(n_components=3, svd_solver="full").fit(X.astype(np.float64)).components_.T
    assert max_angle_degrees(W, P) < 1.0


def test_linear_gradient_overcomplete_reaches_zero_error() -> None:
    """With K >= D and no constraint, the optimum is the identity map: zero reconstruction error."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((1000, 10)) * np.linspace(2.0, 0.5, 10)).astype(np.float32)
    total = ((X - X.mean(axis=0)) ** 2).sum(axis=1).mean()
    for k in (10, 12):
        est = aekit.LinearAutoencoder(
            latent_dim=k, solver="gradient", max_epochs=20, learning_rate=0.03, lr_schedule="cosine", batch_size=64,
            patience=None, verbose=0, random_state=0,
        ).fit(X)
        assert est.reconstruction_error(X).mean() < 1e-6 * total


# ------------------------------------------------------------------- factor analysis vs sklearn


def fa_data(n: int = 1000, d: int = 10, k: int = 2, seed: int = 0) -> np.ndarray:
    """Non-degenerate factor-analysis data: strong loadings, heteroscedastic noise in [0.2, 1]."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, k)) * 1.5
    psi = rng.uniform(0.2, 1.0, d)
    X = rng.standard_normal((n, k)) @ W.T + rng.standard_normal((n, d)) * np.sqrt(psi) + rng.standard_normal(d)
    return X.astype(np.float32)


def test_factor_analysis_matches_sklearn() -> None:
    X = fa_data()
    est = aekit.FactorAnalysisAutoencoder(latent_dim=2).fit(X)
    sk = FactorAnalysis(n_components=2, tol=1e-10, max_iter=20000, svd_method="lapack").fit(X.astype(np.float64))
    ours, theirs = est.score(X), sk.score(X.astype(np.float64))
    assert abs(ours - theirs) <= 1e-3 * abs(theirs)
    assert max_angle_degrees(est.components_.T, sk.components_.T) < 0.1
    np.testing.assert_allclose(est.noise_variance_, sk.noise_variance_, rtol=1e-2)
    np.testing.assert_allclose(est.mean_, sk.mean_, rtol=1e-5, atol=1e-5)
    # The last EM log-likelihood is the score on the training data.
    assert abs(est.loglike_[-1] - ours) <= 1e-5 * abs(ours)
    assert np.all(np.diff(est.loglike_) >= -1e-9 * abs(ours)), "EM must never decrease the likelihood"


def test_factor_analysis_transform_is_posterior_mean() -> None:
    X = fa_data()
    est = aekit.FactorAnalysisAutoencoder(latent_dim=2).fit(X)
    W = est.components_.T.astype(np.float64)  # (D, K)
    psi = est.noise_variance_.astype(np.float64)
    mu = est.mean_.astype(np.float64)
    # E[z | x] = (I + W^T Psi^-1 W)^-1 W^T Psi^-1 (x - mu)
    G = np.linalg.inv(np.eye(2) + W.T @ np.diag(1 / psi) @ W)
    expected = (G @ W.T @ np.diag(1 / psi) @ (X.astype(np.float64) - mu).T).T
    np.testing.assert_allclose(est.transform(X), expected, rtol=1e-5, atol=1e-5)
    # The decoder is the mean of p(x | z).
    Z = np.random.default_rng(1).standard_normal((5, 2))
    np.testing.assert_allclose(est.inverse_transform(Z), Z @ W.T + mu, rtol=1e-5, atol=1e-5)


def test_factor_analysis_score_is_gaussian_loglik() -> None:
    from scipy.stats import multivariate_normal

    X = fa_data(n=300)
    est = aekit.FactorAnalysisAutoencoder(latent_dim=2).fit(X)
    W = est.components_.T.astype(np.float64)
    cov = W @ W.T + np.diag(est.noise_variance_.astype(np.float64))
    expected = multivariate_normal(est.mean_.astype(np.float64), cov).logpdf(X.astype(np.float64))
    np.testing.assert_allclose(est.score_samples(X), expected, rtol=1e-6, atol=1e-6)


def test_factor_analysis_fitted_attributes_survive_save_and_load(tmp_path: Path) -> None:
    X = fa_data(n=300)
    est = aekit.FactorAnalysisAutoencoder(latent_dim=2).fit(X)
    loaded = aekit.load(est.save(tmp_path / "fa"))
    for attr in ("components_", "noise_variance_", "mean_"):
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(est, attr), err_msg=attr)
    np.testing.assert_array_equal(loaded.score_samples(X), est.score_samples(X))
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    assert est.n_iter_ > 1 and loaded.n_iter_ == est.n_iter_ == len(est.loglike_)
    # history.csv keeps 8 significant digits
    np.testing.assert_allclose(loaded.loglike_, est.loglike_, rtol=1e-7)
    assert abs(loaded.loglike_[-1] - loaded.score(X)) <= 1e-5 * abs(loaded.score(X))


# ------------------------------------------------------------------------------------ tied weights


@pytest.mark.parametrize("hidden", [(), (7,), (9, 6)], ids=["shallow", "one-hidden", "two-hidden"])
def test_tied_gradient_is_sum_of_encoder_and_decoder_gradients(hidden: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    d, k = 12, 3
    enc_t, dec_t = build_encoder_decoder((d,), "mlp", hidden, k, "tanh", tied=True)
    tied = AutoencoderModule(enc_t, dec_t, output="sigmoid", loss="bce").double()
    enc_u, dec_u = build_encoder_decoder((d,), "mlp", hidden, k, "tanh", tied=False)
    untied = AutoencoderModule(enc_u, dec_u, output="sigmoid", loss="bce").double()

    enc_lin_t = [m for m in tied.encoder.modules() if isinstance(m, torch.nn.Linear)]
    enc_lin_u = [m for m in untied.encoder.modules() if isinstance(m, torch.nn.Linear)]
    dec_lin_u = [m for m in untied.decoder.modules() if isinstance(m, torch.nn.Linear)]
    tied_biases = list(tied.decoder[0].biases)
    assert len(enc_lin_t) == len(enc_lin_u) == len(dec_lin_u) == len(tied_biases) == len(hidden) + 1
    with torch.no_grad():
        for a, b in zip(enc_lin_t, enc_lin_u):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
        # Decoder layer j mirrors encoder layer L-1-j: W_dec = W_enc^T, the bias is the decoder's own.
        for j, (lin, bias) in enumerate(zip(dec_lin_u, tied_biases)):
            bias.normal_()
            lin.weight.copy_(enc_lin_t[-1 - j].weight.t())
            lin.bias.copy_(bias)

    x = torch.rand(16, d, dtype=torch.float64)
    lt = tied.loss(x, tied(x)).total
    lu = untied.loss(x, untied(x)).total
    torch.testing.assert_close(lt, lu)
    lt.backward()
    lu.backward()
    for j, lin in enumerate(enc_lin_t):
        expected = enc_lin_u[j].weight.grad + dec_lin_u[-1 - j].weight.grad.t()
        torch.testing.assert_close(lin.weight.grad, expected)
        torch.testing.assert_close(lin.bias.grad, enc_lin_u[j].bias.grad)
    for lin, bias in zip(dec_lin_u, tied_biases):
        torch.testing.assert_close(bias.grad, lin.bias.grad)


# ------------------------------------------------------------------------------ contractive penalty


def jacobian_frobenius(encode: Any, x: torch.Tensor) -> torch.Tensor:
    """||J_f(x)||_F^2 per sample from the full autograd Jacobian, (B,)."""
    return torch.stack([torch.autograd.functional.jacobian(encode, xi[None]).pow(2).sum() for xi in x])


def test_contractive_sigmoid_exact_matches_autograd_jacobian() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 4).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    h = torch.sigmoid(layer(x))
    expected = jacobian_frobenius(lambda v: torch.sigmoid(layer(v)), x)
    torch.testing.assert_close(losses.contractive_sigmoid_exact(h, layer.weight), expected)


def test_contractive_autograd_and_projection_match_the_jacobian() -> None:
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    expected = jacobian_frobenius(encoder, x)
    torch.testing.assert_close(losses.contractive_autograd(encoder, x), expected)
    # The random-projection estimate is unbiased: many projections converge on the exact value.
    estimate = losses.contractive_projection(encoder, x, n_projections=4000)
    torch.testing.assert_close(estimate, expected, rtol=0.1, atol=0.0)
    # Both are differentiable, so the penalty can be minimized.
    losses.contractive_autograd(encoder, x).sum().backward()
    weights = [p for p in encoder.parameters() if p.ndim == 2]  # the last bias does not enter the Jacobian
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in weights)
