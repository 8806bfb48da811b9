"""Reconstruction metrics in the units the literature reports.

Hinton & Salakhutdinov (2006) report the *squared error per image*: the squared error summed over
the pixels of an image and averaged over images,

    sq_err_per_image = (1/N) sum_n sum_d (x_nd - x_hat_nd)^2 ,

which is ``D`` times the per-pixel mean squared error. The cross-entropy per pixel is what a sigmoid
decoder minimizes for data in [0, 1], and the PSNR is what image-restoration papers quote.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["reconstruction_metrics"]

# Probabilities are clipped this far from 0 and 1 so a confident, wrong pixel costs a large but finite
# cross-entropy (-log(1e-7) ~ 16.1 nats) instead of infinity.
_EPS = 1e-7
# Samples processed at a time: keeps the float64 temporaries small for MNIST-sized inputs.
_CHUNK = 4096


def reconstruction_metrics(X: Any, X_hat: Any) -> dict[str, float | int]:
    """Compare data with its reconstruction.

    Parameters
    ----------
    X : array-like, (n_samples, ...)
        The data, e.g. (N, D) tabular or (N, C, H, W) images.
    X_hat : array-like, same number of elements per sample as ``X``
        The reconstruction, in the same units as ``X``.

    Returns
    -------
    dict
        ``sq_err_per_image`` : float
            Squared error summed over the features of a sample, averaged over samples
            (the unit of Hinton & Salakhutdinov 2006).
        ``mse_per_pixel`` : float
            Mean squared error over all values, ``sq_err_per_image / D``.
        ``bce_per_pixel`` : float, only when both ``X`` and ``X_hat`` lie in [0, 1]
            Mean binary cross-entropy ``-[x log p + (1 - x) log(1 - p)]`` in nats, with
            ``p = clip(x_hat, 1e-7, 1 - 1e-7)``.
        ``psnr_db`` : float
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
    >>> m["sq_err_per_image"], m["mse_per_pixel"]
    (0.125, 0.0625)
    """
    X = np.asarray(X)
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
    for i in range(0, n, _CHUNK):
        x = X2[i : i + _CHUNK].astype(np.float64)
        r = R2[i : i + _CHUNK].astype(np.float64)
        if not (np.isfinite(x).all() and np.isfinite(r).all()):
            raise ValueError("X and X_hat must be finite; found NaN or infinity")
        sq_sum += float(((x - r) ** 2).sum())
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        r_lo, r_hi = min(r_lo, float(r.min())), max(r_hi, float(r.max()))
        p = np.clip(r, _EPS, 1.0 - _EPS)
        # Only meaningful for data in [0, 1]; computed alongside to read the data once.
        bce_sum += float(-(x * np.log(p) + (1.0 - x) * np.log1p(-p)).sum())

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

    out: dict[str, float | int] = {"sq_err_per_image": sq_sum / n, "mse_per_pixel": mse}
    if unit and r_lo >= 0.0 and r_hi <= 1.0:
        out["bce_per_pixel"] = bce_sum / (n * d)
    out["psnr_db"] = psnr
    out["n_samples"] = n
    return out
