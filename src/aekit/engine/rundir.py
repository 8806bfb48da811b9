"""Run directories: safe, atomic files for models, checkpoints and results.

A run directory holds ``config.json`` (family, hyperparameters, data scaling, aekit version),
``model.safetensors`` (weights, never a pickle), ``history.csv``, ``metrics.json`` and figures.
Every file is written to a temporary name in the same directory and renamed into place, so a crash
or a kill never leaves a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "aekit-run"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"


class ModelFileError(ValueError):
    """A run directory or model file is missing, corrupt, or does not match its config."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


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


def is_run_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / CONFIG_FILE).exists() or (p / MODEL_FILE).exists() or (p / CHECKPOINT_FILE).exists()


def check_out_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to write into an existing run unless ``overwrite``; refuse a path that is a file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"output path {p} exists and is a file; choose a directory path")
    if is_run_dir(p) and not overwrite:
        raise FileExistsError(
            f"{p} already holds an aekit run; choose another --out, pass --overwrite to replace it, or --resume to continue it"
        )
    p.mkdir(parents=True, exist_ok=True)
    return p


def write_history_csv(path: str | os.PathLike, history: Sequence[dict[str, float]]) -> None:
    """Write the per-epoch history as CSV, atomically."""
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())



def read_history(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]
