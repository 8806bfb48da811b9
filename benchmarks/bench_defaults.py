"""The default Autoencoder against PCA at the same code size, on data sets of varied shapes.

For each data set: ``LinearAutoencoder(solver="svd")`` and ``Autoencoder()`` with default settings (only
``latent_dim``, ``random_state`` and ``verbose`` given), both at the same code size K, fitted on the training
part; the held-out reconstruction error (squared error summed over the features, averaged over the test
samples, in the data's units) and the seconds per fit. ``--old`` adds the defaults before they adapted to
the data (a random start, sigmoid + cross-entropy for data in [0, 1], 50 epochs, 10 % validation, patience
10, widths 256-128); ``--linear`` the default with ``output="linear"`` where the data are in [0, 1] (the default
there clips its output to [0, 1]).

Data: generated sets (a Gaussian blob image, a curved surface, a low-rank signal), scikit-learn's bundled
digits and breast-cancer sets, and, with ``--data-dir`` pointing at a folder holding ``mnist/``,
``fashion-mnist/`` and ``frey-faces/`` (e.g. ../shared/data), subsets of MNIST, Fashion-MNIST and Frey faces.

    python benchmarks/bench_defaults.py --data-dir ../shared/data            # a few minutes on a CPU
    python benchmarks/bench_defaults.py --data-dir ../shared/data --full     # larger sets, much longer
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aekit  # noqa: E402

from _common import machine, table  # noqa: E402

Split = tuple[np.ndarray, np.ndarray]
OLD_DEFAULTS = {"init": "random", "max_epochs": 50, "validation_fraction": 0.1, "patience": 10, "hidden_dims": (256, 128)}


def blob_images(n: int, side: int, seed: int = 0) -> np.ndarray:
    """(n, 1, side, side) in [0, 1]: one Gaussian blob per image, random centre and width (3 factors)."""
    rng = np.random.default_rng(seed)
    g = np.arange(side, dtype=np.float64)
    cy, cx = rng.uniform(0.2, 0.8, (2, n, 1, 1)) * side
    w = rng.uniform(0.06, 0.15, (n, 1, 1)) * side
    img = np.exp(-((g[None, :, None] - cy) ** 2 + (g[None, None, :] - cx) ** 2) / (2 * w**2))
    return img[:, None].astype(np.float32)


def curved(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Points near a curved 2-D surface in R^d (a random 2-16-d tanh network of a square), plus noise."""
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((2, 16)) * 2.0, rng.standard_normal((16, d)) / 4.0
    t = rng.uniform(-1, 1, (n, 2))
    return (np.tanh(t @ A) @ B + 0.01 * rng.standard_normal((n, d))).astype(np.float32)


