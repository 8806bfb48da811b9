"""Run directories: safe, atomic files for models, checkpoints and results.

A run directory holds ``config.json`` (family, hyperparameters, data scaling, aekit version),
``model.safetensors`` (weights, never a pickle), ``history.csv``, ``metrics.json`` and figures.
Every file is written to a temporary name in the same directory and renamed into place, so a crash
or a kill never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

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


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save tensors as safetensors, atomically."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(flat, metadata=metadata))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or foreign file is a ModelFileError."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist; a run directory needs {MODEL_FILE} beside {CONFIG_FILE}")
    data = path.read_bytes()
    try:
        return st_load(data)
    except (SafetensorError, Exception) as exc:
        raise ModelFileError(
            f"{path} is not a valid safetensors file ({exc}); it may be truncated or corrupt. Retrain, or restore "
            "the file from a copy (aekit never loads pickles)"
        ) from None


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


# ------------------------------------------------------------------------------------- checkpoints


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"optim.{pid}.{key}"] = val if isinstance(val, torch.Tensor) else torch.tensor(val)
    groups = [{k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups}


def _unflatten_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    current = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = val
    groups = []
    for cur, saved in zip(current["param_groups"], meta["param_groups"]):
        g = dict(saved)
        if isinstance(cur["lr"], torch.Tensor):
            g["lr"] = torch.tensor(float(saved["lr"]), device=cur["lr"].device)
        g["params"] = cur["params"]
        groups.append(g)
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    """Everything :func:`aekit.training.fit_module` needs to continue exactly where it stopped."""
    module, opt = state["module"], state["optimizer"]
    tensors = {f"model.{k}": v for k, v in module.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizer(opt)
    tensors.update(opt_tensors)
    tensors["rng.generator"] = state["generator"].get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        # Corruption and dropout on a GPU draw from the CUDA generator, not the CPU one.
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if state["best_state"] is not None:
        tensors.update({f"best.{k}": v for k, v in state["best_state"].items()})
    meta = {
        "epoch": state["epoch"], "step": state["step"], "history": state["history"], "best_val": state["best_val"],
        "best_epoch": state["best_epoch"], "bad_epochs": state["bad_epochs"], "stop": state["stop"], "optimizer": opt_meta,
    }
    # Tensors first, then the JSON that points at them: a kill in between leaves the older, consistent
    # pair only if the JSON names the epoch it belongs to, which load_checkpoint checks.
    save_tensors(directory / CHECKPOINT_FILE, tensors, metadata={"epoch": str(state["epoch"])})
    write_json(directory / CHECKPOINT_META, meta)


def load_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        raise ModelFileError(f"no checkpoint to resume from in {directory} (expected {CHECKPOINT_FILE}); start a new run instead")
    meta = read_json(directory / CHECKPOINT_META)
    tensors = load_tensors(path)
    module = state["module"]
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state_dict(module.state_dict(), model_sd, path)
    module.load_state_dict(model_sd)
    _unflatten_optimizer(state["optimizer"], tensors, meta["optimizer"])
    state["generator"].set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    best = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
    state["best_state"] = best or None
    for key in ("epoch", "step", "history", "best_val", "best_epoch", "bad_epochs", "stop"):
        state[key] = meta[key]


def check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights whose names or shapes differ from what the config builds."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shapes = [
        f"{k}: file {tuple(found[k].shape)} vs config {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(found))
        if tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}")
        if extra:
            parts.append(f"unexpected tensors {extra[:5]}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise ModelFileError(
            f"{path} does not match {CONFIG_FILE}: " + ", ".join(parts) + ". The weights belong to a different model; "
            "use the config.json saved with them"
        )


# ------------------------------------------------------------------------------ fitted estimators


def _tupled(v: Any) -> Any:
    return tuple(_tupled(x) for x in v) if isinstance(v, list) else v


def save_estimator(est: Any, path: str | os.PathLike, *, overwrite: bool = False, extra: dict[str, Any] | None = None) -> Path:
    """Write ``est`` as a run directory: ``config.json`` and ``model.safetensors`` (and ``history.csv``)."""
    from aekit import __version__
    from aekit.training import write_history_csv

    est._check_fitted()
    params = est.get_params(deep=False)
    if not isinstance(params.get("random_state"), int | np.integer | None):
        # A generator object is not a setting that JSON can hold; the weights are what a reload needs.
        params["random_state"] = None
    config = {
        "format": FORMAT,
        "aekit_version": __version__,
        "family": est._family_name,
        "params": params,
        "sample_shape": list(est.sample_shape_),
        "scaling": est.scaler_.kind,
        "fitted": getattr(est, "fitted_info_", {}),
    }
    if extra:
        config.update(extra)
    # Serialize before touching the disk, so a parameter JSON cannot hold leaves no half-written run.
    try:
        config_text = json.dumps(config, indent=2, sort_keys=True, default=_json_default) + "\n"
    except TypeError as exc:
        raise ValueError(
            f"cannot save this {type(est).__name__}: {exc}; its parameters must be numbers, strings, booleans, "
            "lists or None"
        ) from None
    p = check_out_dir(path, overwrite)
    tensors = {f"module.{k}": v for k, v in est.module_.state_dict().items()}
    tensors["scaler.shift"] = torch.from_numpy(np.asarray(est.scaler_.shift, np.float32))
    tensors["scaler.scale"] = torch.from_numpy(np.asarray(est.scaler_.scale, np.float32))
    save_tensors(p / MODEL_FILE, tensors, metadata={"format": FORMAT, "family": est._family_name})
    atomic_write_text(p / CONFIG_FILE, config_text)
    if getattr(est, "history_", None):
        write_history_csv(p / "history.csv", est.history_)
    else:
        # An overwritten run must not keep the history of the model it replaced.
        (p / "history.csv").unlink(missing_ok=True)
    return p


def load(path: str | os.PathLike, *, device: str = "cpu") -> Any:
    """Rebuild a fitted estimator from a run directory (or its ``model.safetensors``).

    Nothing is unpickled: the config is JSON and the weights are safetensors. Names and shapes of the
    weights are checked against what the config builds; a mismatch, a truncated file or a file that is
    not safetensors raises :class:`ModelFileError` with the reason.
    """
    from aekit.preprocessing import Scaler
    from aekit.registry import get_family

    p = Path(path)
    if p.is_file():
        p = p.parent
    if not p.is_dir():
        raise ModelFileError(f"{p} does not exist; pass the run directory written by fit/save or `aekit train --out`")
    cfg = read_json(p / CONFIG_FILE)
    if cfg.get("format") != FORMAT:
        raise ModelFileError(f"{p / CONFIG_FILE} is not an aekit run config (format {cfg.get('format')!r})")
    try:
        family = get_family(str(cfg.get("family")))
        est = family.estimator(**{k: _tupled(v) for k, v in dict(cfg.get("params", {})).items()})
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{p / CONFIG_FILE} cannot be rebuilt: {exc}") from None
    if not (p / MODEL_FILE).is_file():
        raise ModelFileError(
            f"{p} has no {MODEL_FILE}: the run did not finish. Continue it with `aekit train --resume {p}`"
            if (p / CHECKPOINT_FILE).is_file()
            else f"{p} has no {MODEL_FILE}"
        )
    tensors = load_tensors(p / MODEL_FILE)
    try:
        shift, scale = tensors["scaler.shift"].numpy(), tensors["scaler.scale"].numpy()
    except KeyError:
        raise ModelFileError(f"{p / MODEL_FILE} lacks the data scaling tensors; it was not written by aekit") from None
    est.scaler_ = Scaler(str(cfg.get("scaling", "none")), shift, scale)
    est.sample_shape_ = tuple(int(s) for s in cfg["sample_shape"])
    est.n_features_in_ = int(np.prod(est.sample_shape_))
    est.fitted_info_ = dict(cfg.get("fitted", {}))
    torch.manual_seed(0)
    module = est._build_module(est.sample_shape_)
    sd = {k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")}
    check_state_dict(module.state_dict(), sd, p / MODEL_FILE)
    module.load_state_dict(sd)
    module.to(device).eval()
    est.module_ = module
    hist = p / "history.csv"
    est.history_ = _read_history(hist) if hist.is_file() else []
    return est


def _read_history(path: Path) -> list[dict[str, float]]:
    import csv

    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]
