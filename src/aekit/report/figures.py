"""The figures of a trained model: reconstructions, loss curves, latent map and decoder samples.

Each function returns PNG bytes. Figures are drawn on :class:`matplotlib.figure.Figure` objects with
the Agg canvas directly, never through ``pyplot``: no window opens on a headless machine, and importing
this module leaves the backend of an interactive session (a notebook) untouched.

Nothing here knows a family: what a model can do comes from the capabilities its family declares
in the registry (:func:`declared_capabilities`), and what it did from its training history.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

from aekit.model.registry import declared_capabilities

__all__ = [
    "LatentMap",
    "declared_capabilities",
    "image_rows_figure",
    "latent_figure",
    "latent_map",
    "loss_figure",
    "manifold_figure",
    "reconstruction_figure",
    "reconstruction_pairs",
    "restoration_figure",
    "samples_comparison_figure",
    "samples_figure",
    "sweep_figure",
]

# History columns that are bookkeeping, not loss terms.
_NON_TERMS = frozenset({"epoch", "lr", "loss", "val_loss", "seconds", "samples_per_s", "layer", "threads", "cuda_graph",
                        "bf16"})
# Points drawn in the latent map at most: beyond this a scatter plot only gets slower, not clearer.
_MAX_LATENT_POINTS = 5000
# Panels of line plots in a reconstruction figure of tabular data or signals: more get too small to read.
_MAX_LINE_PANELS = 4
# Up to this many epochs each one is marked with a point: a one-epoch run still shows its loss.
_MAX_MARKED = 60
_DPI = 110


def figure_png(fig: Figure, dpi: int = _DPI) -> bytes:
    """The figure as PNG bytes. Its text is drawn as written: a ``$`` in a file or class name is not mathtext
    (which would italicize, or fail to parse and lose the whole figure)."""
    FigureCanvasAgg(fig)
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


_png = figure_png


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

def reconstruction_pairs(X: np.ndarray, n: int) -> int:
    """How many originals :func:`reconstruction_figure` shows for data ``X`` when asked for ``n``."""
    X = np.asarray(X)
    k = min(n, X.shape[0])
    return k if _is_image(X) else min(k, _MAX_LINE_PANELS)


def reconstruction_figure(X: np.ndarray, R: np.ndarray, *, n: int = 10, source: str | None = None) -> bytes:
    """PNG of originals beside reconstructions.

    Images (N, C, H, W): originals in the top row, their reconstructions below, ``n`` pairs. Tabular
    (N, D) or signals (N, C, L): one panel per sample (at most 4), original and reconstruction as lines.
    :func:`reconstruction_pairs` says how many are shown.
    ``source`` names the data in the title.
    """
    X, R = np.asarray(X), np.asarray(R)
    if _is_image(X):
        # One picture in one axes, not one axes per image: a figure of 20 axes took over a second to draw.
        k = reconstruction_pairs(X, n)
        M, cmap, scale = _mosaic(np.concatenate([X[:k], R[:k]]), k)
        h = X.shape[-2] * scale
        fig = Figure(figsize=(1.1 * k + 0.9, 2.7), layout="constrained")
        ax = fig.subplots()
        ax.imshow(M, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([(h - 1) / 2, h + 1 + (h - 1) / 2], ["original", "reconstruction"])
        ax.tick_params(left=False)
    else:
        k = reconstruction_pairs(X, n)
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



def _stages(rows: Sequence[Mapping[str, float]]) -> list[tuple[str, list[int]]]:
    """Consecutive runs of rows with the same ``layer`` value, each with a label, in training order.

    A ``layer`` column marks staged training: 1..L for layer-wise pretraining, 0 for fine-tuning.
    """
    out: list[tuple[str, list[int]]] = []
    last: float | None = None
    for i, r in enumerate(rows):
        layer = r.get("layer")
        if not out or layer != last:
            if layer is None:
                label = "train"
            elif layer >= 1:
                label = f"pretraining, layer {int(layer)}"
            else:
                label = "fine-tuning"
            out.append((label, []))
            last = layer
        out[-1][1].append(i)
    return out


def loss_figure(history: Sequence[Mapping[str, float]], *, x_label: str = "epoch") -> bytes | None:
    """PNG of the training (and validation) loss per epoch, plus each named loss term; None if no history.

    Each epoch is a point (joined by lines), so a one-epoch run shows its loss, and the epoch axis has
    integer ticks. A history with a ``layer`` column (1..L: layer-wise pretraining, 0: fine-tuning) is
    drawn stage after stage on one running epoch axis, each stage labelled, with a line between stages.
    """
    fig = _loss_chart(history, x_label)
    return None if fig is None else _png(fig)


def _loss_chart(history: Sequence[Mapping[str, float]], x_label: str) -> Figure | None:
    rows = [r for r in history if "loss" in r]
    if not rows:
        return None
    stages = _stages(rows)
    staged = len(stages) > 1 or any("layer" in r for r in rows)
    # One running count over all stages (each stage restarts its own epoch numbers); else the recorded epoch.
    x = [float(i + 1) for i in range(len(rows))] if staged else [float(r.get("epoch", i + 1)) for i, r in enumerate(rows)]
    marker = "o" if len(rows) <= _MAX_MARKED else None
    terms: list[str] = []
    for r in rows:
        terms += [k for k in r if k not in _NON_TERMS and k not in terms]
    # A single term equals the total loss; a second panel would only repeat it.
    show_terms = len(terms) > 1
    fig = Figure(figsize=(11 if show_terms else 6.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 2 if show_terms else 1, squeeze=False)[0]
    ax = axes[0]
    for label, idx in stages:
        name = "train loss" if not staged else f"train loss ({label})"
        ax.plot([x[i] for i in idx], [rows[i]["loss"] for i in idx], lw=1.6, marker=marker, ms=3.5, label=name)
        val = [i for i in idx if "val_loss" in rows[i]]
        if val:
            vname = "validation loss" if not staged else f"validation loss ({label})"
            ax.plot([x[i] for i in val], [rows[i]["val_loss"] for i in val], lw=1.6, ls="--", marker=marker, ms=3.5,
                    label=vname)
    xlabel = f"{x_label} (all stages, in training order)" if staged else x_label
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss (per sample)")
    ax.set_title("Training objective" + (" by stage" if staged else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if show_terms:
        ax2 = axes[1]
        for t in terms:
            pts = [(xi, r[t]) for xi, r in zip(x, rows) if t in r]
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.4, marker=marker, ms=3, label=t)
        ax2.set_xlabel(xlabel)
        ax2.set_ylabel("weighted term (per sample)")
        ax2.set_title("Loss terms (train)")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize="small")
    for a in axes:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        for _, idx in stages[1:]:
            a.axvline(x[idx[0]] - 0.5, color="#888", lw=0.8, ls=":")
    return fig


def _project_2d(Z: np.ndarray) -> tuple[np.ndarray, str, tuple[np.ndarray, np.ndarray] | None]:
    """Points to plot, a sentence saying what they are, and the map back to codes: (center (K,), basis (2, K))
    with code = center + p @ basis, or None for a 1-D code (its second axis is jitter)."""
    k = Z.shape[1]
    if k == 2:
        return Z, "the 2-D code itself", (np.zeros(2), np.eye(2))
    if k == 1:
        return Z, "the 1-D code (vertical position is jitter)", None
    if Z.shape[0] < 2:  # no principal components of a single point
        return Z[:, :2], f"the first two of the {k} code units (one sample: too few for PCA)", (np.zeros(k), np.eye(2, k))
    from sklearn.decomposition import PCA

    P = PCA(n_components=2, random_state=0).fit(Z)
    share = float(P.explained_variance_ratio_.sum())
    return (
        P.transform(Z),
        f"the {k}-D codes projected with PCA onto their first two principal components ({share:.0%} of their variance)",
        (P.mean_.copy(), P.components_.copy()),
    )


@dataclass(frozen=True)
class LatentMap:
    """The latent map and where its plot lies, so that a page can turn a pointer position into a code.

    Attributes
    ----------
    png : bytes
    how : str
        A sentence saying what is plotted.
    box : tuple of 4 floats
        The plot area in PNG pixels: left, top, right, bottom (origin at the top left).
    size : tuple of 2 ints
        Width and height of the PNG in pixels.
    xlim, ylim : tuple of 2 floats
        The plotted range of the two axes.
    center, basis : ndarray (K,) and (2, K), or None
        A point (u, v) of the plot is the code ``center + (u, v) @ basis``; None for a 1-D code.
    """

    png: bytes
    how: str
    box: tuple[float, float, float, float]
    size: tuple[int, int]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    center: np.ndarray | None
    basis: np.ndarray | None

    def codes(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The codes (N, K) at plot coordinates ``u``, ``v`` (N,); only for a map with a basis."""
        assert self.center is not None and self.basis is not None
        return self.center + np.column_stack([u, v]) @ self.basis


