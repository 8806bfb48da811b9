"""Deep nonlinear autoencoder: MLP of any depth and width, or convolutional.

G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality of data with neural networks",
Science 313 (2006). Solves::

    min_{f, g}  (1/N) sum_n  L(x_n, g(f(x_n)))

with L the Bernoulli negative log-likelihood (sigmoid output, data in [0, 1]) or the squared error
(linear output, real-valued data).

By default (``init="pca"`` for an MLP) the network is PCA plus a learned correction, exactly PCA when training
starts::

    f(x) = V (x - mu) + f_c(x),   g(z) = W z + mu + g_c(z),   V = W^T = the top-K principal axes,  f_c = g_c = 0

and trained on the squared error with early stopping that keeps the starting weights unless the network does
better on held-out data, so the default is not worse than PCA at the same code size (up to the noise of the
validation estimate). The training budget is counted in optimizer steps, not epochs, so a small data set gets
as many updates as a large one (see :func:`auto_training`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.losses import reconstruction
from aekit.core.nets import (
    LECTURE_CODE,
    OUTPUTS,
    Activation,
    Architecture,
    Output,
    ResidualPCADecoder,
    ResidualPCAEncoder,
    activation,
    apply_output,
    build_encoder_decoder,
    check_network,
    principal_axes,
)
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import AUTO, Auto, Interval, check_value
from aekit.data.corruption import Translation
from aekit.data.preprocessing import Scaling, unit_norm_samples
from aekit.engine.training import TrainConfig, validation_size
from aekit.model.base import BaseAutoencoder, DataInfo, declare_params
from aekit.model.registry import register

#: The output a network asks for: one of nets.OUTPUTS, or "auto" to choose it from the data.
OutputChoice = Literal["auto", Output]

#: The hidden widths (mlp) or channel counts (conv) that ``hidden_dims="auto"`` stands for.
AUTO_HIDDEN_DIMS = {"mlp": (256, 128), "conv": (32, 64), "lecture-conv": ()}
LOSSES = ("bce", "mse")

PRESETS: dict[str, dict[str, Any]] = {
    # Hinton & Salakhutdinov's MNIST network with linear code units, and its training recipe as measured in
    # benchmarks/RESULTS.md ("MNIST reconstruction"). The paper started logistic units near a good solution by
    # RBM pretraining; here GELU units start exactly at the PCA solution plus a zero correction (init="pca":
    # squared error), which on a short budget reached half the random start's error. The output is clipped to
    # [0, 1] (output="clip"): most of a digit's pixels are 0, which a clipped value reaches exactly, and
    # training through the clip lowered the test error by a fifth. The clipped network overfits (train 1.6,
    # test 3.0 per image), so Adam's weights decay (decoupled, 0.3). A cosine decay to zero over the budget,
    # and every training image (no validation split), as the paper.
    "hinton": {"architecture": "mlp", "hidden_dims": (1000, 500, 250), "latent_dim": 30, "activation": "gelu",
               "init": "pca", "output": "clip", "max_epochs": 60, "batch_size": 128, "learning_rate": 1e-3,
               "weight_decay": 0.3, "lr_schedule": "cosine", "validation_fraction": 0.0, "patience": None},
    # The lecture's convolutional network; MNIST normalized with mean 0.5, std 0.5 and a Tanh output.
    "lecture-conv": {"architecture": "lecture-conv", "hidden_dims": (), "latent_dim": LECTURE_CODE,
                     "activation": "relu", "scaling": "normalize", "output": "tanh", "loss": "mse"},
    # Binary codes for retrieval of images (semantic hashing): a convolutional encoder trained to undo shifts
    # of one pixel, its codes' bits by iterative quantization. On MNIST and Fashion-MNIST its bits found more
    # neighbours of the query's class than PCA-ITQ's and the MLP's (benchmarks/RESULTS.md, "Retrieval");
    # digits gain more from shifts of 2 pixels (shift_corruption=2), clothes lose from them.
    "hashing": {"architecture": "conv", "binary_codes": True, "binarization": "itq", "shift_corruption": 1},
}
#: Parameters a preset may set that the variants of the plain autoencoder do without (the preset still applies).
_OPTIONAL_PRESET_PARAMS = frozenset({"init"})

HiddenDims = tuple[Annotated[int, Interval(1)], ...]

#: Optimizer steps that ``max_epochs="auto"`` aims at: the default network fitted to a few hundred samples
#: kept improving on held-out data for about this many steps (benchmarks/bench_defaults.py).
STEP_BUDGET = 4000
#: Epochs ``max_epochs="auto"`` gives at least: the fixed default before the budget, enough for large data.
MIN_AUTO_EPOCHS = 50
#: And at most, so that a data set of a few samples does not run thousands of one-step epochs.
MAX_AUTO_EPOCHS = 2000
#: ``validation_fraction="auto"`` holds out at least this many samples where that keeps 3/4 to train on.
MIN_VALIDATION = 100


def auto_training(n_samples: int, batch_size: int, validation_fraction: float | str) -> dict[str, Any]:
    """``validation_fraction``, ``max_epochs`` and ``patience`` for ``"auto"``, from the number of samples.

    - ``validation_fraction``: 0.1, raised to hold out ``MIN_VALIDATION`` samples (at most a quarter of the
      data): a validation loss over 30 samples is too noisy to stop on.
    - ``max_epochs``: the epochs that make ``STEP_BUDGET`` optimizer steps at ``batch_size`` on the training
      part, between ``MIN_AUTO_EPOCHS`` and ``MAX_AUTO_EPOCHS``: 2,000 epochs of 2 steps for 300 samples,
      50 epochs of 422 steps for 60,000.
    - ``patience``: a tenth of those epochs, at least 10, so that early stopping waits the same share of the
      budget (steps, not epochs) on small and large data.

    Returns
    -------
    dict
        ``validation_fraction``, ``max_epochs``, ``patience`` (the first as given when it is not "auto").
    """
    vf = validation_fraction
    if vf == AUTO:
        vf = min(max(0.1, MIN_VALIDATION / max(n_samples, 1)), 0.25)
    n_train = n_samples - validation_size(n_samples, float(vf))
    steps_per_epoch = math.ceil(n_train / max(min(batch_size, n_train), 1))
    epochs = min(max(math.ceil(STEP_BUDGET / steps_per_epoch), MIN_AUTO_EPOCHS), MAX_AUTO_EPOCHS)
    return {"validation_fraction": float(vf), "max_epochs": int(epochs), "patience": max(10, math.ceil(epochs / 10))}


def auto_hidden_dims(n_features: int, latent_dim: int) -> tuple[int, int]:
    """The MLP's hidden widths for ``hidden_dims="auto"``: two layers narrowing towards the code.

    The first is the power of two nearest 16 sqrt(D), between 4K (and 64) and 1,024, so it grows with the
    input more slowly than the input; the second half of it, at least 2K. D = 64: (128, 64); 784: (512, 256);
    4,096: (1024, 512).
    """
    lo = max(4 * latent_dim, 64)
    w1 = 2 ** round(math.log2(16 * math.sqrt(n_features)))
    w1 = int(min(max(w1, lo), max(1024, lo)))
    return w1, max(w1 // 2, 2 * latent_dim)


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
    # The decoder's output non-linearity, matched to the range of the scaled data; "clip" is linear and clipped
    # to [0, 1], trained on the squared error with its gradient passed through the clip.
    output: Annotated[
        OutputChoice,
        Auto("sigmoid for data in [0, 1] unless loss='mse', else linear", from_data=True),
    ] = "auto"
    # The reconstruction term: the Bernoulli likelihood for a sigmoid output, the squared error otherwise.
    loss: Annotated[Literal["auto", "bce", "mse"], Auto("bce with a sigmoid output, else mse", from_data=True)] = "auto"
    tied: bool = False  # Decoder weights are the encoder's transposed (MLP only), halving the parameters.
    # The data scaling stored with the model: images, signals and data in [0, 1] are kept as they are,
    # other tabular data standardized.
    scaling: Annotated[Scaling, Auto("none for images and data in [0, 1], else standard", from_data=True)] = "auto"


@dataclass
class AdaptiveNetConfig(AutoencoderConfig):
    """The plain autoencoder's network: by default PCA plus a learned correction (the variants built on
    :class:`AutoencoderConfig` keep a random start: their objectives are not PCA's)."""

    # The output, loss and scaling that PCA plus a correction needs are the defaults with init='pca': for data in
    # [0, 1] "clip", the linear output clipped to [0, 1], so no reconstruction leaves the range; else linear.
    output: Annotated[
        OutputChoice,
        Auto("with init='pca': clip for data in [0, 1], else linear; linear with sample_norm='l2'; sigmoid for data "
             "in [0, 1] unless loss='mse', else linear", from_data=True),
    ] = "auto"
    loss: Annotated[
        Literal["auto", "bce", "mse"], Auto("mse with init='pca'; bce with a sigmoid output, else mse", from_data=True)
    ] = "auto"
    scaling: Annotated[
        Scaling, Auto("none with init='pca', for images and for data in [0, 1], else standard", from_data=True)
    ] = "auto"
    # "pca": the network is PCA plus an MLP correction that starts at zero, trained on the squared error, so
    # it starts (and, by early stopping, ends no worse than) PCA; "random": the usual random initialization.
    init: Annotated[
        Literal["auto", "pca", "random"],
        Auto("pca for an undercomplete MLP with untied weights, a linear output, the squared error and real-valued "
             "codes, else random", from_data=True),
    ] = "auto"
    # Codes of 0s and 1s for semantic hashing (Salakhutdinov & Hinton); transform returns them, inverse_transform
    # decodes them. Off: real-valued codes.
    binary_codes: bool = False
    # How binary codes are made. "itq": the autoencoder is trained as with real-valued codes (by default PCA plus
    # a correction), then a code layer of bits sign(R^T (z - mean)) is fitted to its codes by iterative
    # quantization (Gong & Lazebnik), so the bits start from PCA-ITQ's and the codes under them are the trained
    # network's; measured above PCA-ITQ and the straight-through estimator (benchmarks/RESULTS.md).
    # "straight-through": the bits 1[a > 0] are the code while training, with a sigmoid's gradient backward.
    binarization: Annotated[
        Literal["auto", "itq", "straight-through"], Auto("itq; used only with binary_codes=True")
    ] = "auto"
    # "l2": each sample (after `scaling`) is divided by its Euclidean norm before the network, as scikit-learn's
    # Normalizer(norm="l2") does, so the codes (and bits) follow the samples' directions, the cosine geometry,
    # not their overall intensity. The network then models unit-norm samples: reconstruct scales each
    # reconstruction back by its input's norm, while inverse_transform (codes carry no norm) returns unit-norm
    # samples. For ITQ bits it lifts precision at 10 on MNIST and Fashion-MNIST, but PCA-ITQ of unit-norm images
    # gains as much, and on MNIST it lowers the bits' mAP, so it is not the default (benchmarks/RESULTS.md).
    # A random start then gets a linear output and the squared error by default: the unit-norm values are a
    # small fraction of the data's, which a sigmoid and the cross-entropy fitted far worse (a conv network's
    # bits on Fashion-MNIST: precision at 10 0.655 against 0.721).
    sample_norm: Literal["none", "l2"] = "none"
    # Images only: each training image is shifted by up to this many pixels along each axis (edges replicated)
    # and the network reconstructs the unshifted image, a denoising corruption ("translate:N") that makes
    # the codes tolerate small shifts, as an image's class does. 0: the images as they are.
    shift_corruption: Annotated[int, Interval(0)] = 0


