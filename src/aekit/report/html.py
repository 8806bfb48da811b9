"""The HTML report of a trained model: reconstructions, loss curves, latent map, samples, metrics.

:func:`write_report` writes each figure as a PNG into the run directory and a ``report.html`` that
embeds the same images as base64, so the HTML file can be mailed or moved on its own.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas directly, never
through ``pyplot``: no window opens on a headless machine, and importing this module leaves the
backend of an interactive session (a notebook) untouched.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from aekit.data.datasets import Dataset
from aekit.engine.rundir import CONFIG_FILE, atomic_write_bytes, atomic_write_text
from aekit.report.metrics import reconstruction_metrics

__all__ = [
    "decoder_samples",
    "latent_figure",
    "loss_figure",
    "reconstruction_figure",
    "samples_figure",
    "write_report",
]

REPORT_FILE = "report.html"
FIGURE_FILES = ("reconstructions.png", "loss.png", "latent.png", "samples.png")
# History columns that are bookkeeping, not loss terms.
_NON_TERMS = frozenset({"epoch", "lr", "loss", "val_loss", "seconds", "samples_per_s", "layer", "threads"})
# Points drawn in the latent map at most: beyond this a scatter plot only gets slower, not clearer.
_MAX_LATENT_POINTS = 5000
_DPI = 110


# ----------------------------------------------------------------------------------- figures


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _as_image(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """One (C, H, W) sample -> something imshow draws: (H, W) gray or (H, W, 3) colour, clipped to [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    if x.ndim == 3 and x.shape[0] == 3:
        return x.transpose(1, 2, 0), None
    if x.ndim == 3:
        return x[0], "gray"  # gray, or the first channel of an unusual channel count
    return x, "gray"


def _is_image(X: np.ndarray) -> bool:
    return X.ndim == 4


def _rows(X: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N, D) for line plots; a signal (N, C, L) is plotted channel after channel."""
    return X.reshape(X.shape[0], -1)


def reconstruction_figure(X: np.ndarray, R: np.ndarray, *, n: int = 10, source: str | None = None) -> bytes:
    """PNG of originals beside reconstructions.

    Images (N, C, H, W): originals in the top row, their reconstructions below, ``n`` pairs. Tabular
    (N, D) or signals (N, C, L): one panel per sample (at most 4), original and reconstruction as lines.
    ``source`` names the data in the title.
    """
    X, R = np.asarray(X), np.asarray(R)
    if _is_image(X):
        k = min(n, X.shape[0])
        fig = Figure(figsize=(1.1 * k + 0.9, 2.7), layout="constrained")
        axes = fig.subplots(2, k, squeeze=False)
        for j in range(k):
            for i, arr in enumerate((X, R)):
                img, cmap = _as_image(arr[j])
                ax = axes[i, j]
                ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, 0].set_ylabel("original")
        axes[1, 0].set_ylabel("reconstruction")
    else:
        k = min(n, X.shape[0], 4)
        Xr, Rr = _rows(X), _rows(R)
        fig = Figure(figsize=(8, 1.6 * k + 0.8), layout="constrained")
        axes = fig.subplots(k, 1, sharex=True, squeeze=False)
        for j in range(k):
            ax = axes[j, 0]
            ax.plot(Xr[j], color="#1f77b4", lw=1.4, label="original")
            ax.plot(Rr[j], color="#d62728", lw=1.2, ls="--", label="reconstruction")
            ax.set_ylabel(f"sample {j}")
            ax.grid(alpha=0.3)
        axes[0, 0].legend(loc="upper right", fontsize="small", ncols=2)
        axes[-1, 0].set_xlabel("time step" if X.ndim == 3 else "feature index")
    title = "Originals (top) and reconstructions" if _is_image(X) else "Originals and reconstructions"
    fig.suptitle(f"{title}: {source}" if source else title)
    return _png(fig)


def loss_figure(history: Sequence[Mapping[str, float]], *, x_label: str = "epoch") -> bytes | None:
    """PNG of the training (and validation) loss per epoch, plus each named loss term; None if no history."""
    rows = [r for r in history if "loss" in r]
    if not rows:
        return None
    x = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    terms: list[str] = []
    for r in rows:
        terms += [k for k in r if k not in _NON_TERMS and k not in terms]
    # A single term equals the total loss; a second panel would only repeat it.
    show_terms = len(terms) > 1
    fig = Figure(figsize=(11 if show_terms else 6.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 2 if show_terms else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot(x, [r["loss"] for r in rows], lw=1.6, label="train loss")
    val = [(xi, r["val_loss"]) for xi, r in zip(x, rows) if "val_loss" in r]
    if val:
        ax.plot([v[0] for v in val], [v[1] for v in val], lw=1.6, label="validation loss")
    ax.set_xlabel(x_label)
    ax.set_ylabel("loss (per sample)")
    ax.set_title("Training objective")
    ax.grid(alpha=0.3)
    ax.legend()
    if show_terms:
        ax2 = axes[1]
        for t in terms:
            pts = [(xi, r[t]) for xi, r in zip(x, rows) if t in r]
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.4, label=t)
        ax2.set_xlabel(x_label)
        ax2.set_ylabel("weighted term (per sample)")
        ax2.set_title("Loss terms (train)")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize="small")
    return _png(fig)


def _project_2d(Z: np.ndarray) -> tuple[np.ndarray, str]:
    k = Z.shape[1]
    if k == 2:
        return Z, "the 2-D code itself"
    if k == 1:
        return Z, "the 1-D code (vertical position is jitter)"
    from sklearn.decomposition import PCA

    P = PCA(n_components=2, random_state=0).fit(Z)
    share = float(P.explained_variance_ratio_.sum())
    return (
        P.transform(Z),
        f"the {k}-D codes projected with PCA onto their first two principal components ({share:.0%} of their variance)",
    )


def latent_figure(
    Z: np.ndarray, y: np.ndarray | None = None, classes: Sequence[str] | None = None, *, seed: int = 0
) -> tuple[bytes, str]:
    """PNG of the codes in 2-D coloured by label, and a sentence saying what is plotted."""
    Z = np.asarray(Z, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if Z.shape[0] > _MAX_LATENT_POINTS:
        keep = np.sort(rng.choice(Z.shape[0], _MAX_LATENT_POINTS, replace=False))
        Z, y = Z[keep], (None if y is None else np.asarray(y)[keep])
    P, how = _project_2d(Z)
    if P.shape[1] == 1:
        P = np.column_stack([P[:, 0], rng.uniform(-1, 1, P.shape[0])])
    fig = Figure(figsize=(6.8, 5.6), layout="constrained")
    ax = fig.subplots()
    if y is None:
        ax.scatter(P[:, 0], P[:, 1], s=7, alpha=0.7, color="#1f77b4", linewidths=0)
    else:
        y = np.asarray(y)
        labels = np.unique(y)
        if labels.size <= 10:
            from matplotlib import colormaps

            tab = colormaps["tab10"]
            for i, lab in enumerate(labels):
                m = y == lab
                name = classes[int(lab)] if classes is not None and 0 <= int(lab) < len(classes) else str(lab)
                ax.scatter(P[m, 0], P[m, 1], s=7, alpha=0.75, color=tab(i % 10), linewidths=0, label=name)
            ax.legend(markerscale=2.5, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5), title="label")
        else:
            sc = ax.scatter(P[:, 0], P[:, 1], s=7, alpha=0.75, c=y, cmap="viridis", linewidths=0)
            fig.colorbar(sc, ax=ax, label="label")
    pca = "PCA" in how
    ax.set_xlabel("principal component 1" if pca else "z1")
    ax.set_ylabel("principal component 2" if pca else ("jitter" if Z.shape[1] == 1 else "z2"))
    ax.set_title("Latent space")
    ax.grid(alpha=0.3)
    colour = "coloured by label" if y is not None else "(no labels: one colour)"
    return _png(fig), f"Codes of {Z.shape[0]} samples, {colour}: {how}."


def decoder_samples(
    est: Any, n: int, X: np.ndarray | None = None, *, seed: int = 0, source: str | None = None
) -> tuple[np.ndarray, str]:
    """Draw ``n`` samples from a fitted estimator's decoder, and say how.

    With a ``sample(n)`` method (a generative family) it is used. Otherwise a Gaussian
    N(mean, cov) is fitted to the codes of ``X`` and its draws are decoded; ``X`` is then required.
    ``source`` names ``X`` in the returned description.

    Returns
    -------
    samples : ndarray (n, *sample_shape), in data units
    how : str
        A phrase saying how they were drawn, for captions.
    """
    sample = getattr(est, "sample", None)
    if callable(sample):
        import inspect

        try:
            kw = {"random_state": seed} if "random_state" in inspect.signature(sample).parameters else {}
        except (TypeError, ValueError):
            kw = {}
        return np.asarray(sample(n, **kw)), "drawn from the model's prior and decoded (its sample method)"
    if X is None:
        raise ValueError(
            f"family {getattr(est, '_family_name', type(est).__name__)!r} has no sample method; samples are decoded "
            "from a Gaussian fitted to the codes of data, so pass data to fit it to"
        )
    Z = np.asarray(est.transform(X), dtype=np.float64)
    mean = Z.mean(axis=0)
    cov = np.cov(Z, rowvar=False).reshape(Z.shape[1], Z.shape[1]) if Z.shape[0] > 1 else np.eye(Z.shape[1])
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(mean, cov, size=n, method="eigh").astype(np.float32)
    of = f" ({source})" if source else ""
    return (
        np.asarray(est.inverse_transform(draws)),
        f"decoded from draws of a Gaussian N(mean, covariance) fitted to the codes of {Z.shape[0]} samples{of}; "
        "the family has no prior of its own to sample from",
    )


def samples_figure(S: np.ndarray, *, title: str = "Samples from the decoder") -> bytes:
    """PNG of generated samples: an image grid, or line plots for tabular data and signals."""
    S = np.asarray(S)
    if _is_image(S):
        n = S.shape[0]
        cols = min(8, n)
        rows = math.ceil(n / cols)
        fig = Figure(figsize=(1.1 * cols + 0.4, 1.1 * rows + 0.6), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if i < n:
                img, cmap = _as_image(S[i])
                ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.set_axis_off()
    else:
        fig = Figure(figsize=(8, 3.6), layout="constrained")
        ax = fig.subplots()
        for i, row in enumerate(_rows(S)[:6]):
            ax.plot(row, lw=1.2, label=f"sample {i}")
        if S.shape[0] > 6:
            title += f" (6 of {S.shape[0]})"
        ax.set_xlabel("time step" if S.ndim == 3 else "feature index")
        ax.set_ylabel("value")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", ncols=3)
    fig.suptitle(title)
    return _png(fig)


# --------------------------------------------------------------------------------------- report


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


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "inf"
        return f"{v:.5g}"
    if isinstance(v, tuple | list):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return str(v)


def _metrics_table(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    sections = list(metrics)
    keys: list[str] = []
    for s in sections:
        keys += [k for k in metrics[s] if k not in keys]
    head = "".join(f"<th>{html.escape(s)}</th>" for s in sections)
    body = "".join(
        f"<tr><td>{html.escape(k)}</td>"
        + "".join(f"<td>{html.escape(_fmt(metrics[s].get(k)) if k in metrics[s] else '')}</td>" for s in sections)
        + "</tr>"
        for k in keys
    )
    return f"<table><tr><th>metric</th>{head}</tr>{body}</table>"


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
        :func:`aekit.metrics.reconstruction_metrics` of ``dataset``.
    train_dataset : Dataset, optional
        Codes of this data set fit the Gaussian that samples are drawn from when the family has no
        ``sample`` method; defaults to ``dataset``.
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
    X = dataset.X
    R = est.reconstruct(X[:10])
    if metrics is None:
        metrics = {dataset.split: reconstruction_metrics(X, est.reconstruct(X))}
    cfg = _run_config(run)
    history = list(getattr(est, "history_", None) or [])
    # Layer-wise pretraining rows (``layer`` >= 1) have their own objectives and epoch counts: the curves
    # and the epoch count below are of the final training stage; pretraining is summarized apart.
    pretrain = [r for r in history if r.get("layer", 0) >= 1]
    history = [r for r in history if r.get("layer", 0) < 1]
    from aekit.model.registry import get_family

    try:
        gradient = "gradient" in get_family(family).capabilities
    except ValueError:
        gradient = True
    gradient = gradient or getattr(est, "solver", None) == "gradient"

    sections: list[str] = []

    png = reconstruction_figure(X[: len(R)], R, source=f"{dataset.name}, {dataset.split}")
    atomic_write_bytes(run / "reconstructions.png", png)
    sections.append(
        "<h2>Reconstructions</h2>"
        + _figure_html(png, "originals and reconstructions", f"The first samples of {dataset.name} ({dataset.split} split) "
                       "and their reconstructions decode(encode(x)).", "reconstructions.png")
    )

    png_loss = loss_figure(history, x_label="epoch" if gradient else "iteration")
    if png_loss is not None:
        atomic_write_bytes(run / "loss.png", png_loss)
        cap = f"Training loss per {'epoch' if gradient else 'iteration'}" + (" and the loss on the held-out validation part" if any(
            "val_loss" in r for r in history) else "") + "; named terms are the already weighted parts of the objective."
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

    S, how_s = decoder_samples(est, n_samples, source.X, seed=seed, source=f"{source.name}, {source.split} split")
    png_s = samples_figure(S)
    atomic_write_bytes(run / "samples.png", png_s)
    sections.append("<h2>Samples from the decoder</h2>" + _figure_html(png_s, "decoder samples", f"{n_samples} samples {how_s}.",
                                                                     "samples.png"))

    sections.append("<h2>Metrics</h2>" + _metrics_table(metrics) + (
        "<p class='sub'>sq_err_per_image: squared error summed over the features of a sample, averaged over samples "
        "(Hinton &amp; Salakhutdinov 2006); mse_per_pixel: its mean per value; bce_per_pixel: binary cross-entropy "
        "per value in nats (data in [0, 1]); psnr_db: peak signal-to-noise ratio.</p>"))

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
        "parameters": ", ".join(f"{k}={_fmt(v)}" for k, v in changed.items()) or "defaults",
        "data set": f"{data_name} (trained on split {train_split}; {dataset.kind}, samples of shape {shape})",
        "training": epochs,
        "code size": str(Z.shape[1]),
    }
    if cfg.get("aekit_version"):
        meta["aekit"] = str(cfg["aekit_version"])
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in meta.items())
    all_params = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in est.get_params(deep=False).items()
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