def latent_figure(
    Z: np.ndarray, y: np.ndarray | None = None, classes: Sequence[str] | None = None, *, seed: int = 0
) -> tuple[bytes, str]:
    """PNG of the codes in 2-D coloured by label, and a sentence saying what is plotted."""
    m = latent_map(Z, y, classes, seed=seed)
    return m.png, m.how


def latent_map(
    Z: np.ndarray, y: np.ndarray | None = None, classes: Sequence[str] | None = None, *, seed: int = 0
) -> LatentMap:
    """The figure of :func:`latent_figure` with the geometry of its plot (see :class:`LatentMap`)."""
    Z = np.asarray(Z, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if Z.shape[0] > _MAX_LATENT_POINTS:
        keep = np.sort(rng.choice(Z.shape[0], _MAX_LATENT_POINTS, replace=False))
        Z, y = Z[keep], (None if y is None else np.asarray(y)[keep])
    P, how, proj = _project_2d(Z)
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
    fig.set_dpi(_DPI)  # the saved PNG's resolution, so the plot's box below is in the PNG's pixels
    png = _png(fig)  # drawing fixes the constrained layout
    w, h = round(fig.bbox.width), round(fig.bbox.height)
    bb = ax.get_window_extent()
    xlim = tuple(float(v) for v in ax.get_xlim())
    ylim = tuple(float(v) for v in ax.get_ylim())
    return LatentMap(
        png, f"Codes of {Z.shape[0]} samples, {colour}: {how}.",
        (float(bb.x0), float(h - bb.y1), float(bb.x1), float(h - bb.y0)), (w, h),
        (xlim[0], xlim[1]), (ylim[0], ylim[1]), None if proj is None else proj[0], None if proj is None else proj[1],
    )


def _mosaic(S: np.ndarray, cols: int) -> tuple[np.ndarray, str | None, int]:
    """Images (N, C, H, W) -> one picture, ``cols`` images a row, with 1-pixel white gaps, and the scale.

    Small images are enlarged ``scale`` times (nearest neighbour) first, so that a gap stays thin beside
    them: each tile is (H * scale, W * scale) and starts every H * scale + 1 rows and W * scale + 1 columns.
    """
    n = S.shape[0]
    rows = math.ceil(n / cols)
    first, cmap = _as_image(S[0])
    scale = max(1, 24 // max(first.shape[:2]))
    h, w = first.shape[0] * scale, first.shape[1] * scale
    out = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1, *first.shape[2:]), dtype=np.float32)
    for i in range(n):
        img, _ = _as_image(S[i])
        r, c = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img.repeat(scale, 0).repeat(scale, 1)
    return out, cmap, scale


