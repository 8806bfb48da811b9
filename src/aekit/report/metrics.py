"""Reconstruction metrics in the units the literature reports, named for the data they measure.

Hinton & Salakhutdinov (2006) report the *squared error per image*: the squared error summed over
the pixels of an image and averaged over images,

    sq_err_per_image = (1/N) sum_n sum_d (x_nd - x_hat_nd)^2 ,

which is ``D`` times the per-pixel mean squared error. The cross-entropy per pixel is what a sigmoid
decoder minimizes for data in [0, 1], and the PSNR is what image-restoration papers quote.

Images (N, C, H, W) get those names. Tabular data (N, D) and signals (N, C, L) get the same
quantities named per sample and per feature (``sq_err_per_sample``, ``mse_per_feature``,
``bce_per_feature``) and no PSNR, whose peak-signal reading belongs to images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from aekit.core.devices import chunk_rows
from aekit.core.params import check_count

__all__ = ["METRIC_ORDER", "format_value", "likelihood_metrics", "ordered_metrics", "reconstruction_metrics"]

#: Every metric name in the order :func:`reconstruction_metrics` computes them; tables and JSON use it.
METRIC_ORDER = (
    "sq_err_per_image", "sq_err_per_sample", "mse_per_pixel", "mse_per_feature", "bce_per_pixel", "bce_per_feature",
    "psnr_db", "elbo_nats", "nll_nats", "nll_samples", "n_samples", "n_split",
)
# Sections of a metrics record in the order training writes them.
_SECTION_ORDER = ("train", "test", "all")
# What each metric is, for the legend under a table.
METRIC_NOTES = {
    "sq_err_per_image": "squared error summed over the pixels of an image, averaged over images "
    "(Hinton & Salakhutdinov 2006)",
    "sq_err_per_sample": "squared error summed over the features of a sample, averaged over samples",
    "mse_per_pixel": "mean squared error per pixel value",
    "mse_per_feature": "mean squared error per feature value",
    "bce_per_pixel": "binary cross-entropy per pixel value in nats (data in [0, 1])",
    "bce_per_feature": "binary cross-entropy per feature value in nats (data in [0, 1])",
    "psnr_db": "peak signal-to-noise ratio in dB (peak 1 for data in [0, 1], else the data range)",
    "elbo_nats": "evidence lower bound on log p(x) per sample in nats, averaged over samples (higher is better)",
    "nll_nats": "negative log-likelihood -log p(x) per sample in nats, importance-sampled (Burda et al. 2016; lower "
    "is better)",
    "nll_samples": "importance samples per data sample of the nll_nats estimate",
    "n_samples": "number of samples measured",
    "n_split": "samples in the split, of which n_samples were drawn at random and measured",
}

# Probabilities are clipped this far from 0 and 1 so a confident, wrong pixel costs a large but finite
# cross-entropy (-log(1e-7) ~ 16.1 nats) instead of infinity.
_EPS = 1e-7


def reconstruction_metrics(X: Any, X_hat: Any, *, images: bool | None = None) -> dict[str, float | int]:
    """Compare data with its reconstruction.

    Parameters
    ----------
    X : array-like, (n_samples, ...)
        The data, e.g. (N, D) tabular, (N, C, L) signals or (N, C, H, W) images.
    X_hat : array-like, same number of elements per sample as ``X``
        The reconstruction, in the same units as ``X``.
    images : bool, optional
        Whether the samples are images; by default, whether ``X`` is 4-D (N, C, H, W).

    Returns
    -------
    dict, in this order (images / tabular data and signals)
        ``sq_err_per_image`` / ``sq_err_per_sample`` : float
            Squared error summed over the D values of a sample, averaged over samples
            (the unit of Hinton & Salakhutdinov 2006).
        ``mse_per_pixel`` / ``mse_per_feature`` : float
            Mean squared error over all values, the above divided by D.
        ``bce_per_pixel`` / ``bce_per_feature`` : float, only when both ``X`` and ``X_hat`` lie in [0, 1]
            Mean binary cross-entropy ``-[x log p + (1 - x) log(1 - p)]`` in nats, with
            ``p = clip(x_hat, 1e-7, 1 - 1e-7)``.
        ``psnr_db`` : float, images only
            ``10 log10(peak^2 / mse_per_pixel)``: peak 1 for data in [0, 1], else the data range
            ``max(X) - min(X)``; ``inf`` for a perfect reconstruction.
        ``n_samples`` : int

    Raises
    ------
    ValueError
        If the arrays are empty, differ in size, or hold NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> m = reconstruction_metrics(X, X * 0.5 + 0.25)
    >>> m["sq_err_per_sample"], m["mse_per_feature"]
    (0.125, 0.0625)
    """
    X = np.asarray(X)
    if images is None:
        images = X.ndim == 4
    X_hat = np.asarray(X_hat)
    if X.ndim == 0 or X.shape[0] == 0 or X.size == 0:
        raise ValueError(f"X must hold at least one sample with at least one feature, got shape {X.shape}")
    n = int(X.shape[0])
    if X_hat.size != X.size or (X_hat.ndim > 0 and X_hat.shape[0] != n):
        raise ValueError(
            f"X_hat has shape {X_hat.shape} but X has shape {X.shape}; pass the reconstruction of every sample of X"
        )
    X2 = X.reshape(n, -1)
    R2 = X_hat.reshape(n, -1)
    d = X2.shape[1]

    sq_sum = 0.0
    bce_sum = 0.0
    lo, hi = math.inf, -math.inf
    r_lo, r_hi = math.inf, -math.inf
    # Samples processed at a time: keeps the float64 temporaries small (see chunk_rows).
    rows = chunk_rows(8 * d)
    for i in range(0, n, rows):
        # float64 throughout; torch's vectorized log runs about 3x faster than NumPy's here.
        x = torch.from_numpy(X2[i : i + rows].astype(np.float64))
        r = torch.from_numpy(R2[i : i + rows].astype(np.float64))
        if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(r).all())):
            raise ValueError("X and X_hat must be finite; found NaN or infinity")
        sq_sum += float((x - r).square_().sum())
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        r_lo, r_hi = min(r_lo, float(r.min())), max(r_hi, float(r.max()))
        p = r.clamp(_EPS, 1.0 - _EPS)
        # Only meaningful for data in [0, 1]; computed alongside to read the data once.
        bce_sum += float(-(x * p.log() + (1.0 - x) * torch.log1p(-p)).sum())

    mse = sq_sum / (n * d)
    unit = lo >= 0.0 and hi <= 1.0
    peak = 1.0 if unit else hi - lo
    if mse == 0.0:
        psnr = math.inf
    elif peak <= 0.0:
        # Constant data: no dynamic range to compare against, so PSNR is undefined.
        psnr = math.nan
    else:
        psnr = 10.0 * math.log10(peak * peak / mse)

    per, value = ("image", "pixel") if images else ("sample", "feature")
    out: dict[str, float | int] = {f"sq_err_per_{per}": sq_sum / n, f"mse_per_{value}": mse}
    if unit and r_lo >= 0.0 and r_hi <= 1.0:
        out[f"bce_per_{value}"] = bce_sum / (n * d)
    if images:
        out["psnr_db"] = psnr
    out["n_samples"] = n
    return out


def likelihood_metrics(est: Any, X: Any, *, nll_samples: int | None = None) -> dict[str, float | int]:
    """The likelihood figures of a model with a likelihood bound, in nats per sample.

    ``elbo_nats``: the mean of ``est.elbo(X)``, for an estimator that has one (a VAE); ``nll_nats``: minus the
    mean of ``est.log_likelihood(X, n_samples=nll_samples)`` when ``nll_samples`` is given (the IWAE paper's
    test NLL uses 5,000). Empty for a model without ``elbo`` and no ``nll_samples``.

    Raises
    ------
    ValueError
        ``nll_samples`` is given but the estimator has no ``log_likelihood``, or is below 1.
    """
    out: dict[str, float | int] = {}
    name = getattr(est, "_family_name", type(est).__name__)
    if nll_samples is not None:
        if not callable(getattr(est, "log_likelihood", None)):
            raise ValueError(f"nll_samples={nll_samples}: family {name!r} has no likelihood to estimate; leave it out "
                             "(--nll-samples applies to families such as vae)")
        nll_samples = check_count("nll_samples", nll_samples)
    if callable(getattr(est, "elbo", None)):
        out["elbo_nats"] = float(np.mean(est.elbo(X)))
    if nll_samples is not None:
        out["nll_nats"] = -float(np.mean(est.log_likelihood(X, n_samples=nll_samples)))
        out["nll_samples"] = nll_samples
    return out


def ordered_metrics(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """A metrics record ({section: {metric: value}}) in the one order every table and JSON output uses.

    Sections come as training writes them (train, test, all, then any other in their given order)
    and metrics in the order :func:`reconstruction_metrics` computes them (unknown ones last), so a
    record read back from a file sorted by key reads the same as the one training printed.
    """

    def rank(order: Sequence[str], key: str) -> int:
        return order.index(key) if key in order else len(order)

    sections = sorted(metrics, key=lambda s: rank(_SECTION_ORDER, s))  # stable: others keep their order
    return {s: {k: metrics[s][k] for k in sorted(metrics[s], key=lambda k: rank(METRIC_ORDER, k))} for s in sections}


def metric_names(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every metric of an ordered record, once, in order: the rows of a table whose columns are its sections."""
    names: list[str] = []
    for section in metrics.values():
        names += [k for k in section if k not in names]
    return names


def format_value(v: Any) -> str:
    """A metric or parameter value as tables show it: 5 significant digits, ``n/a`` for NaN, ``inf``."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "inf"
        return f"{v:.5g}"
    if isinstance(v, tuple | list):
        return "(" + ", ".join(format_value(x) for x in v) + ")"
    return str(v)
