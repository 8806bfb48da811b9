"""Retrieval by codes: an index of the codes of a collection, searched by the codes of queries.

Semantic hashing (R. Salakhutdinov and G. Hinton, "Semantic hashing", Int. J. Approx. Reasoning 50 (2009)): an
autoencoder with binary codes (``Autoencoder(binary_codes=True)``; by default the bits of its trained codes by
iterative quantization, Gong and Lazebnik 2011) maps each sample to K bits, and similar samples are those whose
bits differ in few places (the Hamming distance). Real-valued codes of any family are searched by
the Euclidean or the cosine distance.

The search is scikit-learn's exact :class:`~sklearn.neighbors.NearestNeighbors` (brute force). For 0/1 codes the
squared Euclidean distance *is* the Hamming distance, sum_j (q_j - x_j)^2 = #{j : q_j != x_j}, so the Hamming
search runs as a Euclidean one, whose BLAS-backed brute force measured 8x faster than scikit-learn's own
``metric="hamming"`` on 60,000 codes of 32 bits (benchmarks/bench_retrieval.py), with the same neighbours and
distances.

The index file is a NumPy ``.npz`` read with ``allow_pickle=False``: the codes (bits packed eight to a byte for
binary codes) and a JSON header that records the model the codes came from (its family, sample shape and
:func:`~aekit.engine.weights.config_digest`), the metric and a SHA-256 of the codes, so a file from another model,
an edited one or a truncated one is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from aekit.core.params import is_whole
from aekit.data.preprocessing import check_array
from aekit.model.persist import model_fingerprint

#: The metrics an index searches with: "hamming" for binary codes, "euclidean" or "cosine" for any codes.
METRICS = ("hamming", "euclidean", "cosine")
INDEX_FORMAT = "aekit-index/1"
#: The header fields an index file must hold.
_HEADER_KEYS = ("format", "metric", "binary", "n_codes", "code_size", "codes_sha256", "model")


def model_digest(model: Any) -> str:
    """The :func:`~aekit.engine.weights.config_digest` of a fitted estimator: what its run's weights are bound to."""
    from aekit.engine.weights import config_digest
    from aekit.model.persist import estimator_config

    return config_digest(json.loads(estimator_config(model)))


def has_binary_codes(model: Any) -> bool:
    """Whether ``model`` encodes to 0/1 codes (an autoencoder fitted with ``binary_codes=True``)."""
    return bool(getattr(model, "resolved_", {}).get("binary_codes", False))


def model_record(model: Any, source: str | None = None) -> dict[str, Any]:
    """What an index records of the model its codes came from."""
    if not (callable(getattr(model, "_check_fitted", None)) and callable(getattr(model, "transform", None))):
        raise TypeError(f"model must be a fitted aekit estimator with an encoder (e.g. aekit.Autoencoder().fit(X)), "
                        f"got {type(model).__name__}")
    model._check_fitted()
    return {
        "family": str(model._family_name),
        "config_sha256": model_digest(model),
        # The weights too: two fits with the same settings share the config digest but not their codes.
        "weights_sha256": model_fingerprint(model),
        "sample_shape": [int(d) for d in model.sample_shape_],
        "source": source,
    }


def _resolve_metric(metric: str, binary: bool) -> str:
    if metric == "auto":
        return "hamming" if binary else "euclidean"
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not one of auto, {', '.join(METRICS)}; use one of them")
    if metric == "hamming" and not binary:
        raise ValueError(
            "metric='hamming' needs binary codes, but this model's codes are real-valued; train an autoencoder with "
            "binary_codes=True (aekit train --binary-codes), or use metric='euclidean' or 'cosine'"
        )
    return metric


