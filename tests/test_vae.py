"""The variational autoencoder against references: the KL against Monte Carlo, the likelihood estimate against
the closed form of a linear-Gaussian model, the bound ordering ELBO <= L_k <= L_k' <= log p(x); the KL
schedule and free bits as logged; the conditional model; dynamic binarization; pinned bad-input messages."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import digits_data, digits_labels

import aekit
from aekit.cli.main import main
from aekit.core.losses import free_bits_kl, gaussian_log_density, kl_normal_std, kl_normal_std_dims
from aekit.core.outputs import AEOutput, LossOutput
from aekit.engine.training import TrainConfig, binarize_dynamic, fit_module

TINY: dict[str, Any] = {"hidden_dims": (16,), "latent_dim": 4, "batch_size": 32, "verbose": 0, "random_state": 0,
                        "device": "cpu"}


@cache
def conditional_vae() -> aekit.VAE:
    return aekit.VAE(**TINY, max_epochs=2, conditional=True).fit(digits_data().reshape(-1, 1, 8, 8), digits_labels())


@cache
def plain_vae() -> aekit.VAE:
    return aekit.VAE(**TINY, max_epochs=1).fit(digits_data().reshape(-1, 1, 8, 8))


def test_kl_matches_monte_carlo() -> None:
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g) * 0.5
    z = mu + torch.exp(0.5 * logvar) * torch.randn(50_000, 3, 4, generator=g)  # (S, B, K)
    mc = (gaussian_log_density(z, mu, logvar) - gaussian_log_density(z)).mean(dim=0)  # E_q[log q - log p], (B,)
    exact = kl_normal_std(mu, logvar)
    torch.testing.assert_close(mc, exact, rtol=0, atol=0.04)
    torch.testing.assert_close(kl_normal_std_dims(mu, logvar).sum(dim=1), exact)
    assert float(kl_normal_std(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max()) == 0.0  # zero at the prior
    # Free bits: each dimension's batch-mean KL is floored.
    dims = torch.tensor([[0.1, 2.0], [0.3, 4.0]])
    assert float(free_bits_kl(dims, 0.5)) == pytest.approx(0.5 + 3.0)
    assert float(free_bits_kl(dims, 0.0)) == pytest.approx(0.2 + 3.0)


def linear_gaussian(vae: aekit.VAE, s2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoder z -> W z + b of a VAE with a linear decoder, and the exact posterior covariance
    Sigma = (I + W^T W / s2)^-1 of the model p(z) = N(0, I), p(x|z) = N(W z + b, s2 I)."""
    (lin,) = [m for m in vae.module_.decoder.modules() if isinstance(m, torch.nn.Linear)]
    W, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()  # (D, K), (D,)
    return W, b, np.linalg.inv(np.eye(W.shape[1]) + W.T @ W / s2)


def linear_gaussian_log_density(vae: aekit.VAE, X: np.ndarray, s2: float) -> np.ndarray:
    """The exact log p(x) of that model in the units of ``X`` (the scaling's Jacobian included):
    p(x_scaled) = N(b, W W^T + s2 I)."""
    W, b, _ = linear_gaussian(vae, s2)
    d = W.shape[0]
    cov = W @ W.T + s2 * np.eye(d)
    scale = vae.scaler_.scale.astype(np.float64)
    diff = (X.astype(np.float64) - vae.scaler_.shift) / scale - b
    _, logdet = np.linalg.slogdet(cov)
    quad = np.einsum("nd,dk,nk->n", diff, np.linalg.inv(cov), diff)
    return -0.5 * (d * math.log(2 * math.pi) + logdet + quad) - np.log(scale).sum()


