"""Saving a fitted estimator as a run directory and loading it back (never a pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.engine.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    FORMAT,
    MODEL_FILE,
    ModelFileError,
    _json_default,
    atomic_write_text,
    check_out_dir,
    check_state_dict,
    load_tensors,
    read_history,
    read_json,
    save_tensors,
    write_history_csv,
)


def _tupled(v: Any) -> Any:
    return tuple(_tupled(x) for x in v) if isinstance(v, list) else v


def save_estimator(est: Any, path: str | os.PathLike, *, overwrite: bool = False, extra: dict[str, Any] | None = None) -> Path:
    """Write ``est`` as a run directory: ``config.json`` and ``model.safetensors`` (and ``history.csv``)."""
    from aekit import __version__

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
    from aekit.data.preprocessing import Scaler
    from aekit.families.registry import get_family

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
    est.history_ = read_history(hist) if hist.is_file() else []
    return est


