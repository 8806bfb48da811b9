"""Deep nonlinear autoencoder: MLP of any depth and width, or convolutional.

G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality of data with neural networks",
Science 313 (2006). Solves::

    min_{f, g}  (1/N) sum_n  L(x_n, g(f(x_n)))

with L the Bernoulli negative log-likelihood (sigmoid output, data in [0, 1]) or the squared error
(linear output, real-valued data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from torch import Tensor, nn

from aekit.core.losses import reconstruction
from aekit.core.nets import (
    LECTURE_CODE,
    OUTPUTS,
    Activation,
    Architecture,
    activation,
    apply_output,
    build_encoder_decoder,
    check_network,
)
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import AUTO, Auto, Interval, check_value
from aekit.data.preprocessing import Scaling
from aekit.engine.training import TrainConfig
from aekit.model.base import BaseAutoencoder, DataInfo, declare_params
from aekit.model.registry import register

#: The hidden widths (mlp) or channel counts (conv) that ``hidden_dims="auto"`` stands for.
AUTO_HIDDEN_DIMS = {"mlp": (256, 128), "conv": (32, 64), "lecture-conv": ()}
LOSSES = ("bce", "mse")

PRESETS: dict[str, dict[str, Any]] = {
    # Hinton & Salakhutdinov's MNIST network, linear code units. The paper used logistic units with RBM
    # pretraining; without pretraining GELU units train far faster (see benchmarks/RESULTS.md).
    "hinton": {"architecture": "mlp", "hidden_dims": (1000, 500, 250), "latent_dim": 30, "activation": "gelu"},
    # The lecture's convolutional network; MNIST normalized with mean 0.5, std 0.5 and a Tanh output.
    "lecture-conv": {"architecture": "lecture-conv", "hidden_dims": (), "latent_dim": LECTURE_CODE,
                     "activation": "relu", "scaling": "normalize", "output": "tanh", "loss": "mse"},
}

HiddenDims = tuple[Annotated[int, Interval(1)], ...]


@dataclass
class AutoencoderConfig:
    """Hyperparameters of the deep autoencoder's network and of its reconstruction term."""

    # An MLP works on any input shape and is the fastest on a CPU; "conv" needs images or signals,
    # "lecture-conv" is the lecture's fixed network for 28x28 images.
    architecture: Architecture = "mlp"
    # Widths of the MLP's hidden layers, or channel counts of the convolutional layers. Two layers narrowing
    # towards the code reconstruct digits and MNIST well at a small cost.
    hidden_dims: Annotated[HiddenDims | Literal["auto"], Auto("(256, 128) for mlp, channels (32, 64) for conv")] = "auto"
    latent_dim: Annotated[int, Interval(1)] = 32  # The code size K; 32 keeps most of MNIST's detail.
    activation: Activation = "relu"  # The hidden non-linearity; ReLU trains fast without pretraining.
    # The decoder's output non-linearity, matched to the range of the scaled data.
    output: Annotated[
        Literal["auto", "sigmoid", "linear", "tanh"],
        Auto("sigmoid for data in [0, 1] unless loss='mse', else linear", from_data=True),
    ] = "auto"
    # The reconstruction term: the Bernoulli likelihood for a sigmoid output, the squared error otherwise.
    loss: Annotated[Literal["auto", "bce", "mse"], Auto("bce with a sigmoid output, else mse", from_data=True)] = "auto"
    tied: bool = False  # Decoder weights are the encoder's transposed (MLP only), halving the parameters.
    # The data scaling stored with the model: images, signals and data in [0, 1] are kept as they are,
    # other tabular data standardized.
    scaling: Annotated[Scaling, Auto("none for images and data in [0, 1], else standard", from_data=True)] = "auto"


