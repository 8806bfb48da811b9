"""Corruption processes q(x' | x): the noise a denoising autoencoder learns to undo.

P. Vincent, H. Larochelle, Y. Bengio and P.-A. Manzagol, "Extracting and composing robust features
with denoising autoencoders", ICML 2008; P. Vincent et al., "Stacked denoising autoencoders: learning
useful representations in a deep network with a local denoising criterion", JMLR 11 (2010), sec. 4.2
(additive Gaussian, masking and salt-and-pepper noise). Block occlusion (inpainting) and grayscale
(colorization) are the corruptions of the applications.

Every corruption is a small callable ``Tensor -> Tensor`` that draws fresh noise on every call, never
writes into its input, and works on tabular batches (B, D), 1-D signals (B, C, L) and images
(B, C, H, W) unless it says otherwise. Noise comes from the global torch RNG (which the training loop
seeds) or from an explicit ``generator``. Nothing calls ``.item()`` or otherwise syncs with the host,
so a corruption can be captured in a CUDA graph with the training step.

Written as strings for the command line and configs::

    "gaussian:0.5"            x' = x + 0.5 * eps,  eps ~ N(0, I)
    "masking:0.25"            each value set to 0 with probability 0.25
    "salt-and-pepper:0.1"     each value set, with probability 0.1, to 0 or 1 (fair coin)
    "block:8" / "block:8:2"   one (two) random 8x8 square(s) per image set to 0
    "grayscale"               RGB -> luma, replicated over the 3 channels
    "translate:2"             each image shifted by up to 2 pixels along each axis, edges replicated
    "masking:0.25+gaussian:0.1"  applied left to right
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aekit.core.params import is_whole, seed_from

#: ITU-R BT.601 luma weights, the usual RGB -> gray conversion (also PIL's "L" mode).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


# ------------------------------------------------------------------------------------- validation


def _check_number(name: str, value: Any, low: float, high: float, *, what: str) -> float:
    """``value`` as a float in the closed interval [low, high], else a ValueError naming both."""
    interval = f"[{low:g}, inf)" if math.isinf(high) else f"[{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in {interval} ({what}), got {value!r}")
    # Also rejects NaN, and infinity: the intervals are closed only at finite ends.
    if not low <= float(value) <= high or math.isinf(float(value)):
        raise ValueError(f"{name} must be in {interval} ({what}), got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, low: int, *, what: str) -> int:
    if not is_whole(value, low):
        raise ValueError(f"{name} must be an integer >= {low} ({what}), got {value!r}")
    return int(value)


def _rand(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) noise of x's shape, dtype and device."""
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


_FOR_OTHER_DATA = "use 'masking' or 'gaussian' noise for tabular data and signals"


def _image_shape(what: str, sample_shape: Sequence[int]) -> tuple[int, int, int]:
    """``sample_shape`` as (C, H, W), else a ValueError: ``what`` acts on images only."""
    shape = tuple(int(s) for s in sample_shape)
    if len(shape) != 3:
        raise ValueError(f"{what} needs images of shape (C, H, W), got sample shape {shape}; {_FOR_OTHER_DATA}")
    return shape[0], shape[1], shape[2]


def _check_image_batch(what: str, x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{what} needs an image batch of shape (B, C, H, W), got shape {tuple(x.shape)}; {_FOR_OTHER_DATA}"
        )


# ------------------------------------------------------------------------------------- corruptions


