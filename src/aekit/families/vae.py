"""Variational autoencoder, importance-weighted autoencoder and conditional VAE.

D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR 2014; Y. Burda, R. Grosse and
R. Salakhutdinov, "Importance weighted autoencoders", ICLR 2016; K. Sohn, H. Lee and X. Yan, "Learning
structured output representation using deep conditional generative models", NeurIPS 2015.

The generative model is p(z) = N(0, I), p(x | z) Bernoulli (data in [0, 1]; the decoder gives the logits)
or Gaussian N(g(z), diag sigma^2) with sigma^2 fixed or learned per feature. The encoder gives
q(z | x) = N(mu(x), diag sigma^2(x)); a sample is z = mu + sigma * eps, eps ~ N(0, I) (the
reparameterization trick). With k = 1 the model maximizes the evidence lower bound::

    ELBO(x) = E_q [log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x)

with the KL in closed form, and with k > 1 the importance-weighted bound::

    L_k(x) = E [ log (1/k) sum_i p(x, z_i) / q(z_i | x) ],  z_1..z_k ~ q(z | x),
    ELBO = L_1 <= L_k <= L_{k+1} <= log p(x).

The training loss is minus the bound, averaged over the batch, with the KL (or the log prior ratio of
the weights) multiplied by a weight ``kl_weight = beta * min(1, t / kl_warmup)`` that rises over the
first epochs or steps, and, with ``free_bits``, each code dimension's batch-mean KL floored at that many
nats. ``log_likelihood`` estimates log p(x) by importance sampling with q as the proposal.

Conditional (``conditional=True``): the label y enters the encoder and the decoder as a one-hot vector,
q(z | x, y) and p(x | z, y). An unlabelled sample (label -1), a label dropped in training with
probability ``label_dropout`` and a call without a label use the all-zero vector, so the same networks
also learn the label-free model (the null label of classifier-free guidance, Ho and Salimans 2022).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.losses import (
    binary_cross_entropy_with_logits,
    free_bits_kl,
    gaussian_log_density,
    gaussian_nll,
    kl_normal_std,
    kl_normal_std_dims,
)
from aekit.core.nets import Activation, apply_output, build_encoder_decoder, check_network
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import AUTO, Auto, Explain, Interval, check_count, seed_from
from aekit.data.preprocessing import UNLABELLED, Scaling, check_labels
from aekit.engine.state import TrainState
from aekit.engine.training import Callback, TrainConfig, check_binarizable
from aekit.model.base import BaseAutoencoder, DataInfo, declare_params
from aekit.model.classifier import ClassifierMixin, class_indices
from aekit.model.registry import register

#: The hidden widths (mlp) or channel counts (conv) that ``hidden_dims="auto"`` stands for.
AUTO_HIDDEN_DIMS = {"mlp": (256, 128), "conv": (32, 64)}
LIKELIHOODS = ("bernoulli", "gaussian")
# A learned decoder variance is kept above this: on data with repeated values the Gaussian likelihood is
# unbounded as sigma^2 -> 0.
MIN_DECODER_LOGVAR = math.log(1e-4)
# Decoder outputs held at once while estimating a bound (16 MB in float32, a few times that with temporaries).
_BOUND_BUDGET = 2**22

PRESETS: dict[str, dict[str, Any]] = {
    # Burda et al.'s MNIST model with one stochastic layer: 784-200-200-50, tanh units, Bernoulli decoder.
    "iwae": {"architecture": "mlp", "hidden_dims": (200, 200), "latent_dim": 50, "activation": "tanh",
             "likelihood": "bernoulli"},
}

HiddenDims = tuple[Annotated[int, Interval(1)], ...]


@dataclass
class VAEConfig:
    """Hyperparameters of the variational autoencoder's networks, likelihood and objective."""

    # An MLP works on any input shape; "conv" needs images (C, H, W) or signals (C, L).
    architecture: Literal["mlp", "conv"] = "mlp"
    # Widths of the MLP's hidden layers, or channel counts of the convolutional layers.
    hidden_dims: Annotated[HiddenDims | Literal["auto"], Auto("(256, 128) for mlp, channels (32, 64) for conv")] = "auto"
    latent_dim: Annotated[int, Interval(1)] = 16  # The code size K; 16 Gaussian units generate digits well.
    activation: Activation = "relu"  # The hidden non-linearity.
    # p(x|z): "bernoulli" (sigmoid of the decoder's logits; data in [0, 1]) or "gaussian" (real-valued data).
    likelihood: Annotated[
        Literal["auto", "bernoulli", "gaussian"], Auto("bernoulli for data in [0, 1], else gaussian", from_data=True)
    ] = "auto"
    # The Gaussian decoder's variance sigma^2 in the scaled data's units, a number or "learned" (one per
    # feature, as Kingma and Welling learned it for the Frey faces); unused by the Bernoulli decoder.
    decoder_variance: Annotated[
        float | Literal["learned"], Interval(0, closed="neither"),
        Explain("the Gaussian decoder's variance", "give a number > 0 or 'learned'"),
    ] = "learned"
    beta: Annotated[float, Interval(0), Explain("the weight of the KL term")] = 1.0  # 1 is the ELBO itself
    # Epochs (or steps, see kl_warmup_unit) over which the KL weight rises linearly from 0 to beta; 0: none.
    kl_warmup: Annotated[int, Interval(0)] = 0
    kl_warmup_unit: Literal["epochs", "steps"] = "epochs"  # what kl_warmup counts
    # A floor in nats on each code dimension's batch-mean KL (0: off); keeps units from collapsing to the prior.
    free_bits: Annotated[float, Interval(0)] = 0.0
    # Importance samples of the training bound: 1 is the ELBO (VAE), more the tighter IWAE bound.
    k: Annotated[int, Interval(1), Explain("the number of importance samples", "use k=1 for the plain ELBO")] = 1
    conditional: bool = False  # Condition encoder and decoder on the class label y (one-hot); needs y in fit.
    # In a conditional model, the chance a training label is hidden, so the label-free model is learned too.
    label_dropout: Annotated[float, Interval(0, 1, closed="left")] = 0.1
    # The data scaling stored with the model: images and data in [0, 1] as they are, other tabular data standardized.
    scaling: Annotated[Scaling, Auto("none for images and data in [0, 1], else standard", from_data=True)] = "auto"


