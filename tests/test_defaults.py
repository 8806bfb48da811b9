"""Defaults that adapt to the data: the default Autoencoder starts at PCA and keeps it unless a learned
correction does better on held-out data; its epochs, validation split and patience come from the number of
samples, are recorded in config.json, printed, and overridable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import low_rank_data

import aekit
from aekit.families.autoencoder import auto_hidden_dims, auto_training
from aekit.model.base import DataInfo


def curved_data(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    """Points near a curved 2-D surface in R^d (a random 2-16-d tanh network of a uniform square), plus noise.

    No linear subspace of small dimension holds them, so a nonlinear code of 3 values beats PCA's.
    """
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((2, 16)) * 2.0
    B = rng.standard_normal((16, d)) / 4.0
    t = rng.uniform(-1, 1, (n, 2))
    return (np.tanh(t @ A) @ B + 0.01 * rng.standard_normal((n, d))).astype(np.float32)


def held_out_error(model: aekit.LinearAutoencoder | aekit.Autoencoder, X: np.ndarray) -> float:
    return float(model.reconstruction_error(X).mean())


def test_default_autoencoder_is_not_worse_than_pca_on_small_data_and_better_on_curved_data() -> None:
    """The complaint: with 50 epochs of 128-sample batches on a few hundred samples the default network was
    several times worse than PCA at the same code size. Default settings now: not worse where PCA is the
    best a code of that size can do (a low-rank signal plus noise), and far better on a curved surface."""
    X, _ = low_rank_data(600, d=32, rank=3, noise=0.3)
    train, test = X[:300], X[300:]
    pca = aekit.LinearAutoencoder(latent_dim=3, solver="svd").fit(train)
    ae = aekit.Autoencoder(latent_dim=3, verbose=0, random_state=0).fit(train)
    assert ae.resolved_.init == "pca" and ae.resolved_.max_epochs == 2000  # the adaptive defaults ran
    assert len(ae.history_) < 2000  # early stopping ended it
    assert held_out_error(ae, test) <= 1.001 * held_out_error(pca, test)

    X = curved_data(600)
    train, test = X[:300], X[300:]
    pca = aekit.LinearAutoencoder(latent_dim=3, solver="svd").fit(train)
    # 40 epochs (80 steps) already show it; the default budget goes on to ~3 % of PCA's error.
    ae = aekit.Autoencoder(latent_dim=3, max_epochs=40, verbose=0, random_state=0).fit(train)
    assert held_out_error(ae, test) < 0.5 * held_out_error(pca, test)


def test_pca_start_is_pca_and_is_kept_when_training_does_worse() -> None:
    X = curved_data(200, d=12, seed=1)
    pca = aekit.LinearAutoencoder(latent_dim=4, solver="svd").fit(X)
    # A step far too large: every epoch is worse than the start on validation data, so the start is kept.
    ae = aekit.Autoencoder(latent_dim=4, learning_rate=0.5, max_epochs=3, patience=None, verbose=0,
                           random_state=0).fit(X)
    assert all(row["val_loss"] > 0 for row in ae.history_)
    np.testing.assert_allclose(ae.reconstruct(X), pca.reconstruct(X), atol=2e-5)
    np.testing.assert_allclose(np.abs(ae.transform(X)), np.abs(pca.transform(X)), atol=2e-5)  # codes: PCA's
    # Without a validation split nothing is held out to choose by, and the trained weights are returned.
    moved = aekit.Autoencoder(latent_dim=4, learning_rate=0.5, max_epochs=1, validation_fraction=0.0, verbose=0,
                              random_state=0).fit(X)
    assert not np.allclose(moved.reconstruct(X), pca.reconstruct(X), atol=1e-3)


def test_budget_rule_scales_epochs_with_the_data() -> None:
    small, large = auto_training(300, 128, "auto"), auto_training(60_000, 128, "auto")
    # 300 samples: 100 held out (at most a quarter: 75), 225 to train, 2 steps an epoch: 2,000 epochs at the cap.
    assert small == {"validation_fraction": 0.25, "max_epochs": 2000, "patience": 200}
    # 60,000: 10 % held out, 422 steps an epoch: 10 epochs make the budget, the floor of 50 applies.
    assert large == {"validation_fraction": 0.1, "max_epochs": 50, "patience": 10}
    mid = auto_training(5_000, 128, 0.2)  # a fraction given is kept; 4,000 / 32 steps = 125 epochs
    assert mid == {"validation_fraction": 0.2, "max_epochs": 125, "patience": 13}
    assert auto_hidden_dims(64, 32) == (128, 64) and auto_hidden_dims(784, 30) == (512, 256)
    assert auto_hidden_dims(4096, 16) == (1024, 512) and auto_hidden_dims(8, 2) == (64, 32)
    # The sub-families keep their fixed defaults: their objectives are not PCA's.
    digits = DataInfo.of(curved_data(120).clip(0, 1))
    sparse = aekit.SparseAutoencoder.resolve(aekit.SparseAutoencoder().get_params(), digits)
    assert sparse["max_epochs"] == 50 and sparse["patience"] == 10 and "init" not in sparse


def test_resolved_budget_is_recorded_printed_and_overridable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X = curved_data(40, d=6)
    ae = aekit.Autoencoder(latent_dim=2, hidden_dims=(8,), batch_size=16, max_epochs="auto", patience=5, verbose=1,
                           random_state=0, learning_rate=1e-12)
    ae.fit(X)
    err = capsys.readouterr().err
    # 40 samples: 10 held out, 30 to train in 2 batches of 16: 2,000 epochs. The model cannot improve at this
    # learning rate, so early stopping ends it after the patience given.
    assert "max_epochs=2000" in err and "validation_fraction=0.25" in err and "init='pca'" in err
    assert "patience" not in err  # given, not chosen
    assert "binarization" not in err  # chosen, but it matters only with binary codes
    assert len(ae.history_) == 5
    cfg = json.loads(ae.save(tmp_path / "run").joinpath("config.json").read_text())
    assert cfg["params"]["max_epochs"] == "auto"
    assert (cfg["resolved"]["max_epochs"], cfg["resolved"]["patience"]) == (2000, 5)
    assert aekit.load(tmp_path / "run").resolved_.max_epochs == 2000
    aekit.Autoencoder(latent_dim=2, hidden_dims=(8,), max_epochs=1, binary_codes=True, verbose=1).fit(X)
    assert "binarization='itq'" in capsys.readouterr().err
    fixed = aekit.Autoencoder(latent_dim=2, hidden_dims=(8,), max_epochs=3, patience=None, validation_fraction=0.1,
                              init="random", verbose=0, random_state=0).fit(X.clip(0, 1))
    assert len(fixed.history_) == 3 and (fixed.resolved_.output, fixed.resolved_.loss) == ("sigmoid", "bce")
    with pytest.raises(ValueError, match=r"init='pca' starts an untied MLP .* but got tied=True; use init='random'"):
        aekit.Autoencoder(init="pca", tied=True).fit(X)
    with pytest.raises(ValueError, match=r"init='pca' needs latent_dim at most min\(n_samples, n_features\) = 6, got "
                       r"latent_dim=8 .*use init='random'"):
        aekit.Autoencoder(init="pca", latent_dim=8, max_epochs=1, verbose=0).fit(X)


def test_principal_axes_by_scatter_match_the_svd_and_read_the_data_in_chunks() -> None:
    """Tall data (N >= D) takes the eigenvectors of the centred scatter matrix, summed a chunk of rows at a time,
    so a million images need no float64 copy; the axes, scales and mean are the SVD's, and so is the std."""
    import torch

    from aekit.core.nets import centred_scatter, principal_axes
    from aekit.data.preprocessing import mean_std

    X = torch.from_numpy(low_rank_data(3000, d=40, rank=5, noise=0.2)[0] + 3.0)  # off-centre, float32
    mean, axes, scale, spread = principal_axes(X, 6)
    Xc = X.double() - X.double().mean(dim=0)
    _, S, Vt = torch.linalg.svd(Xc, full_matrices=False)
    torch.testing.assert_close(mean, X.double().mean(dim=0), rtol=0, atol=1e-12)
    torch.testing.assert_close(scale, S[:6] / (3000 - 1) ** 0.5, rtol=1e-9, atol=0)
    signs = torch.sign(Vt[:6].gather(1, Vt[:6].abs().argmax(dim=1, keepdim=True)))
    torch.testing.assert_close(axes, Vt[:6] * signs, rtol=0, atol=1e-9)
    # Chunks of 7 rows (not a divisor of 3000) give the same sums as one pass.
    m7, s7 = centred_scatter(X, chunk=7)
    torch.testing.assert_close(m7, mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(s7, Xc.t() @ Xc, rtol=1e-10, atol=1e-9)
    # The PCA start's per-feature spread, from the scatter matrix's diagonal (tall) or the centred rows (wide).
    std = X.double().std(dim=0, correction=0)
    torch.testing.assert_close(spread, std, rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.from_numpy(mean_std(X.numpy(), rows=7)[1]), std, rtol=1e-12, atol=0)
    # float32 products (the PCA start's): the same mean, and axes, scales and sums close to float64's.
    m32, s32 = centred_scatter(X, chunk=7, products=torch.float32)
    torch.testing.assert_close(m32, mean, rtol=0, atol=1e-12)
    assert s32.dtype == torch.float64 and not torch.equal(s32, s7)  # summed in float64, rounded as float32
    torch.testing.assert_close(s32, s7, rtol=1e-5, atol=1e-3)
    _, axes32, scale32, spread32 = principal_axes(X, 6, products=torch.float32)
    torch.testing.assert_close(axes32[:5], axes[:5], rtol=0, atol=1e-6)  # the data's 5 directions
    torch.testing.assert_close(axes32, axes, rtol=0, atol=1e-4)  # the 6th is among the noise's, with small gaps
    torch.testing.assert_close(scale32, scale, rtol=1e-6, atol=0)
    torch.testing.assert_close(spread32, spread, rtol=1e-6, atol=0)
    # Wide data (N < D) keeps the exact SVD of the centred rows.
    W = X[:30]
    _, axes_w, scale_w, spread_w = principal_axes(W, 4)
    torch.testing.assert_close(spread_w, W.double().std(dim=0, correction=0), rtol=1e-12, atol=0)
    _, Sw, Vtw = torch.linalg.svd(W.double() - W.double().mean(dim=0), full_matrices=False)
    torch.testing.assert_close(scale_w, Sw[:4] / 29**0.5, rtol=1e-12, atol=0)
    torch.testing.assert_close(axes_w.abs(), Vtw[:4].abs(), rtol=0, atol=1e-12)


def test_clip_output_is_the_clipped_value_with_the_gradient_of_a_convex_loss() -> None:
    """output="clip": forward min(max(raw, 0), 1); the squared error's gradient through it is that of the convex
    loss equal to (raw - x)^2 inside [0, 1] and continued linearly outside, checked against autograd of that loss."""
    from aekit.core.nets import apply_output

    raw = torch.tensor([-0.7, -0.2, 0.0, 0.3, 0.9, 1.0, 1.4, 2.5, -0.1, 1.2], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.0, 0.4, 0.2, 0.3, 1.0, 0.5, 1.0, 0.25, 0.0, 0.0], dtype=torch.float64)
    out = apply_output("clip", raw)
    torch.testing.assert_close(out.detach(), raw.detach().clamp(0, 1), rtol=0, atol=1e-15)
    ((out - x) ** 2).sum().backward()
    grad_st = raw.grad.clone()

    ref = raw.detach().clone().requires_grad_(True)
    c = ref.clamp(0, 1)  # continuing the quadratic at the bound b with its slope there: (b - x)^2 + 2 (b - x) (raw - b)
    surrogate = torch.where((ref >= 0) & (ref <= 1), (ref - x) ** 2, (c - x) ** 2 + 2 * (c.detach() - x) * (ref - c.detach()))
    surrogate.sum().backward()
    torch.testing.assert_close(grad_st, ref.grad, rtol=0, atol=1e-12)
    # A value beyond the bound its target sits on costs nothing; one beyond the other bound is pulled back.
    assert grad_st[0] == 0 and grad_st[6] == 0 and grad_st[1] < 0 and grad_st[7] > 0 and grad_st[9] > 0
    # Without a graph (evaluation) the clipped values are exact.
    assert torch.equal(apply_output("clip", raw.detach()), raw.detach().clamp(0, 1))