@pytest.mark.parametrize("scaling", ["none", "standard"])
def test_likelihood_against_linear_gaussian_closed_form(scaling: str) -> None:
    """A linear decoder with a Gaussian p(x|z) of fixed variance s^2 has p(x) in closed form. With the trained
    encoder, ELBO <= L_5 <= L_50 <= log p(x) on average; with the encoder set to the exact posterior mean and
    marginal variances, the importance-sampled log p(x) matches the closed form."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 2)) @ rng.standard_normal((2, 5)) * 2 + 0.5 * rng.standard_normal((300, 5)) + 1
    X = X.astype(np.float32)
    vae = aekit.VAE(hidden_dims=(), latent_dim=2, likelihood="gaussian", decoder_variance=0.3, scaling=scaling,
                    max_epochs=3, batch_size=32, verbose=0, random_state=0, device="cpu").fit(X)
    Xe = X[:100]
    exact = linear_gaussian_log_density(vae, Xe, 0.3)
    elbo = vae.elbo(Xe, n_samples=100)
    l5, l50 = vae.iwae_bound(Xe, 5).mean(), vae.iwae_bound(Xe, 50).mean()
    assert elbo.mean() < l5 < l50 < exact.mean()
    assert (elbo <= exact + 0.05).all()
    # q(z|x) = N(Sigma W^T (x - b) / s2, diag Sigma): the exact mean, the exact marginal variances.
    W, b, sigma = linear_gaussian(vae, 0.3)
    A = sigma @ W.T / 0.3  # (K, D)
    (enc,) = [m for m in vae.module_.encoder.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        enc.weight.copy_(torch.from_numpy(np.concatenate([A, np.zeros_like(A)])))
        enc.bias.copy_(torch.from_numpy(np.concatenate([-A @ b, np.log(np.diag(sigma))])))
    ll = vae.log_likelihood(Xe, n_samples=2000, batch_size=7)  # small batches: the batching must not matter
    np.testing.assert_allclose(ll, exact, atol=0.05)
    assert abs(float((ll - exact).mean())) < 0.01
    np.testing.assert_array_equal(ll[:10], vae.log_likelihood(Xe[:10], n_samples=2000))
    assert vae.elbo(Xe, n_samples=100).mean() < ll.mean()


def test_kl_warmup_and_free_bits_logged_as_declared() -> None:
    X = digits_data()
    by_epoch = aekit.VAE(**TINY, max_epochs=3, beta=2.0, kl_warmup=2, free_bits=0.5, validation_fraction=0.0).fit(X)
    h = by_epoch.history_
    assert [r["kl_weight"] for r in h] == [0.0, 1.0, 2.0]  # beta * min(1, epoch / 2), epochs counted from 0
    assert h[0]["kl"] == 0.0
    for r in h:
        assert r["loss"] == pytest.approx(r["reconstruction"] + r["kl"], rel=1e-6)
        assert r["kl"] >= r["kl_weight"] * 0.5 * 4 - 1e-4  # the floor of 0.5 nats on each of the 4 dimensions
    # By steps: 120 samples in batches of 32 are 4 steps per epoch; the weight reaches beta after 8 steps.
    by_step = aekit.VAE(**TINY, max_epochs=3, kl_warmup=8, kl_warmup_unit="steps", validation_fraction=0.0).fit(X)
    assert [r["kl_weight"] for r in by_step.history_] == [0.5, 1.0, 1.0]
    # k > 1 trains on the importance-weighted bound, logged as one term.
    iw = aekit.VAE(**TINY, max_epochs=1, k=4).fit(X)
    assert {"neg_iwae_bound", "kl_weight"} <= iw.history_[0].keys() and "kl" not in iw.history_[0]


def test_elbo_below_log_likelihood_and_sampling() -> None:
    vae = plain_vae()
    X = digits_data()[:20]
    elbo, ll = vae.elbo(X), vae.log_likelihood(X, n_samples=200)
    assert elbo.shape == ll.shape == (20,) and np.isfinite(ll).all()
    assert elbo.mean() <= ll.mean()
    np.testing.assert_array_equal(vae.score_samples(X), elbo)
    S = vae.sample(6, random_state=3)
    assert S.shape == (6, 1, 8, 8) and ((S >= 0) & (S <= 1)).all()
    np.testing.assert_array_equal(S, vae.sample(6, random_state=3))
    outside = X.copy()
    outside[0, 0] = 2.0  # impossible under a Bernoulli decoder
    assert vae.elbo(outside)[0] == -np.inf and np.isfinite(vae.elbo(outside)[1:]).all()


def test_conditional_vae(tmp_path: Path) -> None:
    vae = conditional_vae()
    X, y = digits_data(), digits_labels()
    assert vae.module_.n_classes == 10
    S7 = vae.sample(5, label=7, random_state=0)
    assert S7.shape == (5, 1, 8, 8)
    assert not np.array_equal(S7, vae.sample(5, label=1, random_state=0))  # the decoder reads the label
    assert vae.sample(3, label=[0, 1, 2], random_state=0).shape == (3, 1, 8, 8)
    assert vae.sample(3, random_state=0).shape == (3, 1, 8, 8)  # label-free draws
    assert vae.transform(X).shape == (120, 4)
    assert not np.array_equal(vae.elbo(X[:5], y=y[:5]), vae.elbo(X[:5]))
    loaded = aekit.load(vae.save(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.sample(5, label=7, random_state=0), S7)
    with pytest.raises(ValueError, match=r"label=11 is not among the classes \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\] this VAE "
                                         "was trained on; use one of them"):
        vae.sample(2, label=11)
    with pytest.raises(ValueError, match=r"label=7 was given, but this VAE is not conditional \(it was fitted with "
                                         r"conditional=False\); leave the label out"):
        plain_vae().sample(2, label=7)
    with pytest.raises(ValueError, match="conditional=True conditions on class labels, but fit got none; pass integer "
                                         "labels y to fit"):
        aekit.VAE(**TINY, max_epochs=1, conditional=True).fit(X)
    # Unlabelled samples (-1) train the label-free model; the conv network takes the label as planes.
    half = y.copy()
    half[::2] = -1
    conv = aekit.VAE(**{**TINY, "hidden_dims": (4,)}, architecture="conv", max_epochs=1, conditional=True)
    assert conv.fit(X.reshape(-1, 1, 8, 8), half).sample(2, label=3, random_state=0).shape == (2, 1, 8, 8)


@pytest.mark.parametrize(("params", "message"), [
    ({"likelihood": "poisson"}, r"unknown likelihood 'poisson'; valid: auto, bernoulli, gaussian"),
    ({"likelihood": "bernoulli"}, r"likelihood='bernoulli' models each value as a coin flip and needs data in \[0, 1\], "
                                  r"but the scaled data range over \[-\d.*; use scaling='minmax'"),
    ({"likelihood": "gaussian", "binarize": "dynamic", "scaling": "minmax"},
     r"binarize='dynamic' gives binary data, whose Gaussian likelihood is not a density of it; use "
     r"likelihood='bernoulli'"),
    ({"binarize": "dynamic"}, r"binarize='dynamic' draws each value as a Bernoulli of itself, so it needs data in "
                              r"\[0, 1\], but the scaled data range over"),
    ({"k": 0}, r"k must be an integer >= 1 \(the number of importance samples\), got 0; use k=1 for the plain ELBO"),
    ({"free_bits": 0.1, "k": 2}, r"free_bits=0.1 floors the KL term of the ELBO, which the importance-weighted bound "
                                 r"\(k=2\) does not have"),
    ({"decoder_variance": 0.0}, r"decoder_variance must be a finite number > 0 \(the Gaussian decoder's variance\), "
                                r"got 0.0; give a number > 0 or 'learned'"),
])
def test_bad_parameters(params: dict[str, Any], message: str) -> None:
    X = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        aekit.VAE(**TINY, max_epochs=1, **params).fit(X)


def test_bad_counts() -> None:
    vae, X = plain_vae(), digits_data()[:3]
    for call, name in [(lambda: vae.log_likelihood(X, n_samples=0), "n_samples"),
                       (lambda: vae.elbo(X, n_samples=-1), "n_samples"), (lambda: vae.iwae_bound(X, 0), "k"),
                       (lambda: vae.sample(0), "n"), (lambda: vae.log_likelihood(X, 10, batch_size=0), "batch_size")]:
        with pytest.raises(ValueError, match=rf"{name} must be an integer >= 1, got -?\d"):
            call()


def test_cli_label_evaluate_and_nothing_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain, cond = plain_vae().save(tmp_path / "plain"), conditional_vae().save(tmp_path / "cond")
    assert main(["generate", str(cond), "--label", "7", "--n", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 1, 8, 8)
    assert main(["generate", str(plain), "--label", "7", "--out", str(tmp_path / "p.npy")]) == 2  # a usage error
    assert main(["generate", str(cond), "--label", "12", "--out", str(tmp_path / "c.npy")]) == 1
    err = capsys.readouterr().err
    assert "--label 7: this 'vae' run was not trained conditional on labels" in err
    assert "label=12 is not among the classes" in err
    assert not (tmp_path / "p.npy").exists() and not (tmp_path / "c.npy").exists()
    assert main(["evaluate", str(plain), "--data", "digits", "--limit", "30", "--nll-samples", "50", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["nll_samples"] == 50 and m["nll_nats"] <= -m["elbo_nats"]
    # A Bernoulli decoder asked for data outside [0, 1]: refused before the run directory is made.
    data = tmp_path / "real.npy"
    np.save(data, np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32))
    rc = main(["train", "--family", "vae", "--data", str(data), "--out", str(tmp_path / "run"), "--likelihood",
               "bernoulli", "--epochs", "1", "--quiet"])
    assert rc == 1 and "--likelihood bernoulli models each value as a coin flip" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


class _Recorder(torch.nn.Module):
    """A one-parameter model that records the batches the training loop gives it."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> AEOutput:
        self.seen.append(x.detach().clone())
        return AEOutput(z=x, x_hat=x * self.w)

    def loss(self, x: torch.Tensor, out: AEOutput) -> LossOutput:
        rec = (out.x_hat - x).pow(2).sum(dim=1).mean()
        return LossOutput(rec, {"reconstruction": rec})


