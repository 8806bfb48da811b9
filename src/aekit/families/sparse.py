"""Sparse autoencoder: an autoencoder with a sparsity penalty (or constraint) on the code h = f(x).

A. Ng, "Sparse autoencoder", CS294A lecture notes, Stanford (2011): sigmoid code units and the
penalty beta * sum_j KL(rho || rho_hat_j). A. Makhzani and B. Frey, "k-Sparse autoencoders",
ICLR 2014 (arXiv:1312.5663, 2013): keep only the k largest code units. The L1 penalty is the MAP
estimate under a Laplace prior p(h) ~ exp(-lambda ||h||_1) (Goodfellow, Bengio and Courville,
"Deep Learning", sec. 14.2.1).

Solves, over a batch of N samples with reconstruction term L (Bernoulli NLL or squared error)::

    penalty="l1":    min_{f,g}  (1/N) sum_n [ L(x_n, g(h_n)) + alpha * ||h_n||_1 ],   h_n = relu(a(x_n))
    penalty="kl":    min_{f,g}  (1/N) sum_n L(x_n, g(h_n)) + alpha * sum_j KL(rho || rho_hat_j),
                     h_n = sigmoid(a(x_n)),  rho_hat_j = (1/N) sum_n h_nj,
                     KL(rho || r) = rho log(rho / r) + (1 - rho) log((1 - rho) / (1 - r))
    penalty="topk":  min_{f,g}  (1/N) sum_n L(x_n, g(h_n)),   h_n = topk_k(relu(a(x_n)))

where a(x) is the encoder's pre-activation code and topk_k keeps the k largest entries of each row
and zeroes the rest (no penalty term: sparsity is enforced exactly). The code may be overcomplete
(latent_dim K larger than the input dimension D): the penalty, not the bottleneck, stops the model
from learning the identity.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.losses import kl_sparsity, l1_penalty
from aekit.core.nets import code_activation as nets_code_activation
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import AUTO, Auto, Explain, Interval
from aekit.data.preprocessing import check_array
from aekit.engine.training import TrainConfig
from aekit.families.autoencoder import Autoencoder, AutoencoderConfig, AutoencoderModule, HiddenDims
from aekit.model.base import DataInfo, declare_params
from aekit.model.registry import register

Penalty = Literal["l1", "kl", "topk"]
CodeActivation = Literal["relu", "sigmoid", "linear"]
PENALTIES: tuple[str, ...] = get_args(Penalty)
#: the penalty weight that ``alpha="auto"`` stands for
DEFAULT_ALPHA = {
    # Per-sample L1 of the code beside a reconstruction summed over features: 0.1 gives codes with
    # mostly exact zeros on digits while the reconstruction stays close to the plain autoencoder's.
    "l1": 0.1,
    # Ng's notes use beta = 3 with rho = 0.05.
    "kl": 3.0,
    "topk": 0.0,
}
#: |h| at or below this counts as "off" in sparsity reports (sigmoid units never reach 0 exactly)
ZERO_THRESHOLD = {"relu": 1e-3, "linear": 1e-3, "sigmoid": 0.05}


@dataclass
class SparseNetConfig(AutoencoderConfig):
    """The network of a sparse autoencoder: one encoder layer by default, as in Ng's notes and Makhzani & Frey."""

    # Widths of the MLP's hidden layers (or conv channels); none by default: one encoder layer, as in
    # Ng's notes and Makhzani & Frey, where the penalty rather than depth shapes the code.
    hidden_dims: Annotated[HiddenDims | Literal["auto"], Auto("(256, 128) for mlp, channels (32, 64) for conv")] = ()


