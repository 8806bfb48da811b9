"""Tests for sparse coding (FISTA/ISTA, the SparseCoding estimator) and predictive sparse decomposition."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode as sk_sparse_encode
from sklearn.exceptions import ConvergenceWarning

import aekit
from aekit.core import lasso
from aekit.core.lasso import (
    _feature_sign,
    _gradient_fn,
    _prox_grad,
    _refine_on_support,
    lasso_core,
    lipschitz,
    sparse_coding_objective,
    sparse_encode,
)
from aekit.families.psd import PredictiveSparseDecomposition
from aekit.families.sparse_coding import SparseCoding
from aekit.model.registry import get_family


def random_problem(n: int = 50, d: int = 20, k: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    D = rng.standard_normal((k, d))
    return X, D / np.linalg.norm(D, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return aekit.load_dataset("digits").X  # (1437, 1, 8, 8) in [0, 1]


# ------------------------------------------------------------------ sparse_encode


@pytest.mark.parametrize("alpha", [0.05, 0.2, 1.0, 3.0])
def test_objective_no_worse_than_sklearn_lasso_cd(alpha):
    X, D = random_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # sklearn's own solver, not ours
        ref = sk_sparse_encode(X, D, algorithm="lasso_cd", alpha=alpha)
    ours = sparse_encode(X, D, alpha)
    assert ours.shape == (50, 30) and ours.dtype == np.float64
    obj_ref = sparse_coding_objective(X, D, ref, alpha).mean()
    obj_ours = sparse_coding_objective(X, D, ours, alpha).mean()
    assert obj_ours <= obj_ref * (1 + 1e-4)


def test_float32_and_ista_reach_the_same_objective():
    X, D = random_problem(seed=1)
    ref = sparse_coding_objective(X, D, sparse_encode(X, D, 0.5), 0.5).mean()
    f32 = sparse_encode(X.astype(np.float32), D.astype(np.float32), 0.5)
    assert f32.dtype == np.float32
    ista = sparse_encode(X, D, 0.5, algorithm="ista", max_iter=20000, tol=1e-10)
    for codes in (f32, ista):
        assert sparse_coding_objective(X, D, codes, 0.5).mean() == pytest.approx(ref, rel=1e-5)


def test_fista_converges_faster_than_ista():
    # O(1/k^2) against O(1/k): after the same number of iterations FISTA is far closer to the optimum.
    X, D = random_problem(seed=2)
    alpha = 0.1
    best = sparse_coding_objective(X, D, sparse_encode(X, D, alpha, max_iter=20000, tol=0), alpha).mean()
    Xt, Dt = torch.from_numpy(X), torch.from_numpy(D)
    gram = Dt @ Dt.T
    L = lipschitz(gram)
    gaps = {}
    for k in (10, 50):
        for name, momentum in (("fista", True), ("ista", False)):
            h, _ = _prox_grad(gram, Xt @ Dt.T, L, alpha, k, 0.0, None, momentum=momentum)
            gaps[name, k] = sparse_coding_objective(X, D, h.numpy(), alpha).mean() - best
    assert gaps["fista", 50] < 0.2 * gaps["ista", 50]
    assert gaps["fista", 50] < gaps["fista", 10]
    assert all(g >= -1e-9 for g in gaps.values())


def test_alpha_zero_orthonormal_dictionary_gives_least_squares_codes():
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    X = rng.standard_normal((40, 20))
    codes = sparse_encode(X, Q.T, 0.0)  # atoms = rows of Q^T
    np.testing.assert_allclose(codes, X @ Q, atol=1e-10)
    np.testing.assert_allclose(codes @ Q.T, X, atol=1e-10)


def test_soft_thresholding_with_identity_dictionary():
    X = np.array([[2.0, 0.5, -3.0], [0.0, -1.5, 1.0]])
    codes = sparse_encode(X, np.eye(3), 1.0)
    np.testing.assert_allclose(codes, [[1.0, 0.0, -2.0], [0.0, -0.5, 0.0]])


def test_warm_start_and_batch_independence():
    X, D = random_problem(seed=4)
    full = sparse_encode(X, D, 0.3)
    rows = np.concatenate([sparse_encode(X[i : i + 7], D, 0.3) for i in range(0, 50, 7)])
    np.testing.assert_allclose(full, rows, atol=1e-12)  # exact: batching changes nothing but rounding
    fista = sparse_encode(X, D, 0.3, algorithm="fista", tol=1e-10, max_iter=5000)
    np.testing.assert_allclose(fista, full, atol=1e-6)
    warm = sparse_encode(X, D, 0.3, algorithm="fista", init=full, max_iter=10)
    np.testing.assert_allclose(warm, full, atol=1e-6)


def kkt_violation(X: np.ndarray, D: np.ndarray, H: np.ndarray, alpha: float) -> float:
    """Largest violation of the lasso optimality conditions, relative to the largest correlation."""
    c = (X - H @ D) @ D.T  # (n, K) minus the gradient of the smooth part
    on = np.where(H != 0, np.abs(c - alpha * np.sign(H)), 0.0)
    off = np.where(H == 0, np.maximum(np.abs(c) - alpha, 0.0), 0.0)
    return float(np.maximum(on, off).max() / max(alpha, np.abs(X @ D.T).max()))


@pytest.mark.parametrize(("n", "d", "k", "alpha"), [(50, 20, 30, 0.05), (400, 16, 64, 0.02), (300, 32, 32, 0.5)])
def test_feature_sign_codes_are_exact(n, d, k, alpha):
    # Optimality conditions to rounding, whatever the support sizes (400 x 64 atoms in 16 dimensions:
    # supports up to the dimension, rows moving between slot capacities, the last ones batched together).
    X, D = random_problem(n, d, k, seed=5)
    H = sparse_encode(X, D, alpha)
    assert kkt_violation(X, D, H, alpha) < 1e-10
    H32 = sparse_encode(X.astype(np.float32), D.astype(np.float32), alpha)
    assert H32.dtype == np.float32
    np.testing.assert_allclose(H32, sparse_encode(X.astype(np.float32).astype(np.float64),
                                                  D.astype(np.float32).astype(np.float64), alpha), rtol=1e-6, atol=1e-6)


def exact_search(n: int, d: int, k: int, seed: int, alpha: float) -> tuple:
    """A random problem, its tensors, Gram matrices A = D D^T and B = X D^T, and the codes of the float64
    feature-sign search from zero (which must not fail): the reference every faster route must reach."""
    X, D = random_problem(n, d, k, seed=seed)
    Xt, Dt = torch.from_numpy(X), torch.from_numpy(D)
    A, B = Dt @ Dt.t(), Xt @ Dt.t()
    exact, failed, _ = _feature_sign(A, B, alpha, 1000, D=Dt)
    assert not failed.any()
    return X, D, Xt, Dt, A, B, exact


def test_float32_guess_and_float64_refinement_give_the_exact_codes(monkeypatch):
    # On the CPU, lasso_core searches in float32, refines each row on its support and signs in float64,
    # keeps the rows whose optimality conditions then hold, and searches the rest again in float64 from
    # their float32 codes. Every route must end at the codes of the float64 search from zero.
    alpha = 0.1
    X, D, Xt, Dt, A, B, exact = exact_search(200, 32, 64, 7, alpha)
    H = lasso_core(Xt, Dt, alpha, 1000, 1e-6)
    assert kkt_violation(X, D, H.numpy(), alpha) < 1e-10
    np.testing.assert_allclose(H.numpy(), exact.numpy(), atol=1e-9)

    kept: list = []
    guess = _feature_sign(A.float(), B.float(), alpha, 64, D=Dt.float(), rounding_factor=2.0, keep=kept)[0]
    guess = guess.double()
    assert (guess != exact).any(), "float32 codes are not exact: refinement has work to do"
    gradient = _gradient_fn(A, Dt, 0.0)
    for gather in (64, 0):  # the residual from A[S, S] gathered per row, or from the gradient
        monkeypatch.setattr(lasso, "_REFINE_GATHER", gather)
        H1, ok = _refine_on_support(A, B, alpha, guess, kept, gradient, 3)
        assert ok.float().mean() > 0.9
        np.testing.assert_allclose(H1[ok].numpy(), exact[ok].numpy(), atol=1e-9)
    # A guess missing a coefficient (the largest) or with a sign flipped is refused, whatever G says ...
    wrong = guess.clone()
    top = wrong.abs().argmax(1)
    rows = torch.arange(20)
    wrong[rows, top[rows]] = 0.0
    wrong[20 + rows, top[20 + rows]] *= -1
    assert not _refine_on_support(A, B, alpha, wrong, kept, gradient, 3)[1][:40].any()
    # ... and feature-sign search from it (from its support, signs and values) still finds the solution,
    # as it does from supports too large for their atoms (here 40 atoms in 32 dimensions: from zero).
    dense = torch.where(torch.arange(64) < 40, 0.1, 0.0).expand(200, 64).double()
    for start in (wrong, dense):
        H2, failed2, _ = _feature_sign(A, B, alpha, 1000, D=Dt, init=start)
        assert not failed2.any()
        np.testing.assert_allclose(H2.numpy(), exact.numpy(), atol=1e-9)


def test_search_along_the_path_gives_the_same_codes(monkeypatch):
    # On incoherent atoms (effective rank of A at least half its rank) the float32 search lowers each
    # row's penalty from 8 alpha to alpha; atoms that enter at the larger penalties and leave again must
    # not change the result: the same codes as the float64 search from zero at alpha, by either route.
    alpha = 0.05
    X, D, Xt, Dt, A, B, exact = exact_search(60, 16, 48, 3, alpha)
    high = _feature_sign(A, B, lasso._FS_GUESS_PATH * alpha, 1000, D=Dt)[0]
    assert ((high != 0) & (exact == 0)).any(), "an atom on the path must leave"
    H, failed, _ = _feature_sign(A, B, alpha, 1000, D=Dt, path=lasso._FS_GUESS_PATH)
    assert not failed.any()
    np.testing.assert_allclose(H.numpy(), exact.numpy(), atol=1e-9)
    paths = []
    fs = lasso._feature_sign
    monkeypatch.setattr(lasso, "_feature_sign", lambda *a, **k: paths.append(k.get("path", 1.0)) or fs(*a, **k))
    H = lasso_core(Xt, Dt, alpha, 1000, 1e-6)
    assert paths[0] == lasso._FS_GUESS_PATH
    assert kkt_violation(X, D, H.numpy(), alpha) < 1e-10
    np.testing.assert_allclose(H.numpy(), exact.numpy(), atol=1e-9)
    paths.clear()
    Dc = np.abs(D) / np.linalg.norm(D, axis=1, keepdims=True)  # coherent atoms (all positive): no path
    lasso_core(Xt, torch.from_numpy(Dc), alpha, 1000, 1e-6)
    assert paths[0] == 1.0


def test_eight_candidates_per_step_on_large_dictionaries_give_the_same_codes(monkeypatch):
    # With K min(K, 2 n_features) >= 2^19 (here 768 atoms in 400 dimensions) rows take 8 candidates per
    # step while their support is below a quarter of the rank; the codes must be those of 4 per step.
    _, D = random_problem(12, 400, 768, seed=8)
    rng = np.random.default_rng(0)
    H0 = np.zeros((12, 768))
    for i in range(12):
        H0[i, rng.choice(768, 40, replace=False)] = rng.standard_normal(40)
    X, alpha = H0 @ D + 0.05 * rng.standard_normal((12, 400)), 0.2  # supports of 35 to 45
    Xt, Dt = torch.from_numpy(X), torch.from_numpy(D)
    H = lasso_core(Xt, Dt, alpha, 1000, 1e-6).numpy()
    assert kkt_violation(X, D, H, alpha) < 1e-10
    assert (H != 0).sum(1).min() > 16  # several steps of 8 candidates
    calls = []
    step = lasso._step
    monkeypatch.setattr(lasso, "_step", lambda st, *a: calls.append(st.cand.shape[1]) or step(st, *a))
    lasso_core(Xt, Dt, alpha, 1000, 1e-6)
    assert 8 in calls
    monkeypatch.setattr(lasso, "_FS_ADD_EARLY", lasso._FS_ADD)
    calls.clear()
    H4 = lasso_core(Xt, Dt, alpha, 1000, 1e-6).numpy()
    assert set(calls) == {4}
    np.testing.assert_allclose(H, H4, atol=1e-9)


def test_feature_sign_with_dependent_atoms_and_large_alpha():
    X, D = random_problem(seed=6)
    D2 = np.concatenate([D, D[:5], -D[5:8]])  # repeated (and negated) atoms: supports can be singular
    H = sparse_encode(X, D2, 0.1)
    ref = sparse_encode(X, D2, 0.1, algorithm="fista", tol=1e-10, max_iter=20000)
    obj = sparse_coding_objective(X, D2, H, 0.1)
    assert obj.mean() <= sparse_coding_objective(X, D2, ref, 0.1).mean() * (1 + 1e-6)
    alpha_max = np.abs(X @ D.T).max()
    np.testing.assert_array_equal(sparse_encode(X, D, alpha_max * 1.01), 0.0)


def test_feature_sign_with_a_prior_matches_fista():
    # PSD's inference: the lasso plus 0.5 beta ||h - p||^2, a quadratic positive definite on every support.
    from aekit.core.lasso import _lasso

    X, D = (torch.from_numpy(a) for a in random_problem(80, 10, 40, seed=7))
    p = torch.randn(80, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = lasso_core(X, D, 0.2, 1000, 1e-6, beta=0.5, prior=p)
    fista = _lasso(X, D, 0.2, 5000, 1e-13, None, beta=0.5, prior=p, polish=False)[0]

    def energy(H: torch.Tensor) -> float:
        return float((0.5 * (X - H @ D).pow(2).sum(1) + 0.2 * H.abs().sum(1) + 0.25 * (H - p).pow(2).sum(1)).mean())

    assert energy(exact) <= energy(fista) + 1e-12
    np.testing.assert_allclose(exact.numpy(), fista.numpy(), atol=1e-7)
    assert (exact != 0).sum() > 10 * 80  # far denser than the plain lasso codes (beyond 10 dimensions)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": -1.0}, r"alpha must be a finite number >= 0 \(the weight of the L1 penalty\), got -1.0; use alpha=0"),
        ({"alpha": "0.1"}, r"alpha must be a finite number >= 0 \(the weight of the L1 penalty\), got '0.1'"),
        ({"alpha": float("nan")}, r"alpha must be a finite number >= 0"),
        ({"dictionary": np.ones((30, 19))}, r"dictionary has 19 features \(shape \(30, 19\)\), but X has 20"),
        ({"dictionary": np.ones(20)}, r"dictionary must be a 2-D array of shape \(n_components, n_features\)"),
        ({"X": np.full((5, 20), np.nan)}, r"X contains NaN or infinity \(100 values\)"),
        ({"dictionary": np.full((30, 20), np.inf)}, r"dictionary contains NaN or infinity"),
        ({"algorithm": "lars"}, r"unknown algorithm 'lars'; valid: feature-sign, fista, ista"),
        ({"max_iter": 0}, r"max_iter must be an integer >= 1, got 0"),
        ({"max_iter": 10.0}, r"max_iter must be an integer >= 1, got 10.0"),
        ({"tol": -1}, r"tol must be a finite number >= 0, got -1; e.g. 1e-4, or 0 to iterate"),
        ({"init": np.zeros((50, 29))}, r"init has shape \(50, 29\), expected \(n_samples, n_components\) = \(50, 30\)"),
    ],
)
def test_sparse_encode_bad_input_messages(kwargs, match):
    X, D = random_problem()
    args = {"X": X, "dictionary": D, "alpha": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        sparse_encode(args.pop("X"), args.pop("dictionary"), args.pop("alpha"), **args)


# ------------------------------------------------------------------ the SparseCoding estimator


def test_registered():
    assert get_family("sparse-coding").estimator is SparseCoding
    assert get_family("psd").estimator is PredictiveSparseDecomposition


def test_alternating_fit_shapes_unit_atoms_and_monotone_objective(digits):
    sc = SparseCoding(latent_dim=32, alpha=0.5, fit_algorithm="alternating", max_epochs=6, random_state=0, verbose=0)
    sc.fit(digits)
    assert sc.components_.shape == (32, 64)
    np.testing.assert_allclose(np.linalg.norm(sc.components_, axis=1), 1.0, atol=1e-5)
    losses = [row["loss"] for row in sc.history_]
    assert all(b <= a * (1 + 1e-3) for a, b in zip(losses, losses[1:])), losses
    H = sc.transform(digits)
    assert H.shape == (1437, 32) and H.dtype == np.float32
    assert 0 < (H != 0).mean() < 0.5  # sparse, not empty
    assert sc.inverse_transform(H).shape == (1437, 1, 8, 8)
    assert sc.reconstruct(digits).shape == digits.shape
    # transform is sparse_encode on the learned dictionary, with the estimator's settings
    ref = sparse_encode(digits.reshape(-1, 64), sc.components_, 0.5, max_iter=1000, tol=1e-4)
    np.testing.assert_allclose(H, ref, atol=1e-5)
    # Flat input with the same number of features is accepted
    assert sc.transform(digits.reshape(-1, 64)[:5]).shape == (5, 32)


def test_minibatch_fit_keeps_atoms_unit_norm_and_learns(digits):
    X = digits.reshape(-1, 64)[:600]
    sc = SparseCoding(latent_dim=24, alpha=0.5, max_epochs=3, batch_size=100, random_state=0, verbose=0).fit(X)
    np.testing.assert_allclose(np.linalg.norm(sc.components_, axis=1), 1.0, atol=1e-5)
    assert [set(r) >= {"loss", "reconstruction", "l1"} for r in sc.history_] == [True] * 3
    assert sc.history_[-1]["loss"] < sc.history_[0]["loss"]


def test_save_load_round_trip(tmp_path, digits):
    X = digits[:300]
    sc = SparseCoding(latent_dim=16, alpha=0.5, fit_algorithm="alternating", max_epochs=2, random_state=0).fit(X)
    loaded = aekit.load(sc.save(tmp_path / "sc"))
    np.testing.assert_array_equal(loaded.components_, sc.components_)
    np.testing.assert_array_equal(loaded.transform(X), sc.transform(X))
    psd = PredictiveSparseDecomposition(latent_dim=16, alpha=0.5, max_epochs=1, random_state=0, verbose=0).fit(X)
    loaded = aekit.load(psd.save(tmp_path / "psd"))
    np.testing.assert_array_equal(loaded.transform(X), psd.transform(X))
    assert loaded.code_gap(X) == psd.code_gap(X)


def test_same_seed_same_fit(digits):
    X = digits[:200]
    a, b = (SparseCoding(latent_dim=8, alpha=0.5, fit_algorithm="alternating", max_epochs=2, random_state=3).fit(X) for _ in range(2))
    np.testing.assert_array_equal(a.components_, b.components_)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        # The same words as sparse_encode's: one declaration of alpha, tol and the step budget.
        ({"alpha": -0.5}, r"alpha must be a finite number >= 0 \(the weight of the L1 penalty\), got -0.5; use alpha=0"),
        ({"latent_dim": 0}, r"latent_dim must be an integer >= 1, got 0"),
        ({"fit_algorithm": "online"}, r"unknown fit_algorithm 'online'; valid: minibatch, alternating"),
        ({"transform_max_iter": 0}, r"transform_max_iter must be an integer >= 1, got 0"),
        ({"tol": -1e-3}, r"tol must be a finite number >= 0, got -0.001; e.g. 1e-4"),
        ({"scaling": "zscore"}, r"unknown scaling 'zscore'"),
    ],
)
def test_estimator_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        SparseCoding(**params).fit(np.ones((10, 4)))


def test_estimator_bad_input(digits):
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        SparseCoding().fit(np.full((10, 4), np.nan))
    sc = SparseCoding(latent_dim=4, fit_algorithm="alternating", max_epochs=1).fit(np.eye(6, 5))
    with pytest.raises(ValueError, match="X has 3 features, but SparseCoding is expecting 5 features"):
        sc.transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Z has shape \(2, 3\), but SparseCoding decodes codes of shape \(n_samples, 4\)"):
        sc.inverse_transform(np.ones((2, 3)))


# ------------------------------------------------------------------ predictive sparse decomposition


def test_psd_fast_codes_approach_optimal_codes(digits):
    X = digits.reshape(-1, 64)[:800]
    kw = {"latent_dim": 32, "alpha": 0.5, "batch_size": 64, "random_state": 0, "verbose": 0, "validation_fraction": 0.0}
    early = PredictiveSparseDecomposition(max_epochs=1, **kw).fit(X).code_gap(X)
    late_est = PredictiveSparseDecomposition(max_epochs=15, **kw).fit(X)
    late = late_est.code_gap(X)
    assert late["relative_distance"] < 0.85 * early["relative_distance"]
    assert 1.0 <= late["objective_ratio"] < early["objective_ratio"]
    assert late["support_recall"] > 0.9 and late["support_precision"] > early["support_precision"]
    # The support measures, computed here from the public codes: F(X) from transform, H* from sparse_codes.
    F, H = late_est.transform(X), late_est.sparse_codes(X)
    assert late["support_precision"] == pytest.approx(((F * H) > 0).sum() / (F != 0).sum(), rel=1e-6)
    assert late["support_recall"] == pytest.approx(((F * H) > 0).sum() / (H != 0).sum(), rel=1e-6)
    # tanh has no exact zeros, so precision is recall times the density of H*: no better than guessing every unit.
    assert (F != 0).all()
    assert late["support_precision"] == pytest.approx(late["support_recall"] * (H != 0).mean(), rel=1e-6)
    np.testing.assert_allclose(np.linalg.norm(late_est.components_, axis=1), 1.0, atol=1e-5)
    assert set(late_est.history_[-1]) >= {"reconstruction", "l1", "prediction"}
    # sparse_codes returns the exact sparse codes of the learned dictionary
    ref = sparse_encode(X[:50], late_est.components_, 0.5, tol=1e-8, max_iter=5000)
    obj = sparse_coding_objective(X[:50], late_est.components_, H[:50], 0.5).mean()
    assert obj <= sparse_coding_objective(X[:50], late_est.components_, ref, 0.5).mean() * (1 + 1e-4)
    # and so does transform of a model fitted with transform_algorithm="optimize", the same fit otherwise
    opt = PredictiveSparseDecomposition(max_epochs=1, transform_algorithm="optimize", **kw).fit(X)
    np.testing.assert_array_equal(opt.transform(X[:50]), opt.sparse_codes(X[:50]))


def test_psd_shrink_encoder_predicts_the_support(digits):
    """Trained, the shrinkage encoder's nonzeros are far more often nonzeros of H* than chance.

    An encoder that guesses the support (a tanh encoder, or shrinkage at its starting point) gets a
    precision near the density of H*; the trained shrinkage encoder gets well above it.
    """
    X = digits.reshape(-1, 64)[:800]
    kw = {"latent_dim": 32, "alpha": 0.5, "batch_size": 64, "random_state": 0, "verbose": 0, "validation_fraction": 0.0,
          "encoder_activation": "shrink"}
    for epochs, trained in ((1, False), (12, True)):
        psd = PredictiveSparseDecomposition(max_epochs=epochs, **kw).fit(X)
        gap, density = psd.code_gap(X), float((psd.sparse_codes(X) != 0).mean())
        assert (gap["support_precision"] > 1.3 * density) is trained, (epochs, gap, density)


@pytest.mark.parametrize("activation", ["tanh", "shrink"])
def test_psd_shapes(activation, digits):
    psd = PredictiveSparseDecomposition(
        latent_dim=12, alpha=0.5, encoder_activation=activation, max_epochs=1, random_state=0, verbose=0
    ).fit(digits[:200])
    H = psd.transform(digits[:20])
    assert H.shape == (20, 12)
    assert psd.inverse_transform(H).shape == (20, 1, 8, 8)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"beta": 0.0}, r"beta must be a finite number > 0 \(the weight of the prediction term\), got 0.0; use beta=1.0"),
        ({"alpha": -1.0}, r"alpha must be a finite number >= 0 \(the weight of the L1 penalty\)"),
        ({"encoder_activation": "relu"}, r"unknown encoder_activation 'relu'; valid: tanh, shrink"),
        ({"transform_algorithm": "fista"}, r"unknown transform_algorithm 'fista'; valid: encoder, optimize"),
    ],
)
def test_psd_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        PredictiveSparseDecomposition(**params).fit(np.ones((10, 4)))


def test_codes_scale_with_problems_beyond_float32s_range() -> None:
    """The lasso is homogeneous: codes of (s X, s alpha) are s times those of (X, alpha). Far outside float32's
    range (1e40) or deep below it (1e-30) the float32 shortcuts must stay out of the way."""
    from aekit.core.lasso import sparse_encode as encode

    rng = np.random.default_rng(0)
    D = rng.standard_normal((20, 10))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((6, 10))
    A = encode(X, D, alpha=0.1)
    assert np.count_nonzero(A) > 6
    for s in (1e40, 1e-30):
        np.testing.assert_allclose(encode(X * s, D, alpha=0.1 * s) / s, A, rtol=0, atol=1e-10)
