"""Run directories: safe, atomic files for models, checkpoints and results.

A run directory holds ``config.json`` (family, hyperparameters, data scaling, aekit version, the
stage the run has reached and the list of files it owns), ``model.safetensors`` (weights, never a
pickle), ``history.csv``, ``metrics.json`` and figures.

Three rules make a run safe at every instant:

- every file is written to a temporary name in the same directory, flushed, and renamed into place
  (``os.replace``), so a crash or a kill never leaves a half-written file; a temporary file left by
  a kill is removed by the next process that claims the run;
- a process claims a run directory with a lock file created with ``O_EXCL`` before it writes
  anything, so two processes never write one run; a lock whose process is gone is stale and taken;
- aekit removes or replaces only files that it wrote: a folder that holds anything else is refused,
  and replacing a run (``overwrite``) removes only the files its own ``config.json`` lists.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "aekit-run"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"
HISTORY_FILE = "history.csv"
#: beside a checkpoint: the family and data fingerprint of the fit that writes it (see open_checkpoint_dir)
FIT_RECORD = "fit.json"
LOCK_FILE = ".aekit.lock"
#: every file a run trained by aekit may hold, besides ``config.json``; ``pretrain-layer-*`` are the
#: checkpoint folders of layer-wise pretraining, ``app-*.png`` and ``report-sections.json`` the figures and
#: the record of the report sections that applications (denoising, anomaly scores, ...) add to a run
RUN_FILES: tuple[str, ...] = (
    CONFIG_FILE, MODEL_FILE, CHECKPOINT_FILE, CHECKPOINT_META, HISTORY_FILE, "metrics.json", "report.html",
    "reconstructions.png", "loss.png", "latent.png", "samples.png", "manifold.png", "pretrain-layer-*",
    "app-*.png", "report-sections.json",
    "codec.json",  # the probability model of learned compression (aekit compress)
    FIT_RECORD,
)
#: the files a model saved from Python holds
SAVED_FILES: tuple[str, ...] = (CONFIG_FILE, MODEL_FILE, HISTORY_FILE)
# Files aekit writes inside a pretraining folder.
_STAGE_FILES = (CHECKPOINT_FILE, CHECKPOINT_META, HISTORY_FILE, FIT_RECORD)
_TMP = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")

# Ways out named in messages: Python arguments for the Python API, flags for the command line.
PY_NAMES = {"overwrite": "overwrite=True", "resume": "resume=True", "out": "path", "allow_data_change": "allow_data_change=True",
            "epochs": "max_epochs"}
CLI_NAMES = {"overwrite": "--overwrite", "resume": "--resume", "out": "--out", "allow_data_change": "--allow-data-change",
             "epochs": "--epochs"}


class ModelFileError(ValueError):
    """A run directory or model file is missing, corrupt, or does not match its config."""


class RunDirError(Exception):
    """A run directory cannot be used as asked.

    The message names its ways out as Python arguments (``overwrite=True``); :meth:`cli_message`
    names them as flags (``--overwrite``), so the two faces share one wording.
    """

    def __init__(self, template: str, **values: Any) -> None:
        self.template, self.values = template, values
        super().__init__(self.render(PY_NAMES))

    def render(self, names: dict[str, str]) -> str:
        return self.template.format(**names, **self.values)

    def cli_message(self) -> str:
        return self.render(CLI_NAMES)

    def __str__(self) -> str:
        return self.render(PY_NAMES)


class RunExistsError(RunDirError, FileExistsError):
    """The directory holds a run, files aekit did not write, or is claimed by another process."""


class RunPathError(RunDirError, ValueError):
    """The path cannot be a run directory (empty, a file, or below a file)."""


class DataChangedError(RunDirError, ValueError):
    """The data a run was started on has changed since."""


# ------------------------------------------------------------------------------------------ writing


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``.

    The file gets the mode a plain ``open`` would give it (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_text(obj: Any, *, sort_keys: bool = True) -> str:
    """The JSON text aekit writes: indented, keys sorted unless their order means something, NumPy values
    and tuples as plain JSON."""
    return json.dumps(obj, indent=2, sort_keys=sort_keys, default=_json_default) + "\n"


def write_json(path: str | os.PathLike, obj: Any, *, sort_keys: bool = True) -> None:
    atomic_write_text(path, json_text(obj, sort_keys=sort_keys))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple | set | frozenset):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist; is {path.parent} an aekit run directory?")
    try:
        obj = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}); the run directory is damaged") from None
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path} should hold a JSON object, found {type(obj).__name__}")
    return obj


# ------------------------------------------------------------------------------------ what a run owns


def run_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``config.json`` of the aekit run at ``path``, or None when ``path`` holds no aekit run."""
    cfg = Path(path) / CONFIG_FILE
    if not cfg.is_file():
        return None
    try:
        obj = json.loads(cfg.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) and obj.get("format") == FORMAT else None


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds an aekit run (a ``config.json`` of aekit's format)."""
    return run_config(path) is not None


def owned_files(config: dict[str, Any]) -> tuple[str, ...]:
    """The names (or ``pretrain-layer-*`` patterns) of the files a run's config says it wrote."""
    files = config.get("files")
    if isinstance(files, list) and all(isinstance(f, str) and "/" not in f and "\\" not in f and ".." not in f
                                       for f in files):
        return tuple(files)
    return RUN_FILES  # a run written before config.json listed its files


def run_owns(path: str | os.PathLike, name: str) -> bool:
    """True when ``path`` is an aekit run whose config lists ``name`` among its own files (so a file of that name
    written there is removed again with the run). A model saved from Python owns only what ``save`` wrote."""
    config = run_config(path)
    return config is not None and _matches(name, owned_files(config))


def _is_own_tmp(name: str, patterns: Sequence[str]) -> bool:
    m = _TMP.match(name)
    return m is not None and _matches(m.group("name"), patterns)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _lock_is_stale(path: Path) -> bool:
    info = _read_lock(path)
    if info is None:
        return True  # a lock cut short while being written holds no process
    pid, host = info
    return host == socket.gethostname() and not _pid_alive(pid)


def foreign_entries(path: Path, patterns: Sequence[str] = RUN_FILES) -> list[str]:
    """Names in ``path`` that are not aekit's temporaries or stale lock.

    Without an aekit ``config.json`` nothing else in a folder can be known to be aekit's: a
    ``model.safetensors`` there may be anyone's.
    """
    out = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name == LOCK_FILE and (_lock_is_stale(entry) or _read_lock(entry) == (os.getpid(), socket.gethostname())):
            continue
        if entry.is_file() and _is_own_tmp(name, patterns):
            continue
        out.append(name)
    return out


def remove_owned(path: Path, patterns: Sequence[str]) -> None:
    """Remove the files of the run at ``path`` that ``patterns`` name, and their temporaries; nothing else."""
    for entry in list(path.iterdir()):
        name = entry.name
        if entry.is_dir() and not entry.is_symlink():
            if _matches(name, patterns) and name != CONFIG_FILE:
                for inner in list(entry.iterdir()):
                    if inner.is_file() and (inner.name in _STAGE_FILES or _is_own_tmp(inner.name, _STAGE_FILES)):
                        inner.unlink()
                try:
                    entry.rmdir()
                except OSError:
                    pass  # it holds something aekit did not write: leave it
        elif name == CONFIG_FILE:
            continue  # removed last, so a kill in between leaves a run that still lists its files
        elif _matches(name, patterns) or _is_own_tmp(name, patterns):
            entry.unlink()
    (path / CONFIG_FILE).unlink(missing_ok=True)


def remove_temporaries(path: Path, patterns: Sequence[str] = RUN_FILES) -> None:
    """Remove the temporary files a killed writer left in the run at ``path`` (and its stage folders)."""
    if not path.is_dir():
        return
    for entry in list(path.iterdir()):
        if entry.is_file() and _is_own_tmp(entry.name, patterns):
            entry.unlink(missing_ok=True)
        elif entry.is_dir() and _matches(entry.name, patterns):
            for inner in list(entry.iterdir()):
                if inner.is_file() and _is_own_tmp(inner.name, _STAGE_FILES):
                    inner.unlink(missing_ok=True)


def has_checkpoint(path: Path) -> bool:
    """True when the run at ``path`` holds a checkpoint of any stage (training or layer-wise pretraining)."""
    if (path / CHECKPOINT_FILE).is_file():
        return True
    return any((d / CHECKPOINT_FILE).is_file() for d in path.glob("pretrain-layer-*") if d.is_dir())


# ------------------------------------------------------------------------------------------ claiming


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def _read_lock(path: Path) -> tuple[int, str] | None:
    try:
        obj = json.loads(path.read_text("utf-8"))
        return int(obj["pid"]), str(obj["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _take_lock(path: Path) -> None:
    lock = path / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            if _lock_is_stale(lock):
                lock.unlink(missing_ok=True)  # its process is gone
                continue
            info = _read_lock(lock)
            who = f"process {info[0]} on {info[1]}" if info else "another process"
            raise RunExistsError(
                "{dir} is being written by {who} (lock file {lock}); wait for it to finish, or remove the lock file "
                "if that process no longer runs", dir=path, who=who, lock=lock,
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        return
    raise RunExistsError("{dir}: could not take the lock file {lock}; another process keeps taking it", dir=path, lock=lock)


def check_run_path(path: str | os.PathLike) -> Path:
    """Refuse a path that cannot be a run directory: empty, a file, or below a file."""
    if str(path).strip() == "":
        raise RunPathError("the run directory path is empty; give a directory such as runs/ae as {out}")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise RunPathError("{out} {p} exists and is a file; choose a directory path", p=p)
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunPathError("{out} {p}: {parent} is a file, so no directory can be made below it; choose "
                                   "another path", p=p, parent=parent)
            break
    return p


class RunClaim:
    """The claim of one process on a run directory; see :func:`claim_run_dir`."""

    def __init__(self, path: Path, created: bool, patterns: tuple[str, ...]) -> None:
        self.path, self.created, self.patterns = path, created, patterns

    def rollback(self) -> None:
        """Remove what this claim wrote (the run was refused before it trained anything worth keeping)."""
        remove_owned(self.path, self.patterns)


@contextmanager
def claim_run_dir(
    path: str | os.PathLike, *, overwrite: bool = False, resume: bool = False, files: tuple[str, ...] = RUN_FILES
) -> Iterator[RunClaim]:
    """Claim ``path`` for writing one run; yield a :class:`RunClaim`; release it at the end.

    The claim is a lock file created with ``O_EXCL``: a second process is refused while the first
    holds it; a lock whose process is gone (same host) is taken over. ``path`` must be new, empty,
    or an aekit run: an existing run needs ``overwrite`` (which removes the files its config lists,
    and only those) or ``resume``. Temporary files left by a killed writer are removed. If the claim
    created ``path`` and the run left nothing in it, ``path`` is removed again.
    """
    p = check_run_path(path)
    created = not p.exists()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunPathError("{out} {p}: cannot create the directory ({err})", p=p, err=exc.strerror or exc) from None
    try:
        _take_lock(p)
    except BaseException:
        if created:
            _rmdir_quietly(p)
        raise
    try:
        cfg = run_config(p)
        if cfg is not None:
            if not (overwrite or resume):
                raise RunExistsError(
                    "{dir} already holds an aekit run; choose another {out}, pass {overwrite} to replace it, or "
                    "{resume} to continue it", dir=p,
                )
            if overwrite and not resume:
                remove_owned(p, owned_files(cfg))
        elif resume:
            raise RunExistsError("{dir} is not an aekit run directory (no {cfg} written by aekit), so there is "
                                 "nothing to resume; start a new run there instead", dir=p, cfg=CONFIG_FILE)
        else:
            others = foreign_entries(p)
            if others:
                shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                raise RunExistsError(
                    "{dir} is not empty and is not an aekit run (it holds {shown}); aekit writes only into a new or "
                    "empty directory or its own runs: choose another {out}", dir=p, shown=shown,
                )
        remove_temporaries(p, owned_files(cfg) if cfg is not None else files)
        yield RunClaim(p, created, files)
    finally:
        (p / LOCK_FILE).unlink(missing_ok=True)
        if created:
            _rmdir_quietly(p)


#: What a checkpoint folder given to ``fit(checkpoint_dir=...)`` may hold: its checkpoint, the record of the fit
#: that wrote it, the history, and the checkpoint folders of layer-wise pretraining.
CHECKPOINT_FILES: tuple[str, ...] = (*_STAGE_FILES, "pretrain-layer-*")


#: Parameters a resumed fit may change: how long it trains, where, how many threads, and how much it says.
RESUMABLE = frozenset({"max_epochs", "device", "verbose", "threads"})


@contextmanager
def open_checkpoint_dir(path: str | os.PathLike, record: dict[str, Any], *, resume: bool,
                        allow_data_change: bool = False) -> Iterator[int]:
    """Claim ``path`` as the checkpoint folder of a fit described by ``record`` for the ``with`` block, write the
    record there, and yield the seed the fit is to use.

    The claim is the lock file of run directories (:func:`claim_run_dir`): a second process fitting into the
    same folder is refused while the first trains; a process that holds it already (``aekit train`` writing its
    run) keeps it.

    ``path`` must be new, empty, an aekit run, or a folder holding only aekit's checkpoint files
    (:data:`CHECKPOINT_FILES`): nothing of the user's is written over. ``record`` names the family (``"family"``),
    the parameters (``"params"``), the seed (``"seed"``) and the training data (``"data"``, a fingerprint); it is
    kept in :data:`FIT_RECORD`. With ``resume``, a recorded fit of another family is refused, so are parameters
    other than :data:`RESUMABLE` changed (``random_state=None`` keeps the recorded seed), and so is other data
    unless ``allow_data_change``; the recorded seed is returned. A folder without a record (written before records
    were kept) is resumed unchecked.
    """
    if str(path).strip() == "":
        raise RunPathError("checkpoint_dir is an empty path; give a folder such as 'checkpoints/ae'")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise RunPathError("checkpoint_dir {p} exists and is a file; give a folder path", p=p)
    if p.is_dir() and run_config(p) is None:
        entries = foreign_entries(p, CHECKPOINT_FILES)
        # Without a checkpoint or its record the folder is not aekit's, whatever its files are called. A live
        # process's lock is aekit's too: taking the lock below says who holds it.
        kept = (p / FIT_RECORD).is_file() or has_checkpoint(p)
        others = [n for n in entries if n != LOCK_FILE and not (kept and _matches(n, CHECKPOINT_FILES))]
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise RunExistsError(
                "checkpoint_dir {p} holds files aekit did not write ({shown}); aekit writes checkpoints only into a "
                "new or empty folder or its own: choose another checkpoint_dir", p=p, shown=shown,
            )
    held = p.is_dir() and _read_lock(p / LOCK_FILE) == (os.getpid(), socket.gethostname())
    p.mkdir(parents=True, exist_ok=True)
    if not held:
        _take_lock(p)
    try:
        yield _check_and_record(p, record, resume, allow_data_change)
    finally:
        if not held:
            (p / LOCK_FILE).unlink(missing_ok=True)


def _check_and_record(p: Path, record: dict[str, Any], resume: bool, allow_data_change: bool) -> int:
    """The refusals of :func:`open_checkpoint_dir` that read the recorded fit, then the record written."""
    meta = p / FIT_RECORD
    if resume and meta.is_file():
        old = read_json(meta)
        if old.get("family") != record["family"]:
            raise ModelFileError(
                f"the checkpoint in {p} was written by a fit of {old.get('family')!r}, not {record['family']!r}; "
                f"resume it with that family, or start a new fit (resume=False) in another folder"
            )
        then: dict[str, Any] = old["data"] if isinstance(old.get("data"), dict) else {}
        now: dict[str, Any] = record["data"]
        known = then.get("checksum") is not None and now.get("checksum") is not None
        if known and then["checksum"] != now["checksum"] and not allow_data_change:
            def describe(fp: dict[str, Any]) -> str:
                shape = "x".join(str(s) for s in fp.get("sample_shape", []))
                return f"{fp.get('n_samples')} samples of shape {shape}, checksum {str(fp.get('checksum'))[:12]}"

            raise DataChangedError(
                "the checkpoint in {p} was trained on other data ({then}) than this fit's ({now}); resume on the "
                "same data, or pass {allow_data_change} to continue on the new data",
                p=p, then=describe(then), now=describe(now),
            )
        was: dict[str, Any] = old["params"] if isinstance(old.get("params"), dict) else {}
        given = record.get("params", {})
        seed = old.get("seed")
        # random_state None means "the seed it started with", and the recorded seed is what a None stood for.
        same_seed = lambda a, b: b is None or (a is None and b == seed)  # noqa: E731
        changed = sorted(k for k in was.keys() & given.keys() if k not in RESUMABLE and _differs(was[k], given[k])
                         and not (k == "random_state" and same_seed(was[k], given[k])))
        if changed:
            said = ", ".join(f"{k}={given[k]!r} (was {was[k]!r})" for k in changed)
            raise ValueError(f"the checkpoint in {p} was started with other settings: {said}; a resumed fit continues "
                             f"exactly as it started, so only {', '.join(sorted(RESUMABLE))} may change. Resume with "
                             "the settings it was started with, or start a new fit (resume=False)")
        if isinstance(old.get("seed"), int) and not isinstance(old.get("seed"), bool):
            record = {**record, "seed": old["seed"]}
    write_json(meta, record)
    return int(record["seed"])


def _as_json(value: Any) -> Any:
    """A parameter value as JSON gives it back: tuples as lists, at any depth."""
    return [_as_json(v) for v in value] if isinstance(value, tuple | list) else value


def _differs(a: Any, b: Any) -> bool:
    """Whether two parameter values, one read back from JSON, differ (a tuple and the list JSON made of it do not)."""
    return bool(_as_json(a) != _as_json(b))


def _rmdir_quietly(p: Path) -> None:
    try:
        p.rmdir()  # only if empty
    except OSError:
        pass


# ------------------------------------------------------------------------------------------ history

# One column order everywhere (a fresh run, a resumed run, a run saved from Python): the stage and
# epoch first, the total loss, its named terms, then validation and timing.
_HEAD = ("layer", "epoch", "lr", "loss")
_TAIL = ("val_loss", "seconds", "samples_per_s")
#: columns of history.csv that measure time, not training: they differ between two identical runs
TIMING_COLUMNS = ("seconds", "samples_per_s")


def history_columns(history: Sequence[dict[str, float]]) -> list[str]:
    keys = {k for row in history for k in row}
    middle = sorted(keys - set(_HEAD) - set(_TAIL))
    return [k for k in _HEAD if k in keys] + middle + [k for k in _TAIL if k in keys]


def write_history_csv(path: str | os.PathLike, history: Sequence[dict[str, float]]) -> None:
    """Write the per-epoch history as CSV, atomically, columns in :func:`history_columns` order."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=history_columns(history))
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def read_history(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]