class Corruption:
    """Base class: a random map x -> x' applied to a batch, fresh noise on every call."""

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def apply(self, X: Any, random_state: Any = None) -> np.ndarray:
        """Corrupt a NumPy array (or anything array-like) of samples; returns a new float32 array.

        ``random_state`` seeds the noise (an int gives the same draw every time; None, a fresh one).
        The input is never modified. For a batch already in torch, call the corruption itself.
        """
        arr = np.asarray(X, dtype=np.float32)
        if arr.ndim < 2:
            raise ValueError(
                f"expected samples as rows, an array of shape (n_samples, ...), got shape {arr.shape}; "
                "reshape a single sample with x[None]"
            )
        gen = torch.Generator().manual_seed(seed_from(random_state))
        return self(torch.from_numpy(arr.copy()), gen).numpy()

    @property
    def spec(self) -> str:
        """The string that :func:`make_corruption` turns back into this corruption."""
        raise NotImplementedError

    @property
    def is_identity(self) -> bool:
        """True when the corruption leaves every input unchanged (zero noise level)."""
        return False

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        """Raise a ValueError if this corruption cannot act on samples of ``sample_shape``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Corruption) and type(other) is type(self) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.spec))


class GaussianNoise(Corruption):
    """Additive isotropic Gaussian noise ``x' = x + sigma * eps``, ``eps ~ N(0, I)``.

    Parameters
    ----------
    sigma : float >= 0
        Standard deviation of the noise, in the units of the (scaled) data; 0 adds none.
    """

    def __init__(self, sigma: float) -> None:
        self.sigma = _check_number("sigma", sigma, 0.0, math.inf, what="the standard deviation of the noise; 0 adds none")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.sigma == 0.0:
            return x
        return x + self.sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    @property
    def spec(self) -> str:
        return f"gaussian:{self.sigma!r}"

    @property
    def is_identity(self) -> bool:
        return self.sigma == 0.0


class MaskingNoise(Corruption):
    """Masking noise: each value is set to 0 independently with probability ``nu``.

    ``x'_i = x_i * m_i`` with ``m_i ~ Bernoulli(1 - nu)`` (Vincent et al. 2008 zero a random fraction
    nu of the inputs; the Bernoulli form has the same expected fraction and needs no sorting).

    Parameters
    ----------
    nu : float in [0, 1]
        Probability of zeroing each value; 0 leaves the input unchanged.
    """

    def __init__(self, nu: float) -> None:
        self.nu = _check_number("nu", nu, 0.0, 1.0, what="the probability of zeroing each input")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.nu == 0.0:
            return x
        return x.masked_fill(_rand(x, generator) < self.nu, 0.0)

    @property
    def spec(self) -> str:
        return f"masking:{self.nu!r}"

    @property
    def is_identity(self) -> bool:
        return self.nu == 0.0


class SaltAndPepper(Corruption):
    """Salt-and-pepper noise: each value is, with probability ``p``, replaced by ``low`` or ``high``.

    The replacement is ``low`` or ``high`` with probability 1/2 each (a fair coin, as in Vincent et al.
    2010), so on average a fraction p/2 becomes ``low`` and p/2 becomes ``high``.

    Parameters
    ----------
    p : float in [0, 1]
        Probability that a value is replaced; 0 leaves the input unchanged.
    low, high : float
        The "pepper" and "salt" values: the minimum and maximum of the data, 0 and 1 for images.
    """

    def __init__(self, p: float, low: float = 0.0, high: float = 1.0) -> None:
        self.p = _check_number("p", p, 0.0, 1.0, what="the probability that a value is replaced by 0 or 1")
        self.low, self.high = float(low), float(high)
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(
                f"salt-and-pepper needs finite values low < high (the pepper and salt values, the minimum and "
                f"maximum of the data), got low={low!r}, high={high!r}; the defaults 0 and 1 suit images in [0, 1]"
            )

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.p == 0.0:
            return x
        # One uniform draw decides both events: u < p/2 -> pepper, p/2 <= u < p -> salt.
        u = _rand(x, generator)
        out = x.masked_fill(u < self.p, self.high)
        return out.masked_fill(u < 0.5 * self.p, self.low)

    @property
    def spec(self) -> str:
        extra = "" if (self.low, self.high) == (0.0, 1.0) else f":{self.low!r}:{self.high!r}"
        return f"salt-and-pepper:{self.p!r}{extra}"

    @property
    def is_identity(self) -> bool:
        return self.p == 0.0


class BlockOcclusion(Corruption):
    """Occlusion for inpainting: ``n_blocks`` random ``size x size`` squares per image set to ``value``.

    Each block's position is drawn uniformly among the positions where it fits inside the image, for
    every image independently; the block covers all channels. Images (B, C, H, W) only.

    Parameters
    ----------
    size : int >= 1
        Side of the square block in pixels; at most the image's height and width.
    n_blocks : int >= 1
        Blocks per image (they may overlap).
    value : float
        What the occluded pixels become; 0 (black) by default.
    """

    def __init__(self, size: int, n_blocks: int = 1, value: float = 0.0) -> None:
        self.size = _check_int("size", size, 1, what="the side of the occluded square in pixels")
        self.n_blocks = _check_int("n_blocks", n_blocks, 1, what="the number of occluded squares per image")
        self.value = float(value)

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        shape = _image_shape("block occlusion", sample_shape)
        h, w = shape[1], shape[2]
        if self.size > min(h, w):
            raise ValueError(
                f"block size {self.size} does not fit in images of sample shape {shape} ({h}x{w}); use a block "
                f"size of at most {min(h, w)}"
            )

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _check_image_batch("block occlusion", x)
        self.check_shape(x.shape[1:])
        b, _, h, w = x.shape
        s, n, dev = self.size, self.n_blocks, x.device
        top = torch.randint(0, h - s + 1, (b, n, 1), generator=generator, device=dev)  # (B, n, 1)
        left = torch.randint(0, w - s + 1, (b, n, 1), generator=generator, device=dev)
        rows = torch.arange(h, device=dev)
        cols = torch.arange(w, device=dev)
        in_rows = (rows >= top) & (rows < top + s)  # (B, n, H)
        in_cols = (cols >= left) & (cols < left + s)  # (B, n, W)
        mask = (in_rows[:, :, :, None] & in_cols[:, :, None, :]).any(dim=1)  # (B, H, W)
        return x.masked_fill(mask[:, None], self.value)  # broadcast over channels

    @property
    def spec(self) -> str:
        return f"block:{self.size}" + (f":{self.n_blocks}" if self.n_blocks != 1 else "")


class Grayscale(Corruption):
    """Colorization corruption: RGB -> luma ``0.299 R + 0.587 G + 0.114 B``, replicated over 3 channels.

    The output keeps the input's shape, so a model maps gray images back to color. Needs 3 channels:
    (B, 3, H, W) or (B, 3, L).
    """

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        shape = tuple(int(s) for s in sample_shape)
        if len(shape) < 2 or shape[0] != 3:
            raise ValueError(
                f"grayscale corruption needs RGB samples with 3 channels, shape (3, H, W), got sample shape {shape}; "
                "it is for colorization of color images, use 'masking' or 'gaussian' noise for other data"
            )

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.ndim < 3 or x.shape[1] != 3:
            raise ValueError(
                f"grayscale corruption needs an RGB batch of shape (B, 3, H, W), got shape {tuple(x.shape)}; it is "
                "for colorization of color images, use 'masking' or 'gaussian' noise for other data"
            )
        w = torch.tensor(LUMA_WEIGHTS, device=x.device, dtype=x.dtype).reshape(1, 3, *([1] * (x.ndim - 2)))
        gray = (x * w).sum(dim=1, keepdim=True)  # (B, 1, ...)
        return gray.expand_as(x).contiguous()

    @property
    def spec(self) -> str:
        return "grayscale"


class Translation(Corruption):
    """Each image shifted by its own random offsets in [-shift, shift] pixels along H and W, the uncovered
    border filled with the image's edge values: trained to undo it, a model's codes tolerate small shifts.

    Images (B, C, H, W) only, each side larger than ``2 * shift``.

    Parameters
    ----------
    shift : int >= 0
        The largest offset in pixels; 0 leaves every image as it is.
    """

    def __init__(self, shift: int) -> None:
        self.shift = _check_int("shift", shift, 0, what="the largest offset in pixels")

    @staticmethod
    def largest_shift(sample_shape: Sequence[int]) -> int | None:
        """The largest shift images of ``sample_shape`` (C, H, W) take, each side longer than twice it; None for
        samples that are not images."""
        shape = tuple(int(s) for s in sample_shape)
        return (min(shape[1], shape[2]) - 1) // 2 if len(shape) == 3 else None

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        shape = _image_shape("translation", sample_shape)
        largest = self.largest_shift(shape)
        if largest is not None and self.shift > largest:
            raise ValueError(
                f"a shift of up to {self.shift} pixels does not fit images of sample shape {shape}; use a shift "
                f"below {largest + 1}"
            )

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _check_image_batch("translation", x)
        return random_translate(x, self.shift, generator)

    @property
    def spec(self) -> str:
        return f"translate:{self.shift}"

    @property
    def is_identity(self) -> bool:
        return self.shift == 0


class Compose(Corruption):
    """Apply corruptions left to right: ``Compose([a, b])(x) == b(a(x))``; empty is the identity."""

    def __init__(self, corruptions: Iterable[Callable[..., Tensor]]) -> None:
        self.corruptions = list(corruptions)
        for c in self.corruptions:
            if not callable(c):
                raise ValueError(f"Compose needs callables Tensor -> Tensor, got {c!r}")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for c in self.corruptions:
            x = c(x, generator) if isinstance(c, Corruption) else c(x)
        return x

    def check_shape(self, sample_shape: Sequence[int]) -> None:
        for c in self.corruptions:
            if isinstance(c, Corruption):
                c.check_shape(sample_shape)

    @property
    def spec(self) -> str:
        if not self.corruptions:
            return "none"
        return "+".join(c.spec if isinstance(c, Corruption) else repr(c) for c in self.corruptions)

    @property
    def is_identity(self) -> bool:
        return all(isinstance(c, Corruption) and c.is_identity for c in self.corruptions)


# ------------------------------------------------------------------------------------- the parser

# name -> (builder, names of its positional values, how many are required, example)
_KINDS: dict[str, tuple[Callable[..., Corruption], tuple[str, ...], int, str]] = {
    "gaussian": (GaussianNoise, ("sigma",), 1, "gaussian:0.5"),
    "masking": (MaskingNoise, ("nu",), 1, "masking:0.25"),
    "salt-and-pepper": (SaltAndPepper, ("p", "low", "high"), 1, "salt-and-pepper:0.1"),
    "block": (BlockOcclusion, ("size", "n_blocks"), 1, "block:8 or block:8:2"),
    "grayscale": (Grayscale, (), 0, "grayscale"),
    "translate": (Translation, ("shift",), 1, "translate:2"),
    "none": (lambda: Compose([]), (), 0, "none"),
}
CORRUPTIONS: tuple[str, ...] = tuple(_KINDS)
_INT_ARGS = {"size", "n_blocks", "shift"}


def _build(kind: str, values: Sequence[Any], source: str) -> Corruption:
    if kind not in _KINDS:
        raise ValueError(f"unknown corruption {kind!r} in {source!r}; valid corruptions are: {', '.join(CORRUPTIONS)}")
    builder, names, required, example = _KINDS[kind]
    if not required <= len(values) <= len(names):
        takes = "no value" if not names else f"{required} to {len(names)} values ({', '.join(names)})"
        if names and required == len(names):
            takes = f"{required} value{'s' if required > 1 else ''} ({', '.join(names)})"
        raise ValueError(f"corruption {kind!r} takes {takes}, got {len(values)} in {source!r}; write e.g. {example!r}")
    return builder(*values)


def _parse_value(text: str, name: str, source: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"could not read {text!r} in corruption {source!r} as a number ({name})") from None
    if name in _INT_ARGS and value.is_integer():
        return int(value)
    return value


def make_corruption(spec: str | Corruption) -> Corruption:
    """Build a corruption from a string such as ``"masking:0.25"`` or ``"masking:0.25+gaussian:0.1"``.

    Parameters
    ----------
    spec : str
        ``name[:value[:value]]`` terms joined by ``+`` (applied left to right). Names: ``gaussian:sigma``,
        ``masking:nu``, ``salt-and-pepper:p[:low:high]``, ``block:size[:n_blocks]``, ``grayscale``, ``translate:shift``, ``none``.
        A :class:`Corruption` is returned unchanged.

    Returns
    -------
    Corruption
        A callable ``Tensor -> Tensor``; its ``spec`` gives the string back.

    Raises
    ------
    ValueError
        For an unknown name (listing the valid ones), a wrong number of values, a value that is not a
        number or a value out of range.
    """
    if isinstance(spec, Corruption):
        return spec
    if not isinstance(spec, str):
        raise ValueError(
            f"a corruption is given as a string such as 'masking:0.25', got {spec!r} of type {type(spec).__name__}"
        )
    terms = [t.strip() for t in spec.split("+")]
    if not spec.strip() or any(not t for t in terms):
        raise ValueError(
            f"empty corruption term in {spec!r}; write terms such as 'masking:0.25' joined by '+', or 'none'. "
            f"Valid corruptions are: {', '.join(CORRUPTIONS)}"
        )
    parts: list[Corruption] = []
    for term in terms:
        name, *raw = (s.strip() for s in term.split(":"))
        kind = name.lower().replace("_", "-")
        names = _KINDS[kind][1] if kind in _KINDS else ()
        values = [_parse_value(v, names[i] if i < len(names) else "value", term) for i, v in enumerate(raw)]
        parts.append(_build(kind, values, term))
    return parts[0] if len(parts) == 1 else Compose(parts)


def corruption_from_params(kind: str, level: float | None = None) -> Corruption:
    """Build a corruption from a name and its one level, e.g. ``("masking", 0.25)``, for parameter searches.

    ``level`` is sigma for ``gaussian``, nu for ``masking``, p for ``salt-and-pepper``, the block size for
    ``block``, the largest shift for ``translate``; ``grayscale`` and ``none`` take no level (pass None).
    """
    key = str(kind).lower().replace("_", "-")
    values: list[Any] = [] if level is None else [level]
    if key in ("block", "translate") and level is not None and float(level).is_integer():
        values = [int(level)]
    return _build(key, values, f"{kind}:{level}" if level is not None else str(kind))


def check_translation(t: Any, sample_shape: tuple[int, ...], name: str = "translation") -> int:
    """``t``, a shift of up to that many pixels (:func:`random_translate`), checked against the samples: a whole
    number >= 0, 0 for samples that are not images (C, H, W), and less than half an image's smaller side.
    ``name`` is how messages call it: a parameter (``translation=4``) or a flag (``--finetune-shift 4``)."""
    def said(v: Any) -> str:
        return f"{name} {v}" if name.startswith("--") else f"{name}={v!r}"

    if not is_whole(t, 0):
        raise ValueError(f"{said(t)}: give a whole number of pixels >= 0, e.g. 2; 0 turns shifts off")
    if t and len(sample_shape) != 3:
        raise ValueError(f"{said(t)} shifts images, but the samples have shape {tuple(sample_shape)}, not "
                         f"(C, H, W); use {said(0)} for tables and signals")
    if t and 2 * t >= min(sample_shape[1:]):
        raise ValueError(f"{said(t)} pixels is half an image of {sample_shape[1]}x{sample_shape[2]} or more; "
                         f"use at most {(min(sample_shape[1:]) - 1) // 2}")
    return int(t)


def random_translate(x: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Each image of ``x`` (B, C, H, W) shifted by its own random offsets in [-max_shift, max_shift] along
    H and W, the uncovered border filled with the image's edge values; ``max_shift = 0`` returns ``x``.

    Drawn from ``generator``, else torch's default generator of ``x``'s device.
    """
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    s = int(max_shift)
    padded = torch.nn.functional.pad(x, (s, s, s, s), mode="replicate")  # (B, C, H + 2s, W + 2s)
    dy = torch.randint(0, 2 * s + 1, (b, 1), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * s + 1, (b, 1), generator=generator, device=x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
    cols = (dx + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)