@dataclass
class SparseConfig:
    """Hyperparameters of the sparsity penalty."""

    # The sparsity penalty: "l1" (a Laplace prior on the code), "kl" (Ng's target activation rho) or "topk"
    # (Makhzani & Frey: keep the k largest units).
    penalty: Penalty = "l1"
    # The weight of the penalty (lambda for l1, beta for kl; unused by topk): 0.1 for l1 keeps the
    # reconstruction near the plain autoencoder's, 3 for kl is Ng's.
    alpha: Annotated[
        float | Literal["auto"],
        Interval(0),
        Explain("the weight of the sparsity penalty", "use alpha=0 to turn the penalty off"),
        Auto("0.1 for l1, 3 for kl"),
    ] = "auto"
    # The target mean activation of each sigmoid code unit (kl); Ng's notes use 0.05.
    rho: Annotated[float, Interval(0, 1, closed="neither"), Explain("the target mean activation of a sigmoid code unit", "Ng's notes use rho=0.05")] = 0.05
    # The code units kept per sample (topk): a quarter of the code keeps most of the detail.
    k: Annotated[int | Literal["auto"], Interval(1), Explain("code units kept per sample"), Auto("max(1, latent_dim // 4)")] = "auto"
    # The code non-linearity: ReLU gives exact zeros for l1 and topk; kl needs sigmoid units, whose
    # activations in (0, 1) are what rho_hat averages.
    code_activation: Annotated[CodeActivation | Literal["auto"], Auto("sigmoid for kl, else relu")] = "auto"