class AutoencoderModule(nn.Module):
    """Encoder f, decoder g and the output non-linearity; ``loss`` is the reconstruction term only.

    This is the public way to build one autoencoder layer from any encoder and decoder (the stacked
    family builds its layers so). ``forward`` is written once, in terms of :meth:`encode` and
    :meth:`decode`'s network: a variant overrides :meth:`encode` (a code non-linearity, top-k) and
    :meth:`loss` (a penalty), nothing else.

    Parameters
    ----------
    encoder : nn.Module
        (B, *sample_shape) -> (B, K).
    decoder : nn.Module
        (B, K) -> (B, *sample_shape), before the output non-linearity.
    output : {"sigmoid", "linear", "tanh"}
        The output non-linearity.
    loss : {"bce", "mse"}
        The reconstruction term; "bce" needs ``output="sigmoid"``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, output: str, loss: str) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; valid: {', '.join(OUTPUTS)}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
        if loss == "bce" and output != "sigmoid":
            raise ValueError(f"loss='bce' needs output='sigmoid', got output={output!r}; use loss='mse' instead")
        self.encoder, self.decoder = encoder, decoder
        self.output, self.loss_kind = output, loss

    def encode(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, K)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """(B, K) -> (B, *sample_shape), in data space."""
        return apply_output(self.output, self.decoder(z))

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        raw = self.decoder(z)
        return AEOutput(
            z=z, x_hat=apply_output(self.output, raw), logits=raw if self.output == "sigmoid" else None, x_in=x
        )

    def reconstruction_loss(self, x: Tensor, out: AEOutput) -> Tensor:
        return reconstruction(self.loss_kind, x, out.x_hat, out.logits).mean()

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        rec = self.reconstruction_loss(x, out)
        return LossOutput(rec, {"reconstruction": rec})


@register(
    "autoencoder",
    "deep nonlinear autoencoder, MLP or convolutional; sigmoid+BCE for [0,1] data, linear+MSE otherwise",
    capabilities=("gradient", "images", "stackable"),
)
@declare_params(AutoencoderConfig, TrainConfig)
class Autoencoder(BaseAutoencoder):
    """Deep autoencoder, scikit-learn style.

    Parameters
    ----------
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, scaling
        See :class:`AutoencoderConfig`.
    max_epochs, batch_size, learning_rate, weight_decay, lr_schedule, validation_fraction, patience,
    device, random_state, verbose, cuda_graph
        See :class:`aekit.engine.training.TrainConfig`.

    Presets (:meth:`from_preset`): ``"hinton"`` (784-1000-500-250-30, GELU) and ``"lecture-conv"`` (the
    lecture's convolutional network for 28x28 images, data normalized to [-1, 1], Tanh output).

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X            # (1437, 1, 8, 8) in [0, 1]
    >>> ae = aekit.Autoencoder(latent_dim=2, max_epochs=5, verbose=0).fit(X)
    >>> ae.transform(X).shape
    (1437, 2)
    >>> ae.resolved_.output, ae.resolved_.loss      # chosen from the data range
    ('sigmoid', 'bce')
    """

    _presets: ClassVar[Mapping[str, Mapping[str, Any]]] = PRESETS
    #: A tiny, fast configuration for the shared test suite (subclasses inherit it).
    _test_params: ClassVar[dict[str, Any]] = {
        "hidden_dims": (16,), "latent_dim": 4, "max_epochs": 2, "batch_size": 32, "verbose": 0, "random_state": 0,
    }
    _test_variants: ClassVar[tuple[dict[str, Any], ...]] = ({"tied": True}, {"architecture": "conv", "hidden_dims": (4,)})

    def _check_params(self) -> None:
        arch, dims = self.architecture, self.hidden_dims
        if self.tied and arch != "mlp":
            raise ValueError(f"tied weights are available for architecture='mlp' only, not {arch!r}; use tied=False")
        if arch == "conv" and dims == ():
            raise ValueError(
                "architecture='conv' needs at least one entry in hidden_dims (channel counts), got (); "
                "use hidden_dims='auto' or e.g. (32, 64)"
            )
        if arch == "lecture-conv" and self.latent_dim != LECTURE_CODE:
            raise ValueError(
                f"architecture='lecture-conv' has a code of {LECTURE_CODE} values, got latent_dim={self.latent_dim}; "
                f"use latent_dim={LECTURE_CODE}, or architecture='conv' for another code size"
            )
        if self.loss == "bce" and self.output not in ("auto", "sigmoid"):
            raise ValueError(f"loss='bce' needs output='sigmoid', got output={self.output!r}; use loss='mse' instead")

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        """Hidden sizes, data scaling, output layer and loss for ``data``; a ValueError for a combination
        the data cannot support."""
        r = dict(params)
        check_network(data.sample_shape, r["architecture"])
        if r["hidden_dims"] == AUTO:
            r["hidden_dims"] = AUTO_HIDDEN_DIMS[r["architecture"]]
        r["hidden_dims"] = tuple(int(d) for d in r["hidden_dims"])
        if r["scaling"] == AUTO:
            r["scaling"] = DataInfo.auto_scaling(data.sample_shape, data.min, data.max)
        r["output"], r["loss"] = output_and_loss(r["output"], r["loss"], *data.scaled_range(r["scaling"]))
        return r

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        encoder, decoder = self._networks(sample_shape)
        return AutoencoderModule(encoder, decoder, self.resolved_.output, self.resolved_.loss)

    def _networks(self, sample_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
        """The encoder and decoder of ``resolved_`` for samples of ``sample_shape``."""
        r = self.resolved_
        return build_encoder_decoder(sample_shape, r.architecture, r.hidden_dims, r.latent_dim, r.activation, r.tied)

    # ------------------------------------------------------------------ one layer of a stack
    # Families registered with the capability "stackable" provide these; the stacked family builds
    # and trains its layers through them only.

    #: The parameters of the family that a layer of a stack takes from ``options`` (none for the plain one).
    _layer_config: ClassVar[type | None] = None

    @classmethod
    def layer_options(cls, options: Mapping[str, Any], out_dim: int, act: str) -> dict[str, Any]:
        """This family's own settings of one shallow layer of a stack, every "auto" decided.

        Parameters
        ----------
        options : mapping
            Some of the family's parameters by name (e.g. ``{"penalty": "kl"}``); the others take their
            declared defaults. Each is checked against its declared type.
        out_dim : int
            The layer's code size.
        act : str
            The layer's code units (a key of :data:`aekit.core.nets.ACTIVATIONS`).

        Returns
        -------
        dict
            The settings by parameter name, as :meth:`layer_module` uses them; empty for the plain autoencoder.
        """
        if cls._layer_config is None:
            return {}
        declared = {f.name: f for f in dataclasses.fields(cls._layer_config)}
        params = {name: f.default for name, f in declared.items()}
        for name, value in options.items():
            if name in declared:
                check_value(name, value, cls._param_types[name])  # type: ignore[attr-defined]
                params[name] = value
        return params

    @classmethod
    def layer_module(
        cls,
        in_shape: tuple[int, ...],
        out_dim: int,
        act: str,
        tied: bool,
        output: str,
        loss: str,
        options: Mapping[str, Any],
    ) -> AutoencoderModule:
        """One shallow autoencoder of this family, one linear layer each way, as a layer of a stack.

        Parameters
        ----------
        in_shape : tuple of int
            One input sample's shape: the data's for the first layer, (d,) for the codes of the layer below.
        out_dim : int
            The code size.
        act : str
            The code units' non-linearity.
        tied : bool
            The decoder's weight is the encoder's transposed.
        output, loss : str
            The output non-linearity and reconstruction term, matched to the range of the layer's input.
        options : mapping
            The family's own settings, see :meth:`layer_options`.

        Returns
        -------
        AutoencoderModule
            ``encode``: (B, *in_shape) -> (B, out_dim); ``decode`` back. A module with a ``prepare(H)``
            method wants its training input ``H`` (N, *in_shape) before it is trained.
        """
        encoder, decoder = build_encoder_decoder(in_shape, "mlp", (), out_dim, act, tied)
        return cls._layer(encoder, decoder, output, loss, tuple(in_shape), act, cls.layer_options(options, out_dim, act))

    @classmethod
    def _layer(
        cls, encoder: nn.Module, decoder: nn.Module, output: str, loss: str, in_shape: tuple[int, ...], act: str,
        settings: Mapping[str, Any],
    ) -> AutoencoderModule:
        """The module of one layer around its one-layer encoder and decoder; a variant builds its own module."""
        return AutoencoderModule(nn.Sequential(encoder, activation(act)), decoder, output, loss)

    @classmethod
    def layer_corruption(cls, options: Mapping[str, Any]) -> Callable[[Tensor], Tensor] | None:
        """The corruption q(h'|h) that a layer of this family is trained under; None: its clean input."""
        return None


def output_and_loss(output: str, loss: str, lo: float, hi: float) -> tuple[str, str]:
    """The output non-linearity and reconstruction term for scaled data in [lo, hi], "auto" decided.

    Raises a ValueError naming the data range and the fix when the data cannot support the choice.
    """
    in_unit = lo >= 0.0 and hi <= 1.0
    if output == AUTO:
        output = "sigmoid" if (in_unit and loss != "mse") or loss == "bce" else "linear"
    if loss == AUTO:
        loss = "bce" if output == "sigmoid" else "mse"
    if loss == "bce" and not in_unit:
        raise ValueError(
            f"loss='bce' (binary cross-entropy) needs data in [0, 1], but the scaled data range over [{lo:.4g}, "
            f"{hi:.4g}]; use scaling='minmax' to map each feature to [0, 1], or loss='mse' with output='linear'"
        )
    if loss == "bce" and output != "sigmoid":
        raise ValueError(f"loss='bce' needs output='sigmoid', got output={output!r}; use loss='mse' instead")
    if output == "sigmoid" and not in_unit:
        raise ValueError(
            f"output='sigmoid' can only produce values in (0, 1), but the data range over [{lo:.4g}, {hi:.4g}]; "
            "use output='linear', or scaling='minmax'"
        )
    if output == "tanh" and (lo < -1 or hi > 1):
        raise ValueError(
            f"output='tanh' can only produce values in (-1, 1), but the data range over [{lo:.4g}, {hi:.4g}]; "
            "use output='linear' or scaling='normalize' for images in [0, 1]"
        )
    return output, loss
