"""The ``anomaly`` command: per-sample anomaly scores of a trained run, and with labels ROC-AUC and average precision."""


from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aekit.cli.commands import _check_out_file, _described, _load_run
from aekit.cli.common import (
    _MEASURE_SPLIT,
    AddParser,
    UsageError,
    _add_data_args,
    _check_parent,
    _check_suffix,
    _info,
    _load,
    _nonnegative_int,
    _out,
    _print_json,
    _read_label_file,
    _run_data,
)

#: The figure's name in a model directory that has no report (beside --out it is ``<stem>-histogram.png``; in a
#: trained run's report it is the section ``anomaly``, file ``app-anomaly.png``).
FIGURE = "anomaly-histogram.png"
#: The key of the report section.
SECTION = "anomaly"


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 0.5], e.g. 0.1; got {text!r}") from None
    if not 0 < v <= 0.5:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 0.5], the expected share of anomalies, e.g. 0.1; "
                                         f"got {text!r}")
    return v


def _has_report(run: Path) -> bool:
    """Whether ``run`` is a trained run whose report takes application sections (not a model saved from Python)."""
    from aekit.engine.rundir import run_owns

    return run_owns(run, f"app-{SECTION}.png")


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integer class labels such as 0 or 3,5; got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"expected integer class labels such as 0 or 3,5; got {text!r}")
    return vals


def add_parsers(add: AddParser) -> None:
    """Add ``anomaly`` to the main parser (``add`` is its sub-parser factory)."""
    sp = add("anomaly", "score samples by how abnormal they are; with labels, ROC-AUC and average precision",
             "Score each sample of a data set with a trained run taken as a model of normal data: the reconstruction "
             "error, or the log-likelihood for families that have one (higher scores are more abnormal). The "
             "threshold that --contamination sets is the quantile of the scores of the data the run was trained on "
             "(of the scored data when the run does not record its data). The score adds the code's distance to its "
             "--neighbors nearest training codes, each part standardized on the training data. With labels (the data "
             "set's own, or --labels) and --normal-label, it reports ROC-AUC and average precision (anomalies as the "
             "positive class) and draws the histograms of the scores by class into the run's report (and beside "
             "--out). Like every command that measures, it scores the test split by default.")
    sp.add_argument("run", metavar="RUN", help="run directory of a model trained on normal data")
    _add_data_args(sp, split_default=_MEASURE_SPLIT, split_help="split to score")
    sp.add_argument("--labels", metavar="FILE", help="labels of the scored samples, a .npy or one-column .csv/.txt file "
                                                     "(default: the data set's own labels)")
    sp.add_argument("--normal-label", type=_int_list, metavar="K[,K...]",
                    help="the class label(s) of normal samples; without it labels must be 0 (normal) and 1 (anomaly)")
    sp.add_argument("--score", choices=("auto", "reconstruction", "likelihood"), default="auto",
                    help="reconstruction error or log-likelihood (default: auto: the likelihood where the family has "
                         "one)")
    sp.add_argument("--neighbors", type=_nonnegative_int("an integer >= 0 (0 leaves the code distance out), e.g. 5"), default=5, metavar="K",
                    help="add the code's mean distance to its K nearest training codes to the score, each standardized "
                         "on the training data; 0 scores the reconstruction error (or likelihood) alone (default: 5)")
    sp.add_argument("--contamination", type=_fraction, default=0.1, metavar="F",
                    help="expected share of anomalies in the training data, sets the threshold (default: 0.1)")
    sp.add_argument("--out", metavar="FILE.csv", help="write per-sample scores: columns index, score (decision_function, higher is more abnormal), "
                                                      "prediction (1 normal, -1 anomaly) and, with --labels, anomaly (1 "
                                                      "for a sample whose label marks an anomaly, else 0); the "
                                                      f"histogram goes beside it as <stem>-histogram.png instead of "
                                                      f"RUN/{FIGURE}")
    sp.add_argument("--overwrite", action="store_true", help="replace --out and the figure if they exist")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")


def _read_labels(path: str, ds: Any, limit: int | None) -> Any:
    """The integer labels in ``path``, one per scored sample of ``ds`` (loaded with ``--limit`` ``limit``)."""
    y = _read_label_file(path)
    if y.shape[0] != len(ds):
        every = "" if ds.split == "all" and limit is None else "; or score every sample with --split all"
        raise UsageError(f"--labels {path} has {y.shape[0]} labels for {len(ds)} scored samples "
                         f"({_described(ds, limit)}); give one label per scored sample{every}")
    return y


def _is_anomaly(y: Any, normal: list[int] | None, where: str) -> Any:
    """Ground truth: 1 for anomalies, 0 for normal samples."""
    import numpy as np

    classes = sorted(int(c) for c in np.unique(y))
    if normal is None:
        if not set(classes) <= {0, 1}:
            raise UsageError(f"{where} has the classes {classes}; say which are normal with --normal-label K[,K...]")
        truth = (y == 1).astype(np.int64)
    else:
        missing = [k for k in normal if k not in classes]
        if missing:
            raise UsageError(f"--normal-label {','.join(map(str, normal))}: {missing[0]} is not a class of {where} "
                             f"(classes: {classes}); give a class that occurs")
        truth = (~np.isin(y, normal)).astype(np.int64)
    if truth.min() == truth.max():
        raise UsageError(f"{where}: every sample is {'an anomaly' if truth[0] else 'normal'}, so ROC-AUC is undefined; "
                         "score data with both normal samples and anomalies")
    return truth


