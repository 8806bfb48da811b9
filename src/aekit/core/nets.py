"""Generic building blocks shared by the families: activations, MLP stacks, convolutional stacks.

Networks are sized from the data: ``input_shape`` is a sample's shape, (D,) for tabular data,
(C, L) for 1-D signals and (C, H, W) for images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aekit.core.devices import chunk_rows

#: The hidden non-linearities by name (the keys of :data:`ACTIVATIONS`), as a type families declare fields with.
Activation = Literal["relu", "gelu", "silu", "elu", "leaky_relu", "sigmoid", "tanh"]
#: The output non-linearities of a decoder ("clip": linear, clipped to [0, 1]; see :func:`apply_output`).
Output = Literal["sigmoid", "linear", "tanh", "clip"]
#: The network layouts of :func:`build_encoder_decoder`.
Architecture = Literal["mlp", "conv", "lecture-conv"]

class _Sigmoid(torch.autograd.Function):
    """1 / (1 + exp(-x)) with the gradient y (1 - y), which stays finite where exp(-x) overflows."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = 1.0 / (1.0 + torch.exp(-x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return grad * y * (1.0 - y)  # differentiable again: the contractive penalty differentiates it twice


def sigmoid(x: Tensor) -> Tensor:
    """The logistic function, the same for a sample whatever its place in the batch.

    PyTorch's CPU ``torch.sigmoid`` (and ``silu``, ``elu``) round the tail of a tensor, the elements
    after the last full vector register, one ulp differently from the rest, so a sample's code would
    depend on its row in the batch (scikit-learn's sample-order check sees it). ``exp`` and the
    correctly rounded ``+`` and ``/`` give the same bits wherever the element sits.
    """
    return _Sigmoid.apply(x)  # type: ignore[no-any-return]


class Sigmoid(nn.Module):
    """:func:`sigmoid` as a module."""

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid(x)


class SiLU(nn.Module):
    """x * sigmoid(x) by :func:`sigmoid`, so a sample's output does not depend on its place in the batch."""

    def forward(self, x: Tensor) -> Tensor:
        return x * sigmoid(x)


class ELU(nn.Module):
    """x for x > 0, exp(x) - 1 otherwise (alpha = 1), by ``exp``, which rounds the same at every position."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, x, torch.exp(torch.clamp(x, max=0.0)) - 1.0)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": SiLU,
    "elu": ELU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": nn.Tanh,
}
OUTPUTS: tuple[str, ...] = get_args(Output)
assert tuple(ACTIVATIONS) == get_args(Activation), "Activation must list the keys of ACTIVATIONS"


def activation(name: str) -> nn.Module:
    """A fresh activation module by name; unknown names list the valid ones."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}") from None


def code_activation(name: str) -> nn.Module:
    """The non-linearity of a code layer: any :func:`activation`, or ``"linear"`` (none)."""
    return nn.Identity() if name == "linear" else activation(name)


def apply_output(kind: str, raw: Tensor) -> Tensor:
    """Map the decoder's raw output to data space: sigmoid, tanh, identity, or clipped to [0, 1] ("clip").

    "clip" is a linear output for data in [0, 1] whose values are min(max(raw, 0), 1): a reconstruction
    never leaves the data's range, so where a pixel is 0 (most of a digit's) any raw value at or below 0 is
    exact. While training, the gradient passes the clip unchanged (straight through): the squared error of
    the clipped value then has the gradient 2 (clip(raw) - x), which is the gradient of a convex loss in
    raw, the squared error inside [0, 1] continued linearly outside it. A raw value beyond the range of
    its target is pulled back (no gradient dies at the clip), one beyond the bound its target sits on
    costs nothing.
    """
    if kind == "sigmoid":
        return sigmoid(raw)
    if kind == "tanh":
        return torch.tanh(raw)
    if kind == "clip":
        clipped = raw.clamp(0.0, 1.0)
        return raw + (clipped - raw).detach() if raw.requires_grad else clipped
    return raw


class Flatten(nn.Module):
    """(B, *shape) -> (B, prod(shape))."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


class Unflatten(nn.Module):
    """(B, prod(shape)) -> (B, *shape)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)