class VAEModule(nn.Module):
    """Gaussian encoder, Bernoulli or Gaussian decoder, and the (importance-weighted) bound as its loss.

    Parameters
    ----------
    encoder : nn.Module
        (B, *encoder_input) -> (B, 2K): the mean and the log-variance of q(z|x).
    decoder : nn.Module
        (B, K + n_classes) -> (B, *sample_shape): the Bernoulli logits or the Gaussian mean.
    sample_shape : tuple of int
    latent_dim : int
    likelihood : {"bernoulli", "gaussian"}
    decoder_variance : float or "learned"
    n_classes : int
        0 for an unconditional model.
    conv : bool
        The encoder is convolutional (a label enters it as constant planes, not as extra features).
    k, beta, free_bits, label_dropout
        As :class:`VAEConfig`. ``kl_weight`` is a buffer changed in place by the warm-up callback.
    """

    kl_weight: Tensor
    decoder_logvar: Tensor

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, sample_shape: tuple[int, ...], latent_dim: int, likelihood: str,
        decoder_variance: float | str, n_classes: int = 0, conv: bool = False, k: int = 1, beta: float = 1.0,
        free_bits: float = 0.0, label_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; valid: {', '.join(LIKELIHOODS)}")
        self.encoder, self.decoder = encoder, decoder
        self.sample_shape, self.latent_dim, self.likelihood = tuple(sample_shape), int(latent_dim), likelihood
        self.n_classes, self.conv, self.k = int(n_classes), bool(conv), int(k)
        self.free_bits, self.label_dropout = float(free_bits), float(label_dropout)
        # The training loop passes the labels to forward and loss of a conditional model.
        self.uses_labels = self.conditions_on_labels = self.n_classes > 0
        self.register_buffer("kl_weight", torch.tensor(float(beta)))
        self.learned_variance = likelihood == "gaussian" and decoder_variance == "learned"
        if self.learned_variance:
            self.decoder_logvar = nn.Parameter(torch.zeros(self.sample_shape))
        elif likelihood == "gaussian":
            self.register_buffer("decoder_logvar", torch.full(self.sample_shape, math.log(float(decoder_variance))))

    # ------------------------------------------------------------------ the networks

    def one_hot(self, y: Tensor | None, batch: int, like: Tensor) -> Tensor:
        """Labels (B,) as indices into the classes, -1 for none, -> (B, n_classes); zeros for no label.

        In training, each label is hidden with probability ``label_dropout``.
        """
        if self.n_classes == 0 or y is None:
            return like.new_zeros((batch, self.n_classes))
        # By comparison, not F.one_hot, which checks the labels' range on the host: no sync, so the step
        # stays capturable as a CUDA graph. A label of -1 matches no class: zeros.
        oh = (y.unsqueeze(1) == torch.arange(self.n_classes, device=y.device)).to(like.dtype)  # (B, n_classes)
        if self.training and self.label_dropout > 0:
            oh = oh * (torch.rand(y.shape, device=y.device) >= self.label_dropout).unsqueeze(1).to(like.dtype)
        return oh

    def posterior(self, x: Tensor, onehot: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x, y): (B, *sample_shape) -> mean and log-variance, each (B, K)."""
        if self.n_classes:
            if self.conv:
                planes = onehot.reshape(*onehot.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
                x = torch.cat([x, planes], dim=1)  # (B, C + n_classes, *spatial)
            else:
                x = torch.cat([x.reshape(x.shape[0], -1), onehot], dim=1)  # (B, D + n_classes)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode_raw(self, z: Tensor, onehot: Tensor) -> Tensor:
        """(B, K) codes -> (B, *sample_shape) logits (Bernoulli) or means (Gaussian)."""
        return self.decoder(torch.cat([z, onehot], dim=1) if self.n_classes else z)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The posterior mean mu(x), (B, K): the code of x."""
        return self.posterior(x, self.one_hot(y, x.shape[0], x))[0]

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The decoder's mean E[x | z], (B, *sample_shape): probabilities (Bernoulli) or the Gaussian mean."""
        raw = self.decode_raw(z, self.one_hot(y, z.shape[0], z))
        return apply_output("sigmoid" if self.likelihood == "bernoulli" else "linear", raw)

    def forward(self, x: Tensor, y: Tensor | None = None) -> AEOutput:
        onehot = self.one_hot(y, x.shape[0], x)
        mu, logvar = self.posterior(x, onehot)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # the reparameterization trick, (B, K)
        raw = self.decode_raw(z, onehot)
        bern = self.likelihood == "bernoulli"
        return AEOutput(z=z, x_hat=apply_output("sigmoid" if bern else "linear", raw), logits=raw if bern else None,
                        mu=mu, logvar=logvar, x_in=x, extras={"raw": raw, "onehot": onehot})

    # ------------------------------------------------------------------ densities

    def log_px_z(self, x: Tensor, raw: Tensor) -> Tensor:
        """log p(x | z) per sample from the decoder's raw output, (B,)."""
        if self.likelihood == "bernoulli":
            return -binary_cross_entropy_with_logits(raw, x)
        return -gaussian_nll(raw, self.decoder_logvar.clamp(min=MIN_DECODER_LOGVAR), x)

    def log_weights(self, x: Tensor, mu: Tensor, logvar: Tensor, z: Tensor, onehot: Tensor,
                    prior_weight: Tensor | float = 1.0) -> Tensor:
        """log p(x|z_s) + w (log p(z_s) - log q(z_s|x)) for codes z (S, B, K) -> (S, B).

        With w = 1 these are the log importance weights log p(x, z_s) / q(z_s | x).
        """
        s, b = z.shape[0], z.shape[1]
        raw = self.decode_raw(z.reshape(s * b, -1), onehot.repeat(s, 1))  # (S*B, *sample_shape)
        lpx = self.log_px_z(x.repeat(s, *([1] * (x.dim() - 1))), raw).reshape(s, b)
        return lpx + prior_weight * (gaussian_log_density(z) - gaussian_log_density(z, mu, logvar))

    def loss(self, x: Tensor, out: AEOutput, y: Tensor | None = None) -> LossOutput:
        """Minus the bound, batch-averaged. Terms (each already signed and weighted, summing to the total):
        k = 1: ``reconstruction`` = -E_q log p(x|z) (weight 1) and ``kl`` = kl_weight * KL (free bits applied);
        k > 1: ``neg_iwae_bound`` = -L_k, with kl_weight on the log prior ratio of each weight."""
        assert out.mu is not None and out.logvar is not None
        raw, onehot = out.extras["raw"], out.extras["onehot"]
        if self.k == 1:
            rec = -self.log_px_z(x, raw).mean()
            kl = free_bits_kl(kl_normal_std_dims(out.mu, out.logvar), self.free_bits)
            kl_term = self.kl_weight * kl
            return LossOutput(rec + kl_term, {"reconstruction": rec, "kl": kl_term})
        std = torch.exp(0.5 * out.logvar)
        more = out.mu + std * torch.randn((self.k - 1, *out.mu.shape), device=x.device, dtype=x.dtype)
        lw_first = self.log_px_z(x, raw) + self.kl_weight * (
            gaussian_log_density(out.z) - gaussian_log_density(out.z, out.mu, out.logvar))  # (B,)
        lw = torch.cat([lw_first.unsqueeze(0), self.log_weights(x, out.mu, out.logvar, more, onehot, self.kl_weight)])
        neg = -(torch.logsumexp(lw, dim=0) - math.log(self.k)).mean()
        return LossOutput(neg, {"neg_iwae_bound": neg})


