"""The ``aekit`` command line.

Commands: ``list``, ``demo``, ``train``, ``evaluate``, ``encode``, ``reconstruct``, ``generate`` and
``report``. The flags of ``aekit train`` are generated from the chosen family's parameter dataclasses
(the single source of truth for names, types and defaults), so a new family gets its flags for free.

Errors print one line, ``aekit: error: <message>``, on stderr and exit with status 2 for a bad
command line (unknown family, option or config key, invalid hyperparameter, an existing run) or 1
for a failure while running (missing or invalid data, a damaged model file, diverged training).
``--debug`` shows the traceback instead. Progress goes to stderr and results to stdout, so
``aekit evaluate RUN --json > metrics.json`` captures only the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import math
import re
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

__all__ = ["main"]

COMMANDS = ("list", "demo", "train", "evaluate", "encode", "reconstruct", "generate", "report")

# Training-loop settings with a short, family-independent flag; the family's own flag is not generated.
TRAIN_ALIASES: dict[str, str] = {
    "max_epochs": "epochs",
    "batch_size": "batch_size",
    "learning_rate": "lr",
    "device": "device",
    "random_state": "seed",
}
# ``verbose`` is set by --quiet.
_NOT_FLAGS = frozenset({*TRAIN_ALIASES, "verbose"})
_DATA_KEYS = ("data", "data_dir", "split", "limit", "label_column", "download")
# What ``--resume`` may change: the rest must match the checkpoint, so it comes from config.json.
_RESUME_OK = frozenset({"resume", "out", "epochs", "device", "quiet", "json", "debug", "threads", "family"})
_RUN_FILES = (
    "model.safetensors", "checkpoint.safetensors", "checkpoint.json", "history.csv", "metrics.json", "report.html",
    "reconstructions.png", "loss.png", "latent.png", "samples.png",
)

# The demo: a 2-D code, so the latent map is the code itself. Early stopping (patience 30) ends it
# near epoch 150-200, about 10 s of training on one CPU core. GELU units reach a lower test error than
# ReLU here (squared error per image 1.87-1.98 vs 2.06 over two seeds; a 2-component PCA gets 3.40).
DEMO_PARAMS: dict[str, Any] = {
    "latent_dim": 2, "hidden_dims": (256, 128), "activation": "gelu", "batch_size": 64, "patience": 30,
    "random_state": 0,
}
DEMO_EPOCHS = 300


class UsageError(Exception):
    """The command line is wrong; exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and never exit from inside ``parse_args``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser(prog: str, description: str, **kw: Any) -> _Parser:
    return _Parser(
        prog=prog, description=description, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter, **kw
    )


def _out(text: str = "") -> None:
    print(text, file=sys.stdout, flush=True)


def _info(text: str, quiet: bool = False) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def _jsonable(obj: Any) -> Any:
    """JSON has no NaN or infinity: write them as null (a perfect PSNR is infinite)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _print_json(obj: Any) -> None:
    _out(json.dumps(_jsonable(obj), indent=2, sort_keys=True))


def _tupled(v: Any) -> Any:
    return tuple(_tupled(x) for x in v) if isinstance(v, list | tuple) else v


# ------------------------------------------------------------------------------ family flags


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter of a family as the command line sees it."""

    name: str
    type: str  # the annotation as written, e.g. "tuple[int, ...] | None"
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def optional(self) -> bool:
        return "None" in _type_parts(self.type)

    @property
    def is_switch(self) -> bool:
        return _type_parts(self.type) == ["bool"]


def _type_parts(type_str: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in type_str:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return [p.replace("NoneType", "None").replace("typing.", "") for p in parts if p]


def _type_string(t: Any) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, type):
        return t.__name__
    return str(t)


def _parse_one(base: str, text: str) -> Any:
    text = text.strip()
    if base == "int":
        return int(text)
    if base == "float":
        return float(text)
    if base == "bool":
        low = text.lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise ValueError(text)
    m = re.fullmatch(r"tuple\[(\w+), \.\.\.\]", base)
    if m:
        return tuple(_parse_one(m.group(1), x) for x in text.split(",") if x.strip())
    m = re.fullmatch(r"tuple\[(.+)\]", base)
    if m:
        kinds = [k.strip() for k in m.group(1).split(",")]
        items = [x for x in text.split(",") if x.strip()]
        if len(items) != len(kinds):
            raise ValueError(text)
        return tuple(_parse_one(k, x) for k, x in zip(kinds, items))
    return text  # "str" and anything this parser does not know: the estimator validates it


