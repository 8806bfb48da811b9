"""The commands that use a trained run: list, evaluate, encode, reconstruct, generate, report."""


from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aekit.cli.common import (
    UsageError,
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

    data = Path(str(spec["name"])) if spec is not None else None
    if data is not None and data.is_file() and out.exists() and out.samefile(data):
        raise UsageError(f"--out {out} is this command's input data; write the result to another file")
    run = Path(ns.run)
    if run.is_dir() and out.resolve().parent == run.resolve() and any(fnmatch.fnmatchcase(out.name, p) for p in RUN_FILES):
        raise UsageError(f"--out {out} is a file of the run {run} itself; write the result to another file")
    if out.exists() and not getattr(ns, "overwrite", False):
        raise UsageError(f"--out {out} already exists; pass --overwrite to replace it, or choose another file")


def _cmd_list(ns: argparse.Namespace) -> int:
    from aekit.model.registry import families

    fams = families()
    if ns.json:
        _print_json([
            {"name": n, "description": i.description, "capabilities": sorted(i.capabilities),
             "estimator": i.estimator.__name__}
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


def _cmd_evaluate(ns: argparse.Namespace) -> int:
    from aekit.report.metrics import reconstruction_metrics

    est = _load_run(ns.run)
    spec, split = _run_data(Path(ns.run), ns, "test")
    ds = _load_eval_data(spec, split, ns.split is not None, ns.download)
    m = reconstruction_metrics(ds.X, est.reconstruct(ds.X))
    if ns.json:
        _print_json({**m, "data": ds.name, "split": ds.split})
    else:
        _out(f"{ds.name} ({ds.split} split, {len(ds)} samples)")
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
        _out(f"wrote codes of shape {Z.shape} ({ds.name}, {ds.split} split) to {out}")
    return 0


def _cmd_reconstruct(ns: argparse.Namespace) -> int:
    from aekit.engine.rundir import atomic_write_bytes
    from aekit.report.metrics import reconstruction_metrics

    out = _check_suffix(ns.out, (".npy", ".png"), "reconstructions")
    est = _load_run(ns.run)
    spec, split = _run_data(Path(ns.run), ns, "all")
    ds = _load(spec, split=split, download=ns.download)
    _check_out_file(out, ns, spec)
    R = est.reconstruct(ds.X)
    m = reconstruction_metrics(ds.X, R)
    if out.suffix.lower() == ".png":
        from aekit.report.html import reconstruction_figure

        atomic_write_bytes(out, reconstruction_figure(
            ds.X[: ns.n], R[: ns.n], n=ns.n, source=f"{ds.name}, {ds.split}"))
    else:
        _write_npy(out, R)
    if ns.json:
        _print_json({"out": str(out), "shape": list(R.shape), "data": ds.name, "split": ds.split, "metrics": m})
    else:
        what = f"{min(ns.n, len(ds))} pairs" if out.suffix.lower() == ".png" else f"reconstructions of shape {R.shape}"
        _out(f"wrote {what} ({ds.name}, {ds.split} split) to {out}; sq_err_per_image {m['sq_err_per_image']:.5g}")
    return 0


def _cmd_generate(ns: argparse.Namespace) -> int:
    from aekit.engine.rundir import atomic_write_bytes
    from aekit.report.html import decoder_samples

    out = _check_suffix(ns.out, (".npy", ".png"), "samples")
    est = _load_run(ns.run)
    X, source, spec = None, None, None
    if not callable(getattr(est, "sample", None)):
        run = Path(ns.run)
        try:
            spec, split = _run_data(run, ns, None)
        except UsageError:
            raise UsageError(
                f"family {est._family_name!r} has no prior to sample from: generate decodes draws of a Gaussian "
                "fitted to the codes of data, and this run does not record its data set; pass --data NAME_OR_PATH"
            ) from None
        ds = _load(spec, split=split, download=ns.download)
        X, source = ds.X, f"{ds.name}, {ds.split} split"
    _check_out_file(out, ns, spec)
    S, how = decoder_samples(est, ns.n, X, seed=ns.seed, source=source)
    if out.suffix.lower() == ".png":
        from aekit.report.html import samples_figure

        atomic_write_bytes(out, samples_figure(S))
    else:
        _write_npy(out, S)
    if ns.json:
        _print_json({"out": str(out), "shape": list(S.shape), "method": how})
    else:
        _out(f"wrote {S.shape[0]} samples to {out}; they were {how}")
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


