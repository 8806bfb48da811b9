"""Rate-distortion autoencoder: a codec's transforms trained for rate and distortion together.

J. Ballé, V. Laparra and E. P. Simoncelli, "End-to-end optimized image compression", ICLR 2017;
L. Theis, W. Shi, A. Cunningham and F. Huszár, "Lossy image compression with compressive autoencoders",
ICLR 2017. The code ``z = f(x)`` is quantized to integers for coding; in training, rounding is replaced by
additive uniform noise (its gradient is zero almost everywhere), and the rate is the code length of the
noisy code under a learned density per code unit, here a Laplace with a learned location ``m_k`` and
scale ``b_k``, convolved with the uniform (which equals the probability mass of the unit bin)::

    min_{f, g, m, b}  (1/N) sum_n  E_u [ ||x_n - g(z~_n)||^2  +  lmbda * R(z~_n) ],
    z~_n = f(x_n) + u,   u ~ U(-1/2, 1/2)^K,
    R(z~) = -sum_k log2 [ F_k(z~_k - m_k + 1/2) - F_k(z~_k - m_k - 1/2) ],   F_k = CDF of Laplace(0, b_k)

(see :func:`aekit.core.losses.laplace_interval_bits`). With ``quantization="mixed"`` (the default) the
distortion term decodes the rounded code ``m + round(z - m)`` instead, with the identity's gradient
(D. Minnen and S. Singh, "Channel-wise autoregressive entropy models for learned image compression", ICIP
2020), and the rate stays that of the noisy code. A larger ``lmbda`` gives fewer bits and more
distortion: each trained model is one point of a rate-distortion curve. The quantization step is 1 in
the code's units; ``aekit.compress`` with ``step=1`` codes ``q_k = round(z_k - m_k)`` under exactly the
learned densities (:meth:`RateDistortionAutoencoder.code_density`), and other steps move along the
curve around the trained point. In evaluation (the validation loss) the code is rounded, not noised, so the
validation loss is the codec's own objective: the distortion of the decoded integers plus ``lmbda``
times their ideal code length.

Networks: for images, fully convolutional analysis and synthesis transforms (5x5 convolutions of stride 2
with GDN and inverse GDN between them, Ballé et al.), so the code is a map of ``latent_dim`` channels at
1/2^L of the image's size (L layers) and its units are its values, flattened; for other data an MLP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.losses import laplace_interval_bits, squared_error
from aekit.core.nets import build_encoder_decoder, check_network, mirror_padding, strided_stack
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import AUTO, Auto, Explain, Interval
from aekit.engine.training import TrainConfig
from aekit.model.base import BaseAutoencoder, DataInfo, declare_params
from aekit.model.registry import register

HiddenDims = tuple[Annotated[int, Interval(1)], ...]
#: The smallest Laplace scale of a code unit, in quantization steps: a unit the model stops using codes in
#: almost no bits without the density collapsing to a point mass (whose gradient would be unbounded).
MIN_SCALE = 0.02
#: The smallest spatial size the automatic conv depth leaves of an image: 32x32 -> 4x4 in three layers.
MIN_CODE_SIZE = 4


def auto_conv_depth(spatial: Sequence[int]) -> int:
    """Stride-2 layers for ``hidden_dims="auto"``: halve the smallest side while it stays >= 4, 1 to 4 layers.

    8x8 -> 1 layer (4x4), 28x28 -> 2 (7x7), 32x32 -> 3 (4x4), 64x64 -> 4 (4x4).
    """
    n = int(math.floor(math.log2(max(min(spatial), 1) / MIN_CODE_SIZE))) if spatial else 1
    return min(max(n, 1), 4)


@dataclass
class RateDistortionConfig:
    """Hyperparameters of the rate-distortion autoencoder."""

    # The weight of the rate (bits per sample) beside the squared error summed over a sample's values; the
    # trade-off of one trained model. 0.01 on 32x32 colour images in [0, 1] gives some 1,000 bits per image.
    lmbda: Annotated[
        float, Interval(0, closed="neither"),
        Explain("the weight of the rate in bits beside the squared error", "a larger lmbda gives fewer bits, e.g. 0.01"),
    ] = 0.01
    # "conv": fully convolutional transforms (images and signals only), the code a map of latent_dim
    # channels; "mlp": flatten, hidden layers, a code of latent_dim units.
    architecture: Annotated[
        Literal["auto", "mlp", "conv"], Auto("conv for images (C, H, W), else mlp", from_data=True)
    ] = "auto"
    # Channels of the stride-2 convolutions (conv) or widths of the hidden layers (mlp).
    hidden_dims: Annotated[
        HiddenDims | Literal["auto"],
        Auto("64 channels per stride-2 layer, as many layers as keep the code map at least 4x4, for conv; "
             "(256, 128) for mlp", from_data=True),
    ] = "auto"
    # Channels of the code map (conv) or code units (mlp). The rate term switches off the units it does not
    # need (they then cost almost no bits), so a generous code loses little.
    latent_dim: Annotated[int, Interval(1)] = 32
    # What the decoder sees in training: "noise", the noisy code z + u as the rate does (Ballé et al. 2017);
    # "mixed", the rounded code with the identity's gradient (Minnen and Singh 2020), so the decoder is
    # fitted to the integers it will decode (on the digits after 20 epochs: 19.9 dB against 13.1 dB for "noise",
    # benchmarks/RESULTS.md).
    quantization: Literal["mixed", "noise"] = "mixed"


class GDN(nn.Module):
    """Generalized divisive normalization over channels (Ballé et al. 2016), or its inverse.

    ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`` (inverse: times the square root), for (B, C, *spatial);
    beta and gamma are kept positive by squaring their parameters.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_sqrt = nn.Parameter(torch.ones(channels))
        # Ballé et al.'s start, gamma = 0.1 I, with a small off-diagonal so that those entries get gradients.
        self.gamma_sqrt = nn.Parameter((0.1 * torch.eye(channels) + 1e-3).sqrt())

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        gamma = self.gamma_sqrt.pow(2).view(c, c, *([1] * (x.ndim - 2)))
        conv = nn.functional.conv2d if x.ndim == 4 else nn.functional.conv1d
        norm = torch.sqrt(conv(x * x, gamma, self.beta_sqrt.pow(2) + 1e-6))  # (B, C, *spatial)
        return x * norm if self.inverse else x / norm


