"""The retrieval and feature commands: ``index``, ``search`` and ``features``."""


from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aekit.cli.commands import _check_out_file, _described, _load_run
from aekit.cli.common import (
    AddParser,
    UsageError,
    _add_data_args,
    _data_spec,
    _info,
    _label_column,
    _load,
    _load_eval_data,
    _nonnegative_int,
    _out,
    _positive_float,
    _positive_int,
    _print_json,
    _read_label_file,
    _run_data,
)

_INDEX_SPLIT = "train: the training split, the collection searched in"
_QUERY_SPLIT = "all of a query file, in its order; the test split of a named data set"


def add_parsers(add: AddParser) -> None:
    """Add ``index``, ``search`` and ``features`` to the main parser (``add`` is its sub-parser factory)."""
    sp = add("index", "encode a collection and write an index of its codes for `aekit search`",
             "Encode a data set with a trained run and write an index file (.npz, no pickle) of the codes, recording "
             "the run it came from. A run trained with --binary-codes is searched by Hamming distance (semantic "
             "hashing), any other by the Euclidean or cosine distance of its codes.")
    sp.add_argument("run", metavar="RUN", help="run directory")
    sp.add_argument("--out", required=True, metavar="INDEX.npz", help="output index file")
    sp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    sp.add_argument("--metric", choices=("auto", "hamming", "euclidean", "cosine"), default="auto",
                    help="distance between codes (default: auto: hamming for binary codes, else euclidean)")
    _add_data_args(sp, split_default=_INDEX_SPLIT, split_help="split to index")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")

    sp = add("search", "the k nearest indexed samples of each query sample",
             "Encode the query samples with the run the index was built from and print, for each, the rows of the "
             "indexed collection nearest to it and their distances (--json: {\"indices\": [...], \"distances\": "
             "[...]}, one row per query in the query file's order).")
    sp.add_argument("index", metavar="INDEX", help="index file written by `aekit index`")
    sp.add_argument("--query", required=True, metavar="NAME_OR_PATH",
                    help="query samples: digits, mnist, fashion-mnist, or a .npy/.npz/.csv file or image folder")
    sp.add_argument("-k", type=_positive_int, default=10, metavar="K", help="neighbours per query (default: 10)")
    sp.add_argument("--run", default=None, metavar="RUN",
                    help="run directory of the model (default: the one the index records)")
    sp.add_argument("--split", choices=("train", "test", "all"), default=None,
                    help=f"split of a named query data set (default: {_QUERY_SPLIT})")
    sp.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N query samples")
    sp.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST/Fashion-MNIST IDX files")
    sp.add_argument("--json", action="store_true", help="print the neighbours as JSON")

    sp = add("features", "test accuracy of a classifier on the codes of a trained run",
             "Use the codes of a trained run as features: fit --classifier on the codes of the training split and "
             "report its accuracy on the test split, beside the same classifier on the raw inputs.")
    sp.add_argument("run", metavar="RUN", help="run directory")
    sp.add_argument("--labels", default=None, metavar="SOURCE",
                    help="labels: 'data' (those of the data set, the default), or a .npy or one-column .csv/.txt "
                         "file of one integer label per sample of the training split followed by the test split")
    sp.add_argument("--classifier", choices=("logistic", "knn"), default="logistic",
                    help="logistic regression or k-nearest neighbours (default: logistic)")
    sp.add_argument("--neighbors", type=_positive_int, default=5, metavar="K", help="k of knn (default: 5)")
    sp.add_argument("--no-raw", action="store_true", help="skip the classifier on the raw inputs")
    sp.add_argument("--finetune", action="store_true",
                    help="also fine-tune the encoder with a softmax head on its code (cross-entropy, early stopping "
                         "on a tenth of the training split) and report its test accuracy")
    sp.add_argument("--finetune-epochs", type=_positive_int, default=20, metavar="N",
                    help="epochs of fine-tuning (default: 20)")
    sp.add_argument("--finetune-lr", type=_positive_float, default=1e-3, metavar="LR",
                    help="Adam's learning rate of the fine-tuning (default: 0.001)")
    sp.add_argument("--finetune-shift", type=_nonnegative_int("a whole number of pixels >= 0, e.g. 2"), default=0, metavar="PX",
                    help="images only: shift each training image by up to PX pixels at random while fine-tuning "
                         "(an augmentation; the test images are not shifted) (default: 0, none)")
    g = sp.add_argument_group("data (default: the data set the run was trained on)")
    g.add_argument("--data", metavar="NAME_OR_PATH", help="digits, mnist, fashion-mnist, or a .npz file with a test split")
    g.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST/Fashion-MNIST IDX files")
    g.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N samples of each split")
    g.add_argument("--download", action="store_true", help="download MNIST/Fashion-MNIST if missing")
    g.add_argument("--label-column", metavar="COL", help="label column of a .csv file (index or header name)")
    sp.add_argument("--json", action="store_true", help="print the accuracies as JSON")


