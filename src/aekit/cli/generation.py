"""The generation commands: ``generate``, ``interpolate`` and ``sweep`` (the bottleneck experiment)."""


from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aekit.cli.commands import _check_out_file, _described, _load_run
from aekit.cli.common import (
    _TRANSFORM_SPLIT,
    AddParser,
    UsageError,
    _add_data_args,
    _check_suffix,
    _data_spec,
    _info,
    _label_column,
    _load,
    _out,
    _positive_int,
    _print_json,
    _run_data,
    _write_npy,
)

# The default data of each command, as the help texts say it.
_GENERATE_SPLIT = "the split the run was trained on; train with --data"
_DENSITIES = ("auto", "prior", "normal", "gaussian", "gmm")
_FITTED = ("gaussian", "gmm")



def add_parsers(add: AddParser, with_prior: list[str]) -> None:
    """Add ``generate``, ``interpolate`` and ``sweep`` to the main parser (``add`` is its sub-parser factory)."""
    sp = add("generate", "sample from the decoder and write a .npy array or a .png grid",
             "Sample from the decoder. Families that declare the 'sample' capability ("
             + (", ".join(with_prior) or "none yet") + ") draw from their own generative model by default: codes "
             "from their prior, then the decoder (the data flags do not apply). The others have no prior: their "
             "samples decode draws of a density fitted to the codes of data, by default a Gaussian N(mean, "
             "covariance) and the split the run was trained on. --density chooses: prior, normal (N(0, I) codes "
             "decoded: what a plain decoder was never trained on), gaussian, or gmm (a Gaussian mixture of "
             "--components full-covariance components).")
    sp.add_argument("run", metavar="RUN", help="run directory")
    sp.add_argument("--n", type=_positive_int, default=32, metavar="N", help="number of samples (default: 32)")
    sp.add_argument("--out", required=True, metavar="FILE", help="output .npy or .png")
    sp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    sp.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the draws (default: 0)")
    sp.add_argument("--density", choices=_DENSITIES, default="auto",
                    help="what the codes are drawn from (default: auto: the prior of a family that declares one, "
                         "else gaussian)")
    sp.add_argument("--components", type=_positive_int, default=None, metavar="K",
                    help="components of the gmm density (--density gmm only; default: 10)")
    sp.add_argument("--label", type=int, default=None, metavar="Y",
                    help="class label to generate, for a conditional model (e.g. a vae trained with --conditional)")
    _add_data_args(sp, split_default=_GENERATE_SPLIT, split_help="split whose codes the density is fitted to")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")

    sp = add("interpolate", "decode a path between the codes of two inputs: a .png strip or a .npy array",
             "Encode samples I and J of a data set, walk from one code to the other in --steps points (a straight "
             "line, or with --method slerp along the great circle) and decode each point. Like every command that "
             "transforms data, it indexes all of the data set (train and test) by default.")
    sp.add_argument("run", metavar="RUN", help="run directory")
    sp.add_argument("--pair", type=int, nargs=2, required=True, metavar=("I", "J"),
                    help="indices of the two samples in the data")
    sp.add_argument("--steps", type=_positive_int, default=10, metavar="N",
                    help="points on the path, the two ends included (default: 10)")
    sp.add_argument("--method", choices=("linear", "slerp"), default="linear",
                    help="linear or spherical interpolation of the codes (default: linear)")
    sp.add_argument("--out", required=True, metavar="FILE", help="output .png (a strip) or .npy (steps, *sample_shape)")
    sp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_data_args(sp, split_default=_TRANSFORM_SPLIT, split_help="split the indices refer to")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")

    sp = add("sweep", "the bottleneck experiment: train one model per code size and compare them",
             "Train one model of --family per code size in --latent-dims on --data, then write into --out a table "
             "(sweep.csv, sweep.json: test reconstruction error per size with PCA's beside it, and with --quality the "
             "sample quality per size), a plot (sweep.png), the reconstructions and samples at each size and one page "
             "(sweep.html). Each model is a run directory latent-D inside --out.")
    sp.add_argument("--family", required=True, metavar="NAME", help="a family with a latent_dim parameter")
    sp.add_argument("--latent-dims", required=True, metavar="D,D,...", type=_dims,
                    help="code sizes, comma-separated, e.g. 2,4,8,16,32")
    sp.add_argument("--data", default="digits", metavar="NAME_OR_PATH", help="training data (default: digits)")
    sp.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST/Fashion-MNIST IDX files")
    sp.add_argument("--download", action="store_true", help="download MNIST/Fashion-MNIST if missing")
    sp.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N samples of each split")
    sp.add_argument("--label-column", metavar="COL", help="label column of a .csv file (index or header name)")
    sp.add_argument("--out", required=True, metavar="DIR", help="directory of the sweep (new or empty)")
    sp.add_argument("--epochs", type=_positive_int, metavar="N", help="maximum epochs of every model")
    sp.add_argument("--seed", type=int, default=0, metavar="N", help="seed of every run and of the draws (default: 0)")
    sp.add_argument("--quality", action="store_true",
                    help="train a small classifier on the labelled training images and score the samples of each size "
                         "with it (Fréchet distance of its features, mean top class probability)")
    sp.add_argument("--quality-epochs", type=_positive_int, default=3, metavar="N",
                    help="epochs of that classifier (default: 3)")
    sp.add_argument("--overwrite", action="store_true", help="replace an earlier sweep in --out")
    sp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sp.add_argument("--json", action="store_true", help="print the table as JSON")


