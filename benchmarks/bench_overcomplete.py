"""Overcomplete autoencoders: without a constraint the model copies its input; a regularizer stops it.

The lecture point (Goodfellow, Bengio and Courville, "Deep Learning", sec. 14.1-14.5): an autoencoder
whose code is larger than its input (here K = 1024 code units for 784 pixels, one encoder layer and one
decoder layer, untied) can learn a near-identity map, which reconstructs everything and has learned
nothing about the data. A sparsity penalty (L1, or top-k), denoising, or the contractive penalty make
copying costly, so the model has to capture the structure of the training digits instead.

How it is measured: each model is trained on the training digits and then reconstructs

- the test digits (in the training distribution): a low error is expected of every model;
- images of i.i.d. uniform noise on [0, 1] (never seen in training): a copying map reconstructs them
  well, a model of the digits does not.

Columns: both errors (squared error summed over the pixels, averaged over images) and their ratio
noise / digits; the perturbation gain ||f(x + delta) - f(x)||^2 / ||delta||^2 on the test digits with
delta ~ N(0, 0.05^2 I), about ||J_f(x)||_F^2 / D (1 for the identity, 0 for a map that ignores its input;
the contractive penalty is what lowers it directly); and how sparse the code of the test digits is: the
mean number of active units per image (|h| > 1e-3 for linear and ReLU codes, h > 0.05 for sigmoid codes,
as :meth:`aekit.SparseAutoencoder.sparsity_report` counts) and the units never active on them.

Two reference rows bracket the noise error. "mean training image" ignores its input: the error of a
model that copies nothing. "projection onto the span of the training images" (PCA with every component
of non-zero variance) is the best a copying map can be: no map trained on the digits learns to copy a
direction along which they never vary (MNIST's border pixels are always 0), so even a perfect copy of
the training data leaves that part of the noise unreconstructed.

Each regularized model is compared with a plain model of the same code non-linearity (the regularizer is
the only difference): the aekit autoencoder with one encoder layer has a linear code (plain and
denoising rows), the sparse family a ReLU code (its alpha=0 is the plain one), the contractive family the
paper's sigmoid code (its alpha=0 is the plain one). Every model: linear output and squared error
(``--loss mse``, the default, under which a copy is exactly representable; a sigmoid output cannot pass
values in (0, 1) through unchanged), Adam, batch 128, cosine learning rate, the same epochs and data.
Gradient descent learns the high-variance directions of the data first, so a plain model approaches the
copy only after long training: read its noise error against the two reference rows.

    python benchmarks/bench_overcomplete.py --data-dir ../shared/data/mnist --limit 20000
    python benchmarks/bench_overcomplete.py --data digits --epochs 200
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import aekit
from aekit.families.sparse import ZERO_THRESHOLD
from aekit.report.metrics import reconstruction_metrics

from _common import add_data_args, machine, table

HEADER = [
    "model", "code", "digits sq. err/image", "noise sq. err/image", "noise / digits", "perturbation gain",
    "active units per digit", "dead units", "train s",
]
#: standard deviation of the small perturbations of the test digits (pixels in [0, 1])
PERTURBATION = 0.05
ROWS = ("plain-linear", "denoising", "plain-relu", "sparse-l1", "sparse-topk", "plain-sigmoid", "contractive")


def code_sparsity(H: np.ndarray, code: str) -> tuple[float, int]:
    """Mean number of active code units per sample and the number of units never active; H is (N, K)."""
    active = np.abs(H) > ZERO_THRESHOLD[code]  # (N, K)
    return float(active.sum(axis=1).mean()), int((~active.any(axis=0)).sum())


def span_projection(X: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """The projection onto mean + span of the centred training images, and that span's rank r.

    The best a copying map can do on inputs off the training data: a direction along which the training
    images never vary (a border pixel that is always 0) gives no gradient to learn to copy it.
    """
    d = int(np.prod(X.shape[1:]))
    full = aekit.LinearAutoencoder(latent_dim=min(d, X.shape[0]), solver="svd").fit(X)
    ev = full.explained_variance_
    rank = int((ev > 1e-10 * ev[0]).sum())  # directions of (numerically) zero variance are not in the span
    V = full.components_[:rank]  # (r, D)
    mean = full.inverse_transform(np.zeros((1, len(ev)), np.float32)).reshape(1, d)  # the zero code decodes to it

    def project(A: np.ndarray) -> np.ndarray:
        return (full.transform(A)[:, :rank] @ V + mean).reshape(A.shape)

    return project, rank


def evaluate(
    reconstruct: Callable[[np.ndarray], np.ndarray], X: np.ndarray, noise: np.ndarray, delta: np.ndarray
) -> tuple[float, float, float]:
    """Squared error per image on the digits ``X`` and on ``noise``, and the perturbation gain.

    The gain ||f(x + delta) - f(x)||^2 / ||delta||^2 (summed over the digits) is the fraction of a small
    perturbation that the map passes through, about ||J_f(x)||_F^2 / D: 1 for the identity, r / D for
    the projection onto an r-dimensional span, 0 for a map that ignores its input.
    """
    R = reconstruct(X)
    e_dig = float(reconstruction_metrics(X, R)["sq_err_per_image"])
    e_noise = float(reconstruction_metrics(noise, reconstruct(noise))["sq_err_per_image"])
    moved = (reconstruct(X + delta) - R).astype(np.float64)
    return e_dig, e_noise, float((moved**2).sum() / (delta.astype(np.float64) ** 2).sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="use only the first N test images")
    p.add_argument("--latent-dim", type=int, default=1024, help="code units K, more than the input's pixels")
    p.add_argument("--epochs", type=int, default=2, help="epochs of every model (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, cosine-decayed to 0")
    p.add_argument("--l1-alpha", type=float, default=None, help="L1 weight; default: the sparse family's (0.1)")
    p.add_argument("--k", type=int, default=32, help="units kept per sample by top-k (default: %(default)s)")
    p.add_argument("--corruption", default="masking:0.25", help="of the denoising model (default: %(default)s)")
    p.add_argument("--cae-alpha", type=float, default=0.1, help="contractive weight (default: %(default)s)")
    p.add_argument("--loss", choices=("mse", "bce"), default="mse",
                   help="mse: linear output and squared error (a copy is exactly representable); bce: sigmoid "
                        "output and cross-entropy (default: %(default)s)")
    p.add_argument("--only", default=",".join(ROWS), help="comma list of rows to run (default: all)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    train = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir, limit=args.limit)
    test = aekit.load_dataset(args.data, split="test", data_dir=args.data_dir, limit=args.test_limit)
    X, X_test = train.X, test.X
    d = int(np.prod(X.shape[1:]))
    K = args.latent_dim
    if K <= d:
        raise SystemExit(f"--latent-dim {K} is not overcomplete for {d} input values; use more than {d}")
    # Uniform noise images, the shape of the test digits; a fixed draw so every model sees the same ones.
    noise = np.random.default_rng(args.seed + 1).random(X_test.shape, dtype=np.float32)

    common: dict[str, Any] = {
        "latent_dim": K, "hidden_dims": (), "tied": False, "max_epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate": args.lr, "lr_schedule": "cosine", "validation_fraction": 0.0, "patience": None,
        "device": args.device, "random_state": args.seed, "verbose": 1,
        "loss": args.loss, "output": "linear" if args.loss == "mse" else "sigmoid",
    }
    l1 = "0.1 (default)" if args.l1_alpha is None else f"{args.l1_alpha:g}"
    models: dict[str, tuple[str, str, Callable[[], Any]]] = {
        "plain-linear": ("plain autoencoder", "linear", lambda: aekit.Autoencoder(**common)),
        "denoising": (f"denoising, {args.corruption}", "linear",
                      lambda: aekit.DenoisingAutoencoder(corruption=args.corruption, **common)),
        "plain-relu": ("plain (sparse family, alpha=0)", "relu",
                       lambda: aekit.SparseAutoencoder(penalty="l1", alpha=0.0, **common)),
        "sparse-l1": (f"sparse, L1 alpha={l1}", "relu",
                      lambda: aekit.SparseAutoencoder(penalty="l1", alpha=args.l1_alpha, **common)),
        "sparse-topk": (f"sparse, top-k k={args.k}", "relu",
                        lambda: aekit.SparseAutoencoder(penalty="topk", k=args.k, **common)),
        "plain-sigmoid": ("plain (contractive family, alpha=0)", "sigmoid",
                          lambda: aekit.ContractiveAutoencoder(alpha=0.0, **common)),
        "contractive": (f"contractive, alpha={args.cae_alpha:g} (exact)", "sigmoid",
                        lambda: aekit.ContractiveAutoencoder(alpha=args.cae_alpha, **common)),
    }
    unknown = [n for n in args.only.split(",") if n not in models]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; valid: {', '.join(ROWS)}")

    # Small perturbations of the test digits, a fixed draw, for the perturbation gain.
    delta = PERTURBATION * np.random.default_rng(args.seed + 2).standard_normal(X_test.shape, dtype=np.float32)
    mean_img = X.mean(axis=0)
    t0 = time.perf_counter()
    project, rank = span_projection(X)
    span_s = time.perf_counter() - t0
    rows: list[list[object]] = []
    references: list[tuple[str, Callable[[np.ndarray], np.ndarray], object]] = [
        ("mean training image (reference)", lambda A: np.broadcast_to(mean_img, A.shape).copy(), "-"),
        (f"projection onto the span of the training images (PCA-{rank}; reference)", project, span_s),
    ]
    for label, fn, secs in references:
        e_dig, e_noise, g = evaluate(fn, X_test, noise, delta)
        rows.append([label, "-", e_dig, e_noise, e_noise / e_dig, g, "-", "-", secs])
    print(table(HEADER, rows), flush=True)
    for name in args.only.split(","):
        label, code, make = models[name]
        t0 = time.perf_counter()
        est = make().fit(X)
        secs = time.perf_counter() - t0
        e_dig, e_noise, g = evaluate(est.reconstruct, X_test, noise, delta)
        l0, dead = code_sparsity(est.transform(X_test), code)
        rows.append([label, code, e_dig, e_noise, e_noise / e_dig, g, l0, dead, secs])
        print(table(HEADER, rows[-1:]), flush=True)

    print(f"\nOvercomplete autoencoders on {args.data}: {d}-{K}-{d} (one encoder and one decoder layer, untied), "
          f"{len(X)} training images, {args.epochs} epochs, loss {args.loss}, batch {args.batch_size}, Adam lr {args.lr:g} "
          f"cosine; "
          f"{len(X_test)} test digits and as many uniform-noise images ({machine()})\n")
    print(table(HEADER, rows))
    print(f"\nErrors: squared error summed over the {d} pixels, averaged over images. Active units: of K = {K}.")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
