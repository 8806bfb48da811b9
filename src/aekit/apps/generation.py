"""Generation from any autoencoder: latent densities, sampling, interpolation and the bottleneck experiment.

The lectures end on the question "can the decoder of an autoencoder be used for data generation?". Random
vectors fed to a plain decoder are mostly not valid outputs: its codes fill some small, odd-shaped part of
the code space. It generates once a density is fitted to its training codes (:class:`LatentDensity`, a
full-covariance Gaussian or a Gaussian mixture) and draws of that density are decoded; a family with a
prior of its own (the ``"sample"`` capability: factor analysis, the VAE) samples from it. :func:`generate`
picks by the declared capability, :func:`interpolate` decodes a path between the codes of two inputs, and
:func:`bottleneck_sweep` trains one model per code size and sets their test reconstruction error beside
PCA's and their sample quality (:mod:`aekit.report.quality`), as one table, one plot and one page.

Example::

    import aekit
    ae = aekit.Autoencoder(latent_dim=8, max_epochs=5).fit(X)
    S = aekit.generate(ae, 16, X, density="gmm", n_components=10).samples
    strip = aekit.interpolate(ae, X[0], X[1], steps=10, method="slerp")
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.core.params import is_whole
from aekit.model.sampling import (
    DENSITIES,
    Generated,
    LatentDensity,
    generate,
    interpolate,
    sample_codes,
    slerp,
)

__all__ = [
    "DENSITIES",
    "Generated",
    "LatentDensity",
    "SweepResult",
    "SweepRow",
    "bottleneck_sweep",
    "check_sweep_dir",
    "generate",
    "interpolate",
    "sample_codes",
    "slerp",
    "sweep_params",
]

#: The files a sweep writes into its directory, beside one run directory per code size (``latent-D``).
SWEEP_FILES = ("sweep.csv", "sweep.json", "sweep.png", "sweep.html", "reconstructions.png", "samples.png")
# Originals (and samples) shown per code size on the page.
_SHOWN = 10


@dataclass(frozen=True)
class SweepRow:
    """One code size of a sweep.

    Attributes
    ----------
    latent_dim : int
    run : str
        Its run directory.
    test_error : float
        Test reconstruction error of the trained model (``metric``).
    pca_error : float
        The same error of PCA with ``latent_dim`` components fitted to the training data (NaN when
        ``latent_dim`` exceeds what PCA can have).
    metric : str
        The metric's name (squared error per image for images, per sample otherwise).
    epochs : int
    train_seconds : float
    sampled : str
        How the samples were drawn.
    frechet, mean_max_prob : float
        The sample-quality measure (NaN without one).
    class_histogram : list of float
        Empty without a quality measure.
    """

    latent_dim: int
    run: str
    test_error: float
    pca_error: float
    metric: str
    epochs: int
    train_seconds: float
    sampled: str
    frechet: float = math.nan
    mean_max_prob: float = math.nan
    class_histogram: tuple[float, ...] = ()


@dataclass(frozen=True)
class SweepResult:
    """What :func:`bottleneck_sweep` returns: its rows and the files it wrote."""

    rows: tuple[SweepRow, ...]
    table: Path
    json: Path
    plot: Path
    page: Path
    floor: float | None


def _check_dims(latent_dims: Sequence[int]) -> list[int]:
    dims = list(latent_dims)
    bad = [d for d in dims if not is_whole(d, 1)]
    if not dims or bad:
        raise ValueError(f"latent_dims must be positive integers, e.g. 2,4,8,16,32; got {latent_dims!r}")
    if len(set(dims)) != len(dims):
        raise ValueError(f"latent_dims has repeated sizes: {dims}; give each code size once")
    return sorted(int(d) for d in dims)


def sweep_params(family: str, latent_dims: Sequence[int], X: np.ndarray, params: Mapping[str, Any] | None = None, *,
                 epochs: int | None = None, random_state: int = 0) -> list[dict[str, Any]]:
    """The parameters of each run of a sweep, every one checked against the data before any is trained.

    A ValueError names the first size or setting the family refuses (a code larger than the data allows, an
    ``epochs`` for a family fitted in closed form), so a sweep never stops half-way for a reason it could know.
    """
    from aekit.data.preprocessing import check_array
    from aekit.model.registry import get_family

    info = get_family(family)
    declared = info.estimator().get_params(deep=False)
    if "latent_dim" not in declared:
        raise ValueError(f"family {family!r} has no latent_dim parameter, so it cannot be swept over code sizes")
    if params and "latent_dim" in params:
        raise ValueError("latent_dim is what the sweep varies; leave it out of params and list the sizes in latent_dims")
    if epochs is not None and "max_epochs" not in declared:
        raise ValueError(f"epochs={epochs} does not apply to family {family!r}, which is not trained by epochs; "
                         "leave epochs out")
    A = check_array(X)
    out = []
    for d in _check_dims(latent_dims):
        p = dict(params or {}, latent_dim=d)
        if epochs is not None:
            p["max_epochs"] = epochs
        if "random_state" in declared:
            p.setdefault("random_state", random_state)
        est = info.estimator(**{**p, **({"verbose": 0} if "verbose" in declared else {})})
        try:
            est._resolve_for(A)
        except ValueError as exc:
            raise ValueError(f"code size {d}: {exc}") from None
        out.append(p)
    return out


def _remove_stale_runs(out: Path, dims: Sequence[int]) -> None:
    """Remove the runs of an earlier sweep in ``out`` at sizes this one does not train (their files only)."""
    from aekit.engine.rundir import owned_files, remove_owned, run_config

    keep = {f"latent-{d}" for d in dims}
    for entry in out.iterdir():
        cfg = run_config(entry) if entry.is_dir() and entry.name.startswith("latent-") else None
        if cfg is not None and entry.name not in keep:
            remove_owned(entry, owned_files(cfg))
            try:
                entry.rmdir()
            except OSError:
                pass  # it holds something aekit did not write: leave it


def check_sweep_dir(out: str | Path, latent_dims: Sequence[int], overwrite: bool = False) -> None:
    """Refuse to mix a sweep into a folder of other files, or to replace one without ``overwrite`` (ValueError)."""
    out, dims = Path(out), _check_dims(latent_dims)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a directory for the sweep")
    if not out.is_dir():
        return
    ours = set(SWEEP_FILES) | {f"latent-{d}" for d in dims}
    entries = sorted(p.name for p in out.iterdir())
    foreign = [e for e in entries if e not in ours and not e.startswith("latent-")]
    if foreign:
        raise ValueError(f"{out} holds files a sweep did not write ({', '.join(foreign[:5])}); choose a new or "
                         "empty directory")
    if entries and not overwrite:
        raise ValueError(f"{out} already holds a sweep; pass overwrite=True (--overwrite) to replace it, or choose another directory")


def _flat(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float64).reshape(X.shape[0], -1)


def _pca_error(train: np.ndarray, test: np.ndarray, k: int, metric: str) -> float:
    """Test ``metric`` of PCA with ``k`` components fitted to ``train``: the linear optimum at that size."""
    from sklearn.decomposition import PCA

    from aekit.report.metrics import reconstruction_metrics

    A = _flat(train)
    if k > min(A.shape):
        return math.nan
    p = PCA(n_components=k, svd_solver="full").fit(A)
    R = p.inverse_transform(p.transform(_flat(test))).reshape(test.shape)
    return float(reconstruction_metrics(test, R)[metric])


def bottleneck_sweep(
    family: str,
    latent_dims: Sequence[int],
    data: Any = "digits",
    out: str | Path = "sweep",
    *,
    params: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    n_samples: int = _SHOWN,
    quality: Any = None,
    quality_samples: int = 1000,
    overwrite: bool = False,
    download: bool = False,
    random_state: int = 0,
    log: Callable[[str], None] | None = None,
) -> SweepResult:
    """The lecture's bottleneck experiment: one model of ``family`` per code size, side by side.

    Trains a run per size into ``out/latent-D`` (:func:`aekit.train_run`), then writes into ``out``:
    ``sweep.csv`` and ``sweep.json`` (test reconstruction error per size with PCA's beside it, and the
    sample quality per size when ``quality`` is given), ``sweep.png`` (the plot), ``reconstructions.png``
    and ``samples.png`` (the first test images reconstructed, and samples, at each size) and
    ``sweep.html`` (all of it on one page).

    Parameters
    ----------
    family : str
        A registered family with a ``latent_dim`` parameter.
    latent_dims : sequence of int
        The code sizes, e.g. (2, 4, 8, 16, 32).
    data : str, DataSpec or mapping
        Training data (a source with a test split is measured on it; else on the training data).
    out : path
        A new or empty directory, or an earlier sweep with ``overwrite``.
    params : mapping, optional
        Other parameters of the family (the same at every size).
    epochs : int, optional
        ``max_epochs`` of every run.
    n_samples : int
        Samples shown per size.
    quality : fitted :class:`aekit.report.quality.SampleQuality`, optional
        Scores ``quality_samples`` samples per size against the test images (needs images).
    overwrite : bool
        Replace an earlier sweep in ``out``.
    random_state : int
        Seed of every run and of the draws.
    log : callable, optional
        Receives a line per stage.

    Returns
    -------
    SweepResult
    """
    from aekit.engine.rundir import atomic_write_bytes, atomic_write_text
    from aekit.model.registry import get_family
    from aekit.report.figures import image_rows_figure, reconstruction_figure, samples_figure, sweep_figure
    from aekit.report.html import write_sweep_page
    from aekit.report.metrics import reconstruction_metrics
    from aekit.workflow.data import DataSpec
    from aekit.workflow.train import train_run

    say = log or (lambda _: None)
    dims = _check_dims(latent_dims)
    get_family(family)  # an unknown family is refused before the data are loaded
    out = Path(out)
    check_sweep_dir(out, dims, overwrite)
    spec = DataSpec.of(data)
    train = spec.load(download=download)
    settings = sweep_params(family, dims, train.X, params, epochs=epochs, random_state=random_state)
    try:
        test = spec.load(split="test", download=download) if train.split == "train" else train
    except (ValueError, OSError):
        test = train  # a source without a test split
    images = train.X.ndim == 4
    if quality is not None and not images:
        raise ValueError("the sample-quality measure classifies images; this data set is not one (leave quality out)")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        _remove_stale_runs(out, dims)

    rows: list[SweepRow] = []
    recon: list[tuple[str, np.ndarray]] = [("original", test.X[:n_samples])]
    shown: list[tuple[str, np.ndarray]] = []
    for d, p in zip(dims, settings, strict=True):
        say(f"code size {d}: training {family}")
        res = train_run(family, p, spec, out / f"latent-{d}", overwrite=overwrite, download=download)
        est = res.estimator
        m = reconstruction_metrics(test.X, est.reconstruct(test.X))
        metric = next(iter(m))  # the squared error per image or per sample, whichever the data are
        g = generate(est, max(n_samples, quality_samples if quality is not None else 1), train.X,
                     random_state=random_state)
        scores: dict[str, Any] = {}
        if quality is not None:
            q = quality.evaluate(g.samples[:quality_samples], test.X)
            scores = {"frechet": q.frechet, "mean_max_prob": q.mean_max_prob,
                      "class_histogram": tuple(round(float(v), 4) for v in q.class_histogram)}
        rows.append(SweepRow(d, str(res.run_dir), float(m[metric]), _pca_error(train.X, test.X, d, metric), metric,
                             res.epochs, round(res.train_seconds, 3), g.density, **scores))
        recon.append((f"d = {d}", est.reconstruct(test.X[:n_samples])))
        shown.append((f"d = {d}", g.samples[:n_samples]))

    floor = quality.floor(test.X) if quality is not None else None
    header = ["latent_dim", f"test {rows[0].metric}", f"PCA test {rows[0].metric}", "epochs", "train_seconds", "samples from"]
    table = [[r.latent_dim, r.test_error, r.pca_error, r.epochs, r.train_seconds, r.sampled] for r in rows]
    if quality is not None:
        header += ["frechet", "mean_max_prob"]
        for t, r in zip(table, rows):
            t += [r.frechet, r.mean_max_prob]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(table)
    atomic_write_text(out / "sweep.csv", buf.getvalue())
    import json

    atomic_write_text(out / "sweep.json", json.dumps(
        {"family": family, "data": spec.name, "test_split": test.split, "frechet_floor": floor,
         "rows": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(r).items()}
                  for r in rows]}, indent=2) + "\n")
    plot = sweep_figure(dims, [r.test_error for r in rows], [r.pca_error for r in rows], metric=rows[0].metric,
                        quality=[r.frechet for r in rows] if quality is not None else None, floor=floor, family=family)
    atomic_write_bytes(out / "sweep.png", plot)
    if images:
        png_r = image_rows_figure(recon, title=f"Test images and their reconstructions at each code size ({test.name})")
        png_s = image_rows_figure(shown, title="Samples at each code size")
    else:
        png_r = reconstruction_figure(test.X[:n_samples], recon[-1][1], source=f"code size {dims[-1]}")
        png_s = samples_figure(shown[-1][1], title="Samples at the largest code size")
    atomic_write_bytes(out / "reconstructions.png", png_r)
    atomic_write_bytes(out / "samples.png", png_s)
    how = {r.sampled for r in rows}
    sampled = ("each model's own prior" if how == {"prior"} else
               "a Gaussian fitted to each model's training codes" if how == {"gaussian"} else "; ".join(sorted(how)))
    intro = (f"The bottleneck experiment: {family} trained on {train.name} ({train.split} split, {len(train)} samples) "
             f"at code sizes {', '.join(map(str, dims))}, measured on {len(test)} samples of the {test.split} split. "
             f"PCA with as many components is the linear optimum at each size. Samples are drawn from {sampled}.")
    if floor is not None:
        intro += (f" Sample quality: Fréchet distance of a classifier's features between {quality_samples} samples "
                  f"and the test images; two halves of the test images score {floor:.4g} (the floor).")
    page = write_sweep_page(out / "sweep.html", title=f"aekit sweep: {family} on {train.name}", intro=intro,
                            header=header, rows=table, figures=[
                                (plot, "Test reconstruction error against code size, PCA beside it"
                                 + (", and sample quality" if quality is not None else ""), "sweep.png"),
                                (png_r, "Reconstructions at each code size", "reconstructions.png"),
                                (png_s, "Samples at each code size", "samples.png")])
    return SweepResult(tuple(rows), out / "sweep.csv", out / "sweep.json", out / "sweep.png", page, floor)