# --------------------------------------------------------------------------------------- index


def _cmd_index(ns: argparse.Namespace) -> int:
    from aekit.apps.retrieval import CodeIndex

    out = Path(ns.out)
    if out.suffix.lower() != ".npz":
        raise UsageError(f"--out {ns.out}: an index is written as a .npz file; give a path ending in .npz")
    if out.is_dir():
        raise UsageError(f"--out {ns.out} is a directory; give a file path ending in .npz")
    est = _load_run(ns.run)
    spec, split = _run_data(Path(ns.run), ns, "train")
    ds = _load_eval_data(spec, split, ns.split is not None, ns.download) if split == "train" else _load(
        spec, split=split, download=ns.download)
    _check_out_file(out, ns, spec)
    try:
        index = CodeIndex.build(est, ds.X, metric=ns.metric, source=ns.run)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    index.save(out, overwrite=ns.overwrite)
    _index_section(ns.run, index, ds.X)
    if ns.json:
        _print_json({"out": str(out), "n_codes": index.n_codes, "code_size": index.code_size, "metric": index.metric,
                     "binary": index.binary, "data": ds.name, "split": ds.split})
    else:
        kind = f"{index.code_size}-bit" if index.binary else f"{index.code_size}-value"
        _out(f"wrote an index of {index.n_codes} {kind} codes ({_described(ds, ns.limit)}, metric {index.metric}) "
             f"to {out}")
    return 0


def _index_section(run: str, index: Any, X: Any, n_queries: int = 6, k: int = 8) -> None:
    """The first indexed images and their nearest other indexed images, as a section of the run's report."""
    import numpy as np

    from aekit.report.figures import image_rows_figure
    from aekit.report.html import add_report_section

    if X.ndim != 4 or index.n_codes < 2:
        return  # only images are shown
    q = min(n_queries, index.n_codes)
    k = min(k, index.n_codes - 1)
    ind, dist = index.search_codes(index.codes[:q], k + 1)
    rows = []
    for i in range(q):
        others = [j for j in ind[i] if j != i][:k]  # the query itself is its own nearest neighbour
        d = [_dist(v, index.metric) for j, v in zip(ind[i], dist[i], strict=True) if j != i][:k]
        rows.append((f"sample {i} | neighbours at {index.metric} distance {', '.join(d)}", np.concatenate(
            [X[i:i + 1], X[np.asarray(others)]])))
    kind = f"{index.code_size}-bit" if index.binary else f"{index.code_size}-value"
    png = image_rows_figure(rows, title=f"Nearest neighbours by {kind} codes")
    add_report_section(run, "index", "Retrieval by codes", png,
                       f"Each row: an indexed image, then the {k} other indexed images nearest to it by the "
                       f"{index.metric} distance of their {kind} codes ({index.n_codes} indexed).")


# -------------------------------------------------------------------------------------- search


def _cmd_search(ns: argparse.Namespace) -> int:
    from aekit.apps.retrieval import CodeIndex

    index = CodeIndex.load(ns.index)
    run = ns.run or index.model_info.get("source")
    if not run:
        raise UsageError(f"{ns.index} does not record the run it was built from; pass --run RUN")
    if not Path(run).is_dir():
        raise UsageError(f"the run {run} that {ns.index} was built from is not there; pass --run RUN")
    if ns.k > index.n_codes:
        raise UsageError(f"-k {ns.k} is larger than the index, which holds {index.n_codes} codes; use -k {index.n_codes} "
                         "or less")
    index.attach(_load_run(run))
    spec = _data_spec(ns.query, ns.data_dir, "test", ns.limit, None)
    # A query file is searched whole, in its own order; a named data set by its test split.
    split = ns.split or ("all" if Path(ns.query).expanduser().exists() else "test")
    ds = _load_eval_data(spec, split, ns.split is not None, False, quiet=ns.json)
    indices, distances = index.search(ds.X, k=ns.k)
    if ns.json:
        dist = distances.astype(int).tolist() if index.metric == "hamming" else distances.tolist()
        _print_json({"indices": indices.tolist(), "distances": dist, "metric": index.metric, "k": ns.k,
                     "n_queries": int(indices.shape[0]), "query": ds.name, "split": ds.split})
        return 0
    _info(f"{indices.shape[0]} queries ({_described(ds, ns.limit)}), {ns.k} nearest of {index.n_codes} by "
          f"{index.metric} distance")
    for q, (row, d) in enumerate(zip(indices, distances, strict=True)):
        _out(f"{q}: " + " ".join(f"{i}({_dist(v, index.metric)})" for i, v in zip(row, d, strict=True)))
    return 0


def _dist(v: float, metric: str) -> str:
    return str(int(v)) if metric == "hamming" else f"{v:.4g}"


# ------------------------------------------------------------------------------------ features


