"""Input validation and the data scaling that is stored with every model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

#: How data are scaled before training (see :class:`Scaler`); a parameter of families that scale.
Scaling = Literal["auto", "none", "standard", "minmax", "normalize"]
SCALINGS: tuple[str, ...] = get_args(Scaling)


def check_array(X: Any, *, name: str = "X", expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate model input and return it as float32 of shape (N, *sample_shape).

    Raises a ValueError naming the problem and the fix for: non-numeric data, a 1-D or 0-D array,
    no samples, NaN or inf, and a sample shape different from ``expected_shape``; a TypeError for
    sparse matrices and for objects that are not numbers. Messages use scikit-learn's wording where
    its estimator checks pin it.
    """
    if hasattr(X, "X") and hasattr(X, "kind"):  # an aekit Dataset
        X = X.X
    if _is_sparse(X):
        raise TypeError(
            f"{name} is a sparse matrix ({type(X).__name__}), but sparse input is not supported: the networks "
            "need dense arrays. Convert it with X.toarray() if it fits in memory"
        )
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as a numeric array: {exc}") from None
    if arr.dtype == object:
        # Numbers stored as objects (e.g. from pandas) are fine; anything else names the culprit.
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name} must be numeric: {exc}; convert strings or categories to numbers first") from None
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}; pass its real part or its modulus")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}; convert strings or categories to numbers first")
    if arr.ndim < 2:
        raise ValueError(
            f"Expected a 2-D array of shape (n_samples, n_features) or an image batch (N, C, H, W), got a "
            f"{arr.ndim}-D array of shape {arr.shape}. Reshape your data either using array.reshape(-1, 1) if it "
            "has a single feature or array.reshape(1, -1) if it contains a single sample"
        )
    if arr.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required: {name} is empty"
        )
    if arr.size == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required: {name} has no "
            "features"
        )
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr.reshape(arr.shape[0], -1))
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"{name} contains NaN or infinity: {int(bad.sum())} values in {rows.size} samples (first at sample "
            f"{int(rows[0])}); drop or impute those values before fitting"
        )
    if expected_shape is not None and tuple(arr.shape[1:]) != tuple(expected_shape):
        got = arr.shape[1:]
        if arr.ndim == 2 and len(expected_shape) == 1:
            msg = f"{name} has {got[0]} features, but this model was fitted with {expected_shape[0]} features"
        else:
            msg = f"{name} has sample shape {tuple(got)}, but this model was fitted on sample shape {tuple(expected_shape)}"
        raise ValueError(msg + "; pass data with the same features as in fit, or fit a new model")
    arr = np.ascontiguousarray(arr)
    # torch.from_numpy warns on read-only arrays (e.g. a read-only memmap); hand out a writable copy.
    return arr if arr.flags.writeable else arr.copy()


def _is_sparse(X: Any) -> bool:
    try:
        import scipy.sparse
    except ImportError:  # scipy comes with scikit-learn; without it, there is no sparse input either
        return False
    return bool(scipy.sparse.issparse(X))


@dataclass
class Scaler:
    """Affine data scaling ``x_s = (x - shift) / scale``, stored with the model and inverted on output.

    kind: ``none`` (identity), ``standard`` (per-feature mean and std), ``minmax`` (per feature to
    [0, 1]), ``normalize`` (global mean 0.5, std 0.5, as the lecture normalizes MNIST to [-1, 1]).
    """

    kind: str
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, X: np.ndarray) -> Scaler:
        sample_shape = X.shape[1:]
        if kind == "auto":
            kind = "none" if X.ndim > 2 or (X.min() >= 0 and X.max() <= 1) else "standard"
        if kind == "none":
            shift, scale = np.zeros(sample_shape, np.float32), np.ones(sample_shape, np.float32)
        elif kind == "standard":
            shift, scale = X.mean(axis=0, dtype=np.float64), X.std(axis=0, dtype=np.float64)
        elif kind == "minmax":
            shift = X.min(axis=0)
            scale = X.max(axis=0) - shift
        elif kind == "normalize":
            shift, scale = np.full(sample_shape, 0.5, np.float32), np.full(sample_shape, 0.5, np.float32)
        else:
            raise ValueError(f"unknown scaling {kind!r}; valid: {', '.join(SCALINGS)}")
        # A constant feature would divide by zero, or blow float32 rounding noise (a spread of a few ulps,
        # about 1e-7 of the value) up to unit size; leave it unscaled instead.
        scale = np.where(scale > np.maximum(1e-12, 1e-6 * np.abs(shift)), scale, 1.0)
        return cls(kind, np.asarray(shift, np.float32), np.asarray(scale, np.float32))

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return X
        return ((X - self.shift) / self.scale).astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return X
        return (X * self.scale + self.shift).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"shift": self.shift, "scale": self.scale}
