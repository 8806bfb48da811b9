"""Where computation runs, and in what pieces."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; a CUDA request without CUDA is a clear error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but this PyTorch build sees no CUDA GPU; use device='cpu' or 'auto'")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


#: Bytes of a temporary array that chunked passes over the data aim at: small enough for the allocator to reuse
#: one block from chunk to chunk (above 32 MB glibc maps fresh pages for each, and their page faults cost up
#: to 8x the arithmetic), large enough that each chunk's fixed cost is negligible.
CHUNK_BYTES = 1 << 23


def chunk_rows(row_bytes: int) -> int:
    """Rows of a chunk whose temporaries of ``row_bytes`` bytes a row fit :data:`CHUNK_BYTES` (at least 1)."""
    return max(1, CHUNK_BYTES // max(int(row_bytes), 1))
