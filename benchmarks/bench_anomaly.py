"""One-class anomaly detection: MNIST by the Deep SVDD protocol, and breast cancer as a table (ANCHORS.md).

One-class MNIST (Ruff et al., ICML 2018): train on the training images of one digit, score the whole test set
(10,000 images), ROC-AUC of the other nine digits against that digit, per digit and averaged over seeds. Every
detector gets the same data, raw pixels in [0, 1] (flattened to 784 features for the detectors that take tables):
aekit's ``AnomalyDetector()`` with its defaults, scikit-learn's ``IsolationForest`` and ``OneClassSVM`` (defaults,
``gamma="scale"``), and PyOD's ``AutoEncoder`` and ``VAE`` (PyOD's defaults). PyOD is not a dependency of aekit: its
rows run in a separate environment named by ``--pyod-python`` (``pip install torch pyod`` there), or are skipped.

Breast cancer (scikit-learn's bundled copy): per seed, 70 % of the benign samples train, the other benign samples and
all malignant ones are scored; features standardized with the training part's statistics; AUC and average precision.
``--tables`` adds one-class tables from scikit-learn's other bundled data, each class in turn normal (wine, iris, and
digits as 64 features), split and standardized the same way.

    python benchmarks/bench_anomaly.py --data-dir ../shared/data/mnist                              # short: digits 8,2
    python benchmarks/bench_anomaly.py --data-dir ../shared/data/mnist --digits all --seeds 3       # the protocol
    python benchmarks/bench_anomaly.py --data-dir ../shared/data/mnist --pyod-python /tmp/pyod-venv/bin/python
    python benchmarks/bench_anomaly.py --skip-images --tables breast-cancer,wine,iris,digits --tabular-seeds 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ANCHOR = {0: 98.0, 1: 99.7, 2: 91.7, 3: 91.9, 4: 94.9, 5: 88.5, 6: 98.3, 7: 94.6, 8: 93.9, 9: 96.5}  # Deep SVDD
GOAL_MEAN, GOAL_MIN = 98.5, 96.0
PYOD = ("pyod-ae", "pyod-vae")
#: aekit's detector with some of its additions left out: all (aekit-error, the first default), all but the unit norm
#: (aekit-unit), all but the code distance (aekit-codes, raw pixels), the error at the image's own scale (aekit-shape,
#: the second default); on tables, the autoencoder and its code distance in place of factor analysis (aekit-ae, the
#: tables' default before factor analysis); on images, the model's output clipped to [0, 1] (aekit-clip, the default
#: autoencoder's output on such data since the detector's figures were measured).
VARIANTS: dict[str, dict[str, object]] = {
    "aekit-error": {"n_neighbors": 0, "normalize": "none"}, "aekit-unit": {"n_neighbors": 0, "rescaled_error": False},
    "aekit-codes": {"normalize": "none"}, "aekit-shape": {"rescaled_error": False},
    "aekit-ae": {"n_neighbors": 5, "autoencoder": True}, "aekit-clip": {"output": "clip"}}
METHODS = ("aekit", "iforest", "ocsvm", *PYOD, *VARIANTS)

Scorer = Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (train, test, seed) -> abnormality of test


# ----------------------------------------------------------------------------------- the detectors


def aekit_scores(epochs: int | None, autoencoder: bool = False, output: str | None = None, **params: object) -> Scorer:
    """aekit's detector with ``params``; its default model, or the default autoencoder where ``autoencoder`` (the
    images' model, also for a table), trained for ``epochs`` where given (factor analysis has no epochs), with
    ``output`` in place of its output layer where given."""
    def run(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
        import aekit
        from aekit.apps.anomaly import default_model

        model = None
        if autoencoder or ((epochs is not None or output is not None) and train.ndim > 2):
            model = default_model(int(np.prod(train.shape[1:])), seed)
            if epochs is not None:
                model.set_params(max_epochs=epochs)
            if output is not None:
                model.set_params(output=output)
        det = aekit.AnomalyDetector(model, random_state=seed, **params).fit(train)
        return np.asarray(det.decision_function(test))

    return run


def iforest(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.ensemble import IsolationForest

    m = IsolationForest(random_state=seed, n_jobs=1).fit(_flat(train))
    return np.asarray(-m.score_samples(_flat(test)))


def ocsvm(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.svm import OneClassSVM

    m = OneClassSVM(gamma="scale").fit(_flat(train))
    return np.asarray(-m.score_samples(_flat(test)))


def pyod_scores(kind: str, python: str, epochs: int | None) -> Scorer:
    def run(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp, "in.npz"), Path(tmp, "out.npy")
            np.savez(src, train=_flat(train), test=_flat(test))
            cmd = [python, __file__, "--pyod-worker", str(src), str(dst), kind, str(seed), str(epochs or 0)]
            subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": ""})
            return np.asarray(np.load(dst))

    return run


def _pyod_worker(src: str, dst: str, kind: str, seed: str, epochs: str) -> None:
    """Runs in PyOD's environment: fit one PyOD detector, write its decision_function of the test data."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = np.load(src)
    kw = {"random_state": int(seed), "verbose": 0}
    if int(epochs):
        kw["epoch_num"] = int(epochs)
    if kind == "pyod-ae":
        from pyod.models.auto_encoder import AutoEncoder

        m = AutoEncoder(**kw)
    else:
        from pyod.models.vae import VAE

        m = VAE(**kw)
    m.fit(data["train"])
    np.save(dst, m.decision_function(data["test"]))


