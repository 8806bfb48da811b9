"""Checkpoints: everything the training loop needs to continue exactly where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from aekit.engine.rundir import (
    CHECKPOINT_FILE,
    CHECKPOINT_META,
    ModelFileError,
    read_json,
    write_json,
)
from aekit.engine.weights import check_state_dict, load_tensors, save_tensors


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
    """Everything :func:`aekit.engine.training.fit_module` needs to continue exactly where it stopped."""
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