@dataclass
class AdaptiveTrainConfig(TrainConfig):
    """The training loop's settings with a budget in optimizer steps instead of a fixed epoch count.

    Only a declaration: three fields also accept "auto", which :meth:`Autoencoder.resolve` decides, so the
    loop always gets a :class:`TrainConfig` of plain values (hence the widened types below).
    """

    # 4,000 optimizer steps in epochs of the data (see auto_training): a few hundred samples get 2,000 epochs,
    # MNIST 50; an integer sets the epochs.
    max_epochs: Annotated[
        int | Literal["auto"], Interval(1), Auto("4,000 optimizer steps, 50 to 2,000 epochs", from_data=True)
    ] = "auto"  # type: ignore[assignment]
    # Held out for early stopping: 0.1, or 100 samples (at most a quarter) on small data; 0 turns it off.
    validation_fraction: Annotated[
        float | Literal["auto"], Interval(0, 1, closed="left"),
        Auto("0.1, raised to 100 samples (at most 0.25)", from_data=True),
    ] = "auto"  # type: ignore[assignment]
    # Epochs without validation improvement before stopping: a tenth of max_epochs (at least 10); None: never.
    patience: Annotated[int | Literal["auto"], Interval(1), Auto("max_epochs / 10, at least 10")] | None = "auto"  # type: ignore[assignment]


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
    output : {"sigmoid", "linear", "tanh", "clip"}
        The output non-linearity (:func:`~aekit.core.nets.apply_output`).
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