class CodeIndex:
    """An index of the codes of a collection, searched by exact nearest neighbours.

    Build one with :meth:`build` (or :meth:`load` a saved one); do not call the constructor directly.

    Attributes
    ----------
    codes : ndarray of shape (n_codes, code_size), float32
        The indexed codes (0.0/1.0 for binary codes).
    metric : {"hamming", "euclidean", "cosine"}
    binary : bool
        The codes are bits.
    model_info : dict
        ``family``, ``config_sha256``, ``sample_shape`` and ``source`` (the run directory, if known) of the
        model the codes came from.
    model : estimator or None
        The model that encodes queries; None for an index loaded without it (then only :meth:`search_codes`).

    Examples
    --------
    >>> import aekit
    >>> from aekit.apps.retrieval import CodeIndex
    >>> X = aekit.load_dataset("digits").X
    >>> ae = aekit.Autoencoder(latent_dim=16, binary_codes=True, max_epochs=2, verbose=0).fit(X)
    >>> index = CodeIndex.build(ae, X)
    >>> index.metric
    'hamming'
    >>> indices, distances = index.search(X[:3], k=5)
    >>> indices.shape, distances.shape
    ((3, 5), (3, 5))
    """

    def __init__(self, codes: np.ndarray, metric: str, binary: bool, model_info: dict[str, Any],
                 model: Any = None) -> None:
        self.codes = np.ascontiguousarray(codes, dtype=np.float32)
        self.metric, self.binary, self.model_info, self.model = metric, bool(binary), dict(model_info), model
        self._nn: Any = None

    # ------------------------------------------------------------------------- building
    @classmethod
    def build(cls, model: Any, X: Any, *, metric: str = "auto", source: str | os.PathLike | None = None) -> CodeIndex:
        """Encode ``X`` with ``model`` and index the codes.

        Parameters
        ----------
        model : fitted aekit estimator
            Any family with an encoder (``transform``).
        X : array-like of shape (n_samples, *sample_shape) or (n_samples, n_features)
            The collection to search in.
        metric : {"auto", "hamming", "euclidean", "cosine"}
            "auto": Hamming for a model with binary codes, else Euclidean.
        source : path, optional
            The run directory of ``model``, recorded so that ``aekit search`` can load it.
        """
        info = model_record(model, None if source is None else str(Path(source).resolve()))
        binary = has_binary_codes(model)
        metric = _resolve_metric(metric, binary)
        X = check_array(X)
        _check_shape(X, tuple(info["sample_shape"]), "X")
        return cls(model.transform(X), metric, binary, info, model)

    @property
    def n_codes(self) -> int:
        return int(self.codes.shape[0])

    @property
    def code_size(self) -> int:
        return int(self.codes.shape[1])

    def _index(self) -> Any:
        if self._nn is None:
            from sklearn.neighbors import NearestNeighbors

            # Squared Euclidean = Hamming on 0/1 codes (see the module docstring).
            sk_metric = "euclidean" if self.metric == "hamming" else self.metric
            self._nn = NearestNeighbors(metric=sk_metric, algorithm="brute").fit(self.codes)
        return self._nn

    # ------------------------------------------------------------------------- searching
    def search(self, Q: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed samples of each query sample.

        Parameters
        ----------
        Q : array-like of shape (n_queries, *sample_shape) or (n_queries, n_features)
            Query samples, of the shape the model was fitted on.
        k : int
            Neighbours per query, 1 to ``n_codes``.

        Returns
        -------
        indices : ndarray of shape (n_queries, k), int64
            Rows of the indexed collection, nearest first.
        distances : ndarray of shape (n_queries, k), float64
            Hamming distances in bits, or Euclidean or cosine distances of the codes.
        """
        if self.model is None:
            src = self.model_info.get("source")
            raise ValueError(
                "this index was loaded without its model, so it cannot encode queries; pass model= to CodeIndex.load"
                + (f" (the run it was built from: {src})" if src else "") + ", or search codes with search_codes"
            )
        Q = check_array(Q, name="Q")
        _check_shape(Q, tuple(self.model_info["sample_shape"]), "Q")
        self._check_k(k)
        return self.search_codes(self.model.transform(Q), k)

    def search_codes(self, Z: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`search`, for query codes ``Z`` of shape (n_queries, code_size)."""
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.code_size:
            raise ValueError(
                f"query codes have shape {Z.shape}, but the index holds codes of {self.code_size} values; "
                f"give an array of shape (n_queries, {self.code_size}) from the same model"
            )
        if not np.isfinite(Z).all():
            raise ValueError("query codes contain NaN or infinity; encode finite query samples")
        self._check_k(k)
        dist, ind = self._index().kneighbors(Z, n_neighbors=k)
        if self.metric == "hamming":
            dist = np.rint(np.square(dist))  # (M, k) bit counts
        # Ties in the order of the collection, so that a search is reproducible whatever the BLAS.
        order = np.lexsort((ind, dist), axis=1)
        ind = np.take_along_axis(ind, order, axis=1)
        dist = np.take_along_axis(dist, order, axis=1)
        return ind.astype(np.int64), dist.astype(np.float64)

    def _check_k(self, k: Any) -> None:
        if not is_whole(k, 1):
            raise ValueError(f"k={k!r}: the number of neighbours must be a positive integer")
        if k > self.n_codes:
            raise ValueError(f"k={k} is larger than the index, which holds {self.n_codes} codes; use k <= {self.n_codes}")

    # ------------------------------------------------------------------------- saving
    def header(self) -> dict[str, Any]:
        """The JSON header saved with the codes."""
        return {
            "format": INDEX_FORMAT, "metric": self.metric, "binary": self.binary, "n_codes": self.n_codes,
            "code_size": self.code_size, "codes_sha256": _codes_digest(self.codes), "model": self.model_info,
        }

    def to_bytes(self) -> bytes:
        """The index file's content (an ``.npz``)."""
        stored = np.packbits(self.codes.astype(bool), axis=1) if self.binary else self.codes
        buf = io.BytesIO()
        head = np.frombuffer(json.dumps(self.header(), sort_keys=True).encode("utf-8"), dtype=np.uint8)
        np.savez(buf, header=head, codes=stored)
        return buf.getvalue()

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the index to ``path`` (an ``.npz``), atomically; an existing file only with ``overwrite=True``."""
        from aekit.engine.rundir import atomic_write_bytes

        p = Path(path)
        if p.suffix.lower() != ".npz":
            raise ValueError(f"{p}: an index is written as a .npz file; give a path ending in .npz")
        if p.is_dir():
            raise ValueError(f"{p} is a directory; give a file path ending in .npz")
        if p.exists() and not overwrite:
            raise ValueError(f"{p} already exists; pass overwrite=True (--overwrite) to replace it, or choose another file")
        atomic_write_bytes(p, self.to_bytes())
        return p

    @classmethod
    def load(cls, path: str | os.PathLike, *, model: Any = None) -> CodeIndex:
        """Read an index written by :meth:`save` (no pickle); with ``model``, check that the codes came from it.

        Raises
        ------
        ValueError
            A file that is not an aekit index, is truncated or edited, or was built from another model.
        """
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"{p}: no such index file; build one with `aekit index RUN --out {p.name}`")
        try:
            # Read first: np.load leaves its file open when a truncated archive fails to parse.
            with np.load(io.BytesIO(p.read_bytes()), allow_pickle=False) as z:
                head_raw, stored = z["header"], z["codes"]
            header = json.loads(bytes(np.asarray(head_raw, dtype=np.uint8)).decode("utf-8"))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, TypeError) as exc:
            raise ValueError(f"{p} is not a readable aekit index file ({_one_line(exc)}); rebuild it with aekit index") from None
        codes = _check_header(header, stored, p)
        index = cls(codes, header["metric"], header["binary"], header["model"])
        if model is not None:
            index.attach(model)
        return index

    def attach(self, model: Any) -> None:
        """Use ``model`` to encode queries, after checking that the indexed codes came from it."""
        found = model_digest(model)
        if found != self.model_info["config_sha256"]:
            src = self.model_info.get("source")
            raise ValueError(
                f"this index was built from another model (config digest {self.model_info['config_sha256'][:12]}..., "
                f"family {self.model_info['family']!r}) than the one given ({found[:12]}..., family "
                f"{model._family_name!r}); search with the model it was built from"
                + (f" ({src})" if src else "") + ", or rebuild the index with this one"
            )
        weights = self.model_info.get("weights_sha256")  # absent from indexes written before it was recorded
        if isinstance(weights, str) and weights != model_fingerprint(model):
            src = self.model_info.get("source")
            raise ValueError(
                "this index was built from a model with the same settings but other weights (trained again, or "
                "another run of the same command); its codes would not match the queries' codes. Search with the "
                "model it was built from" + (f" ({src})" if src else "") + ", or rebuild the index with this one"
            )
        self.model = model


def _codes_digest(codes: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(codes, dtype=np.float32).tobytes()).hexdigest()


def _check_shape(X: np.ndarray, sample_shape: tuple[int, ...], name: str) -> None:
    n_features = int(np.prod(sample_shape))
    if X.shape[1:] == sample_shape or (X.ndim == 2 and X.shape[1] == n_features):
        return
    raise ValueError(
        f"{name} has samples of shape {tuple(X.shape[1:])}, but the model was fitted on samples of shape "
        f"{sample_shape} ({n_features} features); give samples of that shape (or flat rows of {n_features} features)"
    )


def _check_header(header: Any, stored: np.ndarray, p: Path) -> np.ndarray:
    """The codes of an index file, after checking its header against them."""
    def bad(why: str) -> ValueError:
        return ValueError(f"{p} is not a valid aekit index file: {why}; rebuild it with aekit index")

    if not isinstance(header, dict) or any(k not in header for k in _HEADER_KEYS):
        raise bad(f"its header lacks {', '.join(k for k in _HEADER_KEYS if not isinstance(header, dict) or k not in header)}")
    if header["format"] != INDEX_FORMAT:
        raise bad(f"format {header['format']!r}, expected {INDEX_FORMAT!r}")
    if header["metric"] not in METRICS:
        raise bad(f"unknown metric {header['metric']!r}")
    n, k = header["n_codes"], header["code_size"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (n, k)):
        raise bad(f"n_codes={n!r} and code_size={k!r} must be positive integers")
    model = header["model"]
    if not isinstance(model, dict) or not isinstance(model.get("config_sha256"), str) or not isinstance(
            model.get("sample_shape"), list):
        raise bad("its model record lacks the config digest or the sample shape")
    if header["binary"]:
        if stored.dtype != np.uint8 or stored.shape != (n, (k + 7) // 8):
            raise bad(f"packed codes of dtype {stored.dtype} and shape {stored.shape}, expected uint8 ({n}, {(k + 7) // 8})")
        codes = np.unpackbits(stored, axis=1, count=k).astype(np.float32)
    else:
        if stored.dtype != np.float32 or stored.shape != (n, k):
            raise bad(f"codes of dtype {stored.dtype} and shape {stored.shape}, expected float32 ({n}, {k})")
        codes = stored
    if header["metric"] == "hamming" and not header["binary"]:
        raise bad("metric 'hamming' with real-valued codes")
    if _codes_digest(codes) != header["codes_sha256"]:
        raise bad("its codes do not match the checksum in its header (the file was changed)")
    return codes


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
