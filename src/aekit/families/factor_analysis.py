"""Factor analysis fitted by EM and used as an autoencoder.

Model: z ~ N(0, I_K), x | z ~ N(W z + mu, Psi), Psi diagonal; so x ~ N(mu, W W^T + Psi).
Encoder = posterior mean E[z | x] = (I + W^T Psi^-1 W)^-1 W^T Psi^-1 (x - mu); decoder = W z + mu.
EM (Rubin & Thayer 1982; Ghahramani & Hinton 1996) on the sample covariance S, with
G = (I + W^T Psi^-1 W)^-1 and B = G W^T Psi^-1::

    W   <- S B^T (G + B S B^T)^-1
    Psi <- diag(S - W B S)

Each iteration costs O(D^2 K), independent of the number of samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import Tensor, nn

from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import Interval, check_count
from aekit.model.base import BaseAutoencoder, DataInfo, declare_params
from aekit.model.registry import register


@dataclass
class FactorAnalysisConfig:
    """Hyperparameters of factor analysis."""

    latent_dim: Annotated[int, Interval(1)] = 2  # K, the number of factors: 2 draws the data as a plane
    max_iter: Annotated[int, Interval(1)] = 10000  # EM is slow near the optimum, and each iteration is cheap (O(D^2 K))
    tol: Annotated[float, Interval(0)] = 1e-9  # Stop when the average log-likelihood improves by less than tol (relative); tight, as EM creeps
    min_noise_variance: Annotated[float, Interval(0, closed="neither")] = 1e-12  # A floor on Psi so the likelihood stays bounded (as scikit-learn)
    verbose: Annotated[int, Interval(0)] = 0  # Silent; EM prints no progress at any level (the parameter is there so every family takes verbose)


class FactorAnalysisModule(nn.Module):
    """Holds W (D, K), Psi (D,), mu (D,) as buffers; no gradient training."""

    W: Tensor
    psi: Tensor
    mean: Tensor

    def __init__(self, sample_shape: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        d = int(np.prod(sample_shape))
        self.sample_shape = sample_shape
        self.register_buffer("W", torch.zeros(d, latent_dim))
        self.register_buffer("psi", torch.ones(d))
        self.register_buffer("mean", torch.zeros(d))

    def encode(self, x: Tensor) -> Tensor:
        """Posterior mean E[z|x], (B, K)."""
        W, psi = self.W.double(), self.psi.double()
        Wp = W / psi[:, None]  # Psi^-1 W, (D, K)
        G = torch.linalg.inv(torch.eye(W.shape[1], dtype=W.dtype, device=W.device) + W.t() @ Wp)
        xc = x.reshape(x.shape[0], -1).double() - self.mean.double()
        return (xc @ Wp @ G).to(x.dtype)  # G symmetric: (G Wp^T xc^T)^T

    def decode(self, z: Tensor) -> Tensor:
        return (z @ self.W.t() + self.mean).reshape(z.shape[0], *self.sample_shape)

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        return AEOutput(z=z, x_hat=self.decode(z))

    def log_likelihood(self, x: Tensor) -> Tensor:
        """log N(x; mu, W W^T + Psi) per sample, (B,)."""
        W, psi = self.W.double(), self.psi.double()
        C = W @ W.t() + torch.diag(psi)
        L = torch.linalg.cholesky(C)
        xc = x.reshape(x.shape[0], -1).double() - self.mean.double()
        sol = torch.linalg.solve_triangular(L, xc.t(), upper=False)  # (D, B)
        logdet = 2 * torch.log(torch.diagonal(L)).sum()
        d = W.shape[0]
        return -0.5 * (d * math.log(2 * math.pi) + logdet + sol.pow(2).sum(dim=0))

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        nll = -self.log_likelihood(x).mean().float()
        return LossOutput(nll, {"nll": nll})


def fit_factor_analysis(
    X: np.ndarray, latent_dim: int, *, max_iter: int = 10000, tol: float = 1e-9, min_noise_variance: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Maximum-likelihood factor analysis by EM.

    Parameters
    ----------
    X : ndarray (N, D)
    latent_dim : int

    Returns
    -------
    W : (D, K), psi : (D,), mu : (D,), loglik : average log-likelihood per sample after each iteration
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    mu = X.mean(axis=0)
    Xc = X - mu
    S = Xc.T @ Xc / n
    # PCA initialization: close to the optimum, so EM needs few iterations.
    evals, evecs = np.linalg.eigh(S)
    order = np.argsort(evals)[::-1][:latent_dim]
    W = evecs[:, order] * np.sqrt(np.maximum(evals[order], 1e-12))
    floor = max(min_noise_variance, 1e-12)
    psi = np.maximum(np.diag(S) - (W**2).sum(axis=1), np.maximum(np.diag(S) * 0.5, floor))
    eye = np.eye(latent_dim)
    history: list[float] = []
    prev = -np.inf
    for _ in range(max_iter):
        Wp = W / psi[:, None]
        G = np.linalg.inv(eye + W.T @ Wp)
        B = G @ Wp.T  # (K, D)
        SB = S @ B.T  # (D, K)
        W = SB @ np.linalg.inv(G + B @ SB)
        psi = np.maximum(np.diag(S) - np.einsum("dk,kd->d", W, B @ S), floor)
        ll = _avg_loglik(S, W, psi)
        history.append(ll)
        if abs(ll - prev) <= tol * max(abs(ll), 1.0):
            break
        prev = ll
    return W, psi, mu, history


def _avg_loglik(S: np.ndarray, W: np.ndarray, psi: np.ndarray) -> float:
    C = W @ W.T + np.diag(psi)
    sign, logdet = np.linalg.slogdet(C)
    d = S.shape[0]
    return float(-0.5 * (d * np.log(2 * np.pi) + logdet + np.trace(np.linalg.solve(C, S))))


@register(
    "factor-analysis",
    "factor analysis fitted by EM; encoder = posterior mean, decoder = W z + mu, score = log-likelihood",
    capabilities=("images", "loglik", "sample"),
)
@declare_params(FactorAnalysisConfig)
class FactorAnalysisAutoencoder(BaseAutoencoder):
    """Factor analysis as an autoencoder (scikit-learn style).

    Attributes
    ----------
    components_ : ndarray (K, D)   loadings W^T
    noise_variance_ : ndarray (D,)  Psi
    mean_ : ndarray (D,)
    loglike_ : list of float       average log-likelihood per EM iteration
    n_iter_ : int
    """

    #: A tiny, fast configuration for the shared test suite.
    _test_params: ClassVar[dict[str, Any]] = {"latent_dim": 3, "max_iter": 200, "tol": 1e-6}

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        """The parameters as given; at most as many factors as features."""
        d = math.prod(data.sample_shape)
        if params["latent_dim"] > d:
            # More factors than features cannot be identified, and the PCA initialization has only D axes.
            raise ValueError(
                f"latent_dim={params['latent_dim']} must be at most the number of features (n_features={d}); "
                "lower latent_dim"
            )
        return dict(params)

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        return FactorAnalysisModule(sample_shape, int(self.resolved_.latent_dim))

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        r = self.resolved_
        W, psi, mu, ll = fit_factor_analysis(
            Xs.reshape(Xs.shape[0], -1), int(r.latent_dim), max_iter=int(r.max_iter), tol=float(r.tol),
            min_noise_variance=float(r.min_noise_variance),
        )
        m = self.module_
        m.W.copy_(torch.from_numpy(W))
        m.psi.copy_(torch.from_numpy(psi))
        m.mean.copy_(torch.from_numpy(mu))
        # loglike_ and n_iter_ are read from this history, which a saved run keeps in history.csv.
        return [{"epoch": float(i + 1), "loss": -v} for i, v in enumerate(ll)]

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each sample under the fitted model, (n,); higher is more normal."""
        Xs = self._prepare(X)
        with torch.no_grad():
            ll = self.module_.log_likelihood(torch.from_numpy(Xs).to(self.device_)).cpu().numpy()
        # Likelihood in the units of X: correct for the scaling's Jacobian.
        return ll - float(np.log(self.scaler_.scale).sum())

    def sample(self, n_samples: int, random_state: Any = None) -> np.ndarray:
        """Draw samples from the fitted generative model, in the units of the data.

        z ~ N(0, I_K), x = W z + mu + e with e ~ N(0, Psi), so x ~ N(mu, W W^T + Psi); then the data
        scaling is undone.

        Parameters
        ----------
        n_samples : int
            Number of samples, at least 1.
        random_state : int, RandomState or None
            Seeds the draws (scikit-learn's convention); the global NumPy state is not reseeded.

        Returns
        -------
        ndarray (n_samples, *sample_shape), float32
        """
        self._check_fitted()
        n_samples = check_count("n_samples", n_samples)
        rng = check_random_state(random_state)
        W = self.module_.W.double().cpu().numpy()  # (D, K)
        psi = self.module_.psi.double().cpu().numpy()  # (D,)
        mu = self.module_.mean.double().cpu().numpy()  # (D,)
        z = rng.standard_normal((int(n_samples), W.shape[1]))  # (n, K)
        x = z @ W.T + mu + rng.standard_normal((int(n_samples), W.shape[0])) * np.sqrt(psi)  # (n, D)
        return self.scaler_.inverse_transform(x.reshape(int(n_samples), *self.sample_shape_).astype(np.float32))

    @property
    def loglike_(self) -> list[float]:
        self._check_fitted()
        return [-row["loss"] for row in self.history_]

    @property
    def n_iter_(self) -> int:
        self._check_fitted()
        return len(self.history_)

    @property
    def components_(self) -> np.ndarray:
        self._check_fitted()
        return self.module_.W.t().cpu().numpy()

    @property
    def noise_variance_(self) -> np.ndarray:
        self._check_fitted()
        return self.module_.psi.cpu().numpy()

    @property
    def mean_(self) -> np.ndarray:
        self._check_fitted()
        return self.module_.mean.cpu().numpy()
