"""Learned compression: an autoencoder as a lossy, data-specific codec that writes real, entropy-coded files.

The encoder ``f`` maps a sample to a code ``z`` (K units); each unit is quantized with a step ``Δ_k`` and
the integer symbols are range-coded (the ``constriction`` library) under a probability model fitted to
the codes of training data, a Laplace density per unit discretized over the quantization bins::

    q_k = round((z_k - m_k) / Δ_k),    P(q_k) = F_k((q_k + 1/2) Δ_k) - F_k((q_k - 1/2) Δ_k),
    F_k = CDF of Laplace(0, b_k),      rate = -sum_k log2 P(q_k) bits,    z_hat_k = m_k + Δ_k q_k

(the lossy transform coding of J. Ballé, V. Laparra and E. Simoncelli, "End-to-end optimized image
compression", ICLR 2017, and L. Theis et al., "Lossy image compression with compressive autoencoders",
ICLR 2017, here with a density fitted after training). One parameter, ``step``, scales every ``Δ_k``, so one
model gives a rate-distortion curve. The units' steps follow high-rate theory: a step ``Δ_k`` adds a
distortion ``w_k Δ_k^2 / 12`` where ``w_k = E ||∂g/∂z_k||^2`` is the decoder's sensitivity to the unit, and
equal contributions minimize the rate at a given distortion, so ``Δ_k ∝ w_k^{-1/2}``.

A model trained for rate and distortion together (:class:`aekit.RateDistortionAutoencoder`) learned a Laplace
density per unit at quantization step 1 in its code's units; :func:`fit_code_model` takes those densities and
``gain_k = 1``, so ``step=1`` codes at the rate it was trained for (measured on the CIFAR-10 subset: 48 to 70 %
fewer bits than densities fitted afterwards at lmbda 0.01 and 0.03, about as many at 0.003, benchmarks/RESULTS.md).

A code alone cannot reach high fidelity (the reconstruction error of the model is its floor). The optional
refinement layer codes the residual ``x - x_hat`` of every value with a step ``residual_step`` under a
Laplace density whose location and scale depend on the decoded value ``x_hat`` (context bins fitted on
training residuals, so the black background of a digit costs almost nothing and its edges most), with
one scale multiplier per file chosen by the encoder to minimize the coded length. The output is
``x_hat + residual_step * r``: every value within ``residual_step / 2`` of the input.

The probability model (:class:`CodeModel`, :func:`fit_code_model`) is fitted once and stored beside the
model (``codec.json`` in a run directory); each file names it by a 4-byte digest, which also binds the
model's config and weights, so a file from another model is refused instead of decoded into noise.

The file format (version 1), everything little-endian::

    b"AEc"  version:u8  flags:u8  codec-tag:4 bytes
    ndim:varint  shape:varint * ndim  step:f32  [residual_step:f32  scale-index:u8  context-check:u16]  (flags bit 0)
    words:varint  payload:u32 * words  crc32:u32 (of all the bytes before it)

A file of one (1, 1, 28, 28) image spends 30 bytes on its header, length and checksum with the refinement layer, 23
without (a JPEG's header is about 3,000 bits); the payload is whole 32-bit words. The decoder recomputes ``x_hat``
as the encoder did and the refinement layer's densities depend on it, so a file with that layer must be decoded
where float arithmetic gives the same decodings (the same kind of device and library): a decoder that rounds
differently would pick other densities and decode noise (integer networks, J. Ballé et al., "Integer networks for
data compression", ICLR 2019, would lift this). The context check (16 bits of a CRC-32 of the context each value's
density was chosen by) catches that: such a file is refused with a message, not decoded into noise. The codes alone
use no network arithmetic to decode: their densities come from the code model only.

Example::

    cm = aekit.fit_code_model(ae, X_train)
    data = aekit.compress(ae, X_test, code_model=cm, step=0.5, residual_step=0.05)
    X_hat = aekit.decompress(ae, data, code_model=cm)        # X_test's shape, float32
    len(data) * 8 / len(X_test)                              # bits per image, what the file holds
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.model.persist import model_fingerprint

__all__ = [
    "CODEC_FILE",
    "CodeModel",
    "CompressedFileError",
    "compress",
    "decompress",
    "fit_code_model",
    "finest_steps",
    "model_fingerprint",
    "rate_distortion",
]

MAGIC = b"AEc"
VERSION = 1
CODEC_FILE = "codec.json"
_FLAG_RESIDUAL = 1
# Per-file multipliers of the fitted residual scales: 2 ** ((i - 128) / 8), i = 0 .. 255.
_SCALE_BASE = 128
_SCALE_PER_OCTAVE = 8.0


class CompressedFileError(ValueError):
    """A compressed file that is not aekit's, is truncated or corrupt, or belongs to another model."""


