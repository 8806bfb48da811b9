"""Retrieval (semantic hashing) and codes as classifier features on MNIST / Fashion-MNIST.

Retrieval, the protocol of the hashing papers (Gong and Lazebnik's ITQ, 2011): the 60,000 training images are
indexed, the test images are the queries, a retrieved image is relevant when it has the query's class label.
Figures: precision at 10 and mean average precision over the whole ranking (ties in Hamming distance broken by
index), and the query time per 1,000 queries (encoding the queries plus the k=10 search through
``aekit.apps.retrieval.CodeIndex``, the same scikit-learn search for every row of a kind).

Rows at each bit count b (``--bits``):

- ``aekit-binary``: ``Autoencoder(binary_codes=True, latent_dim=b)``, Hamming distance (``--binarization``: the
  default "itq", bits of the trained codes by iterative quantization, or "straight-through"; ``--preset hashing``
  takes the family's retrieval preset, a convolutional encoder trained to undo shifts; ``--sample-norm`` and
  ``--shift-corruption`` set the family's parameters of those names);
- ``lsh``: random-projection LSH, sign(R^T (x - mean)) with a Gaussian R (Charikar 2002), Hamming;
- ``pca-itq``: PCA to b dimensions then iterative quantization (Gong and Lazebnik 2011, 50 iterations), Hamming;
- ``pca-itq-l2``: the same on the images scaled to unit Euclidean norm (what aekit's ``sample_norm="l2"``,
  ``--sample-norm l2``, feeds its network), so that a lead of aekit's row is not read as the network's when it is
  the preprocessing's;

With ``--itq-seeds N`` (N > 1) a second table gives the mean and standard deviation over N seeds of the ITQ
rotation's random start, for ``pca-itq`` and for ``aekit-binary`` (whose code layer is refitted by ITQ from each
seed on the same trained network's codes; the first seed is the main table's row): how much of a difference between the two rows is the start's luck.

and float codes with ``--float-dim`` values, Euclidean distance: ``aekit-float`` (the default ``Autoencoder``),
``pca`` and ``pixels`` (raw-pixel k-NN).

Features: logistic regression and 5-NN test accuracy on the aekit float codes, the PCA codes and the raw
pixels (``--features-train`` training images, all test images).

    python benchmarks/bench_retrieval.py --data mnist --data-dir ../shared/data/mnist
    python benchmarks/bench_retrieval.py --data mnist --data-dir ../shared/data/mnist --queries 1000 --epochs 5
    python benchmarks/bench_retrieval.py --data fashion-mnist --data-dir ../shared/data/fashion-mnist --preset hashing
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

import aekit
from aekit.apps.features import make_classifier
from aekit.apps.retrieval import CodeIndex
from aekit.data.preprocessing import unit_norm_samples
from aekit.families.autoencoder import itq_rotation

from _common import add_data_args, machine, table

HEADER = ["data", "method", "bits / dims", "metric", "P@10", "mAP", "query s / 1000", "fit s"]
SPREAD_HEADER = ["data", "method", "bits", "ITQ seeds", "P@10 mean ± sd", "mAP mean ± sd"]


def ranking_metrics(Q: np.ndarray, X: np.ndarray, yq: np.ndarray, yx: np.ndarray, metric: str,
                    chunk: int = 250) -> tuple[float, float]:
    """Precision at 10 and mean average precision, by class label, over the full ranking of ``X`` for each query."""
    Xf, Qf = X.astype(np.float32), Q.astype(np.float32)
    xx = (Xf * Xf).sum(1)
    p10, aps = [], []
    n_rel_all = np.bincount(yx, minlength=int(max(yx.max(), yq.max())) + 1)
    for s in range(0, len(Q), chunk):
        q = Qf[s:s + chunk]
        D = xx[None, :] - 2.0 * (q @ Xf.T)  # (c, N) squared distance less |q|^2: the same order
        if metric == "hamming":
            # Integer bit counts (|q|^2 dropped), so ties are exact; as int16, NumPy's stable sort is a radix sort.
            D = np.rint(D).astype(np.int16)
        order = np.argsort(D, axis=1, kind="stable")  # ties by index
        rel = yx[order] == yq[s:s + chunk, None]  # (c, N)
        p10.append(rel[:, :10].mean(1))
        hits = np.cumsum(rel, axis=1)
        ranks = np.arange(1, X.shape[0] + 1)
        aps.append((np.where(rel, hits / ranks, 0.0).sum(1)) / n_rel_all[yq[s:s + chunk]])
    return float(np.concatenate(p10).mean()), float(np.concatenate(aps).mean())


def itq(V: np.ndarray, n_iter: int = 50, seed: int = 0) -> np.ndarray:
    """The rotation R of iterative quantization: min_{B, R} ||B - V R||_F^2, B in {-1, 1}, R orthogonal."""
    rng = np.random.default_rng(seed)
    R, _ = np.linalg.qr(rng.standard_normal((V.shape[1], V.shape[1])))
    for _ in range(n_iter):
        B = np.where(V @ R >= 0, 1.0, -1.0)
        U, _, Wt = np.linalg.svd(V.T @ B)  # orthogonal Procrustes
        R = U @ Wt
    return R


def unit(A: np.ndarray) -> np.ndarray:
    """Each row of ``A`` scaled to unit Euclidean norm (a zero row stays zero), as aekit's ``sample_norm="l2"``."""
    return unit_norm_samples(A)[0]