def _reference(run: Path, ns: argparse.Namespace) -> Any:
    """The data the run was trained on, or None when the run does not record it."""
    from aekit.engine.rundir import CONFIG_FILE, read_json

    saved = read_json(run / CONFIG_FILE).get("data")
    if not isinstance(saved, dict):
        return None
    spec = dict(saved)
    if ns.data_dir is not None and ns.data is None:
        spec["data_dir"] = str(Path(ns.data_dir).expanduser().resolve())
    return _load(spec, split=str(spec.get("split") or "train"), download=ns.download)


def _cmd_anomaly(ns: argparse.Namespace) -> int:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from aekit.apps.anomaly import AnomalyDetector
    from aekit.cli.common import _load_eval_data
    from aekit.engine.rundir import atomic_write_bytes, atomic_write_text

    run = Path(ns.run)
    out = _check_suffix(ns.out, (".csv",), "scores") if ns.out is not None else None
    if out is not None:
        _check_parent(out)  # its folder, and the histogram's beside it, can be made
    est = _load_run(ns.run)
    det = AnomalyDetector(est, score_type=ns.score, n_neighbors=ns.neighbors, contamination=ns.contamination)
    try:
        det._check_params()
        det._choose_score(est)
    except ValueError as exc:
        raise UsageError(f"--score {ns.score}: {exc}".replace("score_type=", "--score ")) from None
    spec, split = _run_data(run, ns, "test")
    ds = _load_eval_data(spec, split, ns.split is not None, ns.download)
    truth = None
    if ns.labels is not None:
        truth = _is_anomaly(_read_labels(ns.labels, ds, ns.limit), ns.normal_label, f"--labels {ns.labels}")
    elif ns.normal_label is not None:
        if ds.y is None:
            raise UsageError(f"--normal-label: {ds.name} has no labels; give them with --labels FILE")
        truth = _is_anomaly(ds.y, ns.normal_label, f"the labels of {ds.name}")
    figure = None
    in_report = truth is not None and _has_report(run)
    if truth is not None and (out is not None or not in_report):
        figure = out.with_name(out.stem + "-histogram.png") if out is not None else run / FIGURE
    for path in (out, figure):
        if path is not None:
            if path.is_dir():
                where = f"--out {out}: " if out is not None else ""
                raise UsageError(f"{where}{path} is a folder, not a file, so the histogram cannot be written there; "
                                 f"move it away{' or choose another --out' if out is not None else ''}")
            _check_out_file(path, ns, spec)  # before any scoring: nothing is written on a refusal
    ref = _reference(run, ns)
    reference = "the run's training data" if ref is not None else "the scored data (the run does not record its data)"
    det.fit(ref.X if ref is not None else ds.X)
    decision = det.decision_function(ds.X)
    pred = det.predict(ds.X)
    summary: dict[str, Any] = {
        "data": ds.name, "split": ds.split, "n_samples": len(ds), "score": det.score_,
        "contamination": ns.contamination, "threshold": det.threshold_, "threshold_from": reference,
        "n_predicted_anomalies": int((pred == -1).sum()),
    }
    if truth is not None:
        summary["roc_auc"] = float(roc_auc_score(truth, decision))
        summary["average_precision"] = float(average_precision_score(truth, decision))
        summary["n_anomalies"] = int(truth.sum())
    if out is not None:
        lines = ["index,score,prediction" + (",anomaly" if truth is not None else "")]
        for i, (d, p) in enumerate(zip(decision, pred, strict=True)):
            lines.append(f"{i},{float(d)!r},{int(p)}" + (f",{truth[i]}" if truth is not None else ""))
        atomic_write_text(out, "\n".join(lines) + "\n")
        summary["out"] = str(out)
    if truth is not None:
        from aekit.report.figures import anomaly_histogram_figure
        from aekit.report.html import add_report_section

        groups = [("normal", decision[truth == 0]), ("anomalies", decision[truth == 1])]
        how = det.score_ + (f" + distance to {det.n_neighbors_} nearest codes" if det.n_neighbors_ else "")
        title = f"Anomaly scores ({how}), {ds.name} {ds.split}"
        png = anomaly_histogram_figure(groups, threshold=0.0, title=title)
        if figure is not None:
            atomic_write_bytes(figure, png)
            summary["figure"] = str(figure)
        if in_report:
            row = {"data": ds.name, "split": ds.split, "score": how, "roc_auc": round(summary["roc_auc"], 4),
                   "average_precision": round(summary["average_precision"], 4), "anomalies": summary["n_anomalies"],
                   "scored": len(ds), "contamination": ns.contamination,
                   "called_anomalies": summary["n_predicted_anomalies"]}
            caption = (f"Histograms of the anomaly scores (decision_function: higher is more abnormal, 0 is the "
                       f"threshold set by contamination {ns.contamination} from {reference}) of the normal samples "
                       f"and of the anomalies of {ds.name} ({ds.split}).")
            added = add_report_section(run, SECTION, "Anomaly detection", png, caption, table=[row])
            if added is not None:
                summary["report_figure"] = str(added)
    if ns.json:
        _print_json(summary)
        return 0
    _out(f"{_described(ds, ns.limit)}: scored by {det.score_}")
    _out(f"threshold {det.threshold_:.6g} (contamination {ns.contamination}, from {reference}): "
         f"{summary['n_predicted_anomalies']} of {len(ds)} called anomalies")
    if truth is not None:
        _out(f"roc_auc {summary['roc_auc']:.6f}  average_precision {summary['average_precision']:.6f}  "
             f"({summary['n_anomalies']} anomalies)")
    for key in ("out", "figure", "report_figure"):
        if key in summary:
            _info(f"wrote {summary[key]}")
    return 0