class KLWarmup(Callback):
    """Sets the module's ``kl_weight`` to beta * min(1, epochs done / warmup) at each epoch's start, and logs
    it as the history column ``kl_weight``. While the weight is still rising, the losses of successive epochs
    weigh the KL differently and do not compare, so early stopping starts counting after the warm-up."""

    def __init__(self, beta: float, warmup: int) -> None:
        self.beta, self.warmup = float(beta), int(warmup)

    def weight(self, t: int) -> float:
        return self.beta if self.warmup == 0 else self.beta * min(1.0, t / self.warmup)

    def _progress(self, state: TrainState) -> int:
        return state.epoch

    def _set(self, state: TrainState) -> None:
        module: Any = state.module
        module.kl_weight.fill_(self.weight(self._progress(state)))

    def on_train_begin(self, state: TrainState) -> None:
        self._set(state)

    def on_epoch_begin(self, state: TrainState) -> None:
        self._set(state)

    def on_epoch_end(self, state: TrainState) -> None:
        module: Any = state.module
        w = float(module.kl_weight)
        state.history[-1]["kl_weight"] = w
        if w < self.beta:
            state.best_val, state.best_epoch, state.bad_epochs, state.best_state = math.inf, -1, 0, None


class KLWarmupBySteps(KLWarmup):
    """:class:`KLWarmup` by optimizer steps: the weight is updated after every step."""

    def _progress(self, state: TrainState) -> int:
        return state.step

    def on_epoch_begin(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState) -> None:
        self._set(state)