class AnalysisTransform(nn.Sequential):
    """Encoder of images (C, H, W) or signals (C, L): ``[conv5 s2, GDN] * L``, then conv5 s1 to ``latent_dim`` channels."""

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], latent_dim: int) -> None:
        conv = nn.Conv2d if len(input_shape) == 3 else nn.Conv1d
        layers, shapes, c = strided_stack(input_shape, channels, 5, GDN)
        layers.append(conv(c, latent_dim, 5, stride=1, padding=2))
        super().__init__(*layers)
        self.spatial_shapes = shapes
        self.code_shape = (int(latent_dim), *shapes[-1])


class SynthesisTransform(nn.Sequential):
    """Mirror of :class:`AnalysisTransform`: conv5 s1, then ``[IGDN, transposed conv5 s2] * L`` back to the input size."""

    def __init__(self, analysis: AnalysisTransform, out_channels: int, channels: Sequence[int]) -> None:
        nd = len(analysis.code_shape) - 1
        conv = nn.Conv2d if nd == 2 else nn.Conv1d
        convt = nn.ConvTranspose2d if nd == 2 else nn.ConvTranspose1d
        rev = list(channels[::-1])
        layers: list[nn.Module] = [conv(analysis.code_shape[0], rev[0], 5, stride=1, padding=2)]
        outs = [*rev[1:], out_channels]
        for c, ch, target in zip(rev, outs, analysis.spatial_shapes[::-1][1:]):
            layers += [GDN(c, inverse=True), convt(c, ch, 5, stride=2, padding=2, output_padding=mirror_padding(target))]
        super().__init__(*layers)


