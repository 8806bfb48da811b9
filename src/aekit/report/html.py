"""The HTML report of a trained model: reconstructions, loss curves, latent map, samples, metrics.

For images the latent map is interactive (the decoding under the pointer, from decodings precomputed on
a grid and embedded in the page, drawn by a small inline script: no server, nothing fetched), and a 2-D
code gets a manifold figure: the decodings of a regular grid over the code space.

:func:`write_report` writes each figure (:mod:`aekit.report.figures`) as a PNG into the run directory
and a ``report.html`` that embeds the same images as base64, so the HTML file can be mailed or moved on
its own. The report knows no family: it reads the capabilities the family declares in the registry and
the run's own record (its history, config and metrics).

Applications add their own sections to a run's report with :func:`add_report_section` (a figure, a
caption and an optional table): each is saved as ``app-KEY.png`` and recorded in
``report-sections.json``, so a report written again later keeps them.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aekit.data.datasets import Dataset
from aekit.engine.rundir import (
    CONFIG_FILE,
    atomic_write_bytes,
    atomic_write_text,
    run_owns,
    write_json,
)
from aekit.model.sampling import can_sample, generate
from aekit.report.figures import (
    LatentMap,
    declared_capabilities,
    latent_map,
    loss_figure,
    manifold_figure,
    reconstruction_figure,
    samples_comparison_figure,
)
from aekit.report.metrics import (
    METRIC_NOTES,
    format_value,
    metric_names,
    ordered_metrics,
    reconstruction_metrics,
)

__all__ = ["REPORT_FILE", "SECTIONS_FILE", "add_report_section", "write_report", "write_sweep_page"]

REPORT_FILE = "report.html"
SECTIONS_FILE = "report-sections.json"
# The applications' sections sit between these markers, so adding one rewrites only that part of the page.
_APPS_BEGIN, _APPS_END = "<!-- aekit:applications -->", "<!-- /aekit:applications -->"
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

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


# The manifold figure: a G x G grid of decodings (Kingma & Welling show 20 x 20 on MNIST; 15 keeps each legible).
_MANIFOLD_GRID = 15
# The interactive map embeds the decodings of a grid over the plot: fine enough to follow the pointer, at most about
# this many bytes of pixels (27 x 27 decodings of 28 x 28 digits), so the page stays small.
_EXPLORER_GRID = 32
_EXPLORER_BYTES = 600_000

# Shows, for the pointer over the latent map, the precomputed decoding nearest to it (no server, no external script).
_EXPLORER_JS = """(function(){
var d=JSON.parse(document.getElementById("aekit-latent-data").textContent);
var img=document.getElementById("aekit-latent-img"),cv=document.getElementById("aekit-latent-view");
var at=document.getElementById("aekit-latent-at"),dot=document.getElementById("aekit-latent-dot");
var raw=atob(d.pixels),px=new Uint8Array(raw.length);for(var i=0;i<raw.length;i++)px[i]=raw.charCodeAt(i);
var C=d.shape[0],H=d.shape[1],W=d.shape[2],G=d.grid,n=C*H*W;
var tmp=document.createElement("canvas");tmp.width=W;tmp.height=H;
var tc=tmp.getContext("2d"),im=tc.createImageData(W,H),ctx=cv.getContext("2d");
function show(k){var o=k*n;for(var p=0;p<H*W;p++){for(var c=0;c<3;c++)im.data[4*p+c]=px[o+(C==3?c*H*W:0)+p];
im.data[4*p+3]=255;}tc.putImageData(im,0,0);ctx.imageSmoothingEnabled=false;ctx.drawImage(tmp,0,0,cv.width,cv.height);}
img.addEventListener("mousemove",function(e){var r=img.getBoundingClientRect();
var x=(e.clientX-r.left)*d.size[0]/r.width,y=(e.clientY-r.top)*d.size[1]/r.height;
var fx=(x-d.box[0])/(d.box[2]-d.box[0]),fy=(y-d.box[1])/(d.box[3]-d.box[1]);
if(fx<0||fx>1||fy<0||fy>1)return;
var i=Math.round(fx*(G-1)),j=Math.round((1-fy)*(G-1));show(j*G+i);
dot.style.display="block";dot.style.left=(e.clientX-r.left)+"px";dot.style.top=(e.clientY-r.top)+"px";
var u=d.xlim[0]+fx*(d.xlim[1]-d.xlim[0]),v=d.ylim[0]+(1-fy)*(d.ylim[1]-d.ylim[0]);
at.textContent="decoding at ("+u.toFixed(2)+", "+v.toFixed(2)+")";});
show(Math.floor(G/2)*G+Math.floor(G/2));})();"""


def _is_picture(shape: tuple[int, ...]) -> bool:
    """Whether samples of this shape are gray or colour images, which a page can draw."""
    return len(shape) == 3 and shape[0] in (1, 3)


def _manifold(est: Any, Z: Any) -> tuple[bytes, str]:
    """The manifold figure of a 2-D code: decodings of a regular grid, and its caption."""
    import numpy as np
    from scipy.stats import norm

    G = _MANIFOLD_GRID
    if can_sample(est):
        # As in the VAE paper: the grid is evenly spaced in probability under the N(0, I) prior.
        u = v = norm.ppf(np.linspace(0.05, 0.95, G))
        where = "quantiles 5 % to 95 % of the N(0, I) prior in each coordinate (evenly spaced in probability, as in " \
                "Kingma & Welling's figure)"
    else:
        lo, hi = np.percentile(np.asarray(Z, dtype=np.float64), [1, 99], axis=0)
        u, v = np.linspace(lo[0], hi[0], G), np.linspace(lo[1], hi[1], G)
        where = "the range of the training codes (their 1st to 99th percentile in each coordinate)"
    U, V = np.meshgrid(u, v)  # (G, G): row j holds v[j]
    D = est.inverse_transform(np.column_stack([U.ravel(), V.ravel()]).astype(np.float32))
    return manifold_figure(D, u, v), f"Decodings of a regular {G} x {G} grid of 2-D codes over {where}."


def _latent_explorer(est: Any, lm: LatentMap, shape: tuple[int, ...], caption: str) -> str | None:
    """The latent map with the decoding under the pointer beside it, or None where the page cannot draw one.

    The decodings of a fine grid over the plotted area are computed here and embedded in the page as
    data; a small inline script picks the one nearest to the pointer. For codes of more than two
    dimensions the plot is a PCA projection, and a point of it stands for the code on that plane.
    """
    import json
    import math

    import numpy as np

    if lm.center is None or not _is_picture(shape):
        return None
    c, h, w = shape
    G = int(min(_EXPLORER_GRID, max(8, math.isqrt(_EXPLORER_BYTES // (c * h * w)))))
    u, v = np.linspace(*lm.xlim, G), np.linspace(*lm.ylim, G)
    U, V = np.meshgrid(u, v)  # (G, G): row j holds v[j]
    D = est.inverse_transform(lm.codes(U.ravel(), V.ravel()).astype(np.float32))  # (G * G, C, H, W)
    pixels = (np.clip(np.asarray(D, dtype=np.float32), 0.0, 1.0) * 255).round().astype(np.uint8)
    data = {"grid": G, "box": [round(b, 2) for b in lm.box], "size": list(lm.size), "xlim": list(lm.xlim),
            "ylim": list(lm.ylim), "shape": [c, h, w], "pixels": base64.b64encode(pixels.tobytes()).decode("ascii")}
    scale = max(1, 168 // max(h, w))
    b64 = base64.b64encode(lm.png).decode("ascii")
    plane = "" if len(lm.center) == 2 else " (a point of this PCA plane stands for the code on it)"
    return (
        "<figure><div style='display:flex;gap:1.2em;align-items:flex-start'>"
        "<div style='position:relative;display:inline-block;max-width:72%'>"
        f"<img id='aekit-latent-img' alt='latent map' style='cursor:crosshair;display:block;max-width:100%' "
        f"src='data:image/png;base64,{b64}'>"
        "<span id='aekit-latent-dot' style='position:absolute;display:none;width:10px;height:10px;border:2px solid #000;"
        "border-radius:50%;transform:translate(-50%,-50%);pointer-events:none'></span></div>"
        f"<div><canvas id='aekit-latent-view' width='{w * scale}' height='{h * scale}' "
        "style='border:1px solid #ccc;image-rendering:pixelated'></canvas>"
        "<p id='aekit-latent-at' class='sub'>move the pointer over the map</p></div></div>"
        f"<figcaption>{html.escape(caption)} Move the pointer over the map: beside it is the decoding of the code "
        f"at that point{plane}, precomputed on a {G} x {G} grid. (Also saved as <code>latent.png</code>.)</figcaption>"
        "</figure>"
        f"<script type='application/json' id='aekit-latent-data'>{json.dumps(data)}</script>"
        f"<script>{_EXPLORER_JS}</script>"
    )


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
        history), ``latent.png``, ``samples.png`` and, for a 2-D code of images, ``manifold.png`` are
        written beside it, each atomically. ``samples.png`` sets decodings of N(0, I) draws (or, for a
        family that declares a prior, its own samples) beside decodings of draws of a Gaussian fitted to
        the training codes. For images the latent map is interactive: the decoding of the code under
        the pointer is shown beside it, from decodings of a grid embedded in the page.
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
    # Every file is written once all of them are drawn, so a failure leaves the run's report as it was.
    files: dict[str, bytes | None] = {}

    png = reconstruction_figure(X[: len(R)], R, source=f"{dataset.name}, {dataset.split}")
    files["reconstructions.png"] = png
    sections.append(
        "<h2>Reconstructions</h2>"
        + _figure_html(png, "originals and reconstructions", f"The first samples of {dataset.name} ({dataset.split} split) "
                       "and their reconstructions decode(encode(x)).", "reconstructions.png")
    )

    png_loss = loss_figure(all_rows, x_label="epoch" if gradient else "iteration")
    if png_loss is not None:
        files["loss.png"] = png_loss
        cap = f"Training loss per {'epoch' if gradient else 'iteration'}" + (" and the loss on the held-out validation part" if any(
            "val_loss" in r for r in history) else "") + "; named terms are the already weighted parts of the objective."
        if pretrain:
            cap += (" Each stage is drawn in its own colour, in training order: the layer-wise pretraining of each "
                    "layer (its own objective), then the fine-tuning of the whole network.")
        sections.append("<h2>Loss curves</h2>" + _figure_html(png_loss, "loss curves", cap, "loss.png"))
    else:
        files["loss.png"] = None
        sections.append("<h2>Loss curves</h2><p>No training curve: this model was fitted in closed form.</p>")

    # The map shows the training codes when given: more points, and the space the decoder learned.
    source = train_dataset if train_dataset is not None else dataset
    Z = est.transform(source.X)
    lm = latent_map(Z, source.y, source.classes, seed=seed)
    files["latent.png"] = lm.png
    caption = f"{lm.how} Data: {source.name} ({source.split} split)."
    explorer = _latent_explorer(est, lm, X.shape[1:], caption)
    sections.append("<h2>Latent space</h2>" + (explorer or _figure_html(lm.png, "latent map", caption, "latent.png")))

    if Z.shape[1] == 2 and _is_picture(X.shape[1:]):
        png_m, how_m = _manifold(est, Z)
        files["manifold.png"] = png_m
        sections.append("<h2>The code space, decoded</h2>" + _figure_html(png_m, "decodings of a grid of codes", how_m,
                                                                          "manifold.png"))
    else:
        files["manifold.png"] = None

    # The lecture's point: a plain decoder fed N(0, I) draws gives few valid outputs; a density fitted to
    # its training codes (or, for a family with one, its own prior) gives far more.
    of = f"{source.name}, {source.split} split"
    first = generate(est, n_samples, density="prior" if can_sample(est) else "normal", random_state=seed)
    fitted = generate(est, n_samples, source.X, density="gaussian", random_state=seed, source=of)
    left = "prior draws (the model's own)" if first.density == "prior" else "N(0, I) codes, decoded"
    png_s = samples_comparison_figure([(left, first.samples), ("codes from a Gaussian fitted to the training codes",
                                                                fitted.samples)], title="Samples from the decoder")
    files["samples.png"] = png_s
    sections.append("<h2>Samples from the decoder</h2>" + _figure_html(
        png_s, "decoder samples", f"Left: {n_samples} samples {first.how}. Right: {n_samples} samples {fitted.how}.",
        "samples.png"))

    sections.append("<h2>Metrics</h2>" + _metrics_table(metrics))
    sections.append(_applications_html(run))

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
        graph = [r["cuda_graph"] for r in history if "cuda_graph" in r]
        if graph:
            epochs += ("; on CUDA, every step replayed from one captured CUDA graph" if all(graph)
                       else "; on CUDA, steps run eagerly" if not any(graph)
                       else f"; on CUDA, {sum(1 for g in graph if g)} of {len(graph)} epochs from a captured CUDA graph")
        bf16 = [r["bf16"] for r in history if "bf16" in r]
        if bf16:
            epochs += ("; matrix products with bf16 inputs on the CPU (cpu_bf16)" if all(bf16)
                       else "; cpu_bf16 asked for, but this CPU has no bf16 units: full fp32" if not any(bf16)
                       else f"; bf16 matrix products in {sum(1 for b in bf16 if b)} of {len(bf16)} epochs")
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
    for name, data in files.items():
        if data is None:
            (run / name).unlink(missing_ok=True)
        else:
            atomic_write_bytes(run / name, data)
    out = run / REPORT_FILE
    atomic_write_text(out, page)
    return out


def write_sweep_page(
    path: str | os.PathLike[str], *, title: str, intro: str, header: list[str], rows: list[list[Any]],
    figures: list[tuple[bytes, str, str]],
) -> Path:
    """Write one self-contained HTML page: a title, an introduction, a table and figures.

    ``figures`` holds ``(png, caption, file)`` triples, ``file`` naming where the same PNG is saved.
    The page of a sweep (:func:`aekit.apps.generation.bottleneck_sweep`); it knows no family.
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(format_value(v))}</td>" for v in r) + "</tr>" for r in rows)
    figs = "".join(_figure_html(png, caption, caption, file) for png, caption, file in figures)
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"
        f"<table><tr>{head}</tr>{body}</table>{figs}</body></html>\n"
    )
    out = Path(path)
    atomic_write_text(out, page)
    return out


