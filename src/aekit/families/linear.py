"""Linear autoencoder: encoder V, decoder W, and its closed-form optimum, the PCA subspace.

Solves::

    min_{V, W}  (1/N) sum_n || (x_n - mu) - W V (x_n - mu) ||^2,   V: (K, D), W: (D, K)

Baldi & Hornik (1989): every minimum spans the top-K principal subspace. ``solver="svd"`` takes it in
closed form (V = top-K right singular vectors of the centred data, W = V^T); ``solver="gradient"``
trains V and W (or V alone with tied W = V^T) with the training loop. With K >= D and no constraint the
optimum is the identity map, which is why the lectures ask for a bottleneck or a regularizer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.losses import squared_error
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import Interval
from aekit.data.preprocessing import Scaling
from aekit.engine.training import TrainConfig
from aekit.model.base import BaseAutoencoder, DataInfo, Epochs, declare_params
from aekit.model.registry import register


@dataclass
class LinearConfig:
    """Hyperparameters of the linear autoencoder."""

    latent_dim: Annotated[int, Interval(1)] = 2  # K, the number of components: 2 draws the data as a plane, the usual first look
    solver: Literal["svd", "gradient"] = "svd"  # The exact PCA optimum in closed form; "gradient" trains V and W by the loop
    tied: bool = False  # Untied W, as the lectures state the problem; True sets W = V^T (gradient solver; svd is always tied)
    scaling: Scaling = "none"  # PCA centres but does not scale; "standard" gives PCA on the correlation matrix


class LinearModule(nn.Module):
    """z = V (x - mu), x_hat = W z + mu. Shapes: x (B, *sample_shape), z (B, K)."""

    mean: Tensor  # buffer (D,)

    def __init__(self, sample_shape: tuple[int, ...], latent_dim: int, tied: bool) -> None:
        super().__init__()
        d = int(np.prod(sample_shape))
        self.sample_shape = sample_shape
        self.register_buffer("mean", torch.zeros(d))
        self.V = nn.Parameter(torch.randn(latent_dim, d) / d**0.5)
        self.W = None if tied else nn.Parameter(torch.randn(d, latent_dim) / latent_dim**0.5)

    def decoder_matrix(self) -> Tensor:
        """W, shape (D, K) (V^T when tied)."""
        return self.V.t() if self.W is None else self.W

    def encode(self, x: Tensor) -> Tensor:
        return (x.reshape(x.shape[0], -1) - self.mean) @ self.V.t()  # (B, K)

    def decode(self, z: Tensor) -> Tensor:
        return (z @ self.decoder_matrix().t() + self.mean).reshape(z.shape[0], *self.sample_shape)

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        return AEOutput(z=z, x_hat=self.decode(z))

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        rec = squared_error(out.x_hat, x).mean()
        return LossOutput(rec, {"reconstruction": rec})


@register(
    "linear",
    "linear encoder V and decoder W; solver 'svd' gives the PCA optimum in closed form, 'gradient' trains it",
    capabilities=("images",),
)
@declare_params(LinearConfig, TrainConfig)
class LinearAutoencoder(BaseAutoencoder):
    """Linear autoencoder / PCA.

    Parameters
    ----------
    latent_dim, solver, tied, scaling
        See :class:`LinearConfig`.
    max_epochs, batch_size, learning_rate, ... , random_state, verbose
        Training settings for ``solver="gradient"`` (see :class:`aekit.engine.training.TrainConfig`).

    Attributes
    ----------
    components_ : ndarray (K, D)
        Rows of the encoder V (for ``svd``, the principal axes).
    explained_variance_ : ndarray (K,)
        Variance of the data along each component (``svd`` only).
    """

    #: A tiny, fast configuration for the shared test suite.
    _test_params: ClassVar[dict[str, Any]] = {"latent_dim": 3, "max_epochs": 2, "verbose": 0, "random_state": 0}
    #: The gradient solver trains by the training loop instead of taking the closed form.
    _test_variants: ClassVar[Sequence[Mapping[str, Any]]] = ({"solver": "gradient"},)

    @classmethod
    def epochs(cls, params: Mapping[str, Any]) -> Epochs:
        if params.get("solver") == "gradient":
            return Epochs(True)
        return Epochs(False, "", "solver='svd' computes the PCA optimum in closed form, without epochs; "
                      "pass --solver gradient to train by epochs")

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        """The parameters as given; the SVD solver needs at most min(n_samples, n_features) components."""
        n, d = data.n_samples, math.prod(data.sample_shape)
        k = params["latent_dim"]
        if params["solver"] == "svd" and k > min(n, d):
            raise ValueError(
                f"latent_dim={k} must be at most min(n_samples, n_features) = {min(n, d)} with solver='svd' "
                f"(got n_samples={n}, n_features={d}); lower latent_dim, or use solver='gradient' for an "
                "overcomplete linear autoencoder"
            )
        return dict(params)

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        r = self.resolved_
        return LinearModule(sample_shape, int(r.latent_dim), bool(r.tied) or r.solver == "svd")

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        r = self.resolved_
        X2 = torch.from_numpy(Xs.reshape(Xs.shape[0], -1)).double()
        mean = X2.mean(dim=0)
        self.module_.mean.copy_(mean.float())
        self.fitted_info_: dict[str, Any] = {}
        if r.solver == "gradient":
            return super()._fit_module(Xs, y, seed, **fit_kw)
        # Closed form: the top-K right singular vectors of the centred data (the PCA axes).
        _, S, Vt = torch.linalg.svd(X2 - mean, full_matrices=False)
        # Fix the sign as scikit-learn does (largest |loading| positive) so runs are comparable.
        k = int(r.latent_dim)
        V = Vt[:k]
        signs = torch.sign(V.gather(1, V.abs().argmax(dim=1, keepdim=True)))
        with torch.no_grad():
            self.module_.V.copy_((V * signs).float())
        # Kept in fitted_info_ (saved in config.json) so a loaded model still has it.
        self.fitted_info_ = {"explained_variance": (S[:k] ** 2 / max(Xs.shape[0] - 1, 1)).tolist()}
        return []

    @property
    def components_(self) -> np.ndarray:
        self._check_fitted()
        return self.module_.V.detach().cpu().numpy()

    @property
    def explained_variance_(self) -> np.ndarray:
        self._check_fitted()
        ev = getattr(self, "fitted_info_", {}).get("explained_variance")
        if ev is None:
            raise AttributeError("explained_variance_ is computed by solver='svd' only")
        return np.asarray(ev, dtype=np.float64)