class RateDistortionModule(nn.Module):
    """Transforms f and g and the learned per-unit Laplace densities of the code; ``loss`` is distortion + lmbda * rate.

    Parameters
    ----------
    encoder : nn.Module
        (B, *sample_shape) -> (B, *code_shape).
    decoder : nn.Module
        (B, *code_shape) -> (B, *sample_shape), linear output.
    code_shape : tuple of int
        The code's shape: (K,) for an MLP, (latent_dim, *spatial) for the conv transforms; its K values are the units.
    lmbda : float
        The weight of the rate.
    sample_shape : tuple of int
        One input sample's shape (of the centring buffer ``input_mean``).

    Shapes: x (B, *sample_shape), z (B, K).
    """

    input_mean: Tensor
    #: The learning rate of the densities' parameters as a multiple of the transforms': a unit the model
    #: stops using costs bits until its scale has shrunk, which at the base rate takes thousands of steps.
    DENSITY_LR_SCALE = 10.0

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, code_shape: tuple[int, ...], lmbda: float,
        sample_shape: tuple[int, ...], learning_rate: float = 1e-3, quantization: str = "mixed",
    ) -> None:
        super().__init__()
        self.quantization = quantization
        self.learning_rate = float(learning_rate)
        self.encoder, self.decoder = encoder, decoder
        self.code_shape, self.lmbda = tuple(code_shape), float(lmbda)
        k = math.prod(self.code_shape)
        self.code_loc = nn.Parameter(torch.zeros(k))
        self.code_log_scale = nn.Parameter(torch.zeros(k))
        self.register_buffer("input_mean", torch.zeros(sample_shape))

    def param_groups(self) -> list[dict[str, Any]]:
        """The densities' location and scale at ``DENSITY_LR_SCALE`` times the learning rate, the transforms at it."""
        density = [self.code_loc, self.code_log_scale]
        rest = [p for p in self.parameters() if all(p is not d for d in density)]
        return [{"params": density, "lr": self.learning_rate * self.DENSITY_LR_SCALE}, {"params": rest}]

    @torch.no_grad()
    def prepare(self, X: np.ndarray) -> None:
        """Store the mean of the (scaled) training data ``X`` (N, *sample_shape), which the encoder subtracts."""
        self.input_mean.copy_(torch.from_numpy(np.asarray(X).mean(axis=0)).to(self.input_mean.device))

    def code_scale(self) -> Tensor:
        """The Laplace scales b_k of the code units, in quantization steps, (K,)."""
        return self.code_log_scale.exp() + MIN_SCALE

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x - self.input_mean).flatten(1)  # (B, K)

    def decode(self, z: Tensor) -> Tensor:
        x = self.decoder(z.reshape(z.shape[0], *self.code_shape))
        return x + self.input_mean

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)  # (B, K)
        z_int = self.code_loc + torch.round(z - self.code_loc)  # what the codec codes
        if not self.training:
            return AEOutput(z=z_int, x_hat=self.decode(z_int), x_in=x)
        z_noisy = z + torch.rand_like(z) - 0.5  # the stand-in for rounding in the rate
        # "noise": the decoder sees the noisy code too (Ballé et al.); "mixed": it sees the rounded code, with
        # the identity's gradient (Minnen and Singh 2020), so it is fitted to what it will decode.
        z_dec = z_noisy if self.quantization == "noise" else z + (z_int - z).detach()
        return AEOutput(z=z_noisy, x_hat=self.decode(z_dec), x_in=x)

    def rate_bits(self, z_q: Tensor) -> Tensor:
        """Code length in bits of (noisy or quantized) codes ``z_q`` (B, K) under the learned densities, (B,)."""
        return laplace_interval_bits(z_q - self.code_loc, self.code_scale())

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        dist = squared_error(out.x_hat, x).mean()
        rate = self.lmbda * self.rate_bits(out.z).mean()
        return LossOutput(dist + rate, {"distortion": dist, "rate": rate})


