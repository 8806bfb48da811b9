"""Deep nonlinear autoencoder: MLP of any depth and width, or convolutional.

G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality of data with neural networks",
Science 313 (2006). Solves::

    min_{f, g}  (1/N) sum_n  L(x_n, g(f(x_n)))

with L the Bernoulli negative log-likelihood (sigmoid output, data in [0, 1]) or the squared error
(linear output, real-valued data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from aekit.core.losses import reconstruction
from aekit.core.nets import ACTIVATIONS, ARCHITECTURES, OUTPUTS, apply_output, build_encoder_decoder
from aekit.core.outputs import AEOutput, LossOutput
from aekit.data.preprocessing import SCALINGS
from aekit.engine.training import TrainConfig
from aekit.model.base import BaseAutoencoder, declare_params
from aekit.model.registry import register

PRESETS: dict[str, dict[str, Any]] = {
    # Hinton & Salakhutdinov's MNIST network, linear code units. The paper used logistic units with RBM
    # pretraining; without pretraining GELU units train far faster (see benchmarks/RESULTS.md).
    "hinton": {"architecture": "mlp", "hidden_dims": (1000, 500, 250), "latent_dim": 30, "activation": "gelu"},
    # The lecture's convolutional network; MNIST normalized with mean 0.5, std 0.5 and a Tanh output.
    "lecture-conv": {"architecture": "lecture-conv", "latent_dim": 32, "activation": "relu", "scaling": "normalize",
                     "output": "tanh", "loss": "mse"},
}
_DEFAULTS = {"architecture": "mlp", "hidden_dims": (256, 128), "latent_dim": 32, "activation": "relu"}
LOSSES = ("auto", "bce", "mse")


@dataclass
class AutoencoderConfig:
    """Hyperparameters of the deep autoencoder (None or "auto": from the preset, else the data)."""

    architecture: str | None = None  # "mlp" (any input shape, fastest on a CPU), "conv" or "lecture-conv"
    hidden_dims: tuple[int, ...] | None = None  # MLP widths or conv channels; None: (256, 128) or the preset's
    latent_dim: int | None = None  # code size K; None: 32 or the preset's
    activation: str | None = None  # hidden non-linearity; None: relu or the preset's
    output: str = "auto"  # "sigmoid" for data in [0, 1], "linear" otherwise, "tanh" for [-1, 1]
    loss: str = "auto"  # "bce" with a sigmoid output, "mse" otherwise
    tied: bool = False  # decoder weights = encoder weights transposed (MLP only)
    preset: str | None = None  # "hinton" or "lecture-conv"
    scaling: str = "auto"  # data scaling stored with the model: images in [0, 1] kept, tabular standardized


class AutoencoderModule(nn.Module):
    """Encoder f, decoder g and the output non-linearity; ``loss`` is the reconstruction term only.

    Families that add a penalty subclass this and extend ``loss``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, output: str, loss: str) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.output, self.loss_kind = output, loss

    def encode(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, K)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """(B, K) -> (B, *sample_shape), in data space."""
        return apply_output(self.output, self.decoder(z))

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encoder(x)
        raw = self.decoder(z)
        return AEOutput(z=z, x_hat=apply_output(self.output, raw), logits=raw if self.output == "sigmoid" else None)

    def reconstruction_loss(self, x: Tensor, out: AEOutput) -> Tensor:
        return reconstruction(self.loss_kind, x, out.x_hat, out.logits).mean()

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        rec = self.reconstruction_loss(x, out)
        return LossOutput(rec, {"reconstruction": rec})