@register(
    "vae",
    "variational autoencoder: Gaussian encoder, Bernoulli or Gaussian decoder, beta, KL warm-up, free bits, "
    "importance-weighted bound (k), log-likelihood estimate; conditional on labels with conditional=True",
    capabilities=("gradient", "images", "labels", "loglik", "sample"),
)
@declare_params(VAEConfig, TrainConfig)
class VAE(BaseAutoencoder):
    """Variational autoencoder (Kingma and Welling 2014), IWAE (Burda et al. 2016) and conditional VAE.

    Parameters
    ----------
    architecture, hidden_dims, latent_dim, activation, likelihood, decoder_variance, beta, kl_warmup,
    kl_warmup_unit, free_bits, k, conditional, label_dropout, scaling
        See :class:`VAEConfig`.
    max_epochs, batch_size, learning_rate, ..., binarize, random_state, verbose
        See :class:`aekit.engine.training.TrainConfig`; ``binarize="dynamic"`` redraws each batch as
        Bernoulli(x), the dynamically binarized MNIST of the VAE literature.

    ``transform`` gives the posterior mean mu(x), ``inverse_transform`` the decoder's mean E[x|z],
    ``score_samples`` the ELBO in nats (a lower bound on log p(x)). ``history_`` has the loss terms
    ``reconstruction`` and ``kl`` (k = 1) or ``neg_iwae_bound`` (k > 1), and the column ``kl_weight``.

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X                            # (1437, 1, 8, 8) in [0, 1]
    >>> vae = aekit.VAE(latent_dim=8, max_epochs=5, verbose=0, random_state=0).fit(X)
    >>> vae.resolved_.likelihood
    'bernoulli'
    >>> vae.sample(4, random_state=0).shape
    (4, 1, 8, 8)
    >>> bool(vae.elbo(X[:10], n_samples=100).mean() <= vae.log_likelihood(X[:10], n_samples=100).mean())
    True
    """

    _presets: ClassVar[Mapping[str, Mapping[str, Any]]] = PRESETS
    _test_params: ClassVar[dict[str, Any]] = {
        "hidden_dims": (16,), "latent_dim": 4, "max_epochs": 2, "batch_size": 32, "verbose": 0, "random_state": 0,
    }
    _test_variants: ClassVar[tuple[dict[str, Any], ...]] = ({"k": 3}, {"architecture": "conv", "hidden_dims": (4,)})

    def _check_params(self) -> None:
        if self.architecture == "conv" and self.hidden_dims == ():
            raise ValueError("architecture='conv' needs at least one entry in hidden_dims (channel counts), got (); "
                             "use hidden_dims='auto' or e.g. (32, 64)")
        if self.free_bits > 0 and self.k > 1:
            raise ValueError(f"free_bits={self.free_bits} floors the KL term of the ELBO, which the importance-weighted "
                             f"bound (k={self.k}) does not have; use free_bits=0 with k > 1, or k=1")

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        """Hidden sizes, scaling and likelihood for ``data``; a ValueError for what the data cannot support."""
        r = dict(params)
        check_network(data.sample_shape, r["architecture"])
        if r["hidden_dims"] == AUTO:
            r["hidden_dims"] = AUTO_HIDDEN_DIMS[r["architecture"]]
        r["hidden_dims"] = tuple(int(d) for d in r["hidden_dims"])
        if r["scaling"] == AUTO:
            r["scaling"] = DataInfo.auto_scaling(data.sample_shape, data.min, data.max)
        lo, hi = data.scaled_range(r["scaling"])
        in_unit = lo >= 0.0 and hi <= 1.0
        check_binarizable(r.get("binarize", "none"), lo, hi)
        if r["likelihood"] == AUTO:
            r["likelihood"] = "bernoulli" if in_unit else "gaussian"
        if r["likelihood"] == "bernoulli" and not in_unit:
            raise ValueError(
                f"likelihood='bernoulli' models each value as a coin flip and needs data in [0, 1], but the scaled data "
                f"range over [{lo:.4g}, {hi:.4g}]; use scaling='minmax' to map each feature to [0, 1], or "
                "likelihood='gaussian' for real-valued data"
            )
        if r["likelihood"] == "gaussian" and r.get("binarize", "none") == "dynamic":
            raise ValueError(
                "binarize='dynamic' gives binary data, whose Gaussian likelihood is not a density of it; use "
                "likelihood='bernoulli' with binarized data, or binarize='none' with likelihood='gaussian'"
            )
        if r["conditional"] and data.classes is None:
            raise ValueError(
                "conditional=True conditions on class labels, but fit got none; pass integer labels y to fit "
                "(aekit train takes them from a labelled data set), or use conditional=False"
            )
        return r

    # ------------------------------------------------------------------ labels at fit time

    def _classes_of(self, y: Any, n: int) -> tuple[int, ...] | None:
        if not self.conditional or y is None:
            return None
        return ClassifierMixin._labelled_classes(y, n)

    def _fit_labels(self, y: Any, n: int) -> np.ndarray | None:
        classes = self.data_info_.classes
        if not self.resolved_.conditional or classes is None:
            return None
        return class_indices(check_labels(y, n), classes)

    def _n_classes(self) -> int:
        classes = self.data_info_.classes
        return len(classes) if self.resolved_.conditional and classes is not None else 0

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        r = self.resolved_
        c = self._n_classes()
        head = 2 * r.latent_dim
        if c == 0:
            encoder, decoder = build_encoder_decoder(sample_shape, r.architecture, r.hidden_dims, r.latent_dim,
                                                     r.activation, head_dim=head)
        else:
            # The label enters the encoder as extra input features (mlp) or constant planes (conv), and the
            # decoder beside the code.
            enc_shape = ((math.prod(sample_shape) + c,) if r.architecture == "mlp"
                         else (sample_shape[0] + c, *sample_shape[1:]))
            encoder, _ = build_encoder_decoder(enc_shape, r.architecture, r.hidden_dims, r.latent_dim, r.activation,
                                               head_dim=head)
            _, decoder = build_encoder_decoder(sample_shape, r.architecture, r.hidden_dims, r.latent_dim + c,
                                               r.activation)
        return VAEModule(encoder, decoder, sample_shape, r.latent_dim, r.likelihood, r.decoder_variance, c,
                         conv=r.architecture == "conv", k=r.k, beta=r.beta, free_bits=r.free_bits,
                         label_dropout=r.label_dropout)

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        module = self.module_
        if module.learned_variance:
            # Start the learned variance at each feature's variance in the data, the best variance of a
            # decoder that outputs the mean: from sigma^2 = 1 Adam's small steps take thousands of updates to
            # reach the data's scale, and until then the likelihood is too weak to keep the codes in use.
            var = np.asarray(Xs, dtype=np.float64).reshape(Xs.shape[0], -1).var(axis=0).reshape(module.sample_shape)
            with torch.no_grad():
                module.decoder_logvar.copy_(torch.from_numpy(np.log(np.maximum(var, math.exp(MIN_DECODER_LOGVAR)))))
        return super()._fit_module(Xs, y, seed, **fit_kw)

    def _callbacks(self) -> list[Callback]:
        r = self.resolved_
        by_steps = r.kl_warmup_unit == "steps"
        return [(KLWarmupBySteps if by_steps else KLWarmup)(r.beta, r.kl_warmup)]

    # ------------------------------------------------------------------ labels at inference

    def _label_indices(self, label: Any, n: int, name: str = "y", match: str = "X") -> Tensor | None:
        """A label (one int, or one per sample) as indices into the trained classes, (n,); None: no label.
        ``name`` and ``match`` name the labels and what sets their count in a message."""
        conditional = bool(self.resolved_.conditional)
        if label is None:
            return None if not conditional else torch.full((n,), UNLABELLED, dtype=torch.int64)
        if not conditional:
            raise ValueError(
                f"{name}={label!r} was given, but this {type(self).__name__} is not conditional (it was fitted with "
                f"conditional=False); leave {'the label' if name == 'label' else name} out, or fit with "
                "conditional=True and labels y"
            )
        classes: tuple[int, ...] = tuple(self.data_info_.classes or ())
        arr = np.asarray(label)
        if arr.ndim == 0:
            value = arr.item()
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer class label, got {label!r}; use one of {list(classes)}")
            labels = np.full(n, value, dtype=np.int64)
        else:
            labels = check_labels(arr, n, name, match)
        bad = sorted(set(labels.tolist()) - set(classes) - {UNLABELLED})
        if bad:
            shown = bad[0] if arr.ndim == 0 else bad[:5]
            raise ValueError(f"{name}={shown!r} is not among the classes {list(classes)} this {type(self).__name__} "
                             "was trained on; use one of them")
        return torch.from_numpy(class_indices(labels, classes))

    # ------------------------------------------------------------------ generation and likelihoods

    def sample(self, n: int, random_state: Any = None, label: Any = None) -> np.ndarray:
        """Draw z ~ N(0, I) and decode: the decoder's mean E[x | z], (n, *sample_shape), in data units.

        Parameters
        ----------
        n : int
            Number of samples, >= 1.
        random_state : int, RandomState or None
            Seed of the draws (a generator of its own; the global random state is untouched); None draws afresh.
        label : int or array-like of n ints, optional
            A conditional model's class label(s), from the classes it was trained on; None draws from its
            label-free model. An unconditional model takes no label.
        """
        self._check_fitted()
        n = check_count("n", n)
        y = self._label_indices(label, n, "label", f"n={n}")
        seed = seed_from(random_state, high=2**63 - 1)
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn((n, self.module_.latent_dim), generator=gen)
        decode = self.module_.decode
        out = self._batched(decode, z.numpy(), y) if y is not None else self._batched(lambda zz: decode(zz, None), z.numpy())
        return self.scaler_.inverse_transform(out)

    def elbo(self, X: Any, *, y: Any = None, n_samples: int = 1, random_state: Any = 0) -> np.ndarray:
        """The evidence lower bound E_q log p(x|z) - KL(q(z|x) || p(z)) of each sample, in nats, shape (n,).

        The KL is exact; the expectation is the mean over ``n_samples`` draws of eps, drawn for each row from
        ``random_state`` (an int, a RandomState that draws one, or None for a fresh one) and the row's values (so a
        row's value does not depend on the others in ``X``). A Gaussian model's value is the density
        of ``X`` in its own units (the scaling's Jacobian included); under a Bernoulli decoder a sample
        outside [0, 1] has probability 0, so its value is -inf.
        """
        n_samples = check_count("n_samples", n_samples)
        return self._bound(X, y, n_samples, random_state, iwae=False)

    def iwae_bound(self, X: Any, k: int, *, y: Any = None, random_state: Any = 0) -> np.ndarray:
        """The importance-weighted bound L_k = log (1/k) sum_i p(x, z_i) / q(z_i|x) of each sample, nats, (n,).

        L_1 is the ELBO (with a sampled KL); L_k rises with k towards log p(x). The draws are made as in
        :meth:`elbo`.
        """
        k = check_count("k", k)
        return self._bound(X, y, k, random_state, iwae=True)

    def log_likelihood(self, X: Any, n_samples: int = 5000, *, y: Any = None, batch_size: int | None = None,
                       random_state: Any = 0) -> np.ndarray:
        """Importance-sampling estimate of log p(x) of each sample, in nats, (n,).

        ``log (1/S) sum_s p(x, z_s) / q(z_s|x)`` with z_s ~ q(z|x), computed by logsumexp over chunks of
        samples and rows so that at most about 2^22 decoder outputs are held at once (``batch_size`` rows at a
        time; default: as many as fit). It is L_S, a lower bound that tightens as ``n_samples`` grows;
        Burda et al. use 5,000 samples.
        """
        n_samples = check_count("n_samples", n_samples)
        if batch_size is not None:
            batch_size = check_count("batch_size", batch_size)
        return self._bound(X, y, n_samples, random_state, iwae=True, batch_size=batch_size)

    def score_samples(self, X: Any) -> np.ndarray:
        """The ELBO of each sample in nats (:meth:`elbo`), a lower bound on log p(x); higher is more likely."""
        return self.elbo(X)

    def score(self, X: Any, y: Any = None) -> float:
        """The mean ELBO of ``X`` in nats; a conditional model scores ``X`` given its labels ``y`` when they are
        passed (a model fitted without labels ignores ``y``, as a scikit-learn transformer does)."""
        self._check_fitted()
        if y is not None and bool(self.resolved_.conditional):
            return float(np.mean(self.elbo(X, y=y)))
        return float(np.mean(self.score_samples(X)))

    # ------------------------------------------------------------------ internals

    def _bound(self, X: Any, y: Any, s: int, random_state: Any, *, iwae: bool, batch_size: int | None = None) -> np.ndarray:
        seed = seed_from(random_state)
        Xs = self._prepare(X)
        n = Xs.shape[0]
        labels = self._label_indices(y, n)
        # In float64, on a copy: float32 matrix products round differently for different batch sizes, which
        # the sum over features and samples would carry into a row's value.
        m = copy.deepcopy(self.module_).double().eval()
        dev = self.device_
        d = max(1, math.prod(self.sample_shape_))
        # Each row draws its eps from a generator seeded by random_state and the row's own values: the draws
        # are independent across rows, yet a row's value is the same whatever batch or order it comes in.
        # The chunk of samples drawn at a time is fixed by s and d alone, so the draws do not depend on n.
        chunk = max(1, min(s, 256, _BOUND_BUDGET // d))
        rows = batch_size or max(1, _BOUND_BUDGET // (d * chunk))
        out = np.empty(n, dtype=np.float64)
        with torch.no_grad():
            for i in range(0, n, rows):
                block = Xs[i : i + rows]
                gens = [torch.Generator().manual_seed(_row_seed(seed, row)) for row in block]
                x = torch.from_numpy(block).to(dev, torch.float64)  # (b, *sample_shape)
                onehot = m.one_hot(None if labels is None else labels[i : i + rows].to(dev), x.shape[0], x)
                mu, logvar = m.posterior(x, onehot)
                std = torch.exp(0.5 * logvar)
                parts = []
                for j in range(0, s, chunk):
                    c = min(chunk, s - j)
                    eps = torch.stack([torch.randn((c, m.latent_dim), generator=g, dtype=torch.float64) for g in gens],
                                      dim=1).to(dev)
                    z = mu + std * eps  # (c, b, K)
                    if iwae:
                        parts.append(torch.logsumexp(m.log_weights(x, mu, logvar, z, onehot), dim=0))
                    else:
                        parts.append(m.log_weights(x, mu, logvar, z, onehot, 0.0).sum(dim=0))
                total = torch.stack(parts)
                if iwae:
                    val = torch.logsumexp(total, dim=0) - math.log(s)
                else:
                    val = total.sum(dim=0) / s - kl_normal_std(mu, logvar)
                out[i : i + rows] = val.cpu().numpy()
        if self.resolved_.likelihood == "gaussian":
            # log p(x) = log p(x_scaled) + log |d x_scaled / d x|, x_scaled = (x - shift) / scale.
            out -= float(np.log(self.scaler_.scale.astype(np.float64)).sum())
        else:
            flat = Xs.reshape(n, -1)
            out[(flat < 0).any(axis=1) | (flat > 1).any(axis=1)] = -np.inf
        return out


def _row_seed(random_state: int, row: np.ndarray) -> int:
    """A 63-bit seed from ``random_state`` and the bytes of one sample."""
    h = hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8, key=str(int(random_state)).encode())
    return int.from_bytes(h.digest(), "little") & (2**63 - 1)


__all__: Sequence[str] = ["VAE", "VAEConfig", "VAEModule", "KLWarmup", "KLWarmupBySteps"]