def mlp(dims: Sequence[int], act: str, last_act: bool = False) -> nn.Sequential:
    """Linear layers ``dims[0] -> dims[1] -> ... -> dims[-1]`` with ``act`` between them.

    The last layer is linear unless ``last_act``: a linear code layer, as in Hinton & Salakhutdinov.
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or last_act:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class TiedDecoder(nn.Module):
    """Decoder whose weight matrices are the transposes of an MLP encoder's (W_dec = W_enc^T).

    Only the biases are its own. Autograd sums the encoder and decoder contributions into the shared
    matrix's gradient.
    """

    def __init__(self, encoder: nn.Sequential, act: str) -> None:
        super().__init__()
        self._linears = [m for m in encoder if isinstance(m, nn.Linear)][::-1]
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(m.in_features)) for m in self._linears])
        self.act = activation(act)

    def forward(self, z: Tensor) -> Tensor:
        h = z
        for i, (lin, b) in enumerate(zip(self._linears, self.biases)):
            h = F.linear(h, lin.weight.t(), b)
            if i < len(self._linears) - 1:
                h = self.act(h)
        return h


def strided_stack(
    input_shape: Sequence[int], channels: Sequence[int], kernel: int, after: Callable[[int], nn.Module]
) -> tuple[list[nn.Module], list[tuple[int, ...]], int]:
    """Stride-2 convolutions with "same" padding (kernel 3 or 5), each followed by ``after(channels)``.

    For images (C, H, W) or signals (C, L). Returns the layers, the spatial size before the first and after
    each layer (each side ceil(n / 2)), and the last layer's channels; :func:`mirror_padding` inverts a step.
    """
    conv = nn.Conv2d if len(input_shape) == 3 else nn.Conv1d
    c, *spatial = (int(s) for s in input_shape)
    shapes = [tuple(spatial)]
    layers: list[nn.Module] = []
    for ch in channels:
        layers += [conv(c, ch, kernel, stride=2, padding=kernel // 2), after(ch)]
        c = ch
        shapes.append(tuple((s - 1) // 2 + 1 for s in shapes[-1]))
    return layers, shapes, c


def mirror_padding(target: Sequence[int]) -> Any:
    """``output_padding`` of the transposed stride-2 convolution that gives back ``target`` from ceil(n / 2).

    With "same" padding it maps n -> 2n - 1 + output_padding, so an even side needs 1; an int for signals.
    """
    pad = tuple(1 - t % 2 for t in target)
    return pad if len(pad) > 1 else pad[0]


class ConvEncoder(nn.Module):
    """Strided convolutions (k3 s2 p1, one per entry of ``channels``), then a linear map to the code.

    Works for images (C, H, W) and 1-D signals (C, L) of any size; ``spatial_shapes`` records the
    size after each layer so the decoder can mirror it exactly.
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], latent_dim: int, act: str) -> None:
        super().__init__()
        check_network(input_shape, "conv")
        layers, shapes, c = strided_stack(input_shape, channels, 3, lambda _: activation(act))
        self.spatial_shapes = shapes
        self.feature_shape = (c, *shapes[-1])
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(math.prod(self.feature_shape), latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x).flatten(1))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: linear, then transposed convolutions back to the input size."""

    def __init__(self, encoder: ConvEncoder, out_channels: int, channels: Sequence[int], latent_dim: int, act: str) -> None:
        super().__init__()
        nd = len(encoder.feature_shape) - 1
        convt = nn.ConvTranspose2d if nd == 2 else nn.ConvTranspose1d
        self.fc = nn.Linear(latent_dim, math.prod(encoder.feature_shape))
        self.unflatten = Unflatten(encoder.feature_shape)
        outs = list(channels[::-1][1:]) + [out_channels]
        targets = encoder.spatial_shapes[::-1][1:]
        layers: list[nn.Module] = [activation(act)]
        c = channels[-1]
        for i, (ch, target) in enumerate(zip(outs, targets)):
            layers.append(convt(c, ch, 3, stride=2, padding=1, output_padding=mirror_padding(target)))
            if i < len(outs) - 1:
                layers.append(activation(act))
            c = ch
        self.convs = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.convs(self.unflatten(self.fc(z)))


class LectureConvEncoder(nn.Sequential):
    """The lecture's encoder for (1, 28, 28): Conv 16 k3 s3 p1, ReLU, MaxPool 2 s2, Conv 8 k3 s2 p1,
    ReLU, MaxPool 2 s1, giving an (8, 2, 2) code, flattened to 32 values."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(1, 16, 3, stride=3, padding=1),  # (B, 16, 10, 10)
            nn.ReLU(),
            nn.MaxPool2d(2, stride=2),  # (B, 16, 5, 5)
            nn.Conv2d(16, 8, 3, stride=2, padding=1),  # (B, 8, 3, 3)
            nn.ReLU(),
            nn.MaxPool2d(2, stride=1),  # (B, 8, 2, 2)
            Flatten(),  # (B, 32)
        )