def raw(A: np.ndarray) -> np.ndarray:
    return A


def real_codes(ae: Any, A: np.ndarray) -> np.ndarray:
    """The real-valued codes under an ITQ autoencoder's bits (its network's codes before the code layer)."""
    return ae._batched(ae.module_.encoder, ae._prepare(A)).astype(np.float64)


def bare_index(codes: np.ndarray, metric: str, binary: bool) -> CodeIndex:
    """An index of codes from a method outside aekit (searched by codes, no model)."""
    return CodeIndex(codes, metric, binary, {"family": "none", "config_sha256": "", "sample_shape": [codes.shape[1]],
                                             "source": None})


def query_seconds(encode: Callable[[np.ndarray], np.ndarray], index: CodeIndex, Q: np.ndarray, k: int = 10) -> float:
    """Encoding the queries plus the k-NN search, per 1,000 queries (the best of 2 runs)."""
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        index.search_codes(encode(Q), k)
        best = min(best, time.perf_counter() - t)
    return best * 1000.0 / len(Q)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p)
    p.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--float-dim", type=int, default=32)
    p.add_argument("--queries", type=int, default=10_000, help="test images used as queries (default: all 10,000)")
    p.add_argument("--index-limit", type=int, default=None, help="index only the first N training images")
    p.add_argument("--epochs", type=int, default=20, help="epochs of each aekit autoencoder")
    p.add_argument("--features-train", type=int, default=10_000, help="training images of the classifiers")
    p.add_argument("--binarization", default="itq", choices=("itq", "straight-through"))
    p.add_argument("--sample-norm", default="none", choices=("none", "l2"),
                   help="aekit's sample_norm: l2 scales each image to unit norm before its network")
    p.add_argument("--preset", default=None, choices=aekit.Autoencoder.presets(),
                   help="aekit-binary's network from this preset of the family (e.g. hashing), the flags on top")
    p.add_argument("--shift-corruption", type=int, default=None,
                   help="aekit-binary's network is trained to undo random shifts of up to N pixels (default: the "
                        "preset's, else 0)")
    p.add_argument("--output", default=None, choices=("linear", "clip"),
                   help="the aekit-binary network's output (default: its own, clipped to [0, 1] from the PCA start)")
    p.add_argument("--no-float", action="store_true", help="only the binary rows (no float codes, no features)")
    p.add_argument("--itq-seeds", type=int, default=1,
                   help="N > 1: also the mean and spread over N seeds of the ITQ rotation's start (aekit and pca-itq)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    tr = aekit.load_dataset(a.data, split="train", data_dir=a.data_dir, limit=a.index_limit)
    te = aekit.load_dataset(a.data, split="test", data_dir=a.data_dir, limit=a.queries)
    X, Q = tr.X.reshape(len(tr), -1), te.X.reshape(len(te), -1)
    yx, yq = tr.y.astype(np.int64), te.y.astype(np.int64)
    print(f"{tr.name}: {len(X)} indexed, {len(Q)} queries; {machine()}; torch threads {torch.get_num_threads()}",
          flush=True)
    rows: list[list[Any]] = []
    mean = X.mean(0)

    def bits_metrics(V: np.ndarray, Vq: np.ndarray, R: np.ndarray) -> tuple[float, float]:
        """P@10 and mAP of the bits sign(V R) of the indexed and the query codes, V centred."""
        return ranking_metrics((Vq @ R > 0).astype(np.float32), (V @ R > 0).astype(np.float32), yq, yx, "hamming")

    def add(method: str, dims: int, metric: str, binary: bool, encode: Callable[[np.ndarray], np.ndarray],
            fit_s: float) -> tuple[float, float]:
        codes, qcodes = encode(X), encode(Q)
        p10, mAP = ranking_metrics(qcodes, codes, yq, yx, metric)
        qs = query_seconds(encode, bare_index(codes, metric, binary), Q)
        rows.append([tr.name, method, dims, metric, round(p10, 4), round(mAP, 4), round(qs, 4), round(fit_s, 1)])
        print(table(HEADER, [rows[-1]]).splitlines()[-1], flush=True)
        return p10, mAP

    spread: list[list[Any]] = []

    def seeds_row(method: str, b: int, metrics: list[tuple[float, float]]) -> None:
        m = np.asarray(metrics)  # (n_seeds, 2): P@10, mAP
        spread.append([tr.name, method, b, len(m), f"{m[:, 0].mean():.4f} ± {m[:, 0].std():.4f}",
                       f"{m[:, 1].mean():.4f} ± {m[:, 1].std():.4f}"])
        print(table(SPREAD_HEADER, [spread[-1]]).splitlines()[-1], flush=True)

    def pca_itq(method: str, b: int, prep: Callable[[np.ndarray], np.ndarray]) -> tuple[Any, np.ndarray, np.ndarray,
                                                                                        tuple[float, float]]:
        """PCA-ITQ of ``prep``'s images (the ITQ start of ``--seed``): its row; the PCA, the prepared images and
        queries, and the row's P@10 and mAP."""
        Xp, Qp = prep(X), prep(Q)
        t = time.perf_counter()
        pca = PCA(b, random_state=a.seed).fit(Xp)
        W = (pca.components_.T @ itq(pca.transform(Xp), seed=a.seed)).astype(np.float32)
        first = add(method, b, "hamming", True, lambda A: ((prep(A) - pca.mean_) @ W > 0).astype(np.float32),
                    time.perf_counter() - t)
        return pca, Xp, Qp, first

    for b in a.bits:
        t = time.perf_counter()
        # The preset's parameters (if any), the flags on top, as from_preset does.
        params = aekit.Autoencoder.preset_params(a.preset) if a.preset else {}
        if a.shift_corruption is not None:
            params["shift_corruption"] = a.shift_corruption
        if a.output is not None:
            params["output"] = a.output
        ae = aekit.Autoencoder(**{**params, "latent_dim": b, "binary_codes": True, "binarization": a.binarization,
                                  "sample_norm": a.sample_norm, "max_epochs": a.epochs, "random_state": a.seed,
                                  "verbose": 0}).fit(tr.X)
        ae_first = add("aekit-binary", b, "hamming", True, ae.transform, time.perf_counter() - t)
        R = np.random.default_rng(a.seed).standard_normal((X.shape[1], b)).astype(np.float32)
        add("lsh", b, "hamming", True, lambda A, R=R: ((A - mean) @ R > 0).astype(np.float32), 0.0)
        itq_rows = [(method, *pca_itq(method, b, prep)) for method, prep in (("pca-itq", raw), ("pca-itq-l2", unit))]
        if a.itq_seeds > 1:
            # The first seed is the row above; each further seed starts the same ITQ from another rotation
            # (aekit's own itq_rotation, as its code layer does, on the same trained network's codes).
            seeds = range(a.seed + 1, a.seed + a.itq_seeds)
            for method, pca, Xp, Qp, first in itq_rows:
                V, Vq = pca.transform(Xp), pca.transform(Qp)
                seeds_row(method, b, [first, *(bits_metrics(V, Vq, itq(V, seed=s)) for s in seeds)])
            Z, Zq = real_codes(ae, tr.X), real_codes(ae, te.X)
            m = Z.mean(0)
            rots = [itq_rotation(torch.from_numpy(Z - m), seed=s).numpy() for s in seeds]
            seeds_row("aekit-binary", b, [ae_first, *(bits_metrics(Z - m, Zq - m, R) for R in rots)])

    if spread:
        print("\n" + table(SPREAD_HEADER, spread), flush=True)
    if a.no_float:
        print("\n" + table(HEADER, rows), flush=True)
        return
    k = a.float_dim
    t = time.perf_counter()
    fae = aekit.Autoencoder(latent_dim=k, max_epochs=a.epochs, random_state=a.seed, verbose=0).fit(tr.X)
    add("aekit-float", k, "euclidean", False, fae.transform, time.perf_counter() - t)
    t = time.perf_counter()
    fpca = PCA(k, random_state=a.seed).fit(X)
    add("pca", k, "euclidean", False, lambda A: fpca.transform(A).astype(np.float32), time.perf_counter() - t)
    add("pixels", X.shape[1], "euclidean", False, lambda A: A.astype(np.float32), 0.0)
    print("\n" + table(HEADER, rows), flush=True)

    n = min(a.features_train, len(X))
    feats = {"aekit-float": fae.transform, "pca": fpca.transform, "pixels": lambda A: A}
    frows = []
    for name, enc in feats.items():
        accs = []
        for kind in ("logistic", "knn"):
            clf = make_classifier(kind).fit(enc(X[:n]), yx[:n])
            accs.append(round(float(clf.score(enc(Q), yq)), 4))
        frows.append([tr.name, name, n, *accs])
    print("\n" + table(["data", "features", "train images", "logistic acc", "5-NN acc"], frows), flush=True)


if __name__ == "__main__":
    main()
