"""Weights files: safetensors written atomically and read back with checks (never a pickle).

Reading is bounded: :func:`read_header` parses only the 8-byte header length and the JSON header, and
checks every entry against the file's size, before any tensor is read. A caller that knows what it
expects (:func:`aekit.load` builds the network on PyTorch's meta device to find out) compares names,
shapes and dtypes with :func:`check_header`, and only then reads the tensors lazily with
``safetensors.safe_open``. A hostile or damaged file is refused with one line; it never makes aekit
allocate more than the file declares and the config expects.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from aekit.engine.rundir import CONFIG_FILE, MODEL_FILE, ModelFileError, _json_default, atomic_write_bytes

#: Bytes per element of each safetensors dtype aekit can read back into PyTorch.
DTYPE_SIZES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}
#: The safetensors name of each torch dtype, for comparing a header with a module's state dict.
TORCH_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
    torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
# aekit's own headers are a few kilobytes; safetensors allows 100 MB, which json.loads would turn into
# gigabytes of Python objects. 16 MiB is room for about 150,000 tensors.
MAX_HEADER_BYTES = 16 * 2**20


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as a safetensors header declares it: dtype name, shape and byte range in the data."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsHeader:
    """The checked header of a safetensors file: its tensors (by name) and its string metadata."""

    path: Path
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str] = field(default_factory=dict)


#: The fields of config.json that decide what a model computes; :func:`config_digest` binds them to the
#: weights file (its metadata key ``config_sha256``), so an edited activation or output is refused.
DIGEST_FIELDS = ("family", "params", "resolved", "data_info", "sample_shape", "scaling", "fitted")


def config_digest(config: Mapping[str, object]) -> str:
    """SHA-256 of the model-defining fields of a run config, as JSON; equal before saving and after loading."""
    text = json.dumps(
        {k: config.get(k) for k in DIGEST_FIELDS}, sort_keys=True, separators=(",", ":"), default=_json_default
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save tensors as safetensors, atomically."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(flat, metadata=metadata))


def _corrupt(path: Path, reason: str) -> ModelFileError:
    return ModelFileError(
        f"{path} is not a valid safetensors file ({reason}); it may be truncated or corrupt. Retrain, or restore "
        "the file from a copy (aekit never loads pickles)"
    )


def read_header(path: str | os.PathLike) -> SafetensorsHeader:
    """Read and check the header of a safetensors file without reading any tensor.

    Checks, in this order: the file exists and holds the 8-byte little-endian header length; the header
    fits in the file and in :data:`MAX_HEADER_BYTES`; it is a UTF-8 JSON object; every entry has a known
    dtype, a shape of non-negative integers and ``data_offsets`` ``[begin, end]`` whose length is the
    shape's element count times the dtype's size; the entries tile the data region exactly, so the
    declared total equals the file size.

    Raises
    ------
    ModelFileError
        One line naming the file and the offending field.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist; a run directory needs {MODEL_FILE} beside {CONFIG_FILE}")
    size = path.stat().st_size
    if size < 8:
        raise _corrupt(path, f"{size} bytes, shorter than the 8-byte header length")
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8:
            raise _corrupt(path, f"header length {n} runs past the end of the {size}-byte file")
        if n > MAX_HEADER_BYTES:
            raise _corrupt(path, f"header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
        raw = f.read(n)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _corrupt(path, f"header is not UTF-8 JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(obj, dict):
        raise _corrupt(path, f"header is a JSON {type(obj).__name__}, not an object")
    meta = obj.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise _corrupt(path, "header field '__metadata__' must map strings to strings")
    data_len = size - 8 - n
    tensors = {name: _entry(path, name, e, data_len) for name, e in obj.items()}
    # safetensors requires the byte ranges to follow one another with no gap or overlap and to end at
    # the end of the file; anything else hides bytes or aliases tensors.
    pos = 0
    for name, e in sorted(tensors.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if e.begin != pos:
            raise _corrupt(path, f"tensor {name!r}: data_offsets start at {e.begin}, expected {pos} (gap or overlap)")
        pos = e.end
    if pos != data_len:
        raise _corrupt(path, f"the tensors declare {pos} bytes of data but the file holds {data_len}")
    return SafetensorsHeader(path, tensors, dict(meta))


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _entry(path: Path, name: str, e: object, data_len: int) -> TensorEntry:
    if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
        raise _corrupt(path, f"tensor {name!r}: entry must hold exactly dtype, shape and data_offsets")
    dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
    if dtype not in DTYPE_SIZES:
        raise _corrupt(path, f"tensor {name!r}: unknown dtype {dtype!r}; valid: {', '.join(DTYPE_SIZES)}")
    if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
        raise _corrupt(path, f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
        raise _corrupt(path, f"tensor {name!r}: data_offsets must be two integers, got {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        raise _corrupt(path, f"tensor {name!r}: data_offsets {offsets} lie outside the {data_len} bytes of data")
    want = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != want:
        raise _corrupt(
            path, f"tensor {name!r}: data_offsets span {end - begin} bytes but shape {shape} of {dtype} needs {want}"
        )
    return TensorEntry(dtype, tuple(shape), begin, end)


def check_header(
    header: SafetensorsHeader, expected: Mapping[str, tuple[tuple[int, ...], str]], names: Iterable[str] | None = None
) -> None:
    """Refuse a header whose tensors differ from ``expected`` (name -> (shape, safetensors dtype)).

    ``names`` restricts the comparison to those of the header's names (e.g. one prefix); by default
    every tensor of the header must be expected.
    """
    found = {k: header.tensors[k] for k in (header.tensors if names is None else names)}
    _mismatch(
        header.path,
        {k: tuple(v[0]) for k, v in expected.items()},
        {k: e.shape for k, e in found.items()},
    )
    dtypes = [f"{k}: file {found[k].dtype} vs config {expected[k][1]}" for k in sorted(found) if found[k].dtype != expected[k][1]]
    if dtypes:
        raise ModelFileError(
            f"{header.path} does not match {CONFIG_FILE}: dtype mismatch " + "; ".join(dtypes[:5])
            + ". aekit writes every weight in the dtype its network uses; restore the file written with the config"
        )


def read_tensors(header: SafetensorsHeader, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Read the (checked) tensors of ``header`` with safetensors' lazy, memory-mapped reader.

    Only the tensors in ``names`` (default: all) are read. Running out of memory is a
    :class:`ModelFileError` that says how much the tensors need.
    """
    keys = list(header.tensors if names is None else names)
    try:
        with safe_open(str(header.path), framework="pt", device="cpu") as f:  # type: ignore[no-untyped-call]
            return {k: f.get_tensor(k) for k in keys}
    except MemoryError:
        raise out_of_memory(header.path, sum(header.tensors[k].nbytes for k in keys), "MemoryError") from None
    except (SafetensorError, OSError, RuntimeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if "alloc" in reason.lower() or "memory" in reason.lower():
            raise out_of_memory(header.path, sum(header.tensors[k].nbytes for k in keys), reason) from None
        raise _corrupt(header.path, reason[:300]) from None


def out_of_memory(path: Path, nbytes: int, reason: str) -> ModelFileError:
    """The refusal for weights that the checks let through but this machine cannot hold."""
    return ModelFileError(
        f"{path}: its {nbytes / 2**30:.2f} GiB of weights do not fit in the memory this process may use "
        f"({reason[:200]}); load it on a machine with more memory"
    )


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file after checking its header; a missing, truncated or foreign file is a ModelFileError."""
    return read_tensors(read_header(path))


def check_finite(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Refuse floating-point tensors holding NaN or infinity (a model saved after its training diverged)."""
    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            n = int((~torch.isfinite(v)).sum())
            raise ModelFileError(
                f"{path}: tensor {k!r} holds {n} NaN or infinite value(s); the model diverged or the file is damaged. "
                "Retrain (a lower learning_rate avoids divergence), or restore the file from a copy"
            )


def check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights whose names or shapes differ from what the config builds."""
    _mismatch(path, {k: tuple(v.shape) for k, v in expected.items()}, {k: tuple(v.shape) for k, v in found.items()})


def _mismatch(path: Path, expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shapes = [
        f"{k}: file {found[k]} vs config {expected[k]}" for k in sorted(set(expected) & set(found)) if found[k] != expected[k]
    ]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}")
        if extra:
            parts.append(f"unexpected tensors {[_short(k) for k in extra[:5]]}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise ModelFileError(
            f"{path} does not match {CONFIG_FILE}: " + ", ".join(parts) + ". The weights belong to a different model; "
            "use the config.json saved with them"
        )


def _short(name: str) -> str:
    # A hostile header can hold megabyte-long names; the message stays one readable line.
    return name if len(name) <= 80 else name[:77] + "..."