# ------------------------------------------------------------------------------------- the probability model


_FINGERPRINTS: dict[int, tuple[tuple[Any, ...], str]] = {}


def _fingerprint(model: Any) -> str:
    """:func:`model_fingerprint`, computed again only when the model's tensors were replaced or changed in place."""
    tensors = tuple(model.module_.state_dict().values())
    key = (id(model.module_), json.dumps(getattr(model, "params_", None), sort_keys=True, default=str),
           *((t.data_ptr(), t._version) for t in tensors))
    hit = _FINGERPRINTS.get(id(model))
    if hit is not None and hit[0] == key:
        return hit[1]
    fp = model_fingerprint(model)
    if len(_FINGERPRINTS) > 16:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[id(model)] = (key, fp)
    return fp


@dataclass(frozen=True)
class CodeModel:
    """The probability model of a codec: per-unit Laplace densities of the codes and context densities of the residuals.

    Attributes
    ----------
    model_sha256 : str
        :func:`model_fingerprint` of the model it was fitted for.
    loc, scale : tuple of float, (K,)
        Median ``m_k`` and Laplace scale ``b_k`` (mean absolute deviation) of each code unit.
    bound : tuple of float, (K,)
        Largest ``|z_k - m_k|`` coded; beyond it a code is clipped (twice the training range).
    gain : tuple of float, (K,)
        ``Δ_k = step * gain_k``: a typical unit's spread times ``w_k^{-1/2}`` over their geometric mean.
    edges : tuple of float, (B - 1,)
        Bin edges of the decoded value that select a residual density (quantiles of training decodings).
    res_loc, res_scale : tuple of float, (B,)
        Median and Laplace scale of the residual ``x - x_hat`` in each bin.
    low, high : float
        The training data's range; decodings are clipped to it.
    """

    model_sha256: str
    loc: tuple[float, ...]
    scale: tuple[float, ...]
    bound: tuple[float, ...]
    gain: tuple[float, ...]
    edges: tuple[float, ...]
    res_loc: tuple[float, ...]
    res_scale: tuple[float, ...]
    low: float
    high: float

    @property
    def digest(self) -> str:
        """SHA-256 of the model as JSON: what a compressed file names (its first 4 bytes)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps({"format": "aekit-codec/1", **asdict(self)}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CodeModel:
        try:
            obj = json.loads(text)
            if obj.pop("format", None) != "aekit-codec/1":
                raise ValueError("not an aekit-codec/1 document")
            fields: dict[str, Any] = {k: tuple(float(x) for x in v) if isinstance(v, list) else v
                                      for k, v in obj.items()}
            return cls(**fields)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a valid code model ({exc}); fit it again with aekit.fit_code_model") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model as JSON, atomically."""
        from aekit.engine.rundir import atomic_write_text

        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CodeModel:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _check_model(model: Any) -> None:
    """A fitted aekit estimator with an encoder and a decoder, or a clear error naming the families that have both."""
    from aekit.model.registry import families

    aekit_model = callable(getattr(model, "_check_fitted", None))
    if not (aekit_model and callable(getattr(model, "transform", None))
            and callable(getattr(model, "inverse_transform", None))):
        can = [n for n, f in families().items() if hasattr(f.estimator, "inverse_transform")]
        raise ValueError(f"{type(model).__name__} cannot compress: compression needs a fitted aekit model with an "
                         f"encoder and a decoder (transform and inverse_transform); use one of: {', '.join(can)}")
    model._check_fitted()


