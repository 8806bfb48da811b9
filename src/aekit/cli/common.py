"""Shared pieces of the command line: errors, output, data flags and files."""


from __future__ import annotations

import argparse
import difflib
import io
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

# NumPy, PyTorch and scikit-learn are imported inside the functions that use them: `aekit --help`,
# `aekit list` and `aekit --version` then answer in a fraction of a second.

#: The sub-parser factory each command module's ``add_parsers`` receives.
AddParser = Callable[..., argparse.ArgumentParser]
# The default data of each kind of command (see cli/main.py's docstring), as the help texts say it.
_MEASURE_SPLIT = "test: the test split of the run's data; all of a file given with --data"
_TRANSFORM_SPLIT = "all: every sample, train and test"
COMMANDS = ("list", "demo", "train", "evaluate", "encode", "reconstruct", "generate", "interpolate", "sweep", "report",
            "denoise", "inpaint", "colorize", "index", "search", "features", "anomaly",
            "compress", "decompress")

# Training-loop settings with a short, family-independent flag; the family's own flag is not generated.
TRAIN_ALIASES: dict[str, str] = {
    "max_epochs": "epochs",
    "batch_size": "batch_size",
    "learning_rate": "lr",
    "device": "device",
    "random_state": "seed",
    "threads": "threads",
}
# ``verbose`` is set by --quiet.
_NOT_FLAGS = frozenset({*TRAIN_ALIASES, "verbose"})
_DATA_KEYS = ("data", "data_dir", "split", "limit", "label_column", "download")
# What ``--resume`` may change: the rest must match the checkpoint, so it comes from config.json.
_RESUME_OK = frozenset({"resume", "out", "epochs", "device", "quiet", "json", "debug", "threads", "family"})

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


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to a misspelled ``word`` (difflib's ratio of at least 0.6), or None."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<value>[^']*)' \(choose from (?P<choices>.*)\)$")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, suggest the closest flag or choice, and never exit.

    Every parser of the command line is one of these (the train command's too), so a misspelled flag,
    command or choice gets the same "did you mean" everywhere.
    """

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            raise self.unrecognized(message[len(prefix):].split())
        m = _INVALID_CHOICE.search(message)
        if m:
            choices = [c.strip().strip("'") for c in m.group("choices").split(",")]
            guess = did_you_mean(m.group("value"), choices)
            if guess is not None:
                message += f"; did you mean {guess}?"
        raise UsageError(message)

    def option_strings(self) -> list[str]:
        """Every long flag this parser accepts."""
        return [o for action in self._actions for o in action.option_strings if o.startswith("--")]

    def unrecognized(self, extra: Sequence[str]) -> UsageError:
        """The error for arguments this parser does not know, with the closest flag for each misspelled one."""
        known = self.option_strings()
        hints = []
        for arg in extra:
            if not arg.startswith("--"):
                continue
            flag = arg.split("=", 1)[0]
            guess = did_you_mean(flag, known)
            if guess is not None:
                hints.append((flag, guess))
        msg = f"unrecognized arguments: {' '.join(extra)}"
        if len(hints) == 1:
            msg += f"; did you mean {hints[0][1]}?"
        elif hints:
            msg += "; did you mean " + ", ".join(f"{g} for {f}" for f, g in hints) + "?"
        return UsageError(msg)


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
    if hasattr(obj, "item") and not isinstance(obj, list | tuple | dict) and getattr(obj, "ndim", None) == 0:
        obj = obj.item()  # a NumPy scalar
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _print_json(obj: Any) -> None:
    # Keys in the order they were computed (metrics as training printed them), not sorted.
    _out(json.dumps(_jsonable(obj), indent=2))


def _tupled(v: Any) -> Any:
    return tuple(_tupled(x) for x in v) if isinstance(v, list | tuple) else v


# ------------------------------------------------------------------------------------ data


def _data_spec(name: str, data_dir: str | None, split: str, limit: int | None, label_column: Any) -> dict[str, Any]:
    """The data a run was trained on, with paths made absolute so the run can be used from anywhere."""
    from aekit.data.datasets import DATASETS

    key = name.strip().lower().replace("_", "-")
    if key not in DATASETS and key != "fashionmnist":
        p = Path(name).expanduser()
        if p.exists():
            name = str(p.resolve())
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser().resolve())
    return {"name": name, "data_dir": data_dir, "split": split, "limit": limit, "label_column": label_column}


def _load(spec: dict[str, Any], *, split: str | None = None, limit: Any = "spec", download: bool = False) -> Any:
    from aekit.data.datasets import load_dataset

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


def _nonnegative_int(expected: str) -> Callable[[str], int]:
    """An argparse type for an integer >= 0; its error reads "expected EXPECTED; got 'TEXT'"."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = -1
        if v < 0:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        return v

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _run_data(run: Path, ns: argparse.Namespace, split: str | None) -> tuple[dict[str, Any], str]:
    """The data spec a command should use: the flags, else the run's own data set.

    ``split`` is the command's default split; None means the split the run was trained on.
    """
    from aekit.data.datasets import _builtin_name
    from aekit.engine.rundir import CONFIG_FILE, read_json

    cfg = read_json(run / CONFIG_FILE)
    saved = cfg.get("data") if isinstance(cfg.get("data"), dict) else None
    if ns.data is None and saved is None:
        raise UsageError(f"{run} does not record its data set; pass --data NAME_OR_PATH")
    if ns.data is None:
        assert saved is not None
        spec = dict(saved)
        name = str(spec.get("name", ""))
        if _builtin_name(name) is None and not Path(name).exists():
            raise UsageError(f"{run} was trained on {name}, which is not there any more; pass --data with its new "
                             "place (or other data to use)")
        if ns.data_dir is not None:
            spec["data_dir"] = str(Path(ns.data_dir).expanduser().resolve())
        if ns.label_column is not None:
            spec["label_column"] = _label_column(ns.label_column)
    else:
        spec = _data_spec(ns.data, ns.data_dir, split or "train", None, _label_column(ns.label_column))
    spec["limit"] = ns.limit
    if ns.split is None and split == "test" and ns.data is not None and _builtin_name(ns.data) is None:
        split = "all"  # a file of the user's own, given to measure on, is measured whole
    return spec, ns.split or split or str(spec.get("split") or "train")


def _load_eval_data(spec: dict[str, Any], split: str, explicit: bool, download: bool, quiet: bool = False) -> Any:
    """Load ``split`` of the data a command measures on (see :func:`_run_data` for the default)."""
    return _load(spec, split=split, download=download)


# --------------------------------------------------------------------------------- labels


def _read_label_file(path: str, flag: str = "--labels") -> Any:
    """The integer class labels in the file ``path`` (a .npy array, or a one-column .csv/.txt file), shape (n,) int64.

    Every way a file can fail is one UsageError naming ``flag`` and the file, and NumPy's warnings (an empty text
    file, a cast out of range) never reach the terminal. ``anomaly`` and ``features`` read their ``--labels`` here.
    """
    import warnings

    import numpy as np

    p = Path(path)
    what = "a .npy or one-column .csv/.txt file of integer labels"
    if not p.is_file():
        raise UsageError(f"{flag} {path}: {'a folder' if p.is_dir() else 'no such file'}; give {what}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns before returning an empty array: said below instead
            if p.suffix.lower() == ".npy":
                y = np.load(p, allow_pickle=False)
            else:  # read as text, so that a word is named as a word, not as a failed float conversion
                y = np.loadtxt(p, delimiter=",", ndmin=2, dtype=str, comments="#")
    except Exception as exc:
        raise UsageError(f"{flag} {path} could not be read ({' '.join(str(exc).split())}); give {what}") from None
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # one column: (n, 1) -> (n,)
    if y.size == 0:
        raise UsageError(f"{flag} {path} holds no labels; give {what}, one per sample")
    if y.ndim != 1:
        raise UsageError(f"{flag} {path} holds an array of shape {y.shape}; give one label per sample, shape (n,) "
                         "(a single column)")
    if y.dtype.kind in "US":
        try:
            y = y.astype(np.float64)
        except ValueError:
            word = next(v for v in y.tolist() if not _is_number(v))
            raise UsageError(f"{flag} {path} holds the label {word!r}, not a number; give integer class labels "
                             "(encode names as 0, 1, 2, ...)") from None
    if y.dtype.kind not in "biuf":
        raise UsageError(f"{flag} {path} holds values of type {y.dtype}; give integer class labels (0, 1, 2, ...)")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y)) | (np.abs(y) >= 2.0**53)
        if bad.any():
            value = y[np.argmax(bad)].item()
            why = ("not a whole number" if np.isfinite(value) and value != round(value) else
                   "not a finite number" if not np.isfinite(value) else "too large for a class label")
            raise UsageError(f"{flag} {path} holds the label {value!r}, {why}; give integer class labels "
                             "(0, 1, 2, ...)")
    if y.dtype.kind == "u" and y.dtype.itemsize == 8 and (y > np.iinfo(np.int64).max).any():
        raise UsageError(f"{flag} {path} holds the label {int(y.max())}, too large for a class label; give integer "
                         "class labels (0, 1, 2, ...)")
    return y.astype(np.int64)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------- writing


def _check_parent(path: Path, flag: str = "--out") -> None:
    """Refuse a path whose folders cannot be made: a file stands where one of them should be."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{flag} {path}: {parent} is a file, not a folder; choose another {flag} path")
            return




def _write_npy(path: Path, arr: Any) -> None:
    import numpy as np

    from aekit.engine.rundir import atomic_write_bytes

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
    from aekit.report.metrics import format_value as _fmt
    from aekit.report.metrics import metric_names, ordered_metrics

    metrics = ordered_metrics(metrics)
    sections, keys = list(metrics), metric_names(metrics)
    width = max(len(k) for k in keys) if keys else 6
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{s:>12}" for s in sections)]
    for k in keys:
        lines.append(f"{k:<{width}}  " + "  ".join(f"{_fmt(metrics[s].get(k, '')):>12}" for s in sections))
    return "\n".join(lines)


