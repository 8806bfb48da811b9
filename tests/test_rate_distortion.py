"""The rate-distortion family: its rate term against references, its trade-off in real files, its bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import aekit
from aekit.core.losses import laplace_interval_bits

TINY = {"hidden_dims": (4,), "latent_dim": 4, "max_epochs": 4, "batch_size": 16, "learning_rate": 5e-3, "verbose": 0,
        "random_state": 0}


def cdf(x: torch.Tensor, b: float) -> torch.Tensor:
    return torch.where(x < 0, 0.5 * torch.exp(x.clamp(max=0) / b), 1 - 0.5 * torch.exp(-x.clamp(min=0) / b))


def test_rate_term_matches_closed_form_and_monte_carlo() -> None:
    """-log2 of the bin mass, against the Laplace CDF (float64) and a Monte Carlo average of the density over the bin."""
    t = torch.tensor([[-7.3, -2.0, -0.6, -0.5, -0.2, 0.0, 0.3, 0.5, 0.9, 3.7, 12.0]], dtype=torch.float64)
    for b in (0.05, 0.3, 1.0, 4.0, 40.0):
        scale = torch.full((t.shape[1],), b, dtype=torch.float64)
        lap = torch.distributions.Laplace(0.0, b)
        # The Laplace CDF F(x) = e^{x/b} / 2 (x < 0), 1 - e^{-x/b} / 2 (x >= 0), taken on the lower tail by
        # symmetry, where the difference keeps its precision in float64 (torch's Laplace.cdf does not there).
        a = -t.abs()
        mass = cdf(a + 0.5, b) - cdf(a - 0.5, b)  # (1, K)
        ref = -torch.log2(mass).sum(dim=1)
        got = laplace_interval_bits(t, scale)
        assert got.shape == (1,)
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)
        # The density convolved with U(-1/2, 1/2) at t is E_u p(t + u): Monte Carlo with 50,000 draws.
        gen = torch.Generator().manual_seed(0)
        u = torch.rand(50_000, 1, generator=gen, dtype=torch.float64) - 0.5
        mc = lap.log_prob(t + u).exp().mean(dim=0)  # (K,)
        assert torch.allclose(mc, mass[0], rtol=0.05, atol=1e-4), (b, mc, mass)
    # Far in a tail the closed form underflows; the per-side form stays exact: log2 of 1/2 e^{-(|t|-1/2)/b} (1 - e^{-1/b}).
    far = torch.tensor([[200.0]], dtype=torch.float64)
    want = -(math.log(0.5) - 199.5 / 0.3 + math.log(1 - math.exp(-1 / 0.3))) / math.log(2)
    assert laplace_interval_bits(far, torch.tensor([0.3], dtype=torch.float64)).item() == pytest.approx(want, rel=1e-12)
    # Differentiable everywhere, including at the bin edge |t| = 1/2 and at 0.
    tt = t.clone().requires_grad_(True)
    s = torch.full((t.shape[1],), 0.7, dtype=torch.float64, requires_grad=True)
    laplace_interval_bits(tt, s).sum().backward()
    assert torch.isfinite(tt.grad).all() and torch.isfinite(s.grad).all()


def test_larger_lambda_fewer_bits_and_step_one_is_the_trained_rate() -> None:
    X = aekit.load_dataset("digits").X[:400]  # (400, 1, 8, 8) in [0, 1]
    sizes, psnrs = [], []
    for lmbda in (0.002, 0.5):
        rd = aekit.RateDistortionAutoencoder(lmbda=lmbda, **TINY).fit(X)
        assert set(rd.history_[-1]) >= {"distortion", "rate"}
        cm = aekit.fit_code_model(rd, X)
        loc, scale = rd.code_density()
        # The codec takes the learned densities and their step: step=1 is the trained quantization.
        assert cm.gain == (1.0,) * loc.size and np.allclose(cm.loc, loc) and np.allclose(cm.scale, scale)
        data = aekit.compress(rd, X[:200], code_model=cm, step=1.0)
        R = aekit.decompress(rd, data, code_model=cm)
        # The decoding is the decoder's output at the rounded code, as in the model's evaluation pass.
        Z = rd.transform(X[:200])
        want = np.clip(rd.inverse_transform((loc + np.round(Z - loc)).astype(np.float32)), cm.low, cm.high)
        np.testing.assert_allclose(R, want, atol=1e-5)
        # The payload is the ideal code length of the learned densities, up to the header and the last word.
        ideal = float(rd.rate_bits(X[:200]).sum())
        assert ideal <= 8 * len(data) <= ideal + 8 * 40 + 32 + 0.01 * ideal
        sizes.append(len(data))
        psnrs.append(10 * math.log10(1 / float(np.mean((R - X[:200]) ** 2))))
    assert sizes[1] < 0.8 * sizes[0], sizes  # a larger lambda gives fewer bits ...
    assert psnrs[1] < psnrs[0], psnrs  # ... and more distortion


@pytest.mark.parametrize(
    ("params", "X", "match"),
    [
        ({"lmbda": 0.0}, None, r"lmbda.*0\.0"),
        ({"lmbda": -1.0}, None, r"lmbda.*-1\.0"),
        ({"architecture": "conv"}, np.random.default_rng(0).random((20, 6)), r"convolutional network needs images.*mlp"),
        ({"architecture": "conv", "hidden_dims": ()}, None, r"hidden_dims.*\(\).*hidden_dims='auto'"),
    ],
)
def test_bad_input(params: dict, X: np.ndarray | None, match: str) -> None:
    data = aekit.load_dataset("digits").X[:50] if X is None else X
    with pytest.raises(ValueError, match=match):
        aekit.RateDistortionAutoencoder(**{**TINY, **params}).fit(data)
