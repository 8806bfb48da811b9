"""Saving a fitted estimator as a run directory and loading it back (never a pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.engine.rundir import (
    CONFIG_FILE,
    FORMAT,
    MODEL_FILE,
    _json_default,
    atomic_write_text,
    check_out_dir,
    write_history_csv,
)
from aekit.engine.weights import config_digest, save_tensors


def _tupled(v: Any) -> Any:
    return tuple(_tupled(x) for x in v) if isinstance(v, list) else v


def save_estimator(est: Any, path: str | os.PathLike, *, overwrite: bool = False, extra: dict[str, Any] | None = None) -> Path:
    """Write ``est`` as a run directory: ``config.json`` and ``model.safetensors`` (and ``history.csv``)."""
    from aekit import __version__

    est._check_fitted()
    # The parameters the model was fitted with, not the live ones: set_params after fit changes the next fit.
    params = dict(est.params_)
    if not isinstance(params.get("random_state"), int | np.integer | None):
        # A generator object is not a setting that JSON can hold; the weights are what a reload needs.
        params["random_state"] = None
    config = {
        "format": FORMAT,
        "aekit_version": __version__,
        "family": est._family_name,
        "params": params,
        "resolved": {k: v for k, v in est.resolved_.items() if k != "random_state" or k in params and params[k] is not None},
        "data_info": est.data_info_.to_json(),
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
    meta = {"format": FORMAT, "family": est._family_name, "config_sha256": config_digest(config)}
    save_tensors(p / MODEL_FILE, tensors, metadata=meta)
    atomic_write_text(p / CONFIG_FILE, config_text)
    if getattr(est, "history_", None):
        write_history_csv(p / "history.csv", est.history_)
    else:
        # An overwritten run must not keep the history of the model it replaced.
        (p / "history.csv").unlink(missing_ok=True)
    return p


