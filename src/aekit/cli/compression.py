"""The compression commands: ``compress`` (samples to an entropy-coded file) and ``decompress`` (back).

The codec's probability model is fitted to the codes of the run's own training data the first time and
kept in the run as ``codec.json``; a run that cannot hold it (a model saved from Python) fits it again,
deterministically, each time. Everything is read and checked before anything is written.
"""

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
    _info,
    _load,
    _out,
    _positive_float,
    _print_json,
    _run_data,
    _write_npy,
)

_REPORT_SAMPLES = 100  # samples the report's rate-distortion curve is measured on: enough, and fast
_REPORT_FACTORS = (8.0, 4.0, 2.0, 1.0, 0.5, 0.25)  # the curve's steps, as multiples of --step


def add_parsers(add: AddParser) -> None:
    """Add ``compress`` and ``decompress`` to the main parser (``add`` is its sub-parser factory)."""
    sp = add("compress", "compress samples into an entropy-coded file with a trained run",
             "Encode samples with a trained run, quantize the codes with --step and range-code them under a "
             "probability model fitted to the codes of the run's training data (kept in the run as codec.json). "
             "--residual-step adds a refinement layer: the residual of every value, quantized with that step "
             "(every decoded value then lies within half of it of the input). The file holds a versioned header "
             "naming the model, the coded data and a checksum; its size is the rate.")
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default=_TRANSFORM_SPLIT, split_help="split to compress")
    sp.add_argument("--out", required=True, metavar="FILE", help="the compressed file to write")
    sp.add_argument("--step", type=_positive_float, default=1.0, metavar="S",
                    help="quantization step of the codes, in units of a typical code unit's spread (of the trained "
                         "step for a rate-distortion model); smaller gives more bits and less distortion (default: 1.0)")
    sp.add_argument("--residual-step", type=_positive_float, default=None, metavar="D",
                    help="step of the refinement layer in the data's units, e.g. 0.05 for pixels in [0, 1] "
                         "(default: none, the codes alone)")
    sp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")

    sp = add("decompress", "restore the samples of a file written by `aekit compress`",
             "Decode a file written by `aekit compress` with the same run. --out is a .npy array, or a folder that "
             "receives one PNG per image (00000.png, 00001.png, ...). A file that is not aekit's, is truncated or "
             "corrupt, or was written with another model is refused, and nothing is written.")
    sp.add_argument("run", metavar="RUN", help="run directory")
    sp.add_argument("file", metavar="FILE", help="the compressed file")
    sp.add_argument("--out", required=True, metavar="NPY_OR_DIR", help="a .npy file or a folder for PNG images")
    sp.add_argument("--data-dir", default=None, metavar="DIR",
                    help="where the run's data set is, when the run keeps no codec.json and it must be fitted again")
    sp.add_argument("--overwrite", action="store_true", help="replace existing output files")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")


def _code_model(run: Path, est: Any, ns: argparse.Namespace, fallback: dict[str, Any] | None = None) -> Any:
    """The run's ``codec.json`` when it fits this model; else fitted to the run's training data (and kept)."""
    from aekit.apps.compression import CODEC_FILE, CodeModel, fit_code_model, model_fingerprint
    from aekit.engine.rundir import run_owns

    path = run / CODEC_FILE
    if path.is_file():
        try:
            cm = CodeModel.load(path)
        except ValueError:
            cm = None  # unreadable: fitted again below and replaced
        if cm is not None and cm.model_sha256 == model_fingerprint(est):
            return cm
    plain = argparse.Namespace(data=None, data_dir=getattr(ns, "data_dir", None), label_column=None, limit=None,
                               split=None)
    try:
        spec, split = _run_data(run, plain, None)
    except UsageError:
        if fallback is None:
            raise UsageError(f"{run} keeps no {CODEC_FILE} and does not record its training data, so the codec's "
                             "probability model cannot be fitted again; decompress with the run directory that "
                             "compressed the file") from None
        spec, split = fallback, "train"
    ds = _load(spec, split=split, download=getattr(ns, "download", False))
    cm = fit_code_model(est, ds.X)
    if run_owns(run, CODEC_FILE):
        cm.save(path)
    return cm


