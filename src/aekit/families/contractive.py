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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from aekit.core.losses import contractive_autograd, contractive_projection, contractive_sigmoid_exact
from aekit.core.nets import code_activation as nets_code_activation
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import AUTO, Auto, Explain, Interval
from aekit.engine.training import TrainConfig
from aekit.families.autoencoder import Autoencoder, AutoencoderConfig, AutoencoderModule, HiddenDims
from aekit.model.base import DataInfo, declare_params
from aekit.model.registry import register

Jacobian = Literal["auto", "exact", "autograd", "projection"]
CodeActivation = Literal["sigmoid", "relu", "tanh", "linear"]
#: with jacobian="auto", a deep encoder with at most this many code units gets the exact autograd
#: penalty (one backward pass per unit); a wider one gets the random-projection estimate
AUTOGRAD_MAX_UNITS = 32


@dataclass
class ContractiveNetConfig(AutoencoderConfig):
    """The network of a contractive autoencoder: the paper's one sigmoid encoder layer by default."""

    # Widths of the MLP's hidden layers (or conv channels); none by default: Rifai et al.'s one encoder
    # layer, whose penalty has a closed form as cheap as the forward pass.
    hidden_dims: Annotated[HiddenDims | Literal["auto"], Auto("(256, 128) for mlp, channels (32, 64) for conv")] = ()


@dataclass
class ContractiveConfig:
    """Hyperparameters of the contractive penalty."""

    # The weight lambda of ||J||_F^2 beside a reconstruction summed over features; 0.1 keeps digits'
    # reconstructions close to the plain autoencoder's while the code contracts off the data.
    alpha: Annotated[
        float, Interval(0), Explain("the weight of the contractive penalty", "use alpha=0 to turn the penalty off")
    ] = 0.1
    # How the penalty is computed: "exact" (closed form, one sigmoid layer), "autograd" (exact, one backward
    # pass per code unit) or "projection" (an unbiased random-projection estimate).
    jacobian: Annotated[
        Jacobian,
        Auto(f"exact for one sigmoid layer, else autograd up to {AUTOGRAD_MAX_UNITS} code units, else projection"),
    ] = "auto"
    # The random projections per step for jacobian="projection"; one already gives an unbiased estimate.
    n_projections: Annotated[int, Interval(1), Explain("random projections per step")] = 1
    code_activation: CodeActivation = "sigmoid"  # The paper's sigmoid code units; the closed form needs them.


def jacobian_method(jacobian: str, single_sigmoid_layer: bool, latent_dim: int) -> str:
    """The penalty's method for ``jacobian`` ("auto" decided as :class:`ContractiveConfig` says)."""
    if jacobian != AUTO:
        return jacobian
    if single_sigmoid_layer:
        return "exact"
    return "autograd" if latent_dim <= AUTOGRAD_MAX_UNITS else "projection"


class ContractiveAutoencoderModule(AutoencoderModule):
    """Autoencoder with code ``h = code_act(a(x))`` and the penalty ``alpha * ||dh/dx||_F^2`` in ``loss``.

    The public way to build one contractive layer from any encoder (whose output is the pre-activation
    code a) and decoder. The penalty is taken at the input the encoder saw (``out.x_in``: the corrupted
    batch when the training loop corrupts it).

    Parameters
    ----------
    encoder, decoder, output, loss
        See :class:`aekit.families.autoencoder.AutoencoderModule`.
    alpha : float
        The weight of the penalty.
    jacobian : {"exact", "autograd", "projection"}
        "exact" (closed form; the encoder must be one linear layer and the code sigmoid), "autograd" or
        "projection"; :func:`jacobian_method` picks one as the family does.
    n_projections : int
        Random projections per step ("projection").
    code_activation : {"sigmoid", "relu", "tanh", "linear"}

    Shapes: x (B, *sample_shape), h (B, K).
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
        pen = self.alpha * self.jacobian_norm(x if out.x_in is None else out.x_in, out.z).mean()
        return LossOutput(rec + pen, {"reconstruction": rec, "contractive": pen})


@register(
    "contractive",
    "autoencoder with lambda*||df(x)/dx||_F^2: closed form for one sigmoid layer, autograd or random projections deeper",
    capabilities=("gradient", "images", "stackable"),
)
@declare_params(ContractiveNetConfig, ContractiveConfig, TrainConfig)
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
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, scaling
        See :class:`aekit.families.autoencoder.AutoencoderConfig`; ``hidden_dims`` defaults to ``()``
        here (one encoder layer).
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

    # The default takes the closed form (one sigmoid layer); a hidden layer takes the autograd penalty.
    _test_params: ClassVar[dict[str, Any]] = {**Autoencoder._test_params, "hidden_dims": ()}
    _test_variants: ClassVar[tuple[dict[str, Any], ...]] = ({"hidden_dims": (8,)},)

    @staticmethod
    def _single_sigmoid_layer(params: Mapping[str, Any]) -> bool:
        return params["architecture"] == "mlp" and tuple(params["hidden_dims"]) == () and params["code_activation"] == "sigmoid"

    @property
    def jacobian_(self) -> str:
        """How the fitted model computes the penalty: "exact", "autograd" or "projection"."""
        self._check_fitted()
        return str(self.resolved_.jacobian)

    def _check_params(self) -> None:
        super()._check_params()
        params = self.get_params(deep=False)
        if self.jacobian == "exact" and not self._single_sigmoid_layer(params):
            raise ValueError(
                "jacobian='exact' (the closed form) needs one sigmoid encoder layer: architecture='mlp', "
                f"hidden_dims=() and code_activation='sigmoid', got architecture={self.architecture!r}, "
                f"hidden_dims={self.hidden_dims!r}, code_activation={self.code_activation!r}; "
                "use jacobian='autograd' (exact) or 'projection' (estimate) for deeper encoders"
            )

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        r = super().resolve(params, data)
        r["jacobian"] = jacobian_method(r["jacobian"], cls._single_sigmoid_layer(r), int(r["latent_dim"]))
        return r

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        encoder, decoder = self._networks(sample_shape)
        r = self.resolved_
        return ContractiveAutoencoderModule(
            encoder, decoder, r.output, r.loss, alpha=r.alpha, jacobian=r.jacobian, n_projections=r.n_projections,
            code_activation=r.code_activation,
        )

    _layer_config: ClassVar[type | None] = ContractiveConfig

    @classmethod
    def layer_options(cls, options: Mapping[str, Any], out_dim: int, act: str) -> dict[str, Any]:
        """The contractive layer's alpha and Jacobian method for ``out_dim`` units of ``act`` (see the base):
        the closed form for sigmoid units, else as ``jacobian="auto"`` decides."""
        params = super().layer_options(options, out_dim, act)
        return {
            "alpha": params["alpha"], "jacobian": jacobian_method(params["jacobian"], act == "sigmoid", out_dim),
            "n_projections": params["n_projections"], "code_activation": act,
        }

    @classmethod
    def _layer(
        cls, encoder: nn.Module, decoder: nn.Module, output: str, loss: str, in_shape: tuple[int, ...], act: str,
        settings: Mapping[str, Any],
    ) -> AutoencoderModule:
        """One contractive layer."""
        return ContractiveAutoencoderModule(encoder, decoder, output, loss, **settings)