def _flat(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float32).reshape(X.shape[0], -1)


# ---------------------------------------------------------------------------------------- main


def main() -> None:
    from sklearn.metrics import roc_auc_score

    from _common import add_data_args, machine, table

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p)
    p.add_argument("--digits", default="8,2", help="comma-separated normal classes, or 'all' (default: 8,2, the two "
                                                   "hardest for the plain autoencoder)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per digit (default: 1; the protocol: 3)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of aekit's default model (default: its own)")
    p.add_argument("--pyod-epochs", type=int, default=None, help="epochs of PyOD's detectors (default: PyOD's)")
    p.add_argument("--pyod-seeds", type=int, default=None, help="seeds of PyOD's detectors on images, the first of "
                                                                "--seeds (default: all of them)")
    p.add_argument("--methods", default=",".join(METHODS[:5]),
                   help=f"comma-separated, from {','.join(METHODS)} (default: the first five; the aekit-* variants "
                        "leave out some of the detector's terms, aekit-clip clips its image model's output to [0, 1])")
    p.add_argument("--pyod-python", default=None, help="a Python with pyod installed; without it the PyOD rows are "
                                                       "skipped")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (seeds run from it on), so that seeds can "
                                                              "run in separate processes and be merged")
    p.add_argument("--save", metavar="FILE.json", help="write the image AUCs per method, digit and seed")
    p.add_argument("--merge", metavar="A.json,B.json", help="print the table of AUCs saved by earlier runs together "
                                                            "(nothing is trained)")
    p.add_argument("--tabular-seeds", type=int, default=3, help="seeds of the tables' splits (0: skip them)")
    p.add_argument("--tables", default="breast-cancer", help=f"comma-separated, from {','.join(TABLES)} "
                                                             "(default: breast-cancer)")
    p.add_argument("--skip-images", action="store_true", help="only the tables")
    args = p.parse_args()

    import torch

    import aekit

    torch.set_num_threads(1)
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        p.error(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    bad = [t for t in args.tables.split(",") if t and t not in TABLES]
    if bad:
        p.error(f"unknown table(s) {bad}; choose from {', '.join(TABLES)}")
    scorers: dict[str, Scorer] = {"aekit": aekit_scores(args.epochs), "iforest": iforest, "ocsvm": ocsvm}
    scorers.update({k: aekit_scores(args.epochs, **v) for k, v in VARIANTS.items()})  # type: ignore[arg-type]
    for kind in PYOD:
        if kind in methods:
            if args.pyod_python is None:
                print(f"{kind}: skipped (no --pyod-python: PyOD is a benchmark-only dependency)")
                methods.remove(kind)
            else:
                scorers[kind] = pyod_scores(kind, args.pyod_python, args.pyod_epochs)
    print(f"machine: {machine()}")
    print("command: python " + " ".join(sys.argv))

    if not args.skip_images:
        digits = list(range(10)) if args.digits == "all" else [int(d) for d in args.digits.split(",")]
        tr = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir)
        te = aekit.load_dataset(args.data, split="test", data_dir=args.data_dir)
        assert tr.y is not None and te.y is not None
        secs: dict[str, float] = dict.fromkeys(methods, 0.0)
        runs: dict[str, int] = dict.fromkeys(methods, 0)
        auc: dict[str, dict[int, list[float]]] = {m: {d: [] for d in digits} for m in methods}
        if args.merge:
            for f in args.merge.split(","):
                saved = json.loads(Path(f).read_text())
                for m in methods:
                    secs[m] += saved["secs"].get(m, 0.0)
                    runs[m] += saved["runs"].get(m, 0)
                    for d in digits:
                        auc[m][d] += saved["auc"].get(m, {}).get(str(d), [])
            args.seeds = max(len(auc[m][digits[0]]) for m in methods)
        anchor = args.data == "mnist"

        def report(done: int) -> None:
            header = ["digit", *methods] + (["Deep SVDD"] if anchor else [])
            rows: list[list[object]] = []
            for d in digits:
                rows.append([d, *[f"{np.mean(auc[m][d]):.1f}" + (f" ± {np.std(auc[m][d]):.1f}" if len(auc[m][d]) > 1
                                                                 else "") for m in methods]]
                            + ([ANCHOR[d]] if anchor else []))
            means = {m: float(np.mean([np.mean(auc[m][d]) for d in digits])) for m in methods}
            rows.append(["mean", *[f"{means[m]:.1f}" for m in methods]]
                        + ([f"{np.mean([ANCHOR[d] for d in digits]):.1f}"] if anchor else []))
            rows.append(["seeds", *[str(len(auc[m][digits[0]])) for m in methods]] + ([""] if anchor else []))
            rows.append(["seconds per digit and seed", *[f"{secs[m] / max(runs[m], 1):.0f}" for m in methods]]
                        + ([""] if anchor else []))
            print(f"\nOne-class {args.data} after {done} of {args.seeds} seed(s): ROC-AUC % on the test set, "
                  "mean ± std over seeds")
            print(table(header, rows))
            if "aekit" in methods:
                worst = min(np.mean(auc["aekit"][d]) for d in digits)
                print(f"aekit: mean {means['aekit']:.1f} (goal >= {GOAL_MEAN}), lowest digit {worst:.1f} "
                      f"(goal >= {GOAL_MIN}) over digits {','.join(map(str, digits))}", flush=True)

        # Seeds outermost, a table after each: every digit is measured once before any is measured twice.
        for seed in range(args.first_seed, args.first_seed + args.seeds) if not args.merge else []:
            for d in digits:
                train, truth = tr.X[tr.y == d], (te.y != d).astype(int)
                for m in methods:
                    if m == "ocsvm" and seed > args.first_seed:  # deterministic: the same figure for every seed
                        continue
                    if m in PYOD and args.pyod_seeds is not None and seed >= args.first_seed + args.pyod_seeds:
                        continue
                    t = time.perf_counter()
                    s = scorers[m](train, te.X, seed)
                    secs[m] += time.perf_counter() - t
                    runs[m] += 1
                    auc[m][d].append(100 * roc_auc_score(truth, s))
                    print(f"digit {d} seed {seed} {m}: AUC {auc[m][d][-1]:.2f} ({time.perf_counter() - t:.0f} s)",
                          flush=True)
            report(seed + 1 - args.first_seed)
            if args.save:
                Path(args.save).write_text(json.dumps({"auc": {m: {str(d): v for d, v in a.items()} for m, a in auc.items()},
                                                       "secs": secs, "runs": runs}))
        if args.merge:
            report(args.seeds)

    if args.tabular_seeds > 0:
        from sklearn.metrics import average_precision_score, roc_auc_score

        for name in [t for t in args.tables.split(",") if t]:
            res: dict[str, list[list[tuple[float, float]]]] = {m: [] for m in methods}  # per seed, per class
            for seed in range(args.tabular_seeds):
                for m in methods:
                    res[m].append([])
                for train, test, truth in tabular_splits(name, seed):
                    for m in methods:
                        s = scorers[m](train, test, seed)
                        res[m][-1].append((100 * roc_auc_score(truth, s), 100 * average_precision_score(truth, s)))
            # The mean over the classes of a seed, then mean ± std of those over the seeds.
            auc_ap = {m: np.array([np.mean(r, axis=0) for r in res[m]]) for m in methods}
            rows = [[m, *[f"{auc_ap[m][:, i].mean():.1f} ± {auc_ap[m][:, i].std():.1f}" for i in (0, 1)]]
                    for m in methods]
            print(f"\n{TABLES[name]}, {args.tabular_seeds} seeds: % mean ± std over seeds")
            print(table(["detector", "ROC-AUC", "average precision"], rows))
            if len(res[methods[0]][0]) > 1:  # one column per normal class
                n = len(res[methods[0]][0])
                rows = [[m, *[f"{np.mean([r[c][0] for r in res[m]]):.1f}" for c in range(n)]] for m in methods]
                print(f"ROC-AUC % by normal class, mean over {args.tabular_seeds} seeds")
                print(table(["detector", *map(str, range(n))], rows))


