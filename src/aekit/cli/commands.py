"""The commands that use a trained run: list, evaluate, encode, reconstruct, report (generation: cli/generation.py)."""


from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aekit.cli.common import (
    UsageError,
    _check_parent,
    _check_suffix,
    _load,
    _load_eval_data,
    _metrics_text,
    _out,
    _print_json,
    _run_data,
    _write_npy,
)

# ------------------------------------------------------------------------------ other commands


def _check_out_file(out: Path, ns: argparse.Namespace, spec: dict[str, Any] | None) -> None:
    """Refuse to write over one of the command's inputs, or over any existing file without --overwrite."""
    import fnmatch

    from aekit.engine.rundir import RUN_FILES

    _check_parent(out)
    data = Path(str(spec["name"])) if spec is not None else None
    if data is not None and data.is_file() and out.exists() and out.samefile(data):
        raise UsageError(f"--out {out} is this command's input data; write the result to another file")
    run = Path(ns.run)
    if run.is_dir() and out.resolve().parent == run.resolve() and any(fnmatch.fnmatchcase(out.name, p) for p in RUN_FILES):
        raise UsageError(f"--out {out} is a file of the run {run} itself; write the result to another file")
    if out.exists() and not getattr(ns, "overwrite", False):
        raise UsageError(f"--out {out} already exists; pass --overwrite to replace it, or choose another file")


def _cmd_list(ns: argparse.Namespace) -> int:
    # Read from the families' source, not their modules: listing them needs no PyTorch.
    from aekit.model.catalog import catalog

    fams = catalog()
    if ns.json:
        _print_json([
            {"name": n, "description": i.description, "capabilities": sorted(i.capabilities), "estimator": i.estimator}
            for n, i in fams.items()
        ])
        return 0
    width = max(len(n) for n in fams)
    for n, i in fams.items():
        _out(f"{n:<{width}}  {i.description}")
    return 0


def _load_run(run: str) -> Any:
    from aekit.model.loading import load

    return load(run)


def _described(ds: Any, limit: int | None) -> str:
    """The data a command used, as a reader says it: "digits, all 1797 samples", "digits, 360 samples of the test split"."""
    n = len(ds)
    first = "the first " if limit is not None else ""
    if ds.split == "all":
        return f"{ds.name}, {first or 'all '}{n} samples"
    return f"{ds.name}, {first}{n} samples of the {ds.split} split"


def _cmd_evaluate(ns: argparse.Namespace) -> int:
    from aekit.report.metrics import likelihood_metrics, reconstruction_metrics

    est = _load_run(ns.run)
    spec, split = _run_data(Path(ns.run), ns, "test")
    ds = _load_eval_data(spec, split, ns.split is not None, ns.download)
    if ns.nll_samples is not None and not callable(getattr(est, "log_likelihood", None)):
        raise UsageError(f"--nll-samples: family {est._family_name!r} has no likelihood to estimate; leave it out")
    m = reconstruction_metrics(ds.X, est.reconstruct(ds.X), images=ds.kind == "image")
    m.update(likelihood_metrics(est, ds.X, nll_samples=ns.nll_samples))
    m["n_samples"] = m.pop("n_samples")
    if ns.json:
        _print_json({**m, "data": ds.name, "split": ds.split})
    else:
        _out(_described(ds, ns.limit))
        _out(_metrics_text({ds.split: m}))
    return 0


def _cmd_encode(ns: argparse.Namespace) -> int:
    out = _check_suffix(ns.out, (".npy",), "codes")
    est = _load_run(ns.run)
    spec, split = _run_data(Path(ns.run), ns, "all")
    ds = _load(spec, split=split, download=ns.download)
    _check_out_file(out, ns, spec)
    Z = est.transform(ds.X)
    _write_npy(out, Z)
    if ns.json:
        _print_json({"out": str(out), "shape": list(Z.shape), "data": ds.name, "split": ds.split})
    else:
        _out(f"wrote codes of shape {Z.shape} ({_described(ds, ns.limit)}) to {out}")
    return 0


def _cmd_reconstruct(ns: argparse.Namespace) -> int:
    from aekit.engine.rundir import atomic_write_bytes
    from aekit.report.metrics import reconstruction_metrics

    out = _check_suffix(ns.out, (".npy", ".png"), "reconstructions")
    if ns.n is not None and out.suffix.lower() != ".png":
        raise UsageError(f"--n {ns.n} sets the pairs a .png shows, but --out {out} is a .npy of every reconstruction; "
                         "leave --n out, or write a .png")
    est = _load_run(ns.run)
    spec, split = _run_data(Path(ns.run), ns, "all")
    ds = _load(spec, split=split, download=ns.download)
    _check_out_file(out, ns, spec)
    R = est.reconstruct(ds.X)
    m = reconstruction_metrics(ds.X, R, images=ds.kind == "image")
    summary: dict[str, Any] = {"out": str(out), "shape": list(R.shape), "data": ds.name, "split": ds.split}
    if out.suffix.lower() == ".png":
        from aekit.report.figures import reconstruction_figure, reconstruction_pairs

        # The figure shows fewer pairs than asked for when the data are lines (tabular, signals): say so.
        shown = reconstruction_pairs(ds.X, ns.n or 10)
        atomic_write_bytes(out, reconstruction_figure(ds.X[:shown], R[:shown], n=shown, source=_described(ds, ns.limit)))
        summary["pairs_shown"] = shown
        what = (f"a figure of {shown} originals beside their reconstructions" if shown > 1
                else "a figure of 1 original beside its reconstruction")
    else:
        _write_npy(out, R)
        what = f"reconstructions of shape {R.shape}"
    if ns.json:
        _print_json({**summary, "metrics": m})
    else:
        first = next(iter(m))  # the squared error per image or per sample, whichever the data are
        _out(f"wrote {what} ({_described(ds, ns.limit)}) to {out}; {first} {m[first]:.5g} over {len(ds)} samples")
    return 0


def _cmd_report(ns: argparse.Namespace) -> int:
    from aekit.engine.rundir import read_json
    from aekit.report.html import write_report

    run = Path(ns.run)
    est = _load_run(ns.run)
    spec, split = _run_data(run, ns, "test")
    ds = _load_eval_data(spec, split, ns.split is not None, ns.download)
    metrics = None
    if ns.data is None and ns.split is None and ns.limit is None and (run / "metrics.json").is_file():
        saved = read_json(run / "metrics.json")
        metrics = {k: v for k, v in saved.items() if isinstance(v, dict)} or None
    # The latent map and the Gaussian for samples use the training data of the run (or the data given).
    train_ds = ds
    trained_on = str(spec.get("split") or "train") if ns.data is None else ds.split
    if ds.split != trained_on:
        train_ds = _load(spec, split=trained_on, download=ns.download)
    path = write_report(est, ds, run, metrics=metrics, train_dataset=train_ds)
    if ns.json:
        _print_json({"report": str(path.resolve()), "data": ds.name, "split": ds.split})
    else:
        _out(f"report: {path.resolve()}")
    return 0