def _cmd_compress(ns: argparse.Namespace) -> int:
    import numpy as np

    from aekit.apps.compression import compress, decompress, finest_steps, rate_distortion
    from aekit.engine.rundir import atomic_write_bytes

    run = Path(ns.run)
    est = _load_run(ns.run)
    spec, split = _run_data(run, ns, "all")
    out = Path(ns.out)
    _check_out_file(out, ns, spec)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give the path of the file to write")
    ds = _load(spec, split=split, download=ns.download)
    cm = _code_model(run, est, ns, fallback=spec)
    fine, rfine = finest_steps(cm)
    if ns.step < fine:
        raise UsageError(f"--step {ns.step:g} is too small for the range coder with this run's codes; use --step "
                         f">= {fine:.3g}")
    if ns.residual_step is not None and ns.residual_step < rfine:
        raise UsageError(f"--residual-step {ns.residual_step:g} is too small for the range coder; use "
                         f"--residual-step >= {rfine:.3g}")
    try:
        data = compress(est, ds.X, code_model=cm, step=ns.step, residual_step=ns.residual_step)
    except ValueError as exc:
        raise UsageError(f"--data: {exc}") from None
    R = decompress(est, data, code_model=cm)
    X = np.asarray(ds.X, np.float64).reshape(R.shape)
    mse = float(np.mean((R - X) ** 2))
    psnr = 10 * np.log10((cm.high - cm.low) ** 2 / mse) if mse > 0 else float("inf")
    atomic_write_bytes(out, data)
    n = len(ds.X)
    summary = {"command": "compress", "input": _described(ds, ns.limit), "out": str(out), "samples": n,
               "bytes": len(data), "bits_per_sample": 8 * len(data) / n, "psnr": psnr, "step": ns.step,
               "residual_step": ns.residual_step}
    sub = ds.X[:_REPORT_SAMPLES]
    # The curve's points the coder can take (a --step near the finest leaves out the finer ones).
    rows = rate_distortion(est, sub, code_model=cm, steps=[ns.step * f for f in _REPORT_FACTORS if ns.step * f >= fine])
    base = ns.residual_step if ns.residual_step is not None else 0.05 * (cm.high - cm.low)
    rows += rate_distortion(est, sub, code_model=cm, steps=[ns.step],
                            residual_steps=[base * f for f in (4, 2, 1, 0.5) if base * f >= rfine])
    _report_section(run, est, cm, sub, rows, ns)
    if ns.json:
        _print_json(summary)
        return 0
    _info(f"aekit: compress: {summary['input']} -> {out}")
    _out(f"{n} samples, {len(data)} bytes, {summary['bits_per_sample']:.1f} bits per sample, PSNR {psnr:.2f} dB")
    return 0


def _report_section(run: Path, est: Any, cm: Any, X: Any, rows: list[dict[str, Any]], ns: argparse.Namespace) -> None:
    from aekit.apps.compression import compress, decompress, rate_distortion_figure
    from aekit.report.html import add_report_section

    pair = None
    shape = tuple(est.sample_shape_)
    if len(shape) == 3 and shape[0] in (1, 3):
        import numpy as np

        head = np.asarray(X[:10]).reshape(-1, *shape)  # images may come as flat rows
        pair = (head, decompress(est, compress(est, head, code_model=cm, step=ns.step,
                                               residual_step=ns.residual_step), code_model=cm))
    png = rate_distortion_figure(rows, pair, title=f"Rate and distortion on {len(X)} samples")
    table = [{"step": r["step"], "refinement step": "-" if r["residual_step"] is None else f"{r['residual_step']:.3g}",
              "bits per sample": round(float(r["bits_per_sample"]), 1), "PSNR dB": round(float(r["psnr"]), 2)}
             for r in rows]
    add_report_section(run, "compression", "Learned compression",
                       png, f"Bits per sample (file sizes of aekit compress on the first {len(X)} samples, headers "
                       f"included) against PSNR: the codes alone at quantization steps around --step {ns.step:g}, and "
                       f"with the refinement layer at --step {ns.step:g} and four refinement steps"
                       + ("; below, originals and their decodings as compressed." if pair else "."), table=table)


def _cmd_decompress(ns: argparse.Namespace) -> int:
    import numpy as np

    from aekit.apps.compression import decompress
    from aekit.engine.rundir import atomic_write_bytes, is_run_dir

    run = Path(ns.run)
    est = _load_run(ns.run)
    src = Path(ns.file)
    if not src.is_file():
        raise UsageError(f"FILE {src} does not exist or is not a file; give a file written by aekit compress")
    out = Path(ns.out)
    to_npy = out.suffix.lower() == ".npy"
    if out.exists() and out.samefile(src):
        raise UsageError(f"--out {out} is the compressed file itself; write the samples to another file")
    if out.exists() and out.is_dir() and is_run_dir(out):
        raise UsageError(f"--out {out} is an aekit run; write the images to another folder")
    if to_npy:
        _check_out_file(out, ns, None)
    elif out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; give a .npy path or a folder for the images")
    data = src.read_bytes()
    cm = _code_model(run, est, ns)
    R = decompress(est, data, code_model=cm, name=str(src))
    if to_npy:
        _write_npy(out, R)
    else:
        images = R.reshape(R.shape[0], *est.sample_shape_)
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise UsageError(f"--out {out}: the samples have shape {tuple(est.sample_shape_)}, not images; give a "
                             ".npy path")
        names = [f"{i:05d}.png" for i in range(len(images))]
        taken = [n for n in names if (out / n).exists()]
        if taken and not ns.overwrite:
            raise UsageError(f"--out {out} already holds {', '.join(taken[:3])}{' ...' if len(taken) > 3 else ''}; "
                             "pass --overwrite to replace them, or choose another folder")
        from aekit.apps.compression import png_bytes

        lo, hi = cm.low, cm.high
        out.mkdir(parents=True, exist_ok=True)
        for name, img in zip(names, images, strict=True):
            atomic_write_bytes(out / name, png_bytes((img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)))
    summary = {"command": "decompress", "file": str(src), "out": str(out), "samples": int(R.shape[0]),
               "shape": list(R.shape)}
    if ns.json:
        _print_json(summary)
        return 0
    _info(f"aekit: decompress: {src} ({len(data)} bytes) -> {out}")
    _out(f"{R.shape[0]} samples of shape {tuple(R.shape[1:])}")
    return 0
