"""``aekit train`` and ``aekit demo``."""


from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aekit.cli.common import (
    _DATA_KEYS,
    _NOT_FLAGS,
    _RESUME_OK,
    DEMO_PARAMS,
    TRAIN_ALIASES,
    UsageError,
    _data_spec,
    _info,
    _label_column,
    _metrics_text,
    _out,
    _Parser,
    _parser,
    _positive_int,
    _print_json,
    _tupled,
)
from aekit.cli.flags import ParamSpec, add_family_flags, family_params

if TYPE_CHECKING:
    from aekit.workflow.train import RunResult

# ---------------------------------------------------------------------------------- training


def _train_parser(info: Any | None) -> _Parser:
    from aekit.model.registry import families

    names = ", ".join(families())
    epilog = (
        f"families: {names}\n"
        "Run `aekit train --family NAME --help` to see that family's hyperparameter flags.\n\n"
        "examples:\n"
        "  aekit train --family autoencoder --data digits --latent-dim 2 --epochs 100 --out runs/ae\n"
        "  aekit train --family autoencoder --config ae.toml --out runs/ae2     # flags override the file\n"
        "  aekit train --resume runs/ae                                          # continue a killed run"
    )
    p = _parser(
        "aekit train", "Train a model of one family and write its run directory: config.json, model.safetensors, "
        "history.csv, metrics.json and report.html.", epilog=epilog, argument_default=argparse.SUPPRESS,
    )
    g = p.add_argument_group("model")
    g.add_argument("--family", metavar="NAME", help=f"the family to train ({names})")
    g.add_argument(
        "--config", metavar="FILE.toml",
        help="TOML file with a flat table of the same keys as the flags, in snake_case (latent_dim = 2); flags win",
    )
    presets = info.estimator.presets() if info is not None else []
    g.add_argument(
        "--preset", metavar="NAME",
        help="a named parameter set of the family that fills the flags (" + (", ".join(presets) or "none") + "); "
        "--config and explicit flags win" if info is not None else "a named parameter set of the family",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", metavar="NAME_OR_PATH",
                   help="digits (default), mnist, fashion-mnist, or a .npy/.npz/.csv file or folder of images")
    d.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST/Fashion-MNIST IDX files")
    d.add_argument("--download", action="store_true", help="download MNIST/Fashion-MNIST if missing (checksums verified)")
    d.add_argument("--split", choices=("train", "test", "all"), help="split to train on (default: train)")
    d.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N samples (quick runs)")
    d.add_argument("--label-column", metavar="COL", help="label column of a .csv file (index or header name)")
    t = p.add_argument_group("training")
    own = set(info.estimator().get_params(deep=False)) if info is not None else None

    def unless_absent(name: str, text: str) -> str:
        """The help of a training flag, or that the family has no such setting (the flag is then refused)."""
        if own is None or name in own:
            return text
        assert info is not None
        return f"not used by family {info.name!r}, which has no {name}"

    t.add_argument("--epochs", type=_positive_int, metavar="N", help=_epochs_help(info))
    t.add_argument("--batch-size", type=_positive_int, metavar="N", help=unless_absent(
        "batch_size", "minibatch size (batch_size" + _default(info, "batch_size") + ")"))
    t.add_argument("--lr", type=float, metavar="X", help=unless_absent(
        "learning_rate", "learning rate of Adam (learning_rate" + _default(info, "learning_rate") + ")"))
    t.add_argument("--device", metavar="D", help=unless_absent(
        "device", "auto, cpu, cuda or cuda:N (device" + _default(info, "device") + ")"))
    t.add_argument("--seed", type=int, metavar="N", help=unless_absent(
        "random_state", "random_state: seeds initialization, batches and the split (default: a fresh seed, recorded)"))
    t.add_argument("--threads", type=_positive_int, metavar="N", help=unless_absent(
        "threads", "CPU threads of PyTorch while training (threads; default: chosen from the model and batch size)"))
    r = p.add_argument_group("run")
    r.add_argument("--out", metavar="DIR", help="run directory to write (required)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace the aekit run in --out (only the files that run lists are removed)")
    r.add_argument("--resume", nargs="?", const=True, metavar="RUN",
                   help="continue the interrupted run RUN (or --out) from its last checkpoint and complete it; "
                        "with a larger --epochs, train a finished run further")
    r.add_argument("--allow-data-change", action="store_true",
                   help="with --resume: continue even though the training data changed since the run started")
    r.add_argument("--eval-limit", type=_eval_limit, metavar="N|all",
                   help="compute the metrics and figures on at most N random samples of each split, or on all of them "
                        "(default: 10000, so that evaluating stays quick on large data)")
    r.add_argument("--quiet", action="store_true", help="no progress on stderr")
    r.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    r.add_argument("--debug", action="store_true", help="show tracebacks")
    if info is not None:
        fam = p.add_argument_group(f"{info.name} parameters ({info.description})")
        taken = {a for action in p._actions for a in action.option_strings}
        specs = family_params(info.estimator)
        # A family parameter named like a common flag keeps the common one.
        add_family_flags(fam, specs, {*_NOT_FLAGS, *(s.name for s in specs if s.flag in taken)})
    return p


