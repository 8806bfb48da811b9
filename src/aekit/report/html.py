"""The HTML report of a trained model: reconstructions, loss curves, latent map, samples, metrics.

:func:`write_report` writes each figure (:mod:`aekit.report.figures`) as a PNG into the run directory
and a ``report.html`` that embeds the same images as base64, so the HTML file can be mailed or moved on
its own. The report knows no family: it reads the capabilities the family declares in the registry and
the run's own record (its history, config and metrics).
"""

from __future__ import annotations

import base64
import html
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aekit.data.datasets import Dataset
from aekit.engine.rundir import CONFIG_FILE, atomic_write_bytes, atomic_write_text
from aekit.report.figures import (
    declared_capabilities,
    decoder_samples,
    latent_figure,
    loss_figure,
    reconstruction_figure,
    samples_figure,
)
from aekit.report.metrics import (
    METRIC_NOTES,
    format_value,
    metric_names,
    ordered_metrics,
    reconstruction_metrics,
)

__all__ = ["REPORT_FILE", "write_report"]

REPORT_FILE = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.1em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .8em;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left;font-family:ui-monospace,monospace}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.92em;margin-top:.3em}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em}dl.meta dt{font-weight:600}dl.meta dd{margin:0}
code{background:#f5f5f5;padding:0 .25em;border-radius:3px}
details{margin:.5em 0}
"""


def _metrics_table(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    metrics = ordered_metrics(metrics)
    sections, keys = list(metrics), metric_names(metrics)
    notes = "; ".join(f"{k}: {METRIC_NOTES[k]}" for k in keys if k in METRIC_NOTES)
    head = "".join(f"<th>{html.escape(s)}</th>" for s in sections)
    body = "".join(
        f"<tr><td>{html.escape(k)}</td>"
        + "".join(f"<td>{html.escape(format_value(metrics[s].get(k)) if k in metrics[s] else '')}</td>" for s in sections)
        + "</tr>"
        for k in keys
    )
    legend = f"<p class='sub'>{html.escape(notes)}.</p>" if notes else ""
    return f"<table><tr><th>metric</th>{head}</tr>{body}</table>{legend}"


def _figure_html(png: bytes, alt: str, caption: str, file: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{html.escape(caption)} (also saved as <code>{html.escape(file)}</code>)</figcaption></figure>"
    )


def _run_config(run_dir: Path) -> dict[str, Any]:
    import json

    try:
        obj = json.loads((run_dir / CONFIG_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _changed_params(est: Any) -> dict[str, Any]:
    """Parameters that differ from the family's defaults (the ones worth a headline)."""
    try:
        defaults = type(est)().get_params(deep=False)
    except Exception:  # a family whose defaults cannot be built: show everything
        defaults = {}
    params = est.get_params(deep=False)
    return {k: v for k, v in params.items() if k not in defaults or defaults[k] != v}


def write_report(
    estimator: Any,
    dataset: Dataset,
    run_dir: str | os.PathLike[str],
    *,
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
    train_dataset: Dataset | None = None,
    n_samples: int = 32,
    seed: int = 0,
) -> Path:
    """Write the figures and ``report.html`` of a fitted estimator into ``run_dir``.

    Parameters
    ----------
    estimator : fitted aekit estimator
    dataset : Dataset
        Data shown in the reconstructions and the latent map (held-out data shows generalization).
    run_dir : path
        The run directory; its ``config.json`` (if any) supplies the data set and training time.
    metrics : mapping of section name to metrics dict, optional
        Table of metrics, e.g. ``{"train": {...}, "test": {...}}``; by default the
        :func:`aekit.report.metrics.reconstruction_metrics` of ``dataset``. Shown in the order of
        :func:`aekit.report.metrics.ordered_metrics`, the order training prints them.
    train_dataset : Dataset, optional
        Codes of this data set fit the Gaussian that samples are drawn from when the family does not
        declare the ``"sample"`` capability, and are shown in the latent map; defaults to ``dataset``.
    n_samples : int
        Number of decoder samples drawn.
    seed : int
        Seed of the sample draws and of the latent-map subsampling.

    Returns
    -------
    Path
        The path of ``report.html``. ``reconstructions.png``, ``loss.png`` (when there is a
        history), ``latent.png`` and ``samples.png`` are written beside it, each atomically.
    """
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    est = estimator
    family = str(getattr(est, "_family_name", type(est).__name__))
    capabilities = declared_capabilities(est)
    X = dataset.X
    R = est.reconstruct(X[:10])
    if metrics is None:
        metrics = {dataset.split: reconstruction_metrics(X, est.reconstruct(X))}
    cfg = _run_config(run)
    history = list(getattr(est, "history_", None) or [])
    # Staged training (a ``layer`` column: 1..L layer-wise pretraining, 0 fine-tuning) is drawn stage by
    # stage in the loss chart; the epoch count and the best epoch below are of the final stage.
    all_rows = history
    pretrain = [r for r in history if r.get("layer", 0) >= 1]
    history = [r for r in history if r.get("layer", 0) < 1]
    # Epochs of minibatch training (the family trains by gradient, or its rows carry the training loop's
    # throughput) or iterations of a closed-form algorithm such as EM.
    gradient = "gradient" in capabilities or any("samples_per_s" in r for r in all_rows)

    sections: list[str] = []

    png = reconstruction_figure(X[: len(R)], R, source=f"{dataset.name}, {dataset.split}")
    atomic_write_bytes(run / "reconstructions.png", png)
    sections.append(
        "<h2>Reconstructions</h2>"
        + _figure_html(png, "originals and reconstructions", f"The first samples of {dataset.name} ({dataset.split} split) "
                       "and their reconstructions decode(encode(x)).", "reconstructions.png")
    )

    png_loss = loss_figure(all_rows, x_label="epoch" if gradient else "iteration")
    if png_loss is not None:
        atomic_write_bytes(run / "loss.png", png_loss)
        cap = f"Training loss per {'epoch' if gradient else 'iteration'}" + (" and the loss on the held-out validation part" if any(
            "val_loss" in r for r in history) else "") + "; named terms are the already weighted parts of the objective."
        if pretrain:
            cap += (" Each stage is drawn in its own colour, in training order: the layer-wise pretraining of each "
                    "layer (its own objective), then the fine-tuning of the whole network.")
        sections.append("<h2>Loss curves</h2>" + _figure_html(png_loss, "loss curves", cap, "loss.png"))
    else:
        (run / "loss.png").unlink(missing_ok=True)
        sections.append("<h2>Loss curves</h2><p>No training curve: this model was fitted in closed form.</p>")

    # The map shows the training codes when given: more points, and the space the decoder learned.
    source = train_dataset if train_dataset is not None else dataset
    Z = est.transform(source.X)
    png_lat, how = latent_figure(Z, source.y, source.classes, seed=seed)
    atomic_write_bytes(run / "latent.png", png_lat)
    sections.append(
        "<h2>Latent space</h2>"
        + _figure_html(png_lat, "latent map", f"{how} Data: {source.name} ({source.split} split).", "latent.png")
    )

    S, how_s = decoder_samples(est, n_samples, source.X, seed=seed, source=f"{source.name}, {source.split} split",
                               from_prior="sample" in capabilities)
    png_s = samples_figure(S)
    atomic_write_bytes(run / "samples.png", png_s)
    sections.append("<h2>Samples from the decoder</h2>" + _figure_html(png_s, "decoder samples", f"{n_samples} samples {how_s}.",
                                                                     "samples.png"))

    sections.append("<h2>Metrics</h2>" + _metrics_table(metrics))

    # ------------------------------------------------------------------ header
    data_spec = cfg.get("data") if isinstance(cfg.get("data"), dict) else None
    data_name = str(data_spec.get("name")) if data_spec else dataset.name
    train_split = str(data_spec.get("split")) if data_spec else "?"
    seconds = cfg.get("train_seconds")
    if seconds is None and (history or pretrain):
        seconds = sum(float(r.get("seconds", 0.0)) for r in history + pretrain) or None
    if history or pretrain:
        epochs = f"{len(history)} {'epochs' if gradient else 'iterations'}"
        if pretrain:
            n_layers = len({r["layer"] for r in pretrain})
            epochs = f"{len(pretrain)} epochs of layer-wise pretraining ({n_layers} layers), then {epochs}"
        if seconds is not None:
            epochs += f" in {float(seconds):.1f} s"
        vals = [(r["val_loss"], int(r.get("epoch", i + 1))) for i, r in enumerate(history) if "val_loss" in r]
        if vals and min(vals)[1] != len(history):
            epochs += f"; the weights of epoch {min(vals)[1]}, the best on validation, are kept"
    else:
        epochs = "closed form" + (f" in {float(seconds):.1f} s" if seconds is not None else "")
    changed = _changed_params(est)
    shape = "x".join(str(s) for s in X.shape[1:])
    meta = {
        "family": family,
        "parameters": ", ".join(f"{k}={format_value(v)}" for k, v in changed.items()) or "defaults",
        "data set": f"{data_name} (trained on split {train_split}; {dataset.kind}, samples of shape {shape})",
        "training": epochs,
        "code size": str(Z.shape[1]),
    }
    if cfg.get("aekit_version"):
        meta["aekit"] = str(cfg["aekit_version"])
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in meta.items())
    all_params = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(format_value(v))}</td></tr>" for k, v in est.get_params(deep=False).items()
    )
    header = (
        f"<h1>aekit report: {html.escape(family)}</h1>"
        f"<p class='sub'>{html.escape(str(run.resolve()))} &middot; written {html.escape(time.strftime('%Y-%m-%d %H:%M'))}</p>"
        f"<dl class='meta'>{dl}</dl>"
        f"<details><summary>All parameters</summary><table><tr><th>parameter</th><th>value</th></tr>{all_params}"
        "</table></details>"
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>aekit report: {html.escape(family)} on {html.escape(data_name)}</title>"
        f"<style>{_CSS}</style></head><body>{header}{''.join(sections)}</body></html>\n"
    )
    out = run / REPORT_FILE
    atomic_write_text(out, page)
    return out