class LectureConvDecoder(nn.Sequential):
    """The lecture's decoder: ConvT 8->16 k3 s2, ReLU, ConvT 16->8 k5 s3 p1, ReLU, ConvT 8->1 k2 s2 p1.

    The first transposed convolution has no padding: with padding 1 (as one transcription of the
    lecture writes it) the output would be 16x16, not 28x28. The Tanh is applied as the output
    non-linearity by the model.
    """

    def __init__(self) -> None:
        super().__init__(
            Unflatten((8, 2, 2)),
            nn.ConvTranspose2d(8, 16, 3, stride=2),  # (B, 16, 5, 5)
            nn.ReLU(),
            nn.ConvTranspose2d(16, 8, 5, stride=3, padding=1),  # (B, 8, 15, 15)
            nn.ReLU(),
            nn.ConvTranspose2d(8, 1, 2, stride=2, padding=1),  # (B, 1, 28, 28)
        )


ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
#: The sample shape the lecture's convolutional network is defined for.
LECTURE_SHAPE = (1, 28, 28)
#: The code size of the lecture's convolutional network, (8, 2, 2) flattened.
LECTURE_CODE = 32


def check_network(sample_shape: Sequence[int], architecture: str) -> None:
    """Raise a ValueError when ``architecture`` cannot be built for samples of ``sample_shape``."""
    shape = tuple(int(s) for s in sample_shape)
    if architecture == "conv" and len(shape) not in (2, 3):
        raise ValueError(
            f"a convolutional network needs images (C, H, W) or signals (C, L), got sample shape "
            f"{shape}; use architecture='mlp' for tabular data"
        )
    if architecture == "lecture-conv" and shape != LECTURE_SHAPE:
        raise ValueError(
            f"the lecture-conv network is defined for 28x28 single-channel images (1, 28, 28), got sample shape "
            f"{shape}; use architecture='conv' for other sizes"
        )


def build_encoder_decoder(
    sample_shape: Sequence[int],
    architecture: str,
    hidden_dims: Sequence[int],
    latent_dim: int,
    act: str,
    tied: bool = False,
    *,
    head_dim: int | None = None,
) -> tuple[nn.Module, nn.Module]:
    """Encoder and decoder sized from ``sample_shape``.

    ``mlp``: flatten, ``D -> hidden_dims... -> head_dim`` with a linear last layer, and a mirrored (or
    tied) decoder ``latent_dim -> ... -> D``, reshaped back to the sample shape. ``conv``:
    :class:`ConvEncoder`/:class:`ConvDecoder` with ``hidden_dims`` as channel counts. ``lecture-conv``:
    the fixed lecture network for (1, 28, 28), whose code has 32 values.

    Parameters
    ----------
    sample_shape : sequence of int
        One sample's shape: (D,), (C, L) or (C, H, W).
    architecture : {"mlp", "conv", "lecture-conv"}
    hidden_dims : sequence of int
        Hidden widths (mlp) or channel counts (conv); unused by lecture-conv.
    latent_dim : int
        The code size K, the decoder's input width.
    act : str
        Hidden non-linearity, a key of :data:`ACTIVATIONS`.
    tied : bool
        Decoder weights are the encoder's transposed (mlp only, and ``head_dim == latent_dim``).
    head_dim : int, optional
        Width of the encoder's output when it differs from the code's, e.g. ``2 * latent_dim`` for an
        encoder that outputs a mean and a log-variance; default ``latent_dim``.

    Returns
    -------
    encoder : nn.Module, (B, *sample_shape) -> (B, head_dim)
    decoder : nn.Module, (B, latent_dim) -> (B, *sample_shape), before the output non-linearity
    """
    shape = tuple(int(s) for s in sample_shape)
    head = latent_dim if head_dim is None else int(head_dim)
    if tied and head != latent_dim:
        raise ValueError(f"tied weights need head_dim == latent_dim, got head_dim={head}, latent_dim={latent_dim}")
    check_network(shape, architecture)
    if architecture == "mlp":
        dims = [math.prod(shape), *hidden_dims]
        enc_mlp = mlp([*dims, head], act)
        encoder = nn.Sequential(Flatten(), enc_mlp)
        dec: nn.Module = TiedDecoder(enc_mlp, act) if tied else mlp([latent_dim, *dims[::-1]], act)
        return encoder, nn.Sequential(dec, Unflatten(shape))
    if tied:
        raise ValueError(f"tied weights are available for architecture='mlp' only, not {architecture!r}")
    if architecture == "conv":
        if not hidden_dims:
            raise ValueError("architecture='conv' needs at least one entry in hidden_dims (channel counts)")
        cenc = ConvEncoder(shape, hidden_dims, head, act)
        return cenc, ConvDecoder(cenc, shape[0], hidden_dims, latent_dim, act)
    if architecture == "lecture-conv":
        if head != LECTURE_CODE or latent_dim != LECTURE_CODE:
            raise ValueError(
                f"the lecture-conv network has a code of {LECTURE_CODE} values, got latent_dim={latent_dim} and "
                f"head_dim={head}; use architecture='conv' for another code size"
            )
        return LectureConvEncoder(), LectureConvDecoder()
    raise ValueError(f"unknown architecture {architecture!r}; valid: {', '.join(ARCHITECTURES)}")