def _eval_limit(text: str) -> int | str:
    if text.strip().lower() == "all":
        return "all"
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive number of samples or 'all', got {text!r}") from None


def _default(info: Any | None, name: str) -> str:
    """``, default: VALUE`` of a family's parameter, or nothing when the family (or its default) is unknown."""
    if info is None:
        return ""
    spec = next((s for s in family_params(info.estimator) if s.name == name), None)
    return "" if spec is None else f", default: {spec.default_text}"


def _epochs_help(info: Any | None) -> str:
    """What --epochs means for the family (from its declaration), with the default."""
    if info is None:
        return "maximum number of epochs (max_epochs); what an epoch counts depends on the family"
    decl = info.estimator.epochs(info.estimator().get_params(deep=False))
    if not decl.applies:
        return f"not used: {decl.instead}"
    return f"maximum number of {decl.counts} (max_epochs{_default(info, 'max_epochs')})"


def _check_epochs(info: Any, params: dict[str, Any]) -> None:
    """Refuse --epochs, the same way for every family, where the family's epochs do not apply."""
    full = {**info.estimator().get_params(deep=False), **params}
    decl = info.estimator.epochs(full)
    if not decl.applies:
        raise UsageError(f"--epochs does not apply: {decl.instead}")


def _pre_parse(args: list[str]) -> argparse.Namespace:
    pre = _Parser(add_help=False, allow_abbrev=False, argument_default=argparse.SUPPRESS)
    pre.add_argument("--family")
    pre.add_argument("--config")
    pre.add_argument("--resume", nargs="?", const=True)
    pre.add_argument("--out")
    ns, _ = pre.parse_known_args(args)
    return ns


def _read_toml(path: str) -> dict[str, Any]:
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        with p.open("rb") as f:
            table = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path} is not valid TOML: {exc}") from None
    nested = [k for k, v in table.items() if isinstance(v, dict)]
    if nested:
        raise UsageError(f"--config {path}: expected a flat table of keys, found section(s) {nested}; remove the [headers]")
    return table