def _metavar(spec: ParamSpec) -> str:
    base = [p for p in _type_parts(spec.type) if p != "None"]
    b = base[0] if base else "str"
    m = re.fullmatch(r"tuple\[(\w+), \.\.\.\]", b)
    name = f"{m.group(1).upper()},{m.group(1).upper()},..." if m else b.upper()
    return name


def _converter(spec: ParamSpec) -> Callable[[str], Any]:
    parts = _type_parts(spec.type)
    base = [p for p in parts if p != "None"] or ["str"]

    def convert(text: str) -> Any:
        if spec.optional and text.strip().lower() in ("none", "null"):
            return None
        for b in base:
            try:
                return _parse_one(b, text)
            except ValueError:
                continue
        hint = " (a comma-separated list, e.g. 1000,500,250)" if "tuple" in spec.type else ""
        raise argparse.ArgumentTypeError(f"expected {spec.type}{hint}, got {text!r}")

    convert.__name__ = spec.type
    return convert


def _field_comments(cls: type) -> dict[str, str]:
    """The comment after each field of a config dataclass: the why of its default, shown in --help."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    for line in src.splitlines():
        m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
        if m:
            out.setdefault(m.group(1), m.group(2).strip())
    return out


def family_params(estimator_cls: type) -> list[ParamSpec]:
    """Every hyperparameter of a family, in declaration order, with its type, default and comment."""
    defaults = estimator_cls().get_params(deep=False)
    specs: list[ParamSpec] = []
    for cfg in getattr(estimator_cls, "_param_configs", ()):
        comments = _field_comments(cfg)
        for f in dataclasses.fields(cfg):
            specs.append(ParamSpec(f.name, _type_string(f.type), defaults.get(f.name, f.default), comments.get(f.name, "")))
    known = {s.name for s in specs}
    # Parameters outside the declared dataclasses (a hand-written __init__) are passed as strings.
    specs += [ParamSpec(k, "str", v, "") for k, v in defaults.items() if k not in known]
    return specs


def _fmt_default(v: Any) -> str:
    if isinstance(v, tuple | list):
        return ",".join(str(x) for x in v) or "()"
    return str(v)


# ------------------------------------------------------------------------------------ data


def _data_spec(name: str, data_dir: str | None, split: str, limit: int | None, label_column: Any) -> dict[str, Any]:
    """The data a run was trained on, with paths made absolute so the run can be used from anywhere."""
    from aekit.data import DATASETS

    key = name.strip().lower().replace("_", "-")
    if key not in DATASETS and key != "fashionmnist":
        p = Path(name).expanduser()
        if p.exists():
            name = str(p.resolve())
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser().resolve())
    return {"name": name, "data_dir": data_dir, "split": split, "limit": limit, "label_column": label_column}


def _load(spec: dict[str, Any], *, split: str | None = None, limit: Any = "spec", download: bool = False) -> Any:
    from aekit.data import load_dataset

    return load_dataset(
        spec["name"], split=split or spec.get("split") or "train", data_dir=spec.get("data_dir"), download=download,
        label_column=spec.get("label_column"), limit=spec.get("limit") if limit == "spec" else limit,
    )


def _label_column(text: str | None) -> int | str | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _add_data_args(p: argparse.ArgumentParser, *, split_default: str, split_help: str) -> None:
    g = p.add_argument_group("data (default: the data set the run was trained on)")
    g.add_argument("--data", metavar="NAME_OR_PATH", help="digits, mnist, fashion-mnist, or a .npy/.npz/.csv file or image folder")
    g.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST/Fashion-MNIST IDX files")
    g.add_argument("--download", action="store_true", help="download MNIST/Fashion-MNIST if missing")
    g.add_argument("--split", choices=("train", "test", "all"), default=None, help=f"{split_help} (default: {split_default})")
    g.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N samples")
    g.add_argument("--label-column", metavar="COL", help="label column of a .csv file (index or header name)")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _run_data(run: Path, ns: argparse.Namespace, split: str | None) -> tuple[dict[str, Any], str]:
    """The data spec a command should use: the flags, else the run's own data set.

    ``split`` is the command's default split; None means the split the run was trained on.
    """
    from aekit.runs import CONFIG_FILE, read_json

    cfg = read_json(run / CONFIG_FILE)
    saved = cfg.get("data") if isinstance(cfg.get("data"), dict) else None
    if ns.data is None and saved is None:
        raise UsageError(f"{run} does not record its data set; pass --data NAME_OR_PATH")
    if ns.data is None:
        assert saved is not None
        spec = dict(saved)
        if ns.data_dir is not None:
            spec["data_dir"] = str(Path(ns.data_dir).expanduser().resolve())
        if ns.label_column is not None:
            spec["label_column"] = _label_column(ns.label_column)
    else:
        spec = _data_spec(ns.data, ns.data_dir, split or "train", None, _label_column(ns.label_column))
    spec["limit"] = ns.limit
    return spec, ns.split or split or str(spec.get("split") or "train")


def _load_eval_data(spec: dict[str, Any], split: str, explicit: bool, download: bool, quiet: bool = False) -> Any:
    """Load ``split``; a source without a test split falls back to its training data unless asked for."""
    try:
        return _load(spec, split=split, download=download)
    except ValueError:
        if explicit or split != "test":
            raise
    _info(f"aekit: {spec['name']} has no test split; using its training data", quiet)
    return _load(spec, split="train", download=download)


# --------------------------------------------------------------------------------- writing


def _write_npy(path: Path, arr: np.ndarray) -> None:
    from aekit.runs import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _check_suffix(path: str, allowed: Sequence[str], what: str) -> Path:
    p = Path(path)
    if p.suffix.lower() not in allowed:
        raise UsageError(f"--out {path}: {what} are written as {' or '.join(allowed)} files; give a path ending in one of them")
    if p.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file path")
    return p


def _metrics_text(metrics: dict[str, dict[str, Any]]) -> str:
    from aekit.report import _fmt

    sections = list(metrics)
    keys: list[str] = []
    for s in sections:
        keys += [k for k in metrics[s] if k not in keys]
    width = max(len(k) for k in keys) if keys else 6
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{s:>12}" for s in sections)]
    for k in keys:
        lines.append(f"{k:<{width}}  " + "  ".join(f"{_fmt(metrics[s].get(k, '')):>12}" for s in sections))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- training


def _train_parser(info: Any | None) -> _Parser:
    from aekit.registry import families

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
    d = p.add_argument_group("data")
    d.add_argument("--data", metavar="NAME_OR_PATH",
                   help="digits (default), mnist, fashion-mnist, or a .npy/.npz/.csv file or folder of images")
    d.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST/Fashion-MNIST IDX files")
    d.add_argument("--download", action="store_true", help="download MNIST/Fashion-MNIST if missing (checksums verified)")
    d.add_argument("--split", choices=("train", "test", "all"), help="split to train on (default: train)")
    d.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N samples (quick runs)")
    d.add_argument("--label-column", metavar="COL", help="label column of a .csv file (index or header name)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=_positive_int, metavar="N", help="maximum number of epochs (max_epochs)")
    t.add_argument("--batch-size", type=_positive_int, metavar="N", help="minibatch size (batch_size)")
    t.add_argument("--lr", type=float, metavar="X", help="learning rate of Adam (learning_rate)")
    t.add_argument("--device", metavar="D", help="auto, cpu, cuda or cuda:N")
    t.add_argument("--seed", type=int, metavar="N", help="random_state: seeds initialization, batches and the split")
    t.add_argument("--threads", type=_positive_int, metavar="N", help="CPU threads of PyTorch (default: its choice)")
    r = p.add_argument_group("run")
    r.add_argument("--out", metavar="DIR", help="run directory to write (required)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    r.add_argument("--resume", nargs="?", const=True, metavar="RUN",
                   help="continue the interrupted run RUN (or --out) from its last checkpoint")
    r.add_argument("--quiet", action="store_true", help="no progress on stderr")
    r.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    r.add_argument("--debug", action="store_true", help="show tracebacks")
    if info is not None:
        fam = p.add_argument_group(f"{info.name} parameters ({info.description})")
        taken = {a for action in p._actions for a in action.option_strings}
        for spec in family_params(info.estimator):
            if spec.name in _NOT_FLAGS:
                continue
            flag = spec.flag
            if flag in taken:  # a family parameter named like a common flag: keep the common one
                continue
            note = spec.help.replace("%", "%%")
            help_text = (note + "; " if note else "") + f"default: {_fmt_default(spec.default)}"
            if spec.is_switch:
                fam.add_argument(flag, dest=spec.name, action=argparse.BooleanOptionalAction, help=help_text)
            else:
                if spec.optional:
                    help_text += " (None accepted)"
                fam.add_argument(flag, dest=spec.name, type=_converter(spec), metavar=_metavar(spec), help=help_text)
    return p


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
        if name not in by_name:
            hint = f" (did you mean {key.replace('-', '_')!r}?)" if "-" in key else ""
            raise UsageError(f"--config {path}: unknown key {key!r}{hint}; valid keys are: {', '.join(valid)}")
        spec = by_name[name]
        if isinstance(value, str) and spec.type not in ("str", "str | None"):
            try:
                value = _converter(spec)(value)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"--config {path}: {key}: {exc}") from None
        elif isinstance(value, int) and not isinstance(value, bool) and _type_parts(spec.type)[0] == "float":
            value = float(value)
        params[name] = _tupled(value)
    return params, other


def _cmd_train(args: list[str]) -> int:
    from aekit.runs import CONFIG_FILE, read_json

    pre = _pre_parse(args)
    resume = getattr(pre, "resume", None)
    if resume is not None:
        run_arg = resume if isinstance(resume, str) else getattr(pre, "out", None)
        if run_arg is None:
            raise UsageError("--resume needs the run directory: aekit train --resume RUN")
        run = Path(run_arg)
        if not (run / CONFIG_FILE).is_file():
            raise UsageError(f"--resume {run}: not an aekit run directory (no {CONFIG_FILE})")
        saved = read_json(run / CONFIG_FILE)
        run_family = str(saved.get("family"))
        if getattr(pre, "family", run_family) != run_family:
            raise UsageError(f"--family {pre.family} does not match the run's family {run_family!r}")
        info = _family(run_family)
        ns = _train_parser(info).parse_args(args)
        extra = sorted(k for k in vars(ns) if k not in _RESUME_OK)
        if extra:
            flags = ", ".join("--" + k.replace("_", "-") for k in extra)
            raise UsageError(
                f"--resume continues the run exactly as configured in {run / CONFIG_FILE}; only --epochs, --device, "
                f"--threads and --quiet may change, not {flags}"
            )
        saved_params = {k: _tupled(v) for k, v in dict(saved.get("params", {})).items()}
        if hasattr(ns, "epochs"):
            _set_param(info, saved_params, "max_epochs", ns.epochs, "--epochs")
        if hasattr(ns, "device"):
            _set_param(info, saved_params, "device", ns.device, "--device")
        if getattr(ns, "quiet", False) and "verbose" in saved_params:
            saved_params["verbose"] = 0
        spec = saved.get("data")
        if not isinstance(spec, dict) or "name" not in spec:
            raise UsageError(f"{run / CONFIG_FILE} does not record the data set, so the run cannot be resumed")
        return _run_training(info, saved_params, spec, run, ns, resume=True)

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
    specs = family_params(info.estimator)
    file_params, file_other = _config_values(table, specs, getattr(pre, "config", "")) if table else ({}, {})
    if "family" in file_other and str(file_other["family"]) != info.name:
        raise UsageError(f"--family {info.name} contradicts family = {file_other['family']!r} in {pre.config}")

    params: dict[str, Any] = dict(file_params)
    for s in specs:  # flags override the file
        if s.name not in _NOT_FLAGS and hasattr(ns, s.name):
            params[s.name] = getattr(ns, s.name)
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
    spec = _data_spec(str(pick("data", "digits")), pick("data_dir", None), str(pick("split", "train")), limit, label_column)
    ns.download = bool(pick("download", False))
    return _run_training(info, params, spec, Path(ns.out), ns, resume=False)


def _family(name: str) -> Any:
    from aekit.registry import get_family

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


def _run_training(info: Any, params: dict[str, Any], spec: dict[str, Any], out: Path, ns: argparse.Namespace,
                  *, resume: bool) -> int:
    """Build, train, save, evaluate and report; the flow shared by ``train``, ``--resume`` and ``demo``."""
    import torch

    from aekit import __version__
    from aekit.runs import (
        CHECKPOINT_FILE,
        CHECKPOINT_META,
        CONFIG_FILE,
        FORMAT,
        check_out_dir,
        is_run_dir,
        read_json,
        write_json,
    )

    quiet = bool(getattr(ns, "quiet", False))
    as_json = bool(getattr(ns, "json", False))
    overwrite = bool(getattr(ns, "overwrite", False))
    if hasattr(ns, "threads"):
        torch.set_num_threads(ns.threads)
    try:
        est = info.estimator(**params)
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if not resume and "random_state" in est.get_params(deep=False) and est.random_state is None:
        # A fixed seed is recorded so --resume rebuilds the same validation split and batch order.
        est.set_params(random_state=secrets.randbelow(2**31 - 1))
    if not resume and out.exists() and is_run_dir(out) and not overwrite:
        try:
            check_out_dir(out, False)
        except FileExistsError as exc:
            raise UsageError(str(exc)) from None

    ds = _load(spec, download=bool(getattr(ns, "download", False)))
    y = ds.y if "labels" in info.capabilities else None
    try:
        out = check_out_dir(out, overwrite or resume)
    except (FileExistsError, ValueError) as exc:
        raise UsageError(str(exc)) from None

    has_checkpoint = (out / CHECKPOINT_FILE).is_file()
    if resume and not has_checkpoint:
        if (out / "model.safetensors").is_file():
            raise UsageError(f"{out} has finished training (it holds model.safetensors and no checkpoint); "
                             "nothing to resume. Train a new run, or pass --overwrite to train this one again")
        _info(f"aekit: {out} has no checkpoint yet (stopped during its first epoch); training from the start", quiet)
    if not resume and overwrite:
        for name in _RUN_FILES:  # a replaced run must not keep files of the model it replaces
            (out / name).unlink(missing_ok=True)
    config = {
        "format": FORMAT, "aekit_version": __version__, "family": info.name, "params": est.get_params(deep=False),
        "data": spec, "status": "training",
    }
    if resume:
        config = {**read_json(out / CONFIG_FILE), "params": est.get_params(deep=False), "status": "training"}
    write_json(out / CONFIG_FILE, config)

    _info(f"aekit: training {info.name} on {ds.name} ({ds.split}, {len(ds)} samples of shape "
          f"{'x'.join(map(str, ds.sample_shape))}) into {out}" + (" (resuming)" if resume else ""), quiet)
    t0 = time.perf_counter()
    try:
        est.fit(ds.X, y, checkpoint_dir=out, resume=resume and has_checkpoint)
    except KeyboardInterrupt:
        if (out / CHECKPOINT_FILE).is_file():
            epoch = read_json(out / CHECKPOINT_META).get("epoch", "?") if (out / CHECKPOINT_META).is_file() else "?"
            msg = f"interrupted; the checkpoint after epoch {epoch} is kept in {out}. Continue with: aekit train --resume {out}"
        else:
            msg = "interrupted before the first checkpoint; run the same command again with --overwrite to start over"
        print(f"aekit: {msg}", file=sys.stderr, flush=True)
        return 130
    wall = time.perf_counter() - t0
    history = list(getattr(est, "history_", None) or [])
    seconds = sum(float(r.get("seconds", 0.0)) for r in history) if any("seconds" in r for r in history) else wall
    est.save(out, overwrite=True, extra={"data": spec, "status": "done", "train_seconds": round(seconds, 3)})
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    (out / CHECKPOINT_META).unlink(missing_ok=True)
    epochs = len(history)
    unit = "epochs" if "gradient" in info.capabilities or params.get("solver") == "gradient" else "iterations"
    _info(f"aekit: trained {epochs} {unit} in {seconds:.1f} s" if history else f"aekit: fitted in {seconds:.1f} s", quiet)

    metrics, test_ds = _evaluate_run(est, ds, spec)
    write_json(out / "metrics.json", _jsonable(metrics))
    from aekit.report import write_report

    report = write_report(est, test_ds if test_ds is not None else ds, out, metrics=metrics, train_dataset=ds)
    result = {
        "run_dir": str(out.resolve()), "family": info.name, "epochs": epochs, "train_seconds": seconds,
        "metrics": metrics, "report": str(report.resolve()),
    }
    if as_json:
        _print_json(result)
    else:
        _out(_metrics_text(metrics))
        _out(f"run directory: {out.resolve()}")
        _out(f"report: {report.resolve()}")
    return 0


def _evaluate_run(est: Any, ds: Any, spec: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], Any]:
    """Metrics on the training data and, when the source has one, on its test split (same --limit)."""
    from aekit.metrics import reconstruction_metrics

    metrics = {ds.split: reconstruction_metrics(ds.X, est.reconstruct(ds.X))}
    test_ds = None
    if ds.split == "train":
        try:
            test_ds = _load(spec, split="test")
        except (ValueError, OSError):
            test_ds = None  # a source without a test split: train metrics only
        if test_ds is not None:
            metrics["test"] = reconstruction_metrics(test_ds.X, est.reconstruct(test_ds.X))
    return metrics, test_ds


# ------------------------------------------------------------------------------ other commands


def _cmd_list(ns: argparse.Namespace) -> int:
    from aekit.registry import families

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


def _cmd_demo(ns: argparse.Namespace) -> int:
    import torch

    from aekit.registry import get_family

    info = get_family("autoencoder")
    params = dict(DEMO_PARAMS, max_epochs=ns.epochs, verbose=0 if ns.quiet else 1)
    spec = _data_spec("digits", None, "train", None, None)
    threads = torch.get_num_threads()
    # The demo network is tiny: with several threads, synchronizing them costs more than the work,
    # and on a busy machine several times more.
    torch.set_num_threads(ns.threads)
    t0 = time.perf_counter()
    try:
        code = _run_training(info, params, spec, Path(ns.out), ns, resume=False)
    finally:
        torch.set_num_threads(threads)
    if code == 0 and not ns.json:
        _info(f"aekit: demo finished in {time.perf_counter() - t0:.0f} s. Open the report in a browser; then try "
              "another family, e.g. `aekit train --family denoising --data digits --latent-dim 2 --out runs/dae`", ns.quiet)
    return code


def _load_run(run: str) -> Any:
    from aekit.runs import load

    return load(run)


def _cmd_evaluate(ns: argparse.Namespace) -> int:
    from aekit.metrics import reconstruction_metrics

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
    Z = est.transform(ds.X)
    _write_npy(out, Z)
    if ns.json:
        _print_json({"out": str(out), "shape": list(Z.shape), "data": ds.name, "split": ds.split})
    else:
        _out(f"wrote codes of shape {Z.shape} ({ds.name}, {ds.split} split) to {out}")
    return 0


def _cmd_reconstruct(ns: argparse.Namespace) -> int:
    from aekit.metrics import reconstruction_metrics
    from aekit.runs import atomic_write_bytes

    out = _check_suffix(ns.out, (".npy", ".png"), "reconstructions")
    est = _load_run(ns.run)
    spec, split = _run_data(Path(ns.run), ns, "all")
    ds = _load(spec, split=split, download=ns.download)
    R = est.reconstruct(ds.X)
    m = reconstruction_metrics(ds.X, R)
    if out.suffix.lower() == ".png":
        from aekit.report import reconstruction_figure

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
    from aekit.report import decoder_samples
    from aekit.runs import atomic_write_bytes

    out = _check_suffix(ns.out, (".npy", ".png"), "samples")
    est = _load_run(ns.run)
    X, source = None, None
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
    S, how = decoder_samples(est, ns.n, X, seed=ns.seed, source=source)
    if out.suffix.lower() == ".png":
        from aekit.report import samples_figure

        atomic_write_bytes(out, samples_figure(S))
    else:
        _write_npy(out, S)
    if ns.json:
        _print_json({"out": str(out), "shape": list(S.shape), "method": how})
    else:
        _out(f"wrote {S.shape[0]} samples to {out}; they were {how}")
    return 0


def _cmd_report(ns: argparse.Namespace) -> int:
    from aekit.report import write_report
    from aekit.runs import read_json

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


# ---------------------------------------------------------------------------------------- main


def _main_parser() -> _Parser:
    p = _parser(
        "aekit", "Autoencoders from the lectures: train, evaluate, encode, reconstruct, generate and report.",
        epilog="Start with `aekit demo`; `aekit COMMAND --help` describes each command.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str, description: str | None = None, **kw: Any) -> _Parser:
        sp = sub.add_parser(name, help=help_text, description=description or help_text, allow_abbrev=False,
                            formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
        return sp  # type: ignore[no-any-return]

    sp = add("list", "list the registered families")
    sp.add_argument("--json", action="store_true", help="print as JSON")

    sp = add("demo", "train an autoencoder on the bundled digits and write an HTML report (about a minute)",
             "Train an autoencoder with a 2-D code on scikit-learn's bundled digits (no download) and write a run "
             "directory with report.html: reconstructions, the latent map coloured by digit, decoder samples and "
             "loss curves.")
    sp.add_argument("--out", default="aekit-demo", metavar="DIR", help="run directory (default: ./aekit-demo)")
    sp.add_argument("--epochs", type=_positive_int, default=DEMO_EPOCHS, metavar="N",
                    help=f"maximum epochs; training stops early once validation stalls (default: {DEMO_EPOCHS})")
    sp.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                    help="CPU threads of PyTorch (default: 1, fastest for this small network)")
    sp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing demo run in --out")
    sp.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    # ``train`` builds its own parser once the family is known (see _cmd_train).
    add("train", "train a model of any family (`aekit train --family NAME --help` for its flags)", add_help=False)

    sp = add("evaluate", "reconstruction metrics of a trained run on a data set")
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default="test, or train for data without a test split", split_help="split to evaluate on")
    sp.add_argument("--json", action="store_true", help="print the metrics as JSON")

    sp = add("encode", "write the codes of a data set as a .npy array (n_samples, latent_dim)")
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default="all", split_help="split to encode")
    sp.add_argument("--out", required=True, metavar="FILE.npy", help="output file")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")

    sp = add("reconstruct", "write reconstructions as a .npy array or a .png of originals beside reconstructions")
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default="all", split_help="split to reconstruct")
    sp.add_argument("--out", required=True, metavar="FILE", help="output .npy (all reconstructions) or .png (a figure)")
    sp.add_argument("--n", type=_positive_int, default=10, metavar="N", help="pairs shown in a .png (default: 10)")
    sp.add_argument("--json", action="store_true", help="print a JSON summary with the metrics")

    sp = add("generate", "sample from the decoder and write a .npy array or a .png grid",
             "Sample from the decoder: families with a prior use their sample method; the others decode draws of a "
             "Gaussian fitted to the codes of data (by default the run's training data, or --data).")
    sp.add_argument("run", metavar="RUN", help="run directory")
    sp.add_argument("--n", type=_positive_int, default=32, metavar="N", help="number of samples (default: 32)")
    sp.add_argument("--out", required=True, metavar="FILE", help="output .npy or .png")
    sp.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the draws (default: 0)")
    _add_data_args(sp, split_default="the run's training split", split_help="split whose codes the Gaussian is fitted to")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")

    sp = add("report", "write report.html (figures and metrics) for a trained run")
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default="test, or train for data without a test split", split_help="split shown")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")
    return p


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": _cmd_list, "demo": _cmd_demo, "evaluate": _cmd_evaluate, "encode": _cmd_encode,
    "reconstruct": _cmd_reconstruct, "generate": _cmd_generate, "report": _cmd_report,
}


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, KeyError) and exc.args:
        text = f"missing key {exc.args[0]!r}"
    return " ".join(text.split()) or type(exc).__name__


def _dispatch(argv: list[str]) -> int:
    parser = _main_parser()
    ns, extra = parser.parse_known_args(argv)
    if ns.command is None:
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see aekit --help)")
    if ns.command == "train":
        return _cmd_train(extra)
    if extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
    return _HANDLERS[ns.command](ns)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aekit`` command line; returns the exit status (0 success, 1 runtime error, 2 usage error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args
    try:
        return _dispatch(args)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UsageError as exc:
        if debug:
            raise
        print(f"aekit: error: {_one_line(exc)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("aekit: error: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`aekit list | head`): stop quietly, as Unix tools do.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        if debug:
            raise
        from aekit.runs import ModelFileError
        from aekit.training import TrainingDivergedError

        expected = (ModelFileError, TrainingDivergedError, ValueError, TypeError, OSError)
        msg = _one_line(exc)
        if not isinstance(exc, expected):
            msg = f"{type(exc).__name__}: {msg} (rerun with --debug for the traceback)"
        print(f"aekit: error: {msg}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