@register(
    "autoencoder",
    "deep nonlinear autoencoder, MLP or convolutional; sigmoid+BCE for [0,1] data, linear+MSE otherwise",
    capabilities=("gradient", "images"),
)
@declare_params(AutoencoderConfig, TrainConfig)
class Autoencoder(BaseAutoencoder):
    """Deep autoencoder, scikit-learn style.

    Parameters
    ----------
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, preset, scaling
        See :class:`AutoencoderConfig`.
    max_epochs, batch_size, learning_rate, weight_decay, lr_schedule, validation_fraction, patience,
    device, random_state, verbose, cuda_graph
        See :class:`aekit.engine.training.TrainConfig`.

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X            # (1437, 1, 8, 8) in [0, 1]
    >>> ae = aekit.Autoencoder(latent_dim=2, max_epochs=5, verbose=0).fit(X)
    >>> ae.transform(X).shape
    (1437, 2)
    """

    #: A tiny, fast configuration for the shared test suite (subclasses inherit it).
    _test_params: ClassVar[dict[str, Any]] = {
        "hidden_dims": (16,), "latent_dim": 4, "max_epochs": 2, "batch_size": 32, "verbose": 0, "random_state": 0,
    }

    def _resolved(self) -> dict[str, Any]:
        cfg = self._config(AutoencoderConfig)
        if cfg.preset is not None and cfg.preset not in PRESETS:
            raise ValueError(f"unknown preset {cfg.preset!r}; valid: {', '.join(PRESETS)}")
        preset = PRESETS.get(cfg.preset or "", {})
        out = {}
        for key in ("architecture", "hidden_dims", "latent_dim", "activation"):
            val = getattr(cfg, key)
            out[key] = val if val is not None else preset.get(key, _DEFAULTS[key])
        for key in ("output", "loss", "scaling"):
            val = getattr(cfg, key)
            out[key] = preset.get(key, val) if val == "auto" else val
        out["tied"] = cfg.tied
        if out["architecture"] == "conv" and cfg.hidden_dims is None and "hidden_dims" not in preset:
            out["hidden_dims"] = (32, 64)
        return out

    def _check_params(self) -> None:
        r = self._resolved()
        if r["architecture"] not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {r['architecture']!r}; valid: {', '.join(ARCHITECTURES)}")
        if r["activation"] not in ACTIVATIONS:
            raise ValueError(f"unknown activation {r['activation']!r}; valid: {', '.join(ACTIVATIONS)}")
        if r["output"] not in (*OUTPUTS, "auto"):
            raise ValueError(f"unknown output {r['output']!r}; valid: auto, {', '.join(OUTPUTS)}")
        if r["loss"] not in LOSSES:
            raise ValueError(f"unknown loss {r['loss']!r}; valid: {', '.join(LOSSES)}")
        if r["scaling"] not in SCALINGS:
            raise ValueError(f"unknown scaling {r['scaling']!r}; valid: {', '.join(SCALINGS)}")
        lat = r["latent_dim"]
        if isinstance(lat, bool) or not isinstance(lat, int | np.integer) or lat < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {lat!r}")
        dims = r["hidden_dims"]
        if not isinstance(dims, tuple | list) or not all(isinstance(d, int | np.integer) and d >= 1 for d in dims):
            raise ValueError(f"hidden_dims must be a tuple of positive integers, got {dims!r}")
        self._train_config()

    def _scaling(self) -> str:
        return str(self._resolved()["scaling"])

    def _check_scaled_range(self, Xs: np.ndarray) -> None:
        r = self._resolved()
        lo, hi = float(Xs.min()), float(Xs.max())
        in_unit = lo >= 0.0 and hi <= 1.0
        output, loss = r["output"], r["loss"]
        if output == "auto":
            output = "sigmoid" if (in_unit and loss != "mse") or loss == "bce" else "linear"
        if loss == "auto":
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
        self.fitted_info_ = {"output": output, "loss": loss}

    def _make_module(self, sample_shape: tuple[int, ...]) -> AutoencoderModule:
        r = self._resolved()
        encoder, decoder = build_encoder_decoder(
            sample_shape, r["architecture"], r["hidden_dims"], r["latent_dim"], r["activation"], r["tied"]
        )
        return AutoencoderModule(encoder, decoder, self.fitted_info_["output"], self.fitted_info_["loss"])

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        return self._make_module(sample_shape)
