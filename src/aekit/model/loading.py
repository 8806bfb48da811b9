"""Loading a run directory back into a fitted estimator: no code runs, the files are checked first."""

from __future__ import annotations

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
    read_history,
    read_json,
)
from aekit.engine.weights import check_state_dict, load_tensors
from aekit.model.base import DataInfo, Resolved
from aekit.model.persist import _tupled


def load(path: str | os.PathLike, *, device: str = "cpu") -> Any:
    """Rebuild a fitted estimator from a run directory (or its ``model.safetensors``).

    Nothing is unpickled: the config is JSON and the weights are safetensors. Names and shapes of the
    weights are checked against what the config builds; a mismatch, a truncated file or a file that is
    not safetensors raises :class:`ModelFileError` with the reason.
    """
    from aekit.data.preprocessing import Scaler
    from aekit.model.registry import get_family

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
        params = {k: _tupled(v) for k, v in dict(cfg.get("params", {})).items()}
        est = family.estimator(**params)
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
    est.params_ = params
    est.resolved_ = Resolved({**params, **{k: _tupled(v) for k, v in dict(cfg.get("resolved", {})).items()}})
    if isinstance(cfg.get("data_info"), dict):
        est.data_info_ = DataInfo.from_json(cfg["data_info"])
    with torch.random.fork_rng(devices=[]):  # the weights are overwritten: leave the caller's random state alone
        module = est._build_module(est.sample_shape_)
    sd = {k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")}
    check_state_dict(module.state_dict(), sd, p / MODEL_FILE)
    module.load_state_dict(sd)
    module.to(device).eval()
    est.module_ = module
    hist = p / "history.csv"
    est.history_ = read_history(hist) if hist.is_file() else []
    return est