# ------------------------------------------------------------------ sections added by applications


def _read_sections(run: Path) -> dict[str, dict[str, Any]]:
    try:
        obj = json.loads((run / SECTIONS_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or a damaged record: the next section written starts it again
    if not isinstance(obj, dict):
        return {}
    return {k: v for k, v in obj.items() if isinstance(v, dict) and _KEY.match(str(k))}


def _table_html(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(r[c]) if c in r else '')}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _applications_html(run: Path) -> str:
    """The applications' sections recorded for ``run``, in the order they were first added, between markers."""
    parts = []
    for entry in _read_sections(run).values():
        file = str(entry.get("file", ""))
        try:
            png = (run / file).read_bytes() if file.startswith("app-") and "/" not in file else None
        except OSError:
            png = None  # its figure was removed by hand: leave the section out
        if png is None:
            continue
        table = entry.get("table")
        rows = [r for r in table if isinstance(r, dict)] if isinstance(table, list) else []
        parts.append(f"<h2>{html.escape(str(entry.get('title', '')))}</h2>"
                     + _figure_html(png, str(entry.get("title", "")), str(entry.get("caption", "")), file)
                     + _table_html(rows))
    return _APPS_BEGIN + "".join(parts) + _APPS_END


def add_report_section(
    run_dir: str | os.PathLike[str],
    key: str,
    title: str,
    png: bytes,
    caption: str,
    *,
    table: Sequence[Mapping[str, Any]] | None = None,
) -> Path | None:
    """Add an application's figure (and optional table) to a run's report, replacing its earlier one.

    Parameters
    ----------
    run_dir : path
        A run directory written by training (``aekit train``, :func:`aekit.train_run`). For anything
        else (a model saved from Python, whose folder holds only what ``save`` wrote; a folder of
        someone else's) nothing is written and None is returned.
    key : str
        The section's name, lower-case letters, digits, ``-`` and ``_`` (e.g. ``"denoise"``): the figure
        is saved as ``app-KEY.png``, and a later call with the same key replaces the section.
    title, caption : str
        The section's heading and the figure's caption.
    png : bytes
        The figure (:mod:`aekit.report.figures` draws them).
    table : sequence of mappings, optional
        Rows of a small table shown under the figure (e.g. PSNR per method); keys are the columns.

    Returns
    -------
    Path or None
        The path of the figure written, or None when ``run_dir`` is not a run directory.
    """
    if not _KEY.match(key):
        raise ValueError(f"report section key {key!r} must be lower-case letters, digits, '-' or '_' "
                         "(at most 64), e.g. 'denoise'")
    run = Path(run_dir)
    file = f"app-{key}.png"
    # Only into a run whose config lists these files as its own, so replacing the run removes them again.
    if not (run_owns(run, file) and run_owns(run, SECTIONS_FILE)):
        return None
    atomic_write_bytes(run / file, png)
    sections = _read_sections(run)
    sections[key] = {"title": title, "caption": caption, "file": file,
                     "table": [dict(r) for r in table] if table else [],
                     "written": time.strftime("%Y-%m-%d %H:%M")}
    write_json(run / SECTIONS_FILE, sections, sort_keys=False)
    report = run / REPORT_FILE
    try:
        page = report.read_text("utf-8")
    except OSError:
        return run / file  # no report yet: the next one written includes the section
    block = _applications_html(run)
    start, end = page.find(_APPS_BEGIN), page.find(_APPS_END)
    if start >= 0 and end > start:
        page = page[:start] + block + page[end + len(_APPS_END):]
    else:
        page = page.replace("</body>", block + "</body>", 1) if "</body>" in page else page + block
    atomic_write_text(report, page)
    return run / file
