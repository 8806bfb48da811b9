"""Checkpoints: everything the training loop needs to continue exactly where it stopped.

A checkpoint is one file, ``checkpoint.safetensors``, committed by one atomic rename: the tensors
(model, best model, optimizer moments, RNG states) and, in the safetensors header's ``metadata``, one
JSON string with the loop's counters, history, early-stopping state and optimizer groups. A kill at any
instant leaves either the previous checkpoint or the new one, never parts of two. Loading reads the
metadata and the tensors from one open file and checks that they describe the same step.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch
from safetensors import safe_open

from aekit.engine.optim import AdamW
from aekit.engine.rundir import CHECKPOINT_FILE, ModelFileError
from aekit.engine.state import PATHS, TrainState
from aekit.engine.weights import check_state_dict, save_tensors

# The header metadata key holding the loop's state as one JSON string.
META_KEY = "aekit_checkpoint"
# The header metadata key holding the CRC-32 of that string and the tensors (checkpoints written before it
# existed have none and are read unchecked).
CRC_KEY = "aekit_crc32"
# Bumped when the meaning of a field changes; a checkpoint of another version is refused, not guessed at.
FORMAT_VERSION = 1
_PREFIXES = ("model.", "best.", "optim.", "rng.")
# What AdamW keeps for each parameter.
_OPTIMIZER_STATE = ("step", "exp_avg", "exp_avg_sq")


# ------------------------------------------------------------------------------------------ writing


def _flatten_optimizer(opt: AdamW) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"optim.{pid}.{key}"] = val if isinstance(val, torch.Tensor) else torch.tensor(val)
    groups = [
        {k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in g.items()} for g in sd["param_groups"]
    ]
    return tensors, groups


def save_checkpoint(directory: str | os.PathLike, state: TrainState) -> None:
    """Write ``state`` to ``directory/checkpoint.safetensors`` in one atomic rename.

    Parameters
    ----------
    directory : path
        The run (or checkpoint) directory; created if missing.
    state : TrainState
        The loop's state after a finished epoch.
    """
    tensors = {f"model.{k}": v for k, v in state.module.state_dict().items()}
    opt_tensors, groups = _flatten_optimizer(state.optimizer)
    tensors.update(opt_tensors)
    tensors["rng.generator"] = state.generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        # Corruption and dropout on a GPU draw from the CUDA generator, not the CPU one.
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if state.best_state is not None:
        tensors.update({f"best.{k}": v for k, v in state.best_state.items()})
    meta = {
        "format_version": FORMAT_VERSION,
        "epoch": state.epoch,
        "step": state.step,
        "steps_per_epoch": state.steps_per_epoch,
        "history": state.history,
        # JSON has no infinity: "no validation loss yet" is null.
        "best_val": state.best_val if math.isfinite(state.best_val) else None,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "stop": state.stop,
        "path": state.path,
        "threads": state.threads,
        "optimizer": {"param_groups": groups},
    }
    text = json.dumps(meta, allow_nan=False)
    save_tensors(Path(directory) / CHECKPOINT_FILE, tensors,
                 metadata={META_KEY: text, CRC_KEY: f"{_crc32(text, tensors):08x}"})


def _crc32(text: str, tensors: Mapping[str, torch.Tensor]) -> int:
    """CRC-32 of the metadata text and every tensor's name and bytes, in name order: a flipped bit anywhere in
    the file is found on loading, not trained on."""
    crc = zlib.crc32(text.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        crc = zlib.crc32(name.encode(), crc)
        data: Any = t.reshape(-1).view(torch.uint8).numpy()  # a buffer: read in place, not copied
        crc = zlib.crc32(data, crc) if t.numel() else crc
    return crc


# ------------------------------------------------------------------------------------------ reading


def checkpoint_epoch(directory: str | os.PathLike) -> int | None:
    """The number of epochs the checkpoint in ``directory`` holds, or None if it has none or is unreadable."""
    try:
        with safe_open(str(Path(directory) / CHECKPOINT_FILE), framework="pt") as f:
            epoch = json.loads((f.metadata() or {})[META_KEY])["epoch"]
    except Exception:  # only a hint for a message: any failure means "unknown"
        return None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def _read(path: Path) -> tuple[dict[str, str] | None, dict[str, torch.Tensor]]:
    """Header metadata and tensors, from one open file (a rename in between cannot mix two files)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error, OSError or ValueError by case
        raise ModelFileError(
            f"{path} is not a valid safetensors file ({exc}); it may be truncated or corrupt. Train again from "
            "the start (aekit never loads pickles)"
        ) from None
    return metadata, tensors