#: The one-class tables from scikit-learn's bundled data: what is normal and what is scored.
TABLES = {"breast-cancer": "Breast cancer (benign normal, malignant anomalies)",
          "wine": "Wine (each cultivar in turn normal, the other two anomalies; ROC-AUC averaged over the three)",
          "iris": "Iris (each species in turn normal, the other two anomalies; averaged over the three)",
          "digits": "Digits as 64 features (each digit in turn normal, the other nine anomalies; averaged over ten)"}


def tabular_splits(name: str, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(train, test, truth) per normal class of table ``name``: 70 % of the normal class trains; the other 30 % and
    every sample of the other classes are scored (truth 1 for those); features standardized with the training part's
    statistics (a constant feature only centred)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    load = {"breast-cancer": datasets.load_breast_cancer, "wine": datasets.load_wine, "iris": datasets.load_iris,
            "digits": datasets.load_digits}
    X, y = load[name](return_X_y=True)
    normal = [1] if name == "breast-cancer" else sorted(set(y.tolist()))  # breast cancer's y: 1 benign, 0 malignant
    out = []
    for c in normal:
        tr, te = train_test_split(X[y == c], train_size=0.7, random_state=seed)
        sc = StandardScaler().fit(tr)
        test = sc.transform(np.concatenate([te, X[y != c]])).astype(np.float32)
        out.append((sc.transform(tr).astype(np.float32), test, np.r_[np.zeros(len(te)), np.ones(int((y != c).sum()))]))
    return out

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--pyod-worker":
        _pyod_worker(*sys.argv[2:7])
    else:
        main()