def _samples(model: Any, X: Any, name: str = "X") -> tuple[np.ndarray, tuple[int, ...]]:
    """``X`` as float32 (N, *sample_shape) and its own shape; any shape holding whole samples is accepted."""
    _check_model(model)
    shape = tuple(int(s) for s in model.sample_shape_)
    A = np.asarray(X, dtype=np.float32)
    d = math.prod(shape)
    if A.ndim < 2 or A.shape[0] == 0 or math.prod(A.shape[1:]) != d:
        raise ValueError(f"{name} has shape {A.shape}, but the model codes samples of shape {shape} ({d} values "
                         f"each); pass (N, {', '.join(map(str, shape))}) or (N, {d})")
    if not np.isfinite(A).all():
        raise ValueError(f"{name} holds NaN or infinite values; compression needs finite values")
    return A.reshape(A.shape[0], *shape), tuple(int(s) for s in A.shape)


def _decode(model: Any, Z: np.ndarray, low: float, high: float) -> np.ndarray:
    """Decodings of codes ``Z`` (N, K), clipped to the training range, as float64 (N, D)."""
    R = np.asarray(model.inverse_transform(Z.astype(np.float32)), np.float64).reshape(Z.shape[0], -1)
    return np.clip(R, low, high)


def _fitted_codes(model: Any, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Laplace locations, scales, bounds and step gains of codes ``Z`` (N, K) of a model trained without a rate."""
    N, K = Z.shape
    loc = np.median(Z, axis=0)
    b = np.mean(np.abs(Z - loc), axis=0)
    active = b > 1e-6 * max(float(b.max()), 1e-30)
    scale = np.where(active, b, max(float(b.max()), 1.0) * 1e-6)
    bound = 2.0 * np.max(np.abs(Z - loc), axis=0) + scale
    # Decoder sensitivity w_k = E ||g(z + h e_k) - g(z)||^2 / h^2, by finite differences on a subsample.
    n = min(N, max(8, 20000 // max(K, 1)))
    Zs = Z[:n]
    h = 0.1 * scale
    G0 = _decode(model, Zs, -np.inf, np.inf)  # (n, D), unclipped like the perturbed decodings
    w = np.empty(K)
    chunk = max(1, 4_000_000 // (n * max(K, G0.shape[1])))  # units per decoder call: bounded memory for large K
    for k0 in range(0, K, chunk):
        ks = np.arange(k0, min(K, k0 + chunk))
        Zp = np.repeat(Zs[None], ks.size, axis=0)  # (units, n, K)
        Zp[np.arange(ks.size), :, ks] += h[ks, None]
        Gp = _decode(model, Zp.reshape(-1, K), -np.inf, np.inf).reshape(ks.size, n, -1)
        w[ks] = ((Gp - G0[None]) ** 2).sum(axis=2).mean(axis=1) / h[ks] ** 2
    w = np.maximum(w, 1e-12 * max(float(w.max()), 1e-30))
    inv = w ** -0.5
    spread = float(np.exp(np.mean(np.log(np.sqrt(2.0) * scale[active])))) if active.any() else 1.0
    gain = spread * inv / float(np.exp(np.mean(np.log(inv[active] if active.any() else inv))))
    return loc, scale, bound, gain


def fit_code_model(
    model: Any, X: Any, *, n_contexts: int = 16, max_samples: int = 20000, learned: bool = True
) -> CodeModel:
    """Fit the probability model of the codec to the codes and residuals of training data ``X``.

    Parameters
    ----------
    model : fitted estimator with ``transform`` and ``inverse_transform``
    X : array-like, (N, *sample_shape) or (N, D); the data the model was trained on (or like it)
    n_contexts : int
        Bins of the decoded value, each with its own residual density.
    max_samples : int
        At most this many samples are used (the first ones): the fit is deterministic.
    learned : bool
        For a model that learned densities of its codes (``code_density()``, the rate-distortion family):
        True (default) takes them and their quantization step as the code model, so ``step=1`` codes at the
        rate the model was trained for; False fits Laplace densities to the codes as for any other model.

    Returns
    -------
    CodeModel
    """
    if isinstance(n_contexts, bool) or not isinstance(n_contexts, int) or n_contexts < 1:
        raise ValueError(f"n_contexts must be a positive integer, e.g. 16; got {n_contexts!r}")
    if isinstance(max_samples, bool) or not isinstance(max_samples, int | np.integer) or max_samples < 1:
        raise ValueError(f"max_samples must be a positive integer (the samples the code model is fitted to), e.g. "
                         f"20000; got {max_samples!r}")
    A, _ = _samples(model, X)
    A = A[:max_samples]
    Z = np.asarray(model.transform(A), np.float64)  # (N, K)
    N, K = Z.shape
    low, high = float(A.min()), float(A.max())
    density = getattr(model, "code_density", None)
    if learned and callable(density):
        # A model trained with densities of its own codes at quantization step 1 (the rate-distortion family):
        # those densities and that step, so step=1 codes at the trained rate.
        loc, scale = (np.asarray(a, np.float64) for a in density())
        bound = 2.0 * np.max(np.abs(Z - loc), axis=0) + scale
        gain = np.ones(K)
    else:
        loc, scale, bound, gain = _fitted_codes(model, Z)
    # Residual densities by bins of the decoded value.
    Xh = _decode(model, Z, low, high)
    Rz = A.reshape(N, -1).astype(np.float64) - Xh
    xs, rs = Xh.ravel(), Rz.ravel()
    if xs.size > 2_000_000:
        idx = np.linspace(0, xs.size - 1, 2_000_000).astype(np.int64)
        xs, rs = xs[idx], rs[idx]
    edges = np.unique(np.quantile(xs, np.linspace(0, 1, n_contexts + 1)[1:-1]))
    ctx = np.searchsorted(edges, xs, side="right")
    floor = 1e-6 * max(high - low, 1e-12)
    res_loc, res_scale = [], []
    for c in range(edges.size + 1):
        r = rs[ctx == c]
        m = float(np.median(r)) if r.size else 0.0
        res_loc.append(m)
        res_scale.append(max(float(np.mean(np.abs(r - m))) if r.size else floor, floor))
    tup = lambda a: tuple(float(x) for x in a)  # noqa: E731
    return CodeModel(_fingerprint(model), tup(loc), tup(scale), tup(bound), tup(gain), tup(edges),
                     tup(res_loc), tup(res_scale), low, high)


# ------------------------------------------------------------------------------------- coding


def _check_step(value: Any, name: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a positive number, e.g. 0.5; got {value!r}")
    # The file holds it as float32: coder and decoder use that value, so it is checked as float32.
    with np.errstate(over="ignore"):
        v = float(np.float32(value))
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number of at most {float(np.finfo(np.float32).max):.3g} (it is "
                         f"stored as float32), e.g. 0.5; got {value!r}")
    return v


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CompressedFileError(f"{self.what} is truncated: it ends inside its header ({len(self.data)} bytes); "
                                      "copy the whole file again")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        n = shift = 0
        while True:
            byte = self.take(1)[0]
            n |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return n
            if shift > 63:
                raise CompressedFileError(f"{self.what} is corrupt: a header field does not end; re-copy or "
                                          "compress it again")


#: The largest symbol bound Q of a quantized Laplace model over [-Q, Q]: the range coder's 24-bit probabilities
#: must give each of the 2Q + 1 symbols a nonzero share.
_MAX_SYMBOL = 2**22


def _too_fine(name: str, value: float, levels: float, smallest: float) -> ValueError:
    return ValueError(f"{name}={value:g} is too small: it would take {levels:.3g} quantization levels, more than the "
                      f"range coder's {2 * _MAX_SYMBOL + 1}; use {name} >= {smallest:.3g}")


def _code_params(cm: CodeModel, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-unit steps, Laplace scales in steps, symbol bounds, and the largest bound (ValueError past the coder's)."""
    steps = step * np.asarray(cm.gain)
    ratio = np.asarray(cm.bound) / steps
    if not float(ratio.max()) <= _MAX_SYMBOL:
        raise _too_fine("step", step, 2 * float(ratio.max()) + 1, step * float(ratio.max()) / _MAX_SYMBOL)
    qmax = np.ceil(ratio).astype(np.int64)
    return steps, np.asarray(cm.scale) / steps, qmax, int(qmax.max())


def finest_steps(code_model: CodeModel) -> tuple[float, float]:
    """The smallest ``step`` and ``residual_step`` the range coder can take with ``code_model``."""
    cm = code_model
    return (float(np.max(np.asarray(cm.bound) / np.asarray(cm.gain))) / _MAX_SYMBOL,
            (cm.high - cm.low) / (_MAX_SYMBOL - 2))


def _residual_params(cm: CodeModel, Xh: np.ndarray, rstep: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per-value Laplace locations and scales in steps, the symbol bound, and the 16-bit check of the contexts."""
    ctx = np.searchsorted(np.asarray(cm.edges), Xh.ravel(), side="right")
    span = (cm.high - cm.low) / rstep
    if not span + 1 <= _MAX_SYMBOL:
        raise _too_fine("residual_step", rstep, 2 * span + 3, (cm.high - cm.low) / (_MAX_SYMBOL - 2))
    rmax = int(math.ceil(span)) + 1
    check = zlib.crc32(ctx.astype("<u2").tobytes()) & 0xFFFF
    return np.asarray(cm.res_loc)[ctx] / rstep, np.asarray(cm.res_scale)[ctx] / rstep, rmax, check


def _laplace_bits(r: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> float:
    """Ideal code length in bits of integers ``r`` under Laplace(mean, scale) discretized over unit bins."""

    def cdf(x: np.ndarray) -> np.ndarray:
        t = (x - mean) / scale
        return np.where(t < 0, 0.5 * np.exp(np.minimum(t, 0)), 1 - 0.5 * np.exp(-np.maximum(t, 0)))

    p = cdf(r + 0.5) - cdf(r - 0.5)
    return float(-np.log2(np.maximum(p, 2.0**-24)).sum())


def _check_code_model(model: Any, code_model: Any) -> CodeModel:
    _check_model(model)
    if not isinstance(code_model, CodeModel):
        raise TypeError(f"code_model must be a CodeModel (from aekit.fit_code_model), got {type(code_model).__name__}")
    if _fingerprint(model) != code_model.model_sha256:
        raise ValueError(f"the code model was fitted for another model (fingerprint {code_model.model_sha256[:12]}), "
                         "not this one; fit it again with aekit.fit_code_model(model, X_train)")
    return code_model


def compress(
    model: Any, X: Any, *, code_model: CodeModel, step: float = 1.0, residual_step: float | None = None
) -> bytes:
    """Compress samples into bytes: quantized codes (and optionally residuals), range-coded, with a header and checksum.

    Parameters
    ----------
    model : fitted estimator with ``transform`` and ``inverse_transform``
    X : array-like, (N, *sample_shape) or any shape (N, ...) holding N whole samples
    code_model : CodeModel
        From :func:`fit_code_model` for this model (the same one decodes).
    step : float > 0
        Quantization step of the codes, in units of a typical code unit's spread: smaller is more bits and
        less distortion.
    residual_step : float > 0, optional
        Step of the refinement layer in the data's units (e.g. 0.05 for pixels in [0, 1]): every decoded
        value is within ``residual_step / 2`` of ``X``. None (default) codes the codes alone.

    Returns
    -------
    bytes
        The file; ``8 * len(data) / N`` is the rate in bits per sample.
    """
    import constriction

    cm = _check_code_model(model, code_model)
    step_ = _check_step(step, "step")
    rstep = _check_step(residual_step, "residual_step", optional=True)
    assert step_ is not None
    A, shape = _samples(model, X)
    if rstep is not None:
        lo, hi = float(A.min()), float(A.max())
        if lo < cm.low or hi > cm.high:
            # Decoded values are kept in the code model's range, so the refinement's bound holds only inside it.
            raise ValueError(
                f"X holds values from {lo:.4g} to {hi:.4g}, outside the range [{cm.low:.4g}, {cm.high:.4g}] of the "
                "data the code model was fitted to; the refinement layer codes values in that range only. Fit the code "
                "model to data that cover these values (aekit.fit_code_model(model, X)), or bring X into the range "
                "(images: pixel values in [0, 1], not 0-255)")
    Z = np.asarray(model.transform(A), np.float64)  # (N, K)
    steps, scales, qmax, Q = _code_params(cm, step_)
    q = np.clip(np.rint((Z - np.asarray(cm.loc)) / steps), -qmax, qmax).astype(np.int32)  # (N, K)
    enc = constriction.stream.queue.RangeEncoder()
    laplace = constriction.stream.model.QuantizedLaplace
    enc.encode(q.ravel(), laplace(-Q, Q), np.zeros(q.size), np.tile(scales, A.shape[0]))
    header = bytearray(MAGIC + bytes([VERSION, _FLAG_RESIDUAL if rstep is not None else 0]))
    header += bytes.fromhex(cm.digest[:8])
    header += _varint(len(shape)) + b"".join(_varint(s) for s in shape) + struct.pack("<f", step_)
    if rstep is not None:
        Xh = _decode(model, np.asarray(cm.loc) + q * steps, cm.low, cm.high)  # (N, D), what the decoder will see
        r = np.rint((A.reshape(A.shape[0], -1) - Xh) / rstep)
        mean, rscale, rmax, check = _residual_params(cm, Xh, rstep)
        r = np.clip(r.ravel(), -rmax, rmax)
        # One scale multiplier per file, the one with the shortest code (coarse codes leave larger residuals).
        sub = np.linspace(0, r.size - 1, min(r.size, 200_000)).astype(np.int64)
        best = min(range(0, 256, 2), key=lambda i: _laplace_bits(
            r[sub], mean[sub], rscale[sub] * 2.0 ** ((i - _SCALE_BASE) / _SCALE_PER_OCTAVE)))
        mult = 2.0 ** ((best - _SCALE_BASE) / _SCALE_PER_OCTAVE)
        enc.encode(r.astype(np.int32), laplace(-rmax, rmax), mean, rscale * mult)
        header += struct.pack("<fBH", rstep, best, check)
    words = np.asarray(enc.get_compressed(), dtype="<u4")
    body = bytes(header) + _varint(words.size) + words.tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def decompress(model: Any, data: bytes, *, code_model: CodeModel, name: str = "the compressed data") -> np.ndarray:
    """Decode bytes written by :func:`compress` with the same model and code model.

    Parameters
    ----------
    model : the fitted estimator that compressed the data
    data : bytes
    code_model : CodeModel
        The one the data were compressed with.
    name : str
        How messages call the data (a file name).

    Returns
    -------
    ndarray, float32, the shape of the compressed ``X``

    Raises
    ------
    CompressedFileError
        When ``data`` is not an aekit compressed file, is truncated or corrupt, or was written with another
        model or code model.
    """
    import constriction

    cm = _check_code_model(model, code_model)
    data = bytes(data)
    rd = _Reader(data, name)
    if len(data) < len(MAGIC) and MAGIC.startswith(data):
        rd.take(len(MAGIC))  # cut inside its signature: truncated
    if not data.startswith(MAGIC):
        raise CompressedFileError(f"{name} is not an aekit compressed file (it does not start with {MAGIC!r}); "
                                  "give a file written by aekit compress")
    rd.take(len(MAGIC))
    version, flags = rd.take(2)
    if version != VERSION:
        raise CompressedFileError(f"{name} is in compressed-file format version {version}; this aekit reads version "
                                  f"{VERSION}: decompress it with the aekit that wrote it")
    tag = rd.take(4).hex()
    shape = tuple(rd.varint() for _ in range(rd.varint()))
    (step,) = struct.unpack("<f", rd.take(4))
    rstep, mult_index, check = None, 0, 0
    if flags & _FLAG_RESIDUAL:
        rstep, mult_index, check = struct.unpack("<fBH", rd.take(7))
    n_words = rd.varint()
    need = rd.pos + 4 * n_words + 4
    if len(data) < need:
        raise CompressedFileError(f"{name} is truncated: it holds {len(data)} bytes, its header declares {need}; "
                                  "copy the whole file again")
    if len(data) > need:
        raise CompressedFileError(f"{name} is corrupt: {len(data) - need} byte(s) follow its checksum; re-copy it "
                                  "or compress it again")
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        raise CompressedFileError(f"{name} is corrupt: its CRC-32 checksum {crc:08x} does not match its content "
                                  f"({zlib.crc32(data[:-4]):08x}); re-copy it or compress it again")
    if tag != cm.digest[:8]:
        raise CompressedFileError(f"{name} was compressed with another model or code model (codec tag {tag}; this "
                                  f"model's is {cm.digest[:8]}); decompress it with the run that compressed it")
    sample = tuple(int(s) for s in model.sample_shape_)
    if len(shape) < 2 or shape[0] < 1 or math.prod(shape[1:]) != math.prod(sample):
        raise CompressedFileError(f"{name} holds samples of shape {shape[1:]}, not this model's {sample}; "
                                  "decompress it with the run that compressed it")
    if not (math.isfinite(step) and step > 0) or (rstep is not None and not (math.isfinite(rstep) and rstep > 0)):
        raise CompressedFileError(f"{name} is corrupt: its quantization step {step} is not a positive number")
    N = shape[0]
    words = np.frombuffer(data, dtype="<u4", count=n_words, offset=need - 4 - 4 * n_words).astype(np.uint32)
    dec = constriction.stream.queue.RangeDecoder(words)
    laplace = constriction.stream.model.QuantizedLaplace
    try:
        steps, scales, _, Q = _code_params(cm, step)
        if rstep is not None:
            _residual_params(cm, np.zeros((1, 1)), rstep)
    except ValueError:
        raise CompressedFileError(f"{name} is corrupt: its quantization steps ({step:g}, {rstep}) are finer than any "
                                  "file aekit writes; re-copy it or compress it again") from None
    K = steps.size
    q = np.asarray(dec.decode(laplace(-Q, Q), np.zeros(N * K), np.tile(scales, N)), np.float64).reshape(N, K)
    Xh = _decode(model, np.asarray(cm.loc) + q * steps, cm.low, cm.high)
    if rstep is not None:
        mean, rscale, rmax, ours = _residual_params(cm, Xh, rstep)
        if ours != check:
            raise CompressedFileError(
                f"{name} cannot be decoded here: its refinement layer was written where the model's decodings round "
                f"differently (context check {check:04x}, here {ours:04x}; another kind of device or library). "
                "Decompress it on the device and aekit/PyTorch version that compressed it, or compress without "
                "the refinement layer (no residual_step / --residual-step), whose files decode anywhere")
        mult = 2.0 ** ((mult_index - _SCALE_BASE) / _SCALE_PER_OCTAVE)
        r = np.asarray(dec.decode(laplace(-rmax, rmax), mean, rscale * mult), np.float64)
        Xh = np.clip(Xh + rstep * r.reshape(Xh.shape), cm.low, cm.high)
    return Xh.astype(np.float32).reshape(shape)


def rate_distortion(
    model: Any,
    X: Any,
    *,
    code_model: CodeModel,
    steps: Sequence[float],
    residual_steps: Sequence[float | None] = (None,),
) -> list[dict[str, float | None]]:
    """Compress ``X`` at every (step, residual_step) pair; bits per sample of the real bytes and PSNR.

    PSNR is ``10 log10(range^2 / MSE)`` over all values, the range that of the code model's training data.

    Returns
    -------
    list of dict
        ``step``, ``residual_step``, ``bytes``, ``bits_per_sample``, ``mse``, ``psnr``, one per pair.
    """
    A, _ = _samples(model, X)
    rows: list[dict[str, float | None]] = []
    peak = (code_model.high - code_model.low) ** 2
    for rs in residual_steps:
        for s in steps:
            data = compress(model, A, code_model=code_model, step=s, residual_step=rs)
            R = decompress(model, data, code_model=code_model)
            mse = float(np.mean((R.astype(np.float64) - A) ** 2))
            rows.append({"step": float(s), "residual_step": rs, "bytes": len(data),
                         "bits_per_sample": 8.0 * len(data) / A.shape[0], "mse": mse,
                         "psnr": 10 * math.log10(peak / mse) if mse > 0 else math.inf})
    return rows


# ------------------------------------------------------------------------------------- figures


def png_bytes(image: np.ndarray) -> bytes:
    """One image (C, H, W), C = 1 or 3, values in [0, 1], as 8-bit PNG bytes."""
    import io

    from PIL import Image

    u8 = np.clip(np.rint(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)
    im = Image.fromarray(u8[0]) if u8.shape[0] == 1 else Image.fromarray(u8.transpose(1, 2, 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def rate_distortion_figure(
    rows: Sequence[dict[str, Any]], pair: tuple[np.ndarray, np.ndarray] | None = None, *, title: str
) -> bytes:
    """PNG of a rate-distortion curve (rows of :func:`rate_distortion`), and originals over their decodings.

    ``pair`` is ``(originals, decodings)``, each (n, C, H, W) with values in [0, 1], or None.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 5.2 if pair is not None else 3.4), layout="constrained")
    grid = fig.add_gridspec(2 if pair is not None else 1, 1, height_ratios=[3, 1.4] if pair is not None else [1])
    ax = fig.add_subplot(grid[0])
    for label, refined in (("codes alone", False), ("with the refinement layer", True)):
        pts = sorted((float(r["bits_per_sample"]), float(r["psnr"])) for r in rows
                     if (r.get("residual_step") is not None) == refined)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
    ax.legend(fontsize="small")
    ax.set_xlabel("bits per sample (file size)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize="medium")
    if pair is not None:
        top, bottom = (np.clip(np.asarray(a, np.float64), 0, 1) for a in pair)
        strip = np.concatenate([np.concatenate(list(top), axis=-1), np.concatenate(list(bottom), axis=-1)], axis=-2)
        axi = fig.add_subplot(grid[1])
        axi.imshow(strip[0] if strip.shape[0] == 1 else strip.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=1,
                   interpolation="nearest")
        axi.set_xticks([])
        axi.set_yticks([])
        axi.set_title("originals (top) and their decodings (bottom)", fontsize="small", loc="left")
    from aekit.report.figures import figure_png

    return figure_png(fig)