def test_clip_output_starts_at_clipped_pca_and_stays_in_the_data_range(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = (curved_data(300, d=16, seed=2) * 0.5 + 0.5).clip(0, 1)  # in [0, 1], many values at the bounds
    X[rng.random(X.shape) < 0.3] = 0.0
    pca = aekit.LinearAutoencoder(latent_dim=3, solver="svd").fit(X)
    start = aekit.Autoencoder(latent_dim=3, output="clip", learning_rate=0.5, max_epochs=1, patience=None,
                              verbose=0, random_state=0).fit(X)  # a step far too large: PCA's start is kept
    assert (start.resolved_.init, start.resolved_.output, start.resolved_.loss) == ("pca", "clip", "mse")
    np.testing.assert_allclose(start.reconstruct(X), pca.reconstruct(X).clip(0, 1), atol=2e-5)
    assert held_out_error(start, X) < held_out_error(pca, X)  # clipping PCA's values to the range only helps

    ae = aekit.Autoencoder(latent_dim=3, output="clip", max_epochs=20, verbose=0, random_state=0).fit(X)
    rec = ae.reconstruct(X)
    assert rec.min() >= 0.0 and rec.max() <= 1.0
    ae.save(tmp_path / "m")
    np.testing.assert_array_equal(aekit.load(tmp_path / "m").reconstruct(X), rec)
    assert aekit.Autoencoder(latent_dim=3, output="clip", init="random", max_epochs=2, verbose=0,
                             random_state=0).fit(X).resolved_.loss == "mse"


def test_clip_output_refuses_data_outside_zero_one_and_a_cross_entropy() -> None:
    X = curved_data(120, d=8)  # centred, so outside [0, 1]
    with pytest.raises(ValueError, match=r"output='clip' clips reconstructions to \[0, 1\], but the data range over"):
        aekit.Autoencoder(latent_dim=2, output="clip", max_epochs=1, verbose=0).fit(X)
    with pytest.raises(ValueError, match=r"loss='bce' needs output='sigmoid', got output='clip'"):
        aekit.Autoencoder(latent_dim=2, output="clip", loss="bce", init="random", max_epochs=1, verbose=0).fit(X.clip(0, 1))
