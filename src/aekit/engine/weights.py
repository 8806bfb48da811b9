"""Weights files: safetensors written atomically and read back with checks (never a pickle)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from aekit.engine.rundir import CONFIG_FILE, MODEL_FILE, ModelFileError, atomic_write_bytes


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