@register(
    "rate-distortion",
    "codec autoencoder trained for distortion + lambda * rate: uniform noise for quantization, learned Laplace code densities",
    capabilities=("gradient", "images"),
)
@declare_params(RateDistortionConfig, TrainConfig)
class RateDistortionAutoencoder(BaseAutoencoder):
    """Rate-distortion autoencoder (a learned codec), scikit-learn style.

    Parameters
    ----------
    lmbda : float > 0, default 0.01
        Weight of the rate (bits per sample) beside the squared error summed over a sample's values.
    architecture : {"auto", "conv", "mlp"}, default "auto"
        "auto": fully convolutional transforms with GDN for images and signals, an MLP for tabular data.
    hidden_dims : tuple of int or "auto"
        Channels of the stride-2 convolutions (conv) or hidden widths (mlp).
    latent_dim : int, default 32
        Channels of the code map (conv; K = latent_dim x the map's size) or code units (mlp).
    quantization : {"mixed", "noise"}, default "mixed"
        What the decoder sees in training: the rounded code with the identity's gradient, or the noisy code.
    max_epochs, batch_size, learning_rate, ..., random_state, verbose
        See :class:`aekit.engine.training.TrainConfig`; ``random_state`` also seeds the training noise.

    Attributes
    ----------
    code_shape_ : tuple of int
        The code's shape before flattening; ``transform`` returns (N, prod(code_shape_)).

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X                           # (1437, 1, 8, 8) in [0, 1]
    >>> rd = aekit.RateDistortionAutoencoder(lmbda=0.05, max_epochs=3, verbose=0).fit(X)
    >>> cm = aekit.fit_code_model(rd, X)                             # the learned densities, step 1
    >>> data = aekit.compress(rd, X[:100], code_model=cm)            # a real file at the trained rate
    >>> aekit.decompress(rd, data, code_model=cm).shape
    (100, 1, 8, 8)
    """

    _test_params: ClassVar[dict[str, Any]] = {
        "hidden_dims": (4,), "latent_dim": 4, "max_epochs": 2, "batch_size": 32, "verbose": 0, "random_state": 0,
    }
    _test_variants: ClassVar[tuple[dict[str, Any], ...]] = (
        {"architecture": "mlp", "hidden_dims": (16,)}, {"quantization": "noise"},
    )

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        r = dict(params)
        images = len(data.sample_shape) in (2, 3)
        if r["architecture"] == AUTO:
            r["architecture"] = "conv" if images else "mlp"
        check_network(data.sample_shape, r["architecture"])
        if r["hidden_dims"] == AUTO:
            r["hidden_dims"] = ((64,) * auto_conv_depth(data.sample_shape[1:]) if r["architecture"] == "conv"
                                else (256, 128))
        r["hidden_dims"] = tuple(int(d) for d in r["hidden_dims"])
        if r["architecture"] == "conv" and not r["hidden_dims"]:
            raise ValueError("architecture='conv' needs at least one entry in hidden_dims (channels of the stride-2 "
                             "layers), got (); use hidden_dims='auto' or e.g. (64, 64, 64)")
        return r

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        r = self.resolved_
        if r.architecture == "conv":
            analysis = AnalysisTransform(sample_shape, r.hidden_dims, int(r.latent_dim))
            encoder: nn.Module = analysis
            decoder: nn.Module = SynthesisTransform(analysis, sample_shape[0], r.hidden_dims)
            code_shape = analysis.code_shape
        else:
            encoder, decoder = build_encoder_decoder(sample_shape, "mlp", r.hidden_dims, int(r.latent_dim), "relu")
            code_shape = (int(r.latent_dim),)
        self.code_shape_ = tuple(int(s) for s in code_shape)
        return RateDistortionModule(encoder, decoder, self.code_shape_, float(r.lmbda), sample_shape,
                                    float(r.learning_rate), r.quantization)

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        self.module_.prepare(Xs)
        return super()._fit_module(Xs, y, seed, **fit_kw)

    def code_density(self) -> tuple[np.ndarray, np.ndarray]:
        """The learned densities of the code units: Laplace locations ``m_k`` and scales ``b_k``, each (K,) float64.

        In the code's units, whose quantization step is 1: :func:`aekit.fit_code_model` takes them as the
        codec's probability model, so ``aekit.compress(..., step=1)`` codes at the trained rate.
        """
        self._check_fitted()
        with torch.no_grad():
            loc = self.module_.code_loc.detach().cpu().double().numpy()
            scale = self.module_.code_scale().detach().cpu().double().numpy()
        return loc, scale

    def rate_bits(self, X: Any) -> np.ndarray:
        """Ideal code length in bits of each sample's rounded code under the learned densities, shape (N,).

        What a range coder spends on the codes at ``step=1`` (its file adds a header, a checksum and at most
        32 bits of padding per file).
        """
        Z = torch.from_numpy(self.transform(X)).double()  # (N, K)
        loc, scale = (torch.from_numpy(a) for a in self.code_density())
        return laplace_interval_bits(torch.round(Z - loc), scale).numpy()