def straight_through_bits(a: Tensor) -> Tensor:
    """The bits 1[a > 0] of ``a`` (B, K), as float, with the gradient of sigmoid(a) (a straight-through estimator).

    Forward: h = 1[a > 0] in {0, 1}. Backward: dh/da = sigmoid(a) (1 - sigmoid(a)), the gradient of the
    sigmoid the step replaces, so units near the threshold learn most and saturated units stay put.
    """
    soft = torch.sigmoid(a)
    return soft + ((a > 0).to(a.dtype) - soft).detach()


class BinaryCodeAutoencoderModule(AutoencoderModule):
    """An autoencoder whose code is binary: h = 1[a(x) > 0] in {0, 1}^K, a the encoder's linear output.

    Semantic hashing (R. Salakhutdinov and G. Hinton, "Semantic hashing", Int. J. Approx. Reasoning 50
    (2009)) drives a sigmoid code layer to 0/1 by adding Gaussian noise to its input while training and
    thresholds at 0.5 afterwards. This module uses a straight-through estimator instead
    (Y. Bengio, N. Leonard and A. Courville, arXiv:1308.3432, 2013): the forward pass thresholds
    already while training, so the decoder is fitted to exactly the codes an index stores (no train/test
    mismatch, no noise scale to tune), and the backward pass takes the sigmoid's gradient. Each unit is
    standardized over the data before its threshold (:meth:`standardized`).

    Parameters
    ----------
    encoder, decoder, output, loss
        See :class:`AutoencoderModule`; the encoder's output is the code layer's input a, (B, K).
    latent_dim : int
        K, the number of bits.
    """

    #: The weight of the newest batch in the running mean and variance of the code layer's input.
    MOMENTUM = 0.1
    code_mean: Tensor
    code_var: Tensor

    def __init__(self, encoder: nn.Module, decoder: nn.Module, output: str, loss: str, latent_dim: int) -> None:
        super().__init__(encoder, decoder, output, loss)
        k = int(latent_dim)
        self.register_buffer("code_mean", torch.zeros(k))
        self.register_buffer("code_var", torch.ones(k))

    def standardized(self, x: Tensor) -> Tensor:
        """The code layer's input a(x), centred and scaled per unit: (B, *sample_shape) -> (B, K).

        Each bit thresholds its unit at the unit's mean over the data (a training batch, then the running
        mean), so every bit splits the data roughly in half from the first step, as a hash bit should. Without
        it most bits of a random start are constant over the data (a unit's bias outweighs its spread across
        samples), and the straight-through gradient, of one sign for every sample, never splits them.
        """
        a = self.encoder(x)
        if self.training and a.shape[0] > 1:
            mean, var = a.mean(dim=0), a.var(dim=0, unbiased=False)
            with torch.no_grad():
                self.code_mean.lerp_(mean.detach(), self.MOMENTUM)
                self.code_var.lerp_(var.detach(), self.MOMENTUM)
        else:
            mean, var = self.code_mean, self.code_var
        return (a - mean) / torch.sqrt(var + 1e-5)

    def encode(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, K) of 0.0 and 1.0."""
        return straight_through_bits(self.standardized(x))


def itq_rotation(V: Tensor, n_iter: int = 50, seed: int = 0) -> Tensor:
    """The rotation of iterative quantization (Y. Gong and S. Lazebnik, "Iterative quantization: a Procrustean
    approach to learning binary codes", CVPR 2011).

    Solves, by alternating the two minimizations ``n_iter`` times from a random rotation::

        min_{B, R}  ||B - V R||_F^2,   B in {-1, 1}^{N x K},  R^T R = I

    (B = sign(V R) for a fixed R; R = U W^T from the SVD V^T B = U S W^T for a fixed B, orthogonal Procrustes).

    Parameters
    ----------
    V : Tensor (N, K)
        Centred codes.
    n_iter : int
    seed : int
        Seeds the starting rotation (a QR of a Gaussian matrix), from a generator of its own.

    Returns
    -------
    Tensor (K, K), float64, orthogonal.
    """
    Vd = V.double()
    k = Vd.shape[1]
    gen = torch.Generator().manual_seed(int(seed))
    R, _ = torch.linalg.qr(torch.randn(k, k, generator=gen, dtype=torch.float64))
    for _ in range(n_iter):
        B = torch.where(Vd @ R >= 0, 1.0, -1.0).double()
        U, _, Wt = torch.linalg.svd(Vd.t() @ B)
        R = U @ Wt
    return R


class ITQCodeLayer(nn.Module):
    """Bits of real-valued codes z (B, K): h = 1[(z - m) R > 0] in {0, 1}^K, and back: z ~ m + ((2h - 1) * s) R^T.

    m is the codes' mean, R the rotation of :func:`itq_rotation` and s (K,) the mean absolute rotated code per
    bit, the least-squares scale of the bits' signs. Identity-like (m = 0, R = I, s = 1) until :meth:`fit`.
    """

    mean: Tensor
    rotation: Tensor
    scale: Tensor

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        k = int(latent_dim)
        self.register_buffer("mean", torch.zeros(k))
        self.register_buffer("rotation", torch.eye(k))
        self.register_buffer("scale", torch.ones(k))

    @torch.no_grad()
    def fit(self, Z: Tensor, seed: int = 0) -> None:
        """Fit m, R and s to the codes ``Z`` (N, K) of the training data."""
        mean = Z.double().mean(dim=0)
        R = itq_rotation(Z.double() - mean, seed=seed)
        self.mean.copy_(mean.float())
        self.rotation.copy_(R.float())
        self.scale.copy_(((Z.double() - mean) @ R).abs().mean(dim=0).clamp_min(1e-12).float())

    def forward(self, z: Tensor) -> Tensor:
        """(B, K) real codes -> (B, K) of 0.0 and 1.0."""
        return ((z - self.mean) @ self.rotation > 0).to(z.dtype)

    def inverse(self, h: Tensor) -> Tensor:
        """(B, K) bits -> (B, K) real codes, the centre of the bits' cell."""
        return ((2.0 * h - 1.0) * self.scale) @ self.rotation.t() + self.mean


class ITQCodes:
    """Binary codes by a fitted :class:`ITQCodeLayer` on the codes of an autoencoder module.

    Mixed in before an :class:`AutoencoderModule` (or its PCA variant): ``forward``, the training objective, is
    the autoencoder's on its real-valued codes; ``encode`` gives the bits of those codes and ``decode`` decodes
    bits, so ``transform``, ``inverse_transform`` and ``reconstruct`` all go through the bits an index stores.
    """

    encoder: Any  # the module's own (an nn.Module of (B, *sample_shape) -> (B, K))
    decoder: Any
    output: str
    code_layer: ITQCodeLayer

    def encode(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, K) of 0.0 and 1.0."""
        return self.code_layer(self.encoder(x))

    def decode(self, z: Tensor) -> Tensor:
        """(B, K) bits -> (B, *sample_shape), in data space."""
        return apply_output(self.output, self.decoder(self.code_layer.inverse(z)))

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encoder(x)
        raw = self.decoder(z)
        return AEOutput(
            z=z, x_hat=apply_output(self.output, raw), logits=raw if self.output == "sigmoid" else None, x_in=x
        )


class PCAAutoencoderModule(AutoencoderModule):
    """PCA plus a learned correction: a :class:`~aekit.core.nets.ResidualPCAEncoder` and decoder, exactly PCA
    at initialization (:meth:`set_pca`), with a linear output and the squared error (PCA's objective), or
    ``output="clip"`` for data in [0, 1]: the same, clipped to the data's range."""

    encoder: ResidualPCAEncoder
    decoder: ResidualPCADecoder
    #: The training loop keeps the starting weights (PCA's) unless training does better on validation data.
    starts_at_solution = True
    #: The principal axes learn at this fraction of the learning rate: Adam moves every weight by about the
    #: learning rate per step whatever its gradient, which would blur the axes before the correction learns.
    AXES_LR_SCALE = 0.1
    #: The outputs PCA's reconstruction can start from: linear, clipped to [0, 1] or not.
    OUTPUTS = ("linear", "clip")

    def __init__(
        self, encoder: ResidualPCAEncoder, decoder: ResidualPCADecoder, learning_rate: float, output: str = "linear"
    ) -> None:
        if output not in self.OUTPUTS:
            raise ValueError(f"PCA plus a correction has a linear output, clipped or not; got output={output!r}")
        super().__init__(encoder, decoder, output, "mse")
        self.learning_rate = float(learning_rate)

    def param_groups(self) -> list[dict[str, Any]]:
        """The axes V and W at ``AXES_LR_SCALE`` times the learning rate, the corrections at the full rate."""
        axes = [self.encoder.V, self.decoder.W]
        rest = [p for p in self.parameters() if all(p is not a for a in axes)]
        return [{"params": axes, "lr": self.learning_rate * self.AXES_LR_SCALE}, {"params": rest}]

    @torch.no_grad()
    def set_pca(self, X: np.ndarray) -> None:
        """Start at the PCA of ``X`` (N, *sample_shape): V = W^T = the top-K principal axes, corrections zero."""
        X2 = torch.from_numpy(X.reshape(X.shape[0], -1))
        k = int(self.decoder.W.shape[1])
        # float32 products: the start is rounded to float32 weights and moved by the first step anyway, and
        # its axes stay within about 1e-6 of float64's (2x faster: 0.26 s against 0.47 s on MNIST).
        mean, axes, scale, std = principal_axes(X2, k, products=torch.float32)
        dev = self.decoder.W.device
        # The correction's input at unit scale: each feature's spread, at least a tenth of the typical one so
        # that a nearly constant feature (an image's border pixel) is not blown up into noise.
        floor = max(float(std.pow(2).mean().sqrt()) * 0.1, 1e-12)
        self.encoder.set_pca(mean.float().to(dev), axes.float().to(dev), std.clamp_min(floor).float().to(dev))
        self.decoder.set_pca(mean.float().to(dev), axes.float().to(dev), scale.float().to(dev))


class ITQAutoencoderModule(ITQCodes, AutoencoderModule):
    """An autoencoder with binary codes by iterative quantization of its codes (see :class:`ITQCodes`)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, output: str, loss: str, latent_dim: int) -> None:
        super().__init__(encoder, decoder, output, loss)
        self.code_layer = ITQCodeLayer(latent_dim)


class ITQPCAAutoencoderModule(ITQCodes, PCAAutoencoderModule):
    """PCA plus a learned correction, with binary codes by iterative quantization: PCA-ITQ's bits at the start."""

    def __init__(
        self, encoder: ResidualPCAEncoder, decoder: ResidualPCADecoder, learning_rate: float, output: str = "linear"
    ) -> None:
        super().__init__(encoder, decoder, learning_rate, output)
        self.code_layer = ITQCodeLayer(int(decoder.W.shape[1]))


@register(
    "autoencoder",
    "deep nonlinear autoencoder, MLP or convolutional; PCA start plus a learned correction with a clipped output and "
    "MSE for [0,1] data, linear output and MSE otherwise (sigmoid and BCE with init='random')",
    capabilities=("gradient", "images", "stackable"),
)
@declare_params(AdaptiveNetConfig, AdaptiveTrainConfig)
class Autoencoder(BaseAutoencoder):
    """Deep autoencoder, scikit-learn style.

    Parameters
    ----------
    architecture, hidden_dims, latent_dim, activation, output, loss, tied, scaling, init, binary_codes, binarization,
    sample_norm, shift_corruption
        See :class:`AdaptiveNetConfig`: by default an MLP starts as PCA, with a correction learned on top;
        ``binary_codes=True`` gives 0/1 codes for semantic hashing, by default bits of the trained codes by
        iterative quantization (:class:`ITQCodes`), else by a straight-through estimator
        (:class:`BinaryCodeAutoencoderModule`); ``sample_norm="l2"`` feeds the network unit-norm samples;
        ``shift_corruption=N`` trains it to reconstruct each image from a copy shifted by up to N pixels.
    max_epochs, batch_size, learning_rate, weight_decay, lr_schedule, validation_fraction, patience,
    device, random_state, verbose, cuda_graph, tf32, cpu_bf16, threads, binarize
        See :class:`AdaptiveTrainConfig`: ``max_epochs``, ``validation_fraction`` and ``patience`` are
        chosen from the number of samples by default (:func:`auto_training`).

    Presets (:meth:`from_preset`): ``"hinton"`` (784-1000-500-250-30, GELU), ``"hashing"`` (binary codes of a
    convolutional encoder trained to undo one-pixel shifts, for image retrieval) and ``"lecture-conv"`` (the
    lecture's convolutional network for 28x28 images, data normalized to [-1, 1], Tanh output).

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X            # (1437, 1, 8, 8) in [0, 1]
    >>> ae = aekit.Autoencoder(latent_dim=2, max_epochs=5, verbose=0).fit(X)
    >>> ae.transform(X).shape
    (1437, 2)
    >>> ae.resolved_.init, ae.resolved_.output, ae.resolved_.loss   # PCA plus a correction, clipped to [0, 1]
    ('pca', 'clip', 'mse')
    >>> aekit.Autoencoder(latent_dim=2, init="random", max_epochs=5, verbose=0).fit(X).resolved_.output
    'sigmoid'
    >>> codes = aekit.Autoencoder(latent_dim=16, binary_codes=True, max_epochs=2, verbose=0).fit(X).transform(X)
    >>> sorted(set(codes.ravel().tolist()))         # 16 bits per sample, for semantic hashing
    [0.0, 1.0]
    """

    _presets: ClassVar[Mapping[str, Mapping[str, Any]]] = PRESETS
    #: A tiny, fast configuration for the shared test suite (subclasses inherit it).
    _test_params: ClassVar[dict[str, Any]] = {
        "hidden_dims": (16,), "latent_dim": 4, "max_epochs": 2, "batch_size": 32, "verbose": 0, "random_state": 0,
    }
    _test_variants: ClassVar[tuple[dict[str, Any], ...]] = (
        {"tied": True}, {"architecture": "conv", "hidden_dims": (4,)}, {"binary_codes": True},
        {"binary_codes": True, "binarization": "straight-through"},
    )

    @classmethod
    def _lacks(cls, preset: Mapping[str, Any]) -> list[str]:
        """The parameters ``preset`` sets that this family does not have and cannot do without, sorted."""
        return sorted(set(preset) - _OPTIONAL_PRESET_PARAMS - set(getattr(cls, "_param_types", {})))

    @classmethod
    def presets(cls) -> list[str]:
        """The presets this family can take: the variants share the plain autoencoder's, except those that
        need its own settings (``binary_codes`` and ``shift_corruption`` for ``"hashing"``)."""
        return [name for name, params in cls._presets.items() if not cls._lacks(params)]

    @classmethod
    def preset_params(cls, name: str) -> dict[str, Any]:
        """The parameters the preset ``name`` sets that this family has: the variants share the presets, and
        take the network without the plain autoencoder's own settings (``init``)."""
        types = getattr(cls, "_param_types", {})
        params = super().preset_params(name)
        missing = cls._lacks(params)
        if missing:
            raise ValueError(
                f"preset {name!r} sets {', '.join(missing)}, which {cls.__name__} does not have; use "
                f"aekit.Autoencoder.from_preset({name!r}) (--family autoencoder), or one of {cls.presets()}"
            )
        return {k: v for k, v in params.items() if k in types}

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
        if (getattr(self, "binary_codes", False) and getattr(self, "binarization", None) == "straight-through"
                and getattr(self, "init", None) == "pca"):
            raise ValueError(
                "binarization='straight-through' needs a random start, but got init='pca': PCA's codes are "
                "real-valued; use init='random' or init='auto', or binarization='itq' (bits of PCA plus a correction)"
            )
        if getattr(self, "init", None) == "pca":
            clash = [f"{k}={v!r}" for k, v, ok in (
                ("architecture", arch, arch == "mlp"), ("tied", self.tied, not self.tied),
                ("output", self.output, self.output in (AUTO, *PCAAutoencoderModule.OUTPUTS)),
                ("loss", self.loss, self.loss in ("auto", "mse")),
            ) if not ok]
            if clash:
                raise ValueError(
                    f"init='pca' starts an untied MLP with a linear output (clipped or not) and the squared error at "
                    f"PCA, but got {', '.join(clash)}; use init='random' for this network"
                )

    def _announce(self, resolved: Mapping[str, Any]) -> None:
        # The bits' method matters only with binary codes: say nothing of it otherwise.
        if not resolved.get("binary_codes"):
            resolved = {k: v for k, v in resolved.items() if k != "binarization"}
        super()._announce(resolved)

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        """Hidden sizes, data scaling, output layer and loss for ``data``; a ValueError for a combination
        the data cannot support."""
        r = dict(params)
        check_network(data.sample_shape, r["architecture"])
        if r.get("binarization") == AUTO:
            r["binarization"] = "itq"
        straight_through = bool(r.get("binary_codes")) and r.get("binarization") == "straight-through"
        if r.get("init") == AUTO:
            # An overcomplete code (more units than PCA has axes) starts at random, as do the networks PCA
            # plus a correction cannot be.
            pca_ok = (r["architecture"] == "mlp" and not r["tied"] and r["output"] in (AUTO, *PCAAutoencoderModule.OUTPUTS)
                      and r["loss"] in (AUTO, "mse") and not straight_through
                      and r["latent_dim"] <= min(data.n_samples, math.prod(data.sample_shape)))
            r["init"] = "pca" if pca_ok else "random"
        if r.get("init") == "pca":
            k, d = r["latent_dim"], math.prod(data.sample_shape)
            if k > min(data.n_samples, d):
                raise ValueError(
                    f"init='pca' needs latent_dim at most min(n_samples, n_features) = {min(data.n_samples, d)}, got "
                    f"latent_dim={k} (n_samples={data.n_samples}, n_features={d}); lower latent_dim, or use "
                    "init='random' for an overcomplete code"
                )
            if r["scaling"] == AUTO:
                r["scaling"] = "none"  # PCA's: the model centres the data itself, and its error is in the data's units
            if r["output"] == AUTO:
                # Data in [0, 1] (images): the linear output clipped to that range, better or level on every such
                # set of benchmarks/bench_defaults.py and a fifth lower on MNIST's hinton network; unit-norm
                # samples are directions, kept linear.
                lo, hi = data.scaled_range(r["scaling"])
                unit = lo >= 0.0 and hi <= 1.0 and r.get("sample_norm") != "l2"
                r["output"] = "clip" if unit else "linear"
            r["loss"] = "mse"
        if r["hidden_dims"] == AUTO:
            if r.get("init") is not None and r["architecture"] == "mlp":
                r["hidden_dims"] = auto_hidden_dims(math.prod(data.sample_shape), int(r["latent_dim"]))
            else:
                r["hidden_dims"] = AUTO_HIDDEN_DIMS[r["architecture"]]
        r["hidden_dims"] = tuple(int(d) for d in r["hidden_dims"])
        if AUTO in (r["max_epochs"], r["validation_fraction"], r["patience"]):
            auto = auto_training(data.n_samples, int(r["batch_size"]), r["validation_fraction"])
            r["validation_fraction"] = auto["validation_fraction"]
            if r["max_epochs"] == AUTO:
                r["max_epochs"] = auto["max_epochs"]
            if r["patience"] == AUTO:
                r["patience"] = max(10, math.ceil(int(r["max_epochs"]) / 10))
        shift, shape = int(r.get("shift_corruption") or 0), tuple(data.sample_shape)
        largest = Translation.largest_shift(shape)
        if shift and (largest is None or shift > largest):
            fix = "shift_corruption=0" if largest is None else f"a shift below {largest + 1}, or 0"
            raise ValueError(
                f"shift_corruption={shift} shifts images (C, H, W) by up to {shift} pixels, each side longer than "
                f"{2 * shift}, but the samples have shape {shape}; use {fix}"
            )
        if r["scaling"] == AUTO:
            r["scaling"] = DataInfo.auto_scaling(data.sample_shape, data.min, data.max)
        if r.get("sample_norm") == "l2" and r["output"] == AUTO:
            # Unit-norm samples are directions, not probabilities: their values are a fraction of the data's.
            r["output"] = "linear"
        r["output"], r["loss"] = output_and_loss(r["output"], r["loss"], *data.scaled_range(r["scaling"]))
        return r

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        r = self.resolved_
        itq = bool(r.get("binary_codes")) and r.get("binarization") == "itq"
        if r.get("init") == "pca":
            d, dims = math.prod(sample_shape), tuple(r.hidden_dims)
            pca_module = ITQPCAAutoencoderModule if itq else PCAAutoencoderModule
            return pca_module(
                ResidualPCAEncoder(d, dims, int(r.latent_dim), r.activation),
                ResidualPCADecoder(sample_shape, dims, int(r.latent_dim), r.activation),
                float(r.learning_rate), r.output,
            )
        encoder, decoder = self._networks(sample_shape)
        if itq:
            return ITQAutoencoderModule(encoder, decoder, r.output, r.loss, int(r.latent_dim))
        if r.get("binary_codes"):
            return BinaryCodeAutoencoderModule(encoder, decoder, r.output, r.loss, int(r.latent_dim))
        return AutoencoderModule(encoder, decoder, r.output, r.loss)

    def _corruption(self) -> Callable[[Tensor], Tensor] | None:
        """The training batches' shift (``shift_corruption``), or None: the plain autoencoder reconstructs its input."""
        shift = int(getattr(self, "resolved_", {}).get("shift_corruption") or 0)
        return Translation(shift) if shift else None

    def _unit_norm(self) -> bool:
        """Whether samples are scaled to unit Euclidean norm before the network (``sample_norm="l2"``)."""
        return getattr(self, "resolved_", {}).get("sample_norm") == "l2"

    def _prepare(self, X: Any) -> np.ndarray:
        Xs = super()._prepare(X)
        return unit_norm_samples(Xs)[0] if self._unit_norm() else Xs

    def reconstruct(self, X: Any) -> np.ndarray:
        """``decode(encode(X))`` in the units of ``X``, same shape as ``X``; with ``sample_norm="l2"`` each
        reconstruction of a unit-norm sample is scaled back by its input's norm."""
        if not self._unit_norm():
            return super().reconstruct(X)
        Xu, norms = unit_norm_samples(BaseAutoencoder._prepare(self, X))
        out = self._batched(lambda x: self.module_.decode(self.module_.encode(x)), Xu)
        out *= norms.reshape(-1, *([1] * (out.ndim - 1))).astype(out.dtype)
        return self.scaler_.inverse_transform(out).reshape(np.shape(X) if np.ndim(X) > 1 else out.shape)

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        if self._unit_norm():
            Xs = unit_norm_samples(Xs)[0]
        if isinstance(self.module_, PCAAutoencoderModule):
            self.module_.set_pca(Xs)
        history = super()._fit_module(Xs, y, seed, **fit_kw)
        if isinstance(self.module_, ITQCodes):
            # The code layer of bits, fitted to the trained network's codes of the training data.
            layer = self.module_.code_layer
            layer.fit(torch.from_numpy(self._batched(self.module_.encoder, Xs)), seed=seed)
        return history

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
    if output == "clip" and not in_unit:
        raise ValueError(
            f"output='clip' clips reconstructions to [0, 1], but the data range over [{lo:.4g}, {hi:.4g}]; "
            "use output='linear', or scaling='minmax'"
        )
    if output == "tanh" and (lo < -1 or hi > 1):
        raise ValueError(
            f"output='tanh' can only produce values in (-1, 1), but the data range over [{lo:.4g}, {hi:.4g}]; "
            "use output='linear' or scaling='normalize' for images in [0, 1]"
        )
    return output, loss
