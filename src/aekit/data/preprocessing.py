"""Input validation and the data scaling that is stored with every model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from aekit.core.devices import chunk_rows

#: How data are scaled before training (see :class:`Scaler`); a parameter of families that scale.
Scaling = Literal["auto", "none", "standard", "minmax", "normalize"]
SCALINGS: tuple[str, ...] = get_args(Scaling)


def all_finite(arr: np.ndarray) -> bool:
    """Whether every value of the float32 array ``arr`` is finite, without a mask the size of ``arr`` (784 MB
    for a million MNIST images): a float64 sum, which cannot overflow for float32 values, is finite exactly
    when no value is NaN or infinite."""
    with np.errstate(all="ignore"):
        return bool(np.isfinite(np.sum(arr, dtype=np.float64)))


def check_array(X: Any, *, name: str = "X", expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate model input and return it as float32 of shape (N, *sample_shape).

    The layouts are those of every aekit loader: 2-D tabular (N, D), 3-D signals (N, C, L) and 4-D
    images (N, C, H, W). Raises a ValueError naming the problem and the fix for: non-numeric data, a
    1-D, 0-D or more than 4-D array, no samples, NaN or inf, finite values beyond float32's range
    (the same message as :func:`aekit.load_dataset`), and a sample shape different from
    ``expected_shape``; a TypeError for
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
    if arr.ndim > 4:
        raise ValueError(layout_message(name, arr.shape))
    source = arr
    # Overflow to inf is reported below with its own message, not as a RuntimeWarning.
    with np.errstate(over="ignore"):
        arr = arr.astype(np.float32, copy=False)
    if not all_finite(arr):
        bad = ~np.isfinite(arr.reshape(arr.shape[0], -1))
        if source is not arr:
            overflow = bad & np.isfinite(source.reshape(source.shape[0], -1))
            if overflow.any():
                raise ValueError(float32_overflow_message(name, source, overflow))
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"{name} contains NaN or infinity: {int(bad.sum())} values in {rows.size} samples (first at sample "
            f"{int(rows[0])}); drop or impute those values first"
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


#: The label that marks an unlabelled sample, as in scikit-learn's semi-supervised estimators.
UNLABELLED = -1
#: The range labels must lie in, as text for messages: they are stored as int64.
INT64_RANGE = "-2**63 to 2**63 - 1"


def whole_int64(arr: np.ndarray) -> np.ndarray:
    """Boolean mask, the shape of the numeric array ``arr``, of the values that are whole numbers in int64's range.

    Exactly these survive ``arr.astype(np.int64)`` unchanged: a float at or beyond 2**63 in magnitude (``1e20``)
    becomes INT64_MIN with only a RuntimeWarning, and a uint64 above 2**63 - 1 wraps to a negative number.
    """
    if arr.dtype.kind in "bi":
        return np.ones(arr.shape, dtype=bool)
    if arr.dtype.kind == "u":
        return np.asarray(arr <= np.iinfo(np.int64).max)
    with np.errstate(invalid="ignore"):
        return np.isfinite(arr) & (arr == np.round(arr)) & (arr >= -(2.0**63)) & (arr < 2.0**63)


def check_labels(y: Any, n_samples: int, name: str = "y", match: str = "X") -> np.ndarray:
    """Validate class labels for ``n_samples`` samples and return them as int64 of shape (n_samples,).

    Integers (any integer or boolean dtype) and floats that hold integers (``3.0``) are labels;
    :data:`UNLABELLED` (-1) marks a sample without a label, as in scikit-learn's semi-supervised
    module. Raises a ValueError naming the problem and the fix for ``None``, a shape other than
    ``(n_samples,)``, strings or other non-numeric labels, fractional, NaN or infinite values, and values
    outside the int64 range (``1e20``), which have no int64 value. ``name``
    and ``match`` are the caller's words for the labels and for what sets their count.
    """
    if y is None:
        raise ValueError(
            f"class labels y are needed here, got None; pass y of shape ({n_samples},) with integer labels "
            f"({UNLABELLED} for unlabelled samples)"
        )
    arr = np.asarray(y)
    if arr.shape != (n_samples,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n_samples},) to match {match}")
    if arr.dtype.kind == "O":
        # Numbers stored as objects (e.g. from pandas) are labels; anything else is reported below.
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if arr.dtype.kind in "biuf":
        ok = whole_int64(arr)
        if ok.all():
            return arr.astype(np.int64)
        bad = arr[~ok]
        fraction = ~np.isfinite(bad) | (bad != np.round(bad)) if bad.dtype.kind == "f" else np.zeros(bad.shape, bool)
        if fraction.any():
            got = f"{int(fraction.sum())} values that are not integers, such as {bad[fraction][:3].tolist()}"
        else:
            got = f"{bad.size} values outside the int64 range ({INT64_RANGE}), such as {bad[:3].tolist()}"
    else:
        got = f"dtype {arr.dtype}"
    raise ValueError(
        f"y must hold integer class labels ({UNLABELLED} marks an unlabelled sample), got {got}; encode the "
        "classes as integers, e.g. with sklearn.preprocessing.LabelEncoder"
    )


#: The largest finite float32, about 3.4e38: aekit's networks compute in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Sample layouts after the first (sample) axis, by number of dimensions of the whole array.
LAYOUTS = "2-D tabular data (N, D), 3-D signals (N, C, L) or 4-D images (N, C, H, W)"


def layout_message(name: str, shape: tuple[int, ...]) -> str:
    """The one message for an array with more dimensions than any aekit layout."""
    return (
        f"{name} has {len(shape)} dimensions (shape {tuple(shape)}); aekit takes {LAYOUTS}. Reshape it to one "
        "of these, e.g. merge extra axes into channels or features"
    )


def float32_overflow_message(name: str, source: np.ndarray, overflow: np.ndarray) -> str:
    """The one message for finite values that become infinite in float32.

    ``source`` is the data before conversion, ``overflow`` a boolean mask of the same size (any shape
    with samples first) marking the values that overflow.
    """
    flat = overflow.reshape(overflow.shape[0], -1)
    rows = np.flatnonzero(flat.any(axis=1))
    first = int(rows[0])
    worst = float(np.max(np.abs(source.reshape(source.shape[0], -1)[flat])))
    return (
        f"{name} has {int(flat.sum())} value(s) in {rows.size} sample(s) (first at sample {first}) that overflow "
        f"float32: the largest is {worst:.3g} in magnitude, beyond the largest finite float32, about 3.4e38, that "
        "aekit computes in. Rescale the data before passing it: divide by a power of ten, or standardize it in "
        "float64"
    )


def _is_sparse(X: Any) -> bool:
    try:
        import scipy.sparse
    except ImportError:  # scipy comes with scikit-learn; without it, there is no sparse input either
        return False
    return bool(scipy.sparse.issparse(X))


def mean_std(X: np.ndarray, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and population standard deviation of ``X`` (N, *sample_shape), in float64.

    The squared deviations are summed ``rows`` samples at a time (by default as many as fill
    :data:`~aekit.core.devices.CHUNK_BYTES` in float64): ``X.std(dtype=np.float64)`` builds a float64 copy of
    the whole data, twice the size of float32 data, and that copy set the peak memory of a fit (a million
    MNIST-sized samples: 3 GB of data, 6 GB more for the copy).
    """
    if rows is None:
        rows = chunk_rows(8 * int(np.prod(X.shape[1:], dtype=np.int64)))
    mean = X.mean(axis=0, dtype=np.float64)
    sq = np.zeros_like(mean)
    for i in range(0, X.shape[0], rows):
        d = X[i : i + rows] - mean  # (rows, *sample_shape), float64
        sq += np.einsum("i...,i...->...", d, d)
    return mean, np.sqrt(sq / max(X.shape[0], 1))


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
            shift, scale = mean_std(X)
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


def unit_norm_samples(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample of ``A`` (N, *sample_shape) divided by its Euclidean norm, and the norms (N,) float64.

    A sample of norm zero stays zero (as in scikit-learn's ``normalize``). The dtype of ``A`` is kept.
    """
    flat = A.reshape(A.shape[0], -1)
    norms = np.sqrt(np.einsum("ij,ij->i", flat, flat, dtype=np.float64))
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 1.0)
    return (flat * scale[:, None].astype(A.dtype)).reshape(A.shape), norms


def data_checksum(X: Any, y: Any = None) -> str:
    """A BLAKE2 checksum (32 hex digits) of samples ``X`` (their shape, dtype and bytes) and numeric labels ``y``:
    what a run and a checkpoint record of the data they were trained on. Hashing runs at about 1 GB/s."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    A = np.ascontiguousarray(X)
    h.update(str((A.shape, A.dtype.str)).encode())
    h.update(A.view(np.uint8).data if A.size else b"")
    if y is not None:
        labels = np.ascontiguousarray(np.asarray(y))
        if labels.dtype.kind in "biuf" and labels.size:
            h.update(labels.view(np.uint8).data)
    return h.hexdigest()
