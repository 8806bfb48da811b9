"""Saving a fitted estimator as a run directory (never a pickle)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.engine.rundir import (
    CONFIG_FILE,
    FORMAT,
    HISTORY_FILE,
    MODEL_FILE,
    SAVED_FILES,
    atomic_write_text,
    claim_run_dir,
    json_text,
    write_history_csv,
)
from aekit.engine.weights import config_digest, save_tensors


def _tupled(v: Any) -> Any:
    return tuple(_tupled(x) for x in v) if isinstance(v, list) else v


def estimator_config(est: Any, extra: dict[str, Any] | None = None, files: tuple[str, ...] = SAVED_FILES) -> str:
    """The ``config.json`` text of a fitted estimator; a parameter JSON cannot hold is a ValueError."""
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
        "files": list(files),
    }
    if extra:
        config.update(extra)
    try:
        return json_text(config)
    except TypeError as exc:
        raise ValueError(
            f"cannot save this {type(est).__name__}: {exc}; its parameters must be numbers, strings, booleans, "
            "lists or None"
        ) from None


def write_estimator_files(est: Any, path: Path, config_text: str, *, config_first: bool = True) -> None:
    """Write ``config.json``, ``history.csv`` and ``model.safetensors`` into the claimed directory ``path``.

    With ``config_first`` (a new directory) the config comes first, so every file aekit writes there
    is listed by a config; the weights come after the history, so a directory that holds
    ``model.safetensors`` holds the rest too. Without it (a training run whose config already
    exists) the config comes last, so that its new content, the run's ``status``, is written only
    once the files it describes are final.
    """
    if config_first:
        atomic_write_text(path / CONFIG_FILE, config_text)
    if getattr(est, "history_", None):
        write_history_csv(path / HISTORY_FILE, est.history_)
    else:
        # A replaced run must not keep the history of the model it replaced.
        (path / HISTORY_FILE).unlink(missing_ok=True)
    tensors = {f"module.{k}": v for k, v in est.module_.state_dict().items()}
    tensors["scaler.shift"] = torch.from_numpy(np.asarray(est.scaler_.shift, np.float32))
    tensors["scaler.scale"] = torch.from_numpy(np.asarray(est.scaler_.scale, np.float32))
    meta = {"format": FORMAT, "family": est._family_name, "config_sha256": config_digest(json.loads(config_text))}
    save_tensors(path / MODEL_FILE, tensors, metadata=meta)
    if not config_first:
        atomic_write_text(path / CONFIG_FILE, config_text)


def save_estimator(est: Any, path: str | os.PathLike, *, overwrite: bool = False, extra: dict[str, Any] | None = None) -> Path:
    """Write ``est`` as a run directory: ``config.json``, ``model.safetensors`` and ``history.csv``.

    ``path`` must be new, empty, or an aekit run (replaced only with ``overwrite=True``, which removes
    the files that run lists and nothing else). Errors are raised before anything is written.
    """
    # Serialize before touching the disk, so a parameter JSON cannot hold leaves no half-written run.
    config_text = estimator_config(est, extra)
    with claim_run_dir(path, overwrite=overwrite) as claim:
        write_estimator_files(est, claim.path, config_text)
        return claim.path


def model_fingerprint(model: Any) -> str:
    """SHA-256 binding a fitted estimator's config digest (:func:`~aekit.engine.weights.config_digest`) and weights.

    The config digest alone is equal for two fits with the same settings; a code decoded by other weights
    is noise, so the weights are hashed too.
    """
    h = hashlib.sha256(config_digest(json.loads(estimator_config(model))).encode())
    for name, t in sorted(model.module_.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