# ------------------------------------------------------------------ PCA plus a learned correction


def centred_scatter(X: Tensor, chunk: int | None = None, products: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """The mean (D,) and the centred scatter matrix ``sum_i (x_i - mean)(x_i - mean)^T`` (D, D) of the rows of
    ``X`` (N, D), in float64, read ``chunk`` rows at a time (by default as many as fill
    :data:`~aekit.core.devices.CHUNK_BYTES` in the ``products`` dtype): no float64 copy of ``X`` is made.

    With ``products=torch.float32`` each chunk's product takes float32 inputs and sums in float32, and the
    chunks' products are summed in float64: twice as fast, with entries about 3e-6 of the largest one off
    (MNIST) instead of 1e-15.
    """
    n, d = X.shape
    if chunk is None:
        chunk = chunk_rows(torch.empty((), dtype=products).element_size() * d)
    mean = torch.zeros(d, dtype=torch.float64, device=X.device)
    for i in range(0, n, chunk):
        mean += X[i : i + chunk].double().sum(dim=0)
    mean /= max(n, 1)
    scatter = torch.zeros(d, d, dtype=torch.float64, device=X.device)
    centre = mean.to(products)
    for i in range(0, n, chunk):
        c = X[i : i + chunk].to(products) - centre  # (chunk, D)
        if products == torch.float64:
            scatter.addmm_(c.t(), c)
        else:
            scatter += (c.t() @ c).double()
    return mean, scatter


def principal_axes(X: Tensor, k: int, products: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The mean and the top-``k`` principal axes of the rows of ``X``, and each feature's spread.

    Parameters
    ----------
    X : Tensor, (N, D)
    k : int
        At most min(N, D).
    products : torch.float64 or torch.float32
        The dtype of the scatter matrix's products for tall data (see :func:`centred_scatter`); float32
        halves their time, for a starting point that training moves away from anyway.

    Returns
    -------
    mean : Tensor (D,)
    axes : Tensor (k, D)
        Orthonormal rows, the top-k right singular vectors of ``X - mean``, signed as scikit-learn's PCA
        signs them (the largest absolute loading of each axis positive).
    scale : Tensor (k,)
        The standard deviation of the data along each axis.
    spread : Tensor (D,)
        Each feature's population standard deviation, from the same pass over the data (for tall data the
        scatter matrix's diagonal).

    Computed in float64 (but for ``products``). With at least as many samples as features, up to 2,048 features: the eigenvectors of
    the centred scatter matrix, accumulated a chunk of rows at a time, so memory stays at D x D whatever N is
    (an SVD of the centred data would hold two float64 copies of it: 12 GB for a million MNIST images). Otherwise
    exact (an SVD) up to 2,048 samples or features, and a randomized SVD with extra power iterations beyond
    (Halko et al. 2011), close to exact for the leading axes.
    """
    n, d = X.shape
    if n >= d and d <= 2048:
        mean, scatter = centred_scatter(X, products=products)
        spread = (scatter.diagonal() / max(n, 1)).clamp_min(0.0).sqrt()
        evals, evecs = torch.linalg.eigh(scatter)  # ascending
        S = evals.flip(0).clamp_min(0.0).sqrt()
        Vt = evecs.flip(1).t()
    else:
        Xd = X.double()
        mean = Xd.mean(dim=0)
        Xc = Xd - mean  # (N, D)
        spread = Xc.square().mean(dim=0).sqrt()
        if min(n, d) <= 2048:
            _, S, Vt = torch.linalg.svd(Xc, full_matrices=False)
        else:
            # The sketch is drawn from a fixed seed in a forked RNG: the axes do not depend on the caller's
            # random state, and the caller's random state is the same afterwards.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                _, S, V = torch.svd_lowrank(Xc, q=min(k + 16, n, d), niter=8)
            Vt = V.t()
    axes = Vt[:k]
    signs = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))
    scale = S[:k] / max(n - 1, 1) ** 0.5
    return mean, axes * signs, scale, spread


def _zero_last(net: nn.Sequential) -> nn.Sequential:
    """Zero the weight and bias of the last linear layer, so the net outputs 0 until it is trained."""
    last = [m for m in net if isinstance(m, nn.Linear)][-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return net


class ResidualPCAEncoder(nn.Module):
    """z = V (x - mu) + f((x - mu) / s): a linear map V (the principal axes at initialization) plus an MLP
    correction f whose last layer starts at zero, so the encoder starts as PCA's.

    (B, *sample_shape) -> (B, K). ``mean`` (D,) and ``input_scale`` s (D,) are buffers set from the data
    (:meth:`set_pca`); s, each feature's spread, keeps the MLP's input at unit scale whatever the units.
    """

    mean: Tensor
    input_scale: Tensor

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], latent_dim: int, act: str) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("input_scale", torch.ones(in_dim))
        self.V = nn.Parameter(torch.zeros(latent_dim, in_dim))
        self.correction = _zero_last(mlp([in_dim, *hidden_dims, latent_dim], act))

    @torch.no_grad()
    def set_pca(self, mean: Tensor, axes: Tensor, input_scale: Tensor) -> None:
        self.mean.copy_(mean)
        self.V.copy_(axes)
        self.input_scale.copy_(input_scale)

    def forward(self, x: Tensor) -> Tensor:
        xc = x.reshape(x.shape[0], -1) - self.mean  # (B, D)
        return xc @ self.V.t() + self.correction(xc / self.input_scale)


class ResidualPCADecoder(nn.Module):
    """x_hat = W z + mu + g(z / s): a linear map W (the principal axes transposed at initialization) plus an
    MLP correction g whose last layer starts at zero, so the decoder starts as PCA's reconstruction.

    (B, K) -> (B, *sample_shape). ``mean`` (D,) and ``code_scale`` s (K,), the spread of the data along
    each axis, are buffers set from the data (:meth:`set_pca`).
    """

    mean: Tensor
    code_scale: Tensor

    def __init__(self, sample_shape: Sequence[int], hidden_dims: Sequence[int], latent_dim: int, act: str) -> None:
        super().__init__()
        self.sample_shape = tuple(int(s) for s in sample_shape)
        d = math.prod(self.sample_shape)
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("code_scale", torch.ones(latent_dim))
        self.W = nn.Parameter(torch.zeros(d, latent_dim))
        self.correction = _zero_last(mlp([latent_dim, *hidden_dims[::-1], d], act))

    @torch.no_grad()
    def set_pca(self, mean: Tensor, axes: Tensor, code_scale: Tensor) -> None:
        self.mean.copy_(mean)
        self.W.copy_(axes.t())
        self.code_scale.copy_(code_scale.clamp_min(1e-12))

    def forward(self, z: Tensor) -> Tensor:
        out = z @ self.W.t() + self.mean + self.correction(z / self.code_scale)  # (B, D)
        return out.reshape(z.shape[0], *self.sample_shape)
