"""Contractive autoencoder: penalize the sensitivity of the code to the input.

S. Rifai, P. Vincent, X. Muller, X. Glorot and Y. Bengio, "Contractive auto-encoders: explicit
invariance during feature extraction", ICML 2011. Solves::

    min_{f, g}  (1/N) sum_n [ L(x_n, g(f(x_n))) + alpha * ||J_f(x_n)||_F^2 ],   J_f(x) = df(x)/dx  (K x D)

with L the Bernoulli negative log-likelihood or the squared error. For the paper's encoder, one
sigmoid layer h = sigmoid(W x + b), the penalty has the closed form::

    ||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2 ||W_j||^2

(W_j the j-th row of W), as cheap as the forward pass. For deeper encoders it is computed exactly by
autograd (K vector-Jacobian products per step) or estimated without bias by random projections,
E_v ||J^T v||^2 = ||J||_F^2 for v ~ N(0, I_K) (one product per projection). The penalty makes the
code flat in the directions the data do not vary along, so even an overcomplete code does not learn
the identity.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from aekit.core.losses import contractive_autograd, contractive_projection, contractive_sigmoid_exact
from aekit.core.nets import apply_output
from aekit.core.nets import code_activation as nets_code_activation
from aekit.core.outputs import AEOutput, LossOutput
from aekit.engine.training import TrainConfig
from aekit.families.autoencoder import Autoencoder, AutoencoderConfig, AutoencoderModule
from aekit.model.base import declare_params
from aekit.model.registry import register

JACOBIANS = ("auto", "exact", "autograd", "projection")
CODE_ACTIVATIONS = ("sigmoid", "relu", "tanh", "linear")
#: with jacobian="auto", a deep encoder with at most this many code units gets the exact autograd
#: penalty (one backward pass per unit); a wider one gets the random-projection estimate
AUTOGRAD_MAX_UNITS = 32


@dataclass
class ContractiveConfig:
    """Hyperparameters of the contractive penalty."""

    # Weight lambda of ||J||_F^2 beside a reconstruction summed over features; 0.1 keeps digits'
    # reconstructions close to the plain autoencoder's while the code contracts off the data.
    alpha: float = 0.1
    jacobian: str = "auto"  # "exact" (closed form, one sigmoid layer), "autograd" or "projection"; auto picks
    n_projections: int = 1  # random projections per step for jacobian="projection" (one is unbiased)
    code_activation: str = "sigmoid"  # the paper's sigmoid code units; the closed form needs them


class ContractiveAutoencoderModule(AutoencoderModule):
    """Autoencoder with code ``h = code_act(a(x))`` and the penalty ``alpha * ||dh/dx||_F^2`` in ``loss``.

    ``jacobian`` is "exact" (closed form; the encoder must be one linear layer and the code sigmoid),
    "autograd" or "projection". Shapes: x (B, *sample_shape), h (B, K).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        output: str,
        loss: str,
        *,
        alpha: float,
        jacobian: str,
        n_projections: int,
        code_activation: str,
    ) -> None:
        super().__init__(encoder, decoder, output, loss)
        self.alpha, self.jacobian, self.n_projections = float(alpha), jacobian, int(n_projections)
        self.code_activation = code_activation
        self.code_act = nets_code_activation(code_activation)
        if jacobian == "exact":
            linears = [m for m in encoder.modules() if isinstance(m, nn.Linear)]
            has_other = any(isinstance(m, nn.modules.conv._ConvNd) for m in encoder.modules())
            if len(linears) != 1 or has_other or code_activation != "sigmoid":
                raise ValueError(
                    "jacobian='exact' needs an encoder of one linear layer with sigmoid code units; use "
                    "jacobian='autograd' or 'projection' for other encoders"
                )

    def _encoder_weight(self) -> Tensor:
        """W of the single-layer encoder, shape (K, D)."""
        return next(m for m in self.encoder.modules() if isinstance(m, nn.Linear)).weight

    def encode(self, x: Tensor) -> Tensor:
        return self.code_act(self.encoder(x))  # (B, K)

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        raw = self.decoder(z)
        # The penalty is taken at the input the encoder actually saw (corrupted or not).
        return AEOutput(
            z=z, x_hat=apply_output(self.output, raw), logits=raw if self.output == "sigmoid" else None,
            extras={"input": x},
        )

    def jacobian_norm(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """||J_f(x)||_F^2 per sample, shape (B,), by this module's method (differentiable)."""
        if self.jacobian == "exact":
            return contractive_sigmoid_exact(self.encode(x) if h is None else h, self._encoder_weight())
        # Validation runs under no_grad; the penalty needs a graph from x to h to differentiate.
        with torch.enable_grad():
            if self.jacobian == "autograd":
                return contractive_autograd(self.encode, x)
            return contractive_projection(self.encode, x, self.n_projections)

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        rec = self.reconstruction_loss(x, out)
        pen = self.alpha * self.jacobian_norm(out.extras.get("input", x), out.z).mean()
        return LossOutput(rec + pen, {"reconstruction": rec, "contractive": pen})


@register(
    "contractive",
    "autoencoder with lambda*||df(x)/dx||_F^2: closed form for one sigmoid layer, autograd or random projections deeper",
    capabilities=("gradient", "images"),
)
@declare_params(AutoencoderConfig, ContractiveConfig, TrainConfig)
class ContractiveAutoencoder(Autoencoder):
    """Contractive autoencoder, scikit-learn style.

    The default network is the paper's: one sigmoid encoder layer (``hidden_dims=()``,
    ``code_activation="sigmoid"``) whose penalty has a closed form.

    Parameters
    ----------
    alpha : float >= 0, default 0.1
        Weight lambda of the penalty ||J_f(x)||_F^2.
    jacobian : {"auto", "exact", "autograd", "projection"}, default "auto"
        How the penalty is computed. ``exact``: closed form, needs one sigmoid layer. ``autograd``: exact
        for any encoder, K backward passes per step. ``projection``: unbiased estimate from
        ``n_projections`` random projections. ``auto``: exact when possible, else autograd for codes of at
        most 32 units, else projection.
    n_projections : int >= 1, default 1
        Random projections per step (``projection``).
    code_activation : {"sigmoid", "relu", "tanh", "linear"}, default "sigmoid"
        Non-linearity on the code layer.
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, preset, scaling
        See :class:`aekit.families.autoencoder.AutoencoderConfig`; ``hidden_dims=None`` means ``()`` here
        (for the MLP).
    max_epochs, batch_size, learning_rate, ..., random_state, verbose
        See :class:`aekit.engine.training.TrainConfig`.

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X                          # (1437, 1, 8, 8)
    >>> cae = aekit.ContractiveAutoencoder(latent_dim=64, max_epochs=5, verbose=0).fit(X)
    >>> cae.jacobian_
    'exact'
    """

    def _resolved(self) -> dict[str, Any]:
        r = super()._resolved()
        cfg = self._config(AutoencoderConfig)
        if cfg.hidden_dims is None and cfg.preset is None and r["architecture"] == "mlp":
            r["hidden_dims"] = ()  # Rifai et al.: one encoder layer
        return r

    def _single_sigmoid_layer(self) -> bool:
        r = self._resolved()
        return r["architecture"] == "mlp" and tuple(r["hidden_dims"]) == () and self.code_activation == "sigmoid"

    def _jacobian_method(self) -> str:
        if self.jacobian != "auto":
            return str(self.jacobian)
        if self._single_sigmoid_layer():
            return "exact"
        latent = self._resolved()["latent_dim"]
        return "autograd" if int(latent) <= AUTOGRAD_MAX_UNITS else "projection"

    @property
    def jacobian_(self) -> str:
        """How the fitted model computes the penalty: "exact", "autograd" or "projection"."""
        self._check_fitted()
        return str(self.module_.jacobian)

    def _check_params(self) -> None:
        super()._check_params()
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not (0 <= float(a) < math.inf):
            raise ValueError(
                f"alpha must be a finite number >= 0 (the weight of the contractive penalty), got {a!r}; "
                "use alpha=0 to turn the penalty off"
            )
        if self.jacobian not in JACOBIANS:
            raise ValueError(f"unknown jacobian {self.jacobian!r}; valid: {', '.join(JACOBIANS)}")
        n = self.n_projections
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n_projections must be an integer >= 1 (random projections per step), got {n!r}")
        if self.code_activation not in CODE_ACTIVATIONS:
            raise ValueError(f"unknown code_activation {self.code_activation!r}; valid: {', '.join(CODE_ACTIVATIONS)}")
        if self.jacobian == "exact" and not self._single_sigmoid_layer():
            r = self._resolved()
            raise ValueError(
                "jacobian='exact' (the closed form) needs one sigmoid encoder layer: architecture='mlp', "
                f"hidden_dims=() and code_activation='sigmoid', got architecture={r['architecture']!r}, "
                f"hidden_dims={tuple(r['hidden_dims'])!r}, code_activation={self.code_activation!r}; "
                "use jacobian='autograd' (exact) or 'projection' (estimate) for deeper encoders"
            )

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        base = self._make_module(sample_shape)
        return ContractiveAutoencoderModule(
            base.encoder, base.decoder, base.output, base.loss_kind, alpha=float(self.alpha), jacobian=self._jacobian_method(),
            n_projections=int(self.n_projections), code_activation=str(self.code_activation),
        )