def _cmd_features(ns: argparse.Namespace) -> int:
    from aekit.apps.features import check_finetunable, code_features, finetune_features
    from aekit.data.corruption import check_translation

    est = _load_run(ns.run)
    if ns.finetune:
        try:
            check_finetunable(est)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if ns.data is None:
        ns.split = None  # the command reads both splits of the run's data set
        spec, _ = _run_data(Path(ns.run), ns, "train")
    else:
        spec = _data_spec(ns.data, ns.data_dir, "train", ns.limit, _label_column(ns.label_column))
    spec["limit"] = ns.limit
    train = _load(spec, split="train", download=ns.download)
    try:
        test = _load(spec, split="test", download=ns.download)
    except ValueError:
        raise UsageError(f"{train.name} has no test split to measure accuracy on; give --data a source with train "
                         "and test splits (digits, mnist, fashion-mnist, or a .npz with X_test and y_test)") from None
    y_train, y_test = _labels(ns.labels, train, test)
    if ns.classifier == "knn" and ns.neighbors > len(y_train):
        raise UsageError(f"--neighbors {ns.neighbors} is more than the {len(y_train)} training samples the classifier "
                         f"is fitted on; give --neighbors {len(y_train)} or less")
    if ns.finetune_shift:
        if not ns.finetune:
            raise UsageError(f"--finetune-shift {ns.finetune_shift} shifts images while fine-tuning; add --finetune, "
                             "or leave --finetune-shift out")
        try:  # checked against the images before any work
            check_translation(ns.finetune_shift, tuple(train.X.shape[1:]), name="--finetune-shift")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    result: dict[str, Any] = code_features(est, train.X, y_train, test.X, y_test, classifier=ns.classifier,
                                           n_neighbors=ns.neighbors, raw=not ns.no_raw)
    result.update({"data": train.name, "n_train": int(len(y_train)), "n_test": int(len(y_test))})
    if ns.finetune:
        tuned = finetune_features(est, train.X, y_train, test.X, y_test, max_epochs=ns.finetune_epochs,
                                  learning_rate=ns.finetune_lr, translation=ns.finetune_shift, random_state=0)
        result.update(finetune_accuracy=tuned["accuracy"], finetune_epochs=tuned["epochs"])
    rows = _accuracy_rows(result, ns.classifier)
    _features_section(ns.run, rows, train.name)
    if ns.json:
        _print_json(result)
        return 0
    _out(f"{ns.classifier} on {train.name}: {len(y_train)} training and {len(y_test)} test samples")
    for row in rows:
        _out(f"{row['features']}: test accuracy {row['accuracy']:.4f}")
    return 0


def _accuracy_rows(result: dict[str, Any], classifier: str) -> list[dict[str, Any]]:
    rows = [{"features": f"codes ({result['n_features']} features), {classifier}", "accuracy": result["accuracy"]}]
    if "raw_accuracy" in result:
        rows.append({"features": f"raw inputs ({result['raw_n_features']} features), {classifier}",
                     "accuracy": result["raw_accuracy"]})
    if "finetune_accuracy" in result:
        rows.append({"features": f"fine-tuned encoder, softmax head ({result['finetune_epochs']} epochs)",
                     "accuracy": result["finetune_accuracy"]})
    return rows


def _features_section(run: str, rows: list[dict[str, Any]], data: str) -> None:
    """The accuracy table and its bar chart, as a section of the run's report (a trained run only)."""
    from aekit.apps.features import accuracy_figure
    from aekit.report.html import add_report_section

    png = accuracy_figure([r["features"] for r in rows], [r["accuracy"] for r in rows], title=f"Test accuracy, {data}")
    add_report_section(run, "features", "Codes as features for a classifier", png,
                       f"Test accuracy of a classifier on the run's codes, on the raw inputs and after fine-tuning ({data}).",
                       table=[{"features": r["features"], "test accuracy": round(r["accuracy"], 4)} for r in rows])


def _labels(source: str | None, train: Any, test: Any) -> tuple[Any, Any]:
    n_train, n_test = len(train), len(test)
    if source in (None, "data"):
        if train.y is None or test.y is None:
            raise UsageError(f"{train.name} has no labels; pass --labels FILE.npy with {n_train + n_test} labels "
                             "(the training split's, then the test split's)")
        return train.y, test.y
    if not Path(source).is_file():
        what = "a folder" if Path(source).is_dir() else "no such file"
        raise UsageError(f"--labels {source}: {what}; give 'data' or a .npy or one-column .csv/.txt file of "
                         f"{n_train + n_test} integer labels (the training split's, then the test split's)")
    y = _read_label_file(source)
    if y.shape[0] != n_train + n_test:
        raise UsageError(f"--labels {source} holds an array of shape {y.shape}, but the data have {n_train} training and "
                         f"{n_test} test samples; give {n_train + n_test} labels in one column, training split first")
    if (y < 0).any():
        raise UsageError(f"--labels {source} holds the negative label {int(y.min())}; a classifier needs a class "
                         "label (0, 1, 2, ...) for every sample")
    return y[:n_train], y[n_train:]