def _dims(text: str) -> list[int]:
    try:
        dims = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 2,4,8; got {text!r}") from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 2,4,8; got {text!r}")
    return dims


# ------------------------------------------------------------------------------------ generate


def _cmd_generate(ns: argparse.Namespace) -> int:
    from aekit.engine.rundir import atomic_write_bytes
    from aekit.model.sampling import can_sample, generate, is_conditional

    out = _check_suffix(ns.out, (".npy", ".png"), "samples")
    est = _load_run(ns.run)
    family = est._family_name
    density = ns.density
    if ns.label is not None and not can_sample(est):
        raise UsageError(f"--label {ns.label}: family {family!r} has no generative model to condition on a label; "
                         "leave --label out")
    if ns.label is not None and not is_conditional(est):
        raise UsageError(f"--label {ns.label}: this {family!r} run was not trained conditional on labels; train one "
                         "with `aekit train --family vae --conditional` on labelled data, or leave --label out")
    if density == "auto":
        density = "prior" if can_sample(est) else "gaussian"
    if ns.components is not None and density != "gmm":
        raise UsageError(f"--components {ns.components} sets the mixture of --density gmm, but the density is "
                         f"{density}; add --density gmm, or leave --components out")
    if density == "prior" and not can_sample(est):
        raise UsageError(f"family {family!r} has no prior to sample from; choose --density gaussian or gmm (a density "
                         "fitted to the codes of data) or normal (N(0, I) codes decoded)")
    X, source, spec = None, None, None
    data_flags = ns.data is not None or ns.split is not None or ns.limit is not None
    if density in _FITTED:
        try:
            # Default: the split the run was trained on (train for --data).
            spec, split = _run_data(Path(ns.run), ns, None)
        except UsageError as exc:
            if ns.data is not None or "does not record its data set" not in str(exc):
                raise
            what = "has no prior to sample from: generate" if not can_sample(est) else "with --density " + density
            raise UsageError(
                f"family {family!r} {what} decodes draws of a density fitted to the codes of data, and this run does "
                "not record its data set; pass --data NAME_OR_PATH") from None
        ds = _load(spec, split=split, download=ns.download)
        X, source = ds.X, _described(ds, ns.limit)
    elif data_flags:
        why = ("samples from its own prior" if density == "prior"
               else "decodes N(0, I) codes with --density normal")
        raise UsageError(f"family {family!r} {why}; --data, --split and --limit choose the data a density is fitted "
                         "to (--density gaussian or gmm), so leave them out")
    _check_out_file(out, ns, spec)
    g = generate(est, ns.n, X, density=density, n_components=ns.components or 10, random_state=ns.seed, source=source,
                 label=ns.label)
    if out.suffix.lower() == ".png":
        from aekit.report.figures import samples_figure

        atomic_write_bytes(out, samples_figure(g.samples))
    else:
        _write_npy(out, g.samples)
    if ns.json:
        _print_json({"out": str(out), "shape": list(g.samples.shape), "density": g.density, "method": g.how})
    else:
        _out(f"wrote {g.samples.shape[0]} samples to {out}; they were {g.how}")
    return 0


# --------------------------------------------------------------------------------- interpolate


#: The most points an interpolation strip draws in one .png (more would make a picture no viewer opens).
_MAX_STRIP = 100