def samples_comparison_figure(panels: Sequence[tuple[str, np.ndarray]], *, title: str | None = None) -> bytes:
    """PNG of sample sets side by side, one panel each: ``(caption, samples (n, *sample_shape))``.

    Images are drawn as one mosaic per panel (one image, not one axes per sample: cheap to draw);
    tabular data and signals as line plots of the first 6 samples.
    """
    k = len(panels)
    first = np.asarray(panels[0][1])
    images = _is_image(first)
    height = 3.6
    if images:
        cols = min(8, first.shape[0])
        rows = math.ceil(first.shape[0] / cols)
        height = 4.2 * rows * (first.shape[-2] + 1) / (cols * (first.shape[-1] + 1)) + 0.9
    fig = Figure(figsize=(4.2 * k + 0.3, height), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False)[0]
    for ax, (name, S) in zip(axes, panels):
        S = np.asarray(S)
        if images:
            M, cmap, _ = _mosaic(S, min(8, S.shape[0]))
            ax.imshow(M, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            for i, row in enumerate(_rows(S)[:6]):
                ax.plot(row, lw=1.2, label=f"sample {i}")
            ax.set_xlabel("time step" if S.ndim == 3 else "feature index")
            ax.grid(alpha=0.3)
        ax.set_title(name, fontsize="medium")
    if title:
        fig.suptitle(title)
    return _png(fig)


def manifold_figure(D: np.ndarray, u: np.ndarray, v: np.ndarray, *, title: str = "Decodings of a grid over the 2-D code") -> bytes:
    """PNG of the decodings ``D`` (G * G, C, H, W) of a regular grid over a 2-D code space, as in Kingma & Welling.

    ``D[j * G + i]`` decodes the code (u[i], v[j]); u grows to the right and v upwards, as in the latent
    map, and the axes are labelled with the code values.
    """
    G = len(u)
    D = np.asarray(D)
    # Row 0 of the picture is the top: the largest v.
    order = np.concatenate([np.arange(G) + j * G for j in reversed(range(G))])
    M, cmap, scale = _mosaic(D[order], G)
    fig = Figure(figsize=(7.2, 7.2 * M.shape[0] / M.shape[1] + 0.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(M, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    h, w = D.shape[-2] * scale, D.shape[-1] * scale
    ticks = np.unique(np.linspace(0, G - 1, min(G, 5)).round().astype(int))
    ax.set_xticks(ticks * (w + 1) + (w - 1) / 2, [f"{u[i]:.2g}" for i in ticks])
    ax.set_yticks(ticks * (h + 1) + (h - 1) / 2, [f"{v[G - 1 - i]:.2g}" for i in ticks])
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title(title)
    return _png(fig)


def samples_figure(S: np.ndarray, *, title: str = "Samples from the decoder") -> bytes:
    """PNG of generated samples: an image grid, or line plots for tabular data and signals."""
    S = np.asarray(S)
    if _is_image(S):
        n = S.shape[0]
        cols = min(8, n)
        M, cmap, _ = _mosaic(S, cols)
        fig = Figure(figsize=(1.1 * cols + 0.4, 1.1 * math.ceil(n / cols) + 0.6), layout="constrained")
        ax = fig.subplots()
        ax.imshow(M, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
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


def image_rows_figure(rows: Sequence[tuple[str, np.ndarray]], *, title: str) -> bytes:
    """PNG of labelled rows of images, one mosaic row each: ``(label, images (n, C, H, W))``.

    Every row has the same number of images; a sweep shows its originals and the reconstructions
    (or samples) at each code size this way, in one cheap figure.
    """
    n = max(np.asarray(S).shape[0] for _, S in rows)
    h, w = np.asarray(rows[0][1]).shape[-2:]
    fig = Figure(figsize=(0.75 * n + 0.5, len(rows) * (0.75 * h / w + 0.3) + 0.5), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (label, S) in zip(axes, rows):
        M, cmap, _ = _mosaic(np.asarray(S), n)
        ax.imshow(M, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, loc="left", fontsize="small")
    fig.suptitle(title)
    return _png(fig)


def sweep_figure(
    dims: Sequence[int], error: Sequence[float], pca_error: Sequence[float], *, metric: str,
    family: str, quality: Sequence[float] | None = None, floor: float | None = None,
) -> bytes:
    """PNG of the bottleneck experiment: test reconstruction error against code size, PCA's beside it,
    and (when given) the Fréchet distance of samples against code size, with the test-vs-test floor."""
    fig = Figure(figsize=(11 if quality is not None else 6.5, 4.0), layout="constrained")
    axes = fig.subplots(1, 2 if quality is not None else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot(dims, error, marker="o", lw=1.6, label=family)
    ax.plot(dims, pca_error, marker="s", lw=1.4, ls="--", label="PCA (same number of components)")
    ax.set_xlabel("code size d")
    ax.set_ylabel(f"test {metric}")
    ax.set_title("Reconstruction error against code size")
    for a in axes:
        a.set_xscale("log", base=2)
        a.set_xticks(list(dims), [str(d) for d in dims])
        a.minorticks_off()
        a.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if quality is not None:
        ax2 = axes[1]
        ax2.plot(dims, quality, marker="o", lw=1.6, color="#d62728", label="samples vs test images")
        if floor is not None:
            ax2.axhline(floor, color="#555", ls=":", label="test vs test images (floor)")
        ax2.set_xlabel("code size d")
        ax2.set_ylabel("Fréchet distance of classifier features")
        ax2.set_title("Sample quality against code size (lower is better)")
        ax2.legend(fontsize="small")
    return _png(fig)


def anomaly_histogram_figure(groups: Sequence[tuple[str, np.ndarray]], *, threshold: float | None = None,
                             title: str = "Anomaly scores by class") -> bytes:
    """PNG of overlaid histograms of anomaly scores, one per group ``(name, scores (n,))``, on shared bins.

    Higher scores are more abnormal; ``threshold`` (the detector's decision boundary) is drawn as a line.
    """
    arrays = [np.asarray(s, dtype=np.float64).ravel() for _, s in groups]
    every = np.concatenate(arrays) if arrays else np.zeros(1)
    every = every[np.isfinite(every)]
    lo, hi = (float(every.min()), float(every.max())) if every.size else (0.0, 1.0)
    if threshold is not None and math.isfinite(threshold):
        lo, hi = min(lo, threshold), max(hi, threshold)
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 61)
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    for (name, _), s in zip(groups, arrays, strict=True):
        s = s[np.isfinite(s)]
        ax.hist(s, bins=bins.tolist(), alpha=0.55, density=True, label=f"{name} (n={s.size})")
    if threshold is not None and math.isfinite(threshold):
        ax.axvline(threshold, color="black", ls="--", lw=1.2, label="threshold")
    ax.set_xlabel("anomaly score (higher is more abnormal)")
    ax.set_ylabel("density")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(title)
    return _png(fig)


def restoration_figure(rows: Sequence[tuple[str, Sequence[np.ndarray]]], *, title: str, n: int = 8) -> bytes:
    """PNG of restored images beside their inputs (and references): one labelled row per ``(label, images)``.

    Each row holds the same images in the same order, one (C, H, W) array each (e.g. noisy / restored /
    clean); their sizes may differ from image to image (a folder of photographs), so the figure shows the
    first ``n`` whose height and width are those of the first one, in every row. A folder may also mix gray
    and colour images: a row whose images differ in channel count shows them all in colour (a gray image
    as R = G = B), so every image still appears.
    """
    first = [np.asarray(im) for im in rows[0][1]]
    size = first[0].shape[-2:]
    keep = [i for i, im in enumerate(first) if im.shape[-2:] == size][:n]
    shown = []
    for label, images in rows:
        row = [np.asarray(images[i], np.float32) for i in keep]  # (C, H, W) each
        if len({im.shape[0] for im in row}) > 1:
            # As _as_image draws a channel count other than 3: its first channel in gray, here as R = G = B.
            row = [im if im.shape[0] == 3 else np.repeat(im[:1], 3, axis=0) for im in row]
        shown.append((label, np.stack(row)))  # (n, C, H, W)
    return image_rows_figure(shown, title=title)