def _config_values(table: dict[str, Any], specs: list[ParamSpec], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a TOML table into family parameters and data/alias settings; unknown keys are an error."""
    by_name = {s.name: s for s in specs}
    alias_of = {alias: name for name, alias in TRAIN_ALIASES.items() if name in by_name}
    valid = sorted({*by_name, *alias_of, "family", *_DATA_KEYS})
    params: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, value in table.items():
        if key in ("family", *_DATA_KEYS):
            other[key] = value
            continue
        name = alias_of.get(key, key)
        if name in params:
            other_key = next(k for k in table if alias_of.get(k, k) == name and k != key)
            raise UsageError(f"--config {path}: {other_key!r} and {key!r} set the same parameter ({name}); keep one")
        if name not in by_name:
            hint = f" (did you mean {key.replace('-', '_')!r}?)" if "-" in key else ""
            raise UsageError(f"--config {path}: unknown key {key!r}{hint}; valid keys are: {', '.join(valid)}")
        try:
            params[name] = by_name[name].from_toml(value)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--config {path}: {key}: {exc}") from None
    return params, other


def _cmd_train(args: list[str]) -> int:
    from aekit.engine.rundir import run_config

    pre = _pre_parse(args)
    resume = getattr(pre, "resume", None)
    if resume is not None:
        run_arg = resume if isinstance(resume, str) else getattr(pre, "out", None)
        if run_arg is None:
            raise UsageError("--resume needs the run directory: aekit train --resume RUN")
        run = Path(run_arg)
        out_arg = getattr(pre, "out", None)
        if isinstance(resume, str) and out_arg is not None and Path(out_arg).resolve() != run.resolve():
            raise UsageError(f"--resume {run_arg} continues that run, but --out {out_arg} names another directory; "
                             "leave --out out")
        saved = run_config(run) if run_arg.strip() else None
        if saved is None:
            raise UsageError(f"--resume {run_arg}: not an aekit run directory (no config.json written by aekit); "
                             "start a new run with --out instead")
        run_family = str(saved.get("family"))
        if getattr(pre, "family", run_family) != run_family:
            raise UsageError(f"--family {pre.family} does not match the run's family {run_family!r}")
        info = _family(run_family)
        ns = _train_parser(info).parse_args(args)
        extra = sorted(k for k in vars(ns) if k not in _RESUME_OK | {"allow_data_change", "download", "eval_limit"})
        if extra:
            flags = ", ".join("--" + k.replace("_", "-") for k in extra)
            raise UsageError(
                f"--resume continues the run exactly as configured in {run / 'config.json'}; only --epochs, --device, "
                f"--threads, --eval-limit and --quiet may change, not {flags}"
            )
        valid = info.estimator().get_params(deep=False)
        if hasattr(ns, "epochs"):
            _check_epochs(info, {k: _tupled(v) for k, v in dict(saved.get("params") or {}).items() if k in valid})
        for name, flag in (("max_epochs", "epochs"), ("device", "device")):
            if hasattr(ns, flag) and name not in valid:
                _set_param(info, {}, name, getattr(ns, flag), "--" + flag)
        if hasattr(ns, "epochs"):
            _check_epochs(info, {k: _tupled(v) for k, v in dict(saved.get("params", {})).items()})
        quiet = bool(getattr(ns, "quiet", False))
        from aekit.workflow.train import resume_run

        return _report(info, ns, lambda log: _call(lambda: resume_run(
            run, max_epochs=getattr(ns, "epochs", None), device=getattr(ns, "device", None),
            verbose=0 if quiet and "verbose" in valid else None, allow_data_change=bool(getattr(ns, "allow_data_change", False)),
            download=bool(getattr(ns, "download", False)), threads=getattr(ns, "threads", None),
            eval_limit=getattr(ns, "eval_limit", None), log=log), run))

    family_name: str | None = getattr(pre, "family", None)
    table: dict[str, Any] = {}
    if hasattr(pre, "config"):
        table = _read_toml(pre.config)
        if family_name is None and "family" in table:
            family_name = str(table["family"])
    if family_name is None:
        if any(a in ("-h", "--help") for a in args):
            _train_parser(None).print_help()
            return 0
        raise UsageError("--family is required (see `aekit list`), or a family key in --config")
    info = _family(family_name)
    parser = _train_parser(info)
    ns = parser.parse_args(args)
    if hasattr(ns, "allow_data_change"):
        raise UsageError("--allow-data-change lets a resumed run continue on changed data; it applies with --resume "
                         "only, so leave it out")
    specs = family_params(info.estimator)
    file_params, file_other = _config_values(table, specs, getattr(pre, "config", "")) if table else ({}, {})
    if "family" in file_other and str(file_other["family"]) != info.name:
        raise UsageError(f"--family {info.name} contradicts family = {file_other['family']!r} in {pre.config}")

    params: dict[str, Any] = {}
    if hasattr(ns, "preset"):  # a preset fills the parameters; the file and the flags win
        try:
            params.update(info.estimator.preset_params(ns.preset))
        except ValueError as exc:
            raise UsageError(f"--preset {ns.preset}: {exc}") from None
    params.update(file_params)
    for s in specs:  # flags override the file
        if s.name not in _NOT_FLAGS and hasattr(ns, s.name):
            params[s.name] = getattr(ns, s.name)
    if hasattr(ns, "epochs") or "max_epochs" in file_params:
        _check_epochs(info, params)
    for name, alias in TRAIN_ALIASES.items():
        if hasattr(ns, alias):
            _set_param(info, params, name, getattr(ns, alias), "--" + alias.replace("_", "-"))
    if getattr(ns, "quiet", False):
        if "verbose" in {s.name for s in specs}:
            params["verbose"] = 0

    def pick(key: str, default: Any) -> Any:
        return getattr(ns, key, file_other.get(key, default))

    if not hasattr(ns, "out"):
        raise UsageError("--out DIR is required: the run directory to write")
    limit = pick("limit", None)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UsageError(f"limit must be a positive integer, got {limit!r}")
    label_column = pick("label_column", None)
    if isinstance(label_column, str):
        label_column = _label_column(label_column)
    split = pick("split", "train")
    if split not in ("train", "test", "all"):
        raise UsageError(f"split={split!r} must be train, test or all")
    data_dir = pick("data_dir", None)
    if data_dir is not None and not isinstance(data_dir, str):
        raise UsageError(f"data_dir={data_dir!r} must be a path (a string)")
    download = pick("download", False)
    if not isinstance(download, bool):  # a string "false" in a file is not False
        raise UsageError(f"download={download!r} must be true or false (a TOML boolean, without quotes)")
    spec = _data_spec(str(pick("data", "digits")), data_dir, str(split), limit, label_column)
    ns.download = download
    if "random_state" in params:
        seed = params["random_state"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
            raise UsageError(f"--seed {seed!r} must be a whole number from 0 to 2**32 - 1 (4294967295)")
    if "device" in params:
        from aekit.core.devices import resolve_device

        try:
            resolve_device(str(params["device"]))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return _run_training(info, params, spec, ns.out, ns)


def _family(name: str) -> Any:
    from aekit.model.registry import get_family

    try:
        return get_family(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _set_param(info: Any, params: dict[str, Any], name: str, value: Any, flag: str) -> None:
    valid = info.estimator().get_params(deep=False)
    if name not in valid:
        raise UsageError(
            f"{flag} sets {name}, which family {info.name!r} does not have (it is not trained by the gradient loop); "
            f"its parameters are: {', '.join(valid)}"
        )
    params[name] = value


def _run_training(info: Any, params: dict[str, Any], spec: dict[str, Any], out: str, ns: argparse.Namespace) -> int:
    """Check the parameters (a usage error), then train the run end to end and print the result."""
    try:
        est = info.estimator(**params)
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    from aekit.workflow.train import EVAL_LIMIT, train_run

    return _report(info, ns, lambda log: _call(lambda: train_run(
        info.name, params, spec, out, overwrite=bool(getattr(ns, "overwrite", False)),
        download=bool(getattr(ns, "download", False)), threads=getattr(ns, "threads", None),
        eval_limit=getattr(ns, "eval_limit", EVAL_LIMIT), log=log), Path(out)))


def _call(fn: Callable[[], RunResult], out: Path) -> RunResult | int:
    """Run ``fn``; refusals become usage errors naming flags; Ctrl-C says how to continue."""
    from aekit.engine.rundir import HISTORY_FILE, RunDirError, run_config

    try:
        return fn()
    except RunDirError as exc:
        raise UsageError(exc.cli_message()) from None
    except KeyboardInterrupt:
        if run_config(out) is not None:
            rows = max(0, len((out / HISTORY_FILE).read_text().splitlines()) - 1) if (out / HISTORY_FILE).is_file() else 0
            kept = f"{rows} epoch{'s' if rows != 1 else ''} of training are kept" if rows else "the run is kept"
            msg = f"interrupted; {kept} in {out}. Continue with: aekit train --resume {out}"
        else:
            msg = "interrupted before the run was started; run the same command again"
        print(f"aekit: {msg}", file=sys.stderr, flush=True)
        return 130


def _report(info: Any, ns: argparse.Namespace, go: Callable[[Callable[[str], None]], RunResult | int]) -> int:
    quiet = bool(getattr(ns, "quiet", False))
    result = go(lambda line: _info(f"aekit: {line}", quiet))
    if isinstance(result, int):
        return result
    est = result.estimator
    # Epochs by stage, as the family declares them; a family not trained by epochs was "fitted".
    stages = est.epochs_by_stage() if type(est).epochs(est.get_params(deep=False)).applies else []
    if stages:
        trained = ", ".join(f"{_epochs(n)} of {name}" for name, n in stages) if len(stages) > 1 else _epochs(stages[0][1])
        _info(f"aekit: trained {trained} in {result.train_seconds:.1f} s", quiet)
    else:
        _info(f"aekit: fitted in {result.train_seconds:.1f} s", quiet)
    if getattr(ns, "json", False):
        _print_json({
            "run_dir": str(result.run_dir.resolve()), "family": result.family, "epochs": result.epochs,
            "epochs_by_stage": dict(stages), "train_seconds": result.train_seconds, "metrics": result.metrics,
            "report": str(result.report.resolve()),
        })
    else:
        _out(_metrics_text(result.metrics))
        sampled = [f"{m['n_samples']:,} of the {m['n_split']:,} {split} samples" for split, m in result.metrics.items()
                   if isinstance(m.get("n_split"), int) and m.get("n_samples") != m["n_split"]]
        if sampled:
            _out(f"measured on a random {' and '.join(sampled)} (--eval-limit all measures every sample)")
        _out(f"run directory: {result.run_dir.resolve()}")
        _out(f"report: {result.report.resolve()}")
    return 0


def _cmd_demo(ns: argparse.Namespace) -> int:
    from aekit.engine.rundir import run_config
    from aekit.model.registry import get_family

    info = get_family("autoencoder")
    params = dict(DEMO_PARAMS, max_epochs=ns.epochs, verbose=0 if ns.quiet else 1, threads=ns.threads)
    spec = _data_spec("digits", None, "train", None, None)
    existing = run_config(ns.out) if Path(ns.out).is_dir() else None
    if existing is not None:
        data: dict[str, Any] = existing["data"] if isinstance(existing.get("data"), dict) else {}
        demo = existing.get("family") == info.name and Path(str(data.get("name", ""))).name == "digits"
        if not demo:
            raise UsageError(f"--out {ns.out} holds a {existing.get('family')!r} run that is not a demo run; the demo "
                             "replaces only its own runs: choose another --out")
        if not ns.overwrite:
            raise UsageError(f"--out {ns.out} already holds a demo run; pass --overwrite to replace it, choose another "
                             f"--out, or continue it with `aekit train --resume {ns.out}`")
    t0 = time.perf_counter()
    # The demo network is tiny: with several threads, synchronizing them costs more than the work,
    # and on a busy machine several times more (ns.threads defaults to 1).
    code = _run_training(info, params, spec, ns.out, ns)
    if code == 0 and not ns.json:
        _info(f"aekit: demo finished in {time.perf_counter() - t0:.0f} s. Open the report in a browser; then try "
              "another family, e.g. `aekit train --family denoising --data digits --latent-dim 2 --out runs/dae`", ns.quiet)
    return code


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"