def keep_top_k(h: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest entries of each row of ``h`` (B, K) and zero the rest; same shape.

    Gradients flow to the kept entries only, as in Makhzani & Frey's k-sparse autoencoder.
    """
    values, idx = h.topk(k, dim=1)
    return torch.zeros_like(h).scatter(1, idx, values)


class SparseAutoencoderModule(AutoencoderModule):
    """Autoencoder whose code is ``h = code_act(a(x - mean))`` (top-k'd for ``topk``), with a sparsity term in ``loss``.

    The public way to build one sparse layer from any encoder (whose last layer is linear: the
    pre-activation code a) and decoder; call :meth:`prepare` with the training data before training.

    Parameters
    ----------
    encoder, decoder, output, loss
        See :class:`aekit.families.autoencoder.AutoencoderModule`.
    penalty : {"l1", "kl", "topk"}
    alpha : float
        The weight of the penalty (unused by topk).
    rho : float in (0, 1)
        The target mean activation (kl).
    k : int
        Code units kept per sample (topk).
    code_activation : {"relu", "sigmoid", "linear"}
    sample_shape : tuple of int
        The shape of one input sample (of the centring buffer ``input_mean``).

    Shapes: x (B, *sample_shape), h (B, K).
    """

    input_mean: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        output: str,
        loss: str,
        *,
        penalty: str,
        alpha: float,
        rho: float,
        k: int,
        code_activation: str,
        sample_shape: tuple[int, ...],
    ) -> None:
        super().__init__(encoder, decoder, output, loss)
        self.penalty, self.alpha, self.rho, self.k = penalty, float(alpha), float(rho), int(k)
        self.code_activation = code_activation
        self.code_act = nets_code_activation(code_activation)
        # The encoder sees x - mean(x_train). Same function class (the mean folds into the first bias),
        # but with data such as images in [0, 1] the uncentred pre-activations are dominated by the
        # mean image, so the same few units win for every input and the rest die (top-k most of all).
        # Gao et al. (2024) subtract the decoder bias for the same reason.
        self.register_buffer("input_mean", torch.zeros(sample_shape))

    @torch.no_grad()
    def prepare(self, X: np.ndarray) -> None:
        """Data-dependent initialization from the (scaled) training data ``X`` (N, *sample_shape).

        Stores the mean that the encoder subtracts and, for ``kl``, starts every sigmoid unit near the
        target activation rho: the inputs are centred, so the mean pre-activation is about the code
        layer's bias, and the KL term starts near 0 instead of dwarfing the reconstruction for the
        hundreds of steps the biases would need to get there.
        """
        self.input_mean.copy_(torch.from_numpy(np.asarray(X).mean(axis=0)).to(self.input_mean.device))
        code_layer = [m for m in self.encoder.modules() if isinstance(m, nn.Linear)][-1:]
        if self.penalty == "kl" and code_layer and code_layer[0].bias is not None:
            code_layer[0].bias.fill_(math.log(self.rho / (1 - self.rho)))

    def encode(self, x: Tensor) -> Tensor:
        h = self.code_act(self.encoder(x - self.input_mean))  # (B, K)
        return keep_top_k(h, self.k) if self.penalty == "topk" else h

    def sparsity_loss(self, h: Tensor) -> Tensor:
        """The weighted sparsity term (a scalar): alpha * mean_n ||h_n||_1, or alpha * sum_j KL(rho || rho_hat_j)."""
        if self.penalty == "l1":
            return self.alpha * l1_penalty(h).mean()
        if self.penalty == "kl":
            return self.alpha * kl_sparsity(h, self.rho)
        return h.new_zeros(())

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        rec = self.reconstruction_loss(x, out)
        if self.penalty == "topk":
            return LossOutput(rec, {"reconstruction": rec})
        pen = self.sparsity_loss(out.z)
        return LossOutput(rec + pen, {"reconstruction": rec, f"sparsity_{self.penalty}": pen})


@register(
    "sparse",
    "autoencoder with a sparsity penalty on the code: L1 (lambda*||h||_1), KL to a target activation rho, or top-k",
    capabilities=("gradient", "images", "stackable"),
)
@declare_params(SparseNetConfig, SparseConfig, TrainConfig)
class SparseAutoencoder(Autoencoder):
    """Sparse autoencoder, scikit-learn style.

    Parameters
    ----------
    penalty : {"l1", "kl", "topk"}, default "l1"
        ``l1``: alpha * ||h||_1 on ReLU codes. ``kl``: alpha * sum_j KL(rho || rho_hat_j) on sigmoid
        codes. ``topk``: keep the k largest ReLU code units per sample, no penalty term.
    alpha : float >= 0 or "auto", default "auto"
        Penalty weight (lambda for l1, beta for kl); "auto": 0.1 for l1, 3.0 for kl. Unused by topk.
    rho : float in (0, 1), default 0.05
        Target mean activation of each code unit (kl).
    k : int in [1, latent_dim] or "auto", default "auto"
        Code units kept per sample (topk); "auto": ``max(1, latent_dim // 4)``.
    code_activation : {"relu", "sigmoid", "linear", "auto"}, default "auto"
        Non-linearity on the code layer; "auto": relu for l1 and topk, sigmoid for kl (which needs it).
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, scaling
        See :class:`aekit.families.autoencoder.AutoencoderConfig`; ``hidden_dims`` defaults to ``()``
        here (one encoder layer). ``latent_dim`` may exceed the number of input features (an
        overcomplete code).
    max_epochs, batch_size, learning_rate, ..., random_state, verbose
        See :class:`aekit.engine.training.TrainConfig`.

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X                          # (1437, 1, 8, 8)
    >>> sae = aekit.SparseAutoencoder(penalty="topk", latent_dim=128, k=8, max_epochs=5, verbose=0).fit(X)
    >>> sae.sparsity_report(X)["mean_l0"] <= 8
    True
    """

    _test_params: ClassVar[dict[str, Any]] = {**Autoencoder._test_params, "hidden_dims": ()}
    _test_variants: ClassVar[tuple[dict[str, Any], ...]] = ({"penalty": "topk", "k": 2}, {"penalty": "kl"})

    @staticmethod
    def _sparse_settings(params: Mapping[str, Any]) -> dict[str, Any]:
        """alpha, k and code_activation with "auto" decided from the other parameters."""
        penalty = params["penalty"]
        alpha = DEFAULT_ALPHA[penalty] if params["alpha"] == AUTO else params["alpha"]
        k = max(1, int(params["latent_dim"]) // 4) if params["k"] == AUTO else params["k"]
        act = ("sigmoid" if penalty == "kl" else "relu") if params["code_activation"] == AUTO else params["code_activation"]
        return {"alpha": alpha, "k": k, "code_activation": act}

    def _check_params(self) -> None:
        super()._check_params()
        s = self._sparse_settings(self.get_params(deep=False))
        latent = int(self.latent_dim)
        if s["k"] > latent:
            raise ValueError(
                f"k must be an integer in [1, latent_dim={latent}] (code units kept per sample), got {s['k']!r}; "
                "lower k or raise latent_dim"
            )
        if self.penalty == "kl" and s["code_activation"] != "sigmoid":
            raise ValueError(
                f"penalty='kl' needs sigmoid code units (activations in (0, 1) are what rho_hat averages), got "
                f"code_activation={s['code_activation']!r}; leave code_activation='auto' or use penalty='l1'"
            )

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        return {**super().resolve(params, data), **cls._sparse_settings(params)}

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        encoder, decoder = self._networks(sample_shape)
        r = self.resolved_
        return SparseAutoencoderModule(
            encoder, decoder, r.output, r.loss, penalty=r.penalty, alpha=r.alpha, rho=r.rho, k=r.k,
            code_activation=r.code_activation, sample_shape=sample_shape,
        )

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        self.module_.prepare(Xs)
        return super()._fit_module(Xs, y, seed, **fit_kw)

    _layer_config: ClassVar[type | None] = SparseConfig

    @classmethod
    def layer_options(cls, options: Mapping[str, Any], out_dim: int, act: str) -> dict[str, Any]:
        """The sparse layer's penalty, alpha, rho and k for ``out_dim`` code units of ``act`` (see the base)."""
        params = super().layer_options(options, out_dim, act)
        settings = cls._sparse_settings({**params, "latent_dim": out_dim, "code_activation": act})
        if params["penalty"] == "kl" and act != "sigmoid":
            raise ValueError(
                f"penalty='kl' needs sigmoid units (rho_hat averages activations in (0, 1)), got {act!r} units; "
                "use sigmoid units or penalty='l1'"
            )
        if settings["k"] > out_dim:
            raise ValueError(f"k must be at most the layer's {out_dim} code units, got {settings['k']!r}; lower k")
        return {"penalty": params["penalty"], "rho": params["rho"], **settings}

    @classmethod
    def _layer(
        cls, encoder: nn.Module, decoder: nn.Module, output: str, loss: str, in_shape: tuple[int, ...], act: str,
        settings: Mapping[str, Any],
    ) -> AutoencoderModule:
        """One sparse layer; its ``prepare(H)`` centres its input and starts kl units near rho."""
        return SparseAutoencoderModule(encoder, decoder, output, loss, sample_shape=in_shape, **settings)

    def sparsity_report(self, X: Any, threshold: float | None = None) -> dict[str, Any]:
        """How sparse the codes of ``X`` are, beside how well ``X`` is reconstructed (the trade-off alpha sets).

        A code value counts as active when ``|h| > threshold``. The default threshold is 1e-3 for ReLU and
        linear codes (ReLU and top-k give exact zeros) and 0.05 for sigmoid codes, which never reach 0: a
        sigmoid unit below 1/20 of its range counts as off.

        Parameters
        ----------
        X : array-like, (n_samples, *sample_shape)
        threshold : float, optional

        Returns
        -------
        dict
            ``threshold``; ``fraction_zero`` (fraction of code values that are off); ``mean_l0`` (mean number of
            active units per sample); ``n_dead`` and ``dead_fraction`` (units never active on ``X``);
            ``activation_frequency`` (list of K fractions of samples on which each unit is active);
            ``mean_activation`` (list of K mean values, the rho_hat_j of the KL penalty);
            ``reconstruction_error`` (mean of :meth:`reconstruction_error` over ``X``).
        """
        X = check_array(X)
        H = self.transform(X)  # (N, K)
        if threshold is None:
            threshold = ZERO_THRESHOLD[self.resolved_.code_activation]
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold < math.inf:
            raise ValueError(
                f"threshold must be a finite number >= 0 (|h| above it counts as active), got {threshold!r}; "
                "leave threshold=None for the default of the code activation"
            )
        active = np.abs(H) > threshold  # (N, K)
        freq = active.mean(axis=0)
        dead = ~active.any(axis=0)
        return {
            "threshold": float(threshold),
            "fraction_zero": float(1.0 - active.mean()),
            "mean_l0": float(active.sum(axis=1).mean()),
            "n_dead": int(dead.sum()),
            "dead_fraction": float(dead.mean()),
            "activation_frequency": [float(f) for f in freq],
            "mean_activation": [float(m) for m in H.mean(axis=0)],
            "reconstruction_error": float(self.reconstruction_error(X).mean()),
        }

    def dead_units(self, X: Any, threshold: float | None = None) -> np.ndarray:
        """Indices of the code units never active on ``X`` (see :meth:`sparsity_report`)."""
        freq = np.asarray(self.sparsity_report(check_array(X), threshold)["activation_frequency"])
        return np.flatnonzero(freq == 0)