def test_dynamic_binarization_redraws_every_batch() -> None:
    x = torch.full((100_000,), 0.3)
    b = binarize_dynamic(x)
    assert set(b.unique().tolist()) == {0.0, 1.0} and abs(float(b.mean()) - 0.3) < 0.01
    rec = _Recorder()
    X = np.full((40, 3), 0.5, np.float32)
    fit_module(rec, X, config=TrainConfig(max_epochs=2, batch_size=40, validation_fraction=0.0, verbose=0,
                                          device="cpu", binarize="dynamic"))
    first, second = rec.seen
    assert set(torch.cat([first, second]).unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(first, second)  # a fresh draw at every use
    with pytest.raises(ValueError, match=r"binarize='dynamic' draws each value as a Bernoulli of itself"):
        fit_module(_Recorder(), X * 3, config=TrainConfig(max_epochs=1, verbose=0, binarize="dynamic"))


def test_a_trained_run_records_its_elbo(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--family", "vae", "--data", "digits", "--limit", "60", "--epochs", "1", "--hidden-dims",
                 "8", "--latent-dim", "2", "--threads", "1", "--quiet", "--out", str(run)]) == 0
    m = json.loads((run / "metrics.json").read_text())
    for split in ("train", "test"):
        assert m[split]["elbo_nats"] < 0 and np.isfinite(m[split]["elbo_nats"]), m[split]
    est = aekit.load(run)
    X = aekit.load_dataset("digits", split="test", limit=60).X
    assert m["test"]["elbo_nats"] == pytest.approx(float(np.mean(est.elbo(X))), rel=1e-6)


def test_learned_variance_starts_at_the_data_variance() -> None:
    rng = np.random.default_rng(0)
    scale = np.array([0.05, 0.3, 1.0])
    X = (rng.uniform(size=(200, 3)) * scale).astype(np.float32)  # in [0, 1]: no standardization
    vae = aekit.VAE(latent_dim=1, hidden_dims=(8,), likelihood="gaussian", max_epochs=1, batch_size=200,
                    validation_fraction=0.0, random_state=0, verbose=0, device="cpu").fit(X)
    # One Adam step moves each log-variance by about the learning rate (1e-3) from its start, log var(X).
    start = np.log(X.astype(np.float64).var(axis=0))
    np.testing.assert_allclose(vae.module_.decoder_logvar.detach().numpy(), start, atol=5e-3)