def _cmd_interpolate(ns: argparse.Namespace) -> int:
    from aekit.engine.rundir import atomic_write_bytes
    from aekit.model.sampling import interpolate

    out = _check_suffix(ns.out, (".npy", ".png"), "interpolations")
    if ns.steps < 2:
        raise UsageError(f"--steps {ns.steps}: a path needs at least 2 points (its two ends)")
    if out.suffix.lower() == ".png" and ns.steps > _MAX_STRIP:
        raise UsageError(f"--steps {ns.steps} is too many for one .png strip; use at most {_MAX_STRIP} with a .png, or "
                         "write every point to a .npy")
    est = _load_run(ns.run)
    spec, split = _run_data(Path(ns.run), ns, "all")
    ds = _load(spec, split=split, download=ns.download)
    n = len(ds)
    bad = [i for i in ns.pair if not 0 <= i < n]
    if bad:
        raise UsageError(f"--pair {ns.pair[0]} {ns.pair[1]}: index {bad[0]} is out of range for {_described(ds, ns.limit)}"
                         f"; give indices from 0 to {n - 1}")
    _check_out_file(out, ns, spec)
    i, j = ns.pair
    path = interpolate(est, ds.X[i], ds.X[j], steps=ns.steps, method=ns.method)
    if out.suffix.lower() == ".png":
        from aekit.report.figures import image_rows_figure, samples_figure

        title = f"{ns.method} interpolation from sample {i} to sample {j} ({ds.name})"
        png = (image_rows_figure([(ns.method, path)], title=title) if path.ndim == 4
               else samples_figure(path, title=title))
        atomic_write_bytes(out, png)
    else:
        _write_npy(out, path)
    if ns.json:
        _print_json({"out": str(out), "shape": list(path.shape), "pair": [i, j], "method": ns.method,
                     "data": ds.name, "split": ds.split})
    else:
        _out(f"wrote a {ns.method} interpolation of {ns.steps} steps between samples {i} and {j} "
             f"({_described(ds, ns.limit)}) to {out}")
    return 0


# --------------------------------------------------------------------------------------- sweep


def _cmd_sweep(ns: argparse.Namespace) -> int:
    from aekit.apps.generation import bottleneck_sweep, check_sweep_dir, sweep_params
    from aekit.model.registry import get_family
    from aekit.workflow.data import DataSpec

    try:
        get_family(ns.family)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if len(set(ns.latent_dims)) != len(ns.latent_dims):
        raise UsageError(f"--latent-dims {','.join(map(str, ns.latent_dims))} repeats a size; give each code size once")
    try:
        check_sweep_dir(ns.out, ns.latent_dims, ns.overwrite)  # before any training
    except ValueError as exc:
        raise UsageError(f"--out {exc}".replace("overwrite=True (--overwrite)", "--overwrite")) from None
    spec = DataSpec.of(_data_spec(ns.data, ns.data_dir, "train", ns.limit, _label_column(ns.label_column)))
    try:  # every size and setting checked against the data before the first run trains
        sweep_params(ns.family, ns.latent_dims, spec.load(download=ns.download).X, epochs=ns.epochs)
    except ValueError as exc:
        raise UsageError(str(exc).replace("epochs=", "--epochs ").replace("leave epochs out", "leave --epochs out")) from None
    quality: Any = None
    if ns.quality:
        from aekit.report.quality import SampleQuality

        train = spec.load(download=ns.download)
        if train.y is None or train.X.ndim != 4:
            raise UsageError(f"--quality trains a classifier of labelled images; {train.name} is not labelled images, "
                             "so leave --quality out")
        _info(f"training the sample-quality classifier ({ns.quality_epochs} epochs)", ns.quiet)
        quality = SampleQuality(max_epochs=ns.quality_epochs, random_state=ns.seed, device="cpu").fit(train.X, train.y)
    res = bottleneck_sweep(ns.family, ns.latent_dims, spec, ns.out, params={"verbose": 0} if ns.quiet else None,
                           epochs=ns.epochs, quality=quality,
                           overwrite=ns.overwrite, download=ns.download, random_state=ns.seed,
                           log=lambda s: _info(s, ns.quiet))
    if ns.json:
        import dataclasses

        _print_json({"page": str(res.page.resolve()), "table": str(res.table), "frechet_floor": res.floor,
                     "rows": [dataclasses.asdict(r) for r in res.rows]})
    else:
        metric = res.rows[0].metric
        _out(f"{'d':>4}  {'test ' + metric:>22}  {'PCA':>10}" + ("  frechet" if quality is not None else ""))
        for r in res.rows:
            q = f"  {r.frechet:7.4g}" if quality is not None else ""
            _out(f"{r.latent_dim:>4}  {r.test_error:>22.5g}  {r.pca_error:>10.5g}{q}")
        _out(f"page: {res.page.resolve()}")
    return 0