def low_rank(n: int, d: int, rank: int, seed: int = 0) -> np.ndarray:
    """A rank-``rank`` Gaussian signal plus isotropic noise: PCA is the best linear and nonlinear code."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) + 0.5 * rng.standard_normal((n, d))).astype(
        np.float32
    )


def split(X: np.ndarray, n_train: int, n_test: int) -> Split:
    return X[:n_train], X[n_train : n_train + n_test]


def idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16)
    return (data.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)


def shuffled(X: np.ndarray, seed: int = 0) -> np.ndarray:
    return X[np.random.default_rng(seed).permutation(X.shape[0])]


def datasets(data_dir: Path | None, full: bool) -> list[tuple[str, str, int, Callable[[], Split]]]:
    """(name, kind, K, loader) for each data set of the run."""
    from sklearn.datasets import load_breast_cancer, load_digits

    def digits() -> Split:
        X = shuffled((load_digits().data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8))
        return split(X, 1437, 360)

    def cancer() -> Split:
        return split(shuffled(load_breast_cancer().data.astype(np.float32)), 455, 114)

    sets: list[tuple[str, str, int, Callable[[], Split]]] = [
        ("blob images 32x32, 300 train", "image", 8, lambda: split(blob_images(1300, 32), 300, 1000)),
        ("curved surface, 500 x 30", "table", 3, lambda: split(curved(1500, 30), 500, 1000)),
        ("low-rank + noise, 2000 x 50", "table", 5, lambda: split(low_rank(3000, 50, 5), 2000, 1000)),
        ("sklearn digits 8x8", "image", 16, digits),
        ("sklearn breast cancer", "table", 5, cancer),
    ]
    if full:
        sets += [
            ("blob images 48x48, 300 train", "image", 8, lambda: split(blob_images(1300, 48), 300, 1000)),
            ("curved surface, 20000 x 200", "table", 3, lambda: split(curved(22000, 200), 20000, 2000)),
            ("low-rank + noise, 20000 x 500", "table", 10, lambda: split(low_rank(22000, 500, 10), 20000, 2000)),
        ]
    if data_dir is not None:
        sizes = (500, 10000) if full else (500,)
        for folder, label in (("mnist", "MNIST"), ("fashion-mnist", "Fashion-MNIST")):
            for n in sizes:
                def load(folder: str = folder, n: int = n) -> Split:
                    train = shuffled(idx_images(data_dir / folder / "train-images-idx3-ubyte.gz"))[:n]
                    test = idx_images(data_dir / folder / "t10k-images-idx3-ubyte.gz")[:2000]
                    return train, test
                sets.append((f"{label}, {n} train", "image", 32, load))

        def frey() -> Split:
            X = shuffled((np.load(data_dir / "frey-faces" / "frey_faces_1965x28x20_uint8.npy") / 255.0).astype(np.float32))
            return split(X[:, None], 1572 if full else 300, 393)

        sets.append((f"Frey faces, {1572 if full else 300} train", "image", 10, frey))
    return sets


def held_out(model: aekit.LinearAutoencoder | aekit.Autoencoder, X: np.ndarray) -> float:
    return float(model.reconstruction_error(X).mean())


def timed_fit(est: aekit.LinearAutoencoder | aekit.Autoencoder, X: np.ndarray) -> float:
    t0 = time.perf_counter()
    est.fit(X)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding mnist/, fashion-mnist/, frey-faces/")
    p.add_argument("--full", action="store_true", help="add larger data sets (tens of thousands of samples)")
    p.add_argument("--old", action="store_true", help="add the fixed defaults from before, for comparison")
    p.add_argument("--linear", action="store_true",
                   help="add the default Autoencoder with output='linear' (unclipped) on the data in [0, 1]")
    p.add_argument("--only", default="", help="semicolon-separated substrings of the data set names to run")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rows = []
    for name, kind, k, load in datasets(a.data_dir, a.full):
        if a.only and not any(s.strip().lower() in name.lower() for s in a.only.split(";")):
            continue
        train, test = load()
        pca = aekit.LinearAutoencoder(latent_dim=k, solver="svd")
        t_pca = timed_fit(pca, train)
        ae = aekit.Autoencoder(latent_dim=k, random_state=a.seed, verbose=0)
        t_ae = timed_fit(ae, train)
        e_pca, e_ae = held_out(pca, test), held_out(ae, test)
        r = ae.resolved_
        vals = [row["val_loss"] for row in ae.history_ if "val_loss" in row]
        best = int(np.argmin(vals)) + 1 if vals and min(vals) < float("inf") else len(ae.history_)
        row: list[object] = [
            name, kind, f"{train.shape[0]} x {int(np.prod(train.shape[1:]))}", k, e_pca, e_ae, e_ae / e_pca,
            f"{len(ae.history_)}/{r.max_epochs}", "x".join(map(str, r.hidden_dims)), round(t_pca, 2), round(t_ae, 1),
        ]
        if a.old:
            old = aekit.Autoencoder(latent_dim=k, random_state=a.seed, verbose=0, **OLD_DEFAULTS)  # type: ignore[arg-type]
            t_old = timed_fit(old, train)
            e_old = held_out(old, test)
            row += [e_old / e_pca, round(t_old, 1)]
        if a.linear:
            if 0.0 <= float(train.min()) and float(train.max()) <= 1.0:
                linear = aekit.Autoencoder(latent_dim=k, output="linear", random_state=a.seed, verbose=0)
                t_linear = timed_fit(linear, train)
                row += [held_out(linear, test) / e_pca, round(t_linear, 1)]
            else:
                row += ["- (not in [0, 1])", "-"]
        rows.append(row)
        print(f"{name}: PCA {e_pca:.4g}, default {e_ae:.4g} ({e_ae / e_pca:.3f}x), {t_ae:.1f} s, lowest val_loss after epoch {best}",
              file=sys.stderr, flush=True)
    header = ["data", "kind", "train n x D", "K", "PCA err", "default AE err", "AE / PCA", "epochs run/max",
              "widths", "PCA s", "AE s"]
    if a.old:
        header += ["old defaults / PCA", "old s"]
    if a.linear:
        header += ["output='linear' / PCA", "linear s"]
    print(f"Machine: {machine()}\n")
    print(table(header, rows))


if __name__ == "__main__":
    main()