class _Checker:
    """Refusals that name the file and the field, with the way out."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, problem: str) -> NoReturn:
        raise ModelFileError(
            f"{self.path}: {field} {problem}; the checkpoint is damaged or was edited. Train again from the start "
            "(fit without resume=True; on the command line, aekit train --overwrite)"
        )

    def int_(self, meta: Mapping[str, Any], key: str, low: int) -> int:
        if key not in meta:
            self.fail(key, "is missing from the metadata")
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.fail(key, f"must be an integer >= {low}, found {value!r}")
        return value

    def number(self, value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(field, f"must be a number, found {value!r}")
        return float(value)

    def tensor(self, tensors: Mapping[str, torch.Tensor], name: str, like: torch.Tensor) -> torch.Tensor:
        if name not in tensors:
            self.fail(name, "is missing")
        t = tensors[name]
        if t.dtype != like.dtype or t.shape != like.shape:
            self.fail(name, f"has shape {tuple(t.shape)} and dtype {t.dtype}; expected {tuple(like.shape)} {like.dtype}")
        return t


def _parse_meta(check: _Checker, metadata: Mapping[str, str] | None) -> dict[str, Any]:
    if not metadata or META_KEY not in metadata:
        check.fail(
            f"the header metadata entry {META_KEY!r}", "is missing (a checkpoint of an older aekit, which kept it in "
            "checkpoint.json, or not an aekit checkpoint)",
        )
    try:
        meta = json.loads(metadata[META_KEY])
    except json.JSONDecodeError as exc:
        check.fail(f"the header metadata entry {META_KEY!r}", f"is not valid JSON ({exc})")
    if not isinstance(meta, dict):
        check.fail(f"the header metadata entry {META_KEY!r}", f"should be a JSON object, found {type(meta).__name__}")
    if meta.get("format_version") != FORMAT_VERSION:
        check.fail("format_version", f"is {meta.get('format_version')!r}; this aekit reads version {FORMAT_VERSION}")
    return meta


def _check_counters(check: _Checker, meta: dict[str, Any], max_epochs: int) -> None:
    """Epoch, step, history and early stopping must all describe the same finished epoch."""
    epoch = check.int_(meta, "epoch", 0)
    step = check.int_(meta, "step", 0)
    if epoch > max_epochs:
        # Not damage: a resume asked for fewer epochs than the checkpoint holds.
        raise ModelFileError(f"{check.path} holds {epoch} trained epochs, more than max_epochs={max_epochs}; resume with "
                         f"max_epochs={epoch} or more (on the command line, --epochs), or start a new fit")
    history = meta.get("history")
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        check.fail("history", f"must be a list of rows (JSON objects), found {type(history).__name__}")
    if len(history) != epoch:
        check.fail("epoch", f"is {epoch} but the history holds {len(history)} rows")
    for i, row in enumerate(history):
        for k, v in row.items():
            check.number(v, f"history row {i + 1} column {k!r}")
        if row.get("epoch") != i + 1:
            check.fail("history", f"row {i + 1} has epoch {row.get('epoch')!r}; rows must count epochs 1, 2, 3, ...")
    steps = meta.get("steps_per_epoch")
    if not isinstance(steps, list) or len(steps) != epoch or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in steps
    ):
        check.fail("steps_per_epoch", f"must list one positive step count per epoch ({epoch}), found {steps!r}")
    if step != sum(steps):
        per = f"{epoch} x {steps[0]}" if len(set(steps)) == 1 else " + ".join(map(str, steps))
        check.fail("step", f"is {step}, not the batches of its {epoch} epochs ({per} = {sum(steps)})")
    best_epoch = check.int_(meta, "best_epoch", -1)
    if best_epoch < -1 or best_epoch > epoch:
        check.fail("best_epoch", f"is {best_epoch}; it must be -1 (none yet), 0 (the starting weights) or an epoch "
                   f"in 1..{epoch}")
    bad = check.int_(meta, "bad_epochs", 0)
    if bad > epoch:
        check.fail("bad_epochs", f"is {bad}, more than the {epoch} epochs trained")
    best_val = meta.get("best_val")
    if (best_val is None) != (best_epoch == -1):
        check.fail("best_val", f"is {best_val!r} while best_epoch is {best_epoch}")
    if best_val is not None:
        check.number(best_val, "best_val")
    if not isinstance(meta.get("stop"), bool):
        check.fail("stop", f"must be true or false, found {meta.get('stop')!r}")


def _check_optimizer(
    check: _Checker, opt: AdamW, tensors: Mapping[str, torch.Tensor], meta: dict[str, Any], step: int
) -> dict[int, dict[str, torch.Tensor]]:
    saved = meta.get("optimizer")
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or len(groups) != len(opt.param_groups):
        check.fail("optimizer.param_groups", f"must list the run's {len(opt.param_groups)} parameter groups, found {groups!r}")
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or "lr" not in g:
            check.fail(f"optimizer.param_groups[{i}]", f"must be an object with an lr, found {g!r}")
        for key in ("lr", "initial_lr"):
            if key in g and not check.number(g[key], f"optimizer.param_groups[{i}].{key}") >= 0:
                check.fail(f"optimizer.param_groups[{i}].{key}", f"must be >= 0, found {g[key]!r}")
    params = [p for g in opt.param_groups for p in g["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, val in tensors.items():
        if not name.startswith("optim."):
            continue
        parts = name.split(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params):
            check.fail(name, f"names no parameter of this model (it has {len(params)})")
        pid, key = int(parts[1]), parts[2]
        if key not in _OPTIMIZER_STATE:
            check.fail(name, f"is not a state of the optimizer (it keeps {', '.join(_OPTIMIZER_STATE)})")
        if key == "step":
            if val.numel() != 1 or float(val) != step:
                check.fail(name, f"is {val.tolist()}, but the metadata's step is {step}")
        elif val.shape != params[pid].shape or not val.is_floating_point():
            check.fail(name, f"has shape {tuple(val.shape)} and dtype {val.dtype}; the parameter is {tuple(params[pid].shape)}")
        state.setdefault(pid, {})[key] = val
    for pid, st in state.items():
        missing = [k for k in _OPTIMIZER_STATE if k not in st]
        if missing:
            check.fail(f"optim.{pid}.{missing[0]}", "is missing")
    return state


def load_checkpoint(directory: str | os.PathLike, state: TrainState) -> None:
    """Restore ``state`` from ``directory/checkpoint.safetensors``, after checking every field.

    Raises
    ------
    ModelFileError
        No checkpoint, an unreadable file, or one whose metadata and tensors disagree (counters,
        history, RNG states, optimizer state of the wrong shape or step), naming the file and field.
    """
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise ModelFileError(
            f"no checkpoint to resume from in {directory} (expected {CHECKPOINT_FILE}); start a new run instead"
        )
    metadata, tensors = _read(path)
    check = _Checker(path)
    header = metadata or {}
    stored, text = header.get(CRC_KEY), header.get(META_KEY)
    if stored is not None and text is not None:
        found = f"{_crc32(text, tensors):08x}"
        if found != stored:
            raise ModelFileError(f"{path} is corrupt: its CRC-32 {stored} does not match its content ({found}); "
                                 "restore the file, or train again from the start (fit without resume=True; on the "
                                 "command line, aekit train --overwrite)")
    meta = _parse_meta(check, metadata)
    _check_counters(check, meta, state.config.max_epochs)
    unknown = sorted(k for k in tensors if not k.startswith(_PREFIXES))
    if unknown:
        check.fail(f"tensor {unknown[0]!r}", "is not part of an aekit checkpoint")

    module = state.module
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state_dict(module.state_dict(), model_sd, path)
    best = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
    if (meta["best_epoch"] >= 0) != bool(best):
        check.fail("best_epoch", f"is {meta['best_epoch']} but the file {'holds' if best else 'lacks'} best.* weights")
    if best:
        check_state_dict(module.state_dict(), best, path)
    opt_state = _check_optimizer(check, state.optimizer, tensors, meta, meta["step"])
    gen_state = check.tensor(tensors, "rng.generator", state.generator.get_state())
    torch_state = check.tensor(tensors, "rng.torch", torch.get_rng_state())
    for name, value in (("rng.generator", gen_state), ("rng.torch", torch_state)):
        try:  # on a scratch generator, so a bad state changes nothing of the caller's
            torch.Generator().set_state(value)
        except RuntimeError as exc:
            check.fail(name, f"is not a valid random generator state ({exc})")
    cuda_state = None
    if "rng.cuda" in tensors and torch.cuda.is_available():
        cuda_state = check.tensor(tensors, "rng.cuda", torch.cuda.get_rng_state())
    if meta.get("path") not in PATHS:
        check.fail("path", f"is {meta.get('path')!r}; valid: {', '.join(PATHS)}")
    threads = check.int_(meta, "threads", 1)

    # Everything is checked: only now is the caller's state changed.
    module.load_state_dict(model_sd)
    current = state.optimizer.state_dict()
    groups = []
    for cur, saved in zip(current["param_groups"], meta["optimizer"]["param_groups"]):
        g = dict(cur)  # this run's flags (fused, capturable) stay; the schedule's values come back
        for key in ("lr", "initial_lr"):
            if key in saved:
                g[key] = torch.tensor(float(saved[key]), device=cur[key].device) if isinstance(cur.get(key), torch.Tensor) else saved[key]
        groups.append(g)
    state.optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    state.generator.set_state(gen_state)
    torch.set_rng_state(torch_state)
    if cuda_state is not None:
        torch.cuda.set_rng_state(cuda_state)
    state.best_state = best or None
    state.epoch, state.step = meta["epoch"], meta["step"]
    state.steps_per_epoch = list(meta["steps_per_epoch"])
    state.history = [dict(r) for r in meta["history"]]
    state.best_val = math.inf if meta["best_val"] is None else float(meta["best_val"])
    state.best_epoch, state.bad_epochs, state.stop = meta["best_epoch"], meta["bad_epochs"], meta["stop"]
    state.threads = threads
