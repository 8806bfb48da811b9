"""Loading a run directory is safe: every damaged, edited or hostile file is refused in one line, before
anything large is allocated, and no code in a file ever runs.

Each refusal is reproduced by a test; a Hypothesis suite mutates a good run (config fields, header bytes,
tensor shapes and dtypes, truncations) and requires either a load equal to the original or a one-line
ModelFileError; the big-allocation cases run in a subprocess under an address-space limit.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import aekit
from aekit.engine.rundir import ModelFileError
from aekit.engine.weights import config_digest
from aekit.model.base import Resolved
from aekit.model.loading import HistoryWarning


@dataclass(frozen=True)
class Good:
    """A small fitted run and the outputs every successful load must reproduce."""

    run: Path
    X: np.ndarray
    codes: np.ndarray
    recon: np.ndarray


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Good:
    rng = np.random.default_rng(0)
    # Real-valued data: scaling "standard" gives a scaler with non-trivial statistics to check.
    X = rng.normal(2.0, 3.0, size=(40, 6)).astype(np.float32)
    est = aekit.Autoencoder(hidden_dims=(8,), latent_dim=2, max_epochs=1, init="random", verbose=0, random_state=0).fit(X)
    run = est.save(tmp_path_factory.mktemp("good") / "run")
    return Good(run, X, est.transform(X), est.reconstruct(X))


@pytest.fixture
def run(good: Good, tmp_path: Path) -> Path:
    return Path(shutil.copytree(good.run, tmp_path / "run"))


def edit_config(run: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = run / "config.json"
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))


def edit_tensors(run: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Rewrite model.safetensors with edited tensors and the original metadata (a careful forger)."""
    path = run / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata=meta)


def refused(run: Path, match: str) -> ModelFileError:
    with pytest.raises(ModelFileError, match=match) as info:
        aekit.load(run)
    assert "\n" not in str(info.value)
    return info.value


def assert_same_outputs(est: Any, good: Good) -> None:
    np.testing.assert_array_equal(est.transform(good.X), good.codes)
    np.testing.assert_array_equal(est.reconstruct(good.X), good.recon)


def test_good_run_loads_with_equal_outputs(run: Path, good: Good) -> None:
    assert_same_outputs(aekit.load(run), good)


# ------------------------------------------------------------------------------- weights


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_weights(run: Path, bad: float) -> None:
    edit_tensors(run, lambda t: t["module.encoder.1.0.weight"].view(-1).__setitem__(3, bad))
    refused(run, r"model\.safetensors: tensor 'module\.encoder\.1\.0\.weight' holds 1 NaN or infinite value\(s\); the model diverged")


def test_weights_of_another_dtype(run: Path) -> None:
    edit_tensors(run, lambda t: t.__setitem__("module.encoder.1.0.bias", t["module.encoder.1.0.bias"].double()))
    refused(run, r"does not match config\.json: dtype mismatch module\.encoder\.1\.0\.bias: file F64 vs config F32")


def test_scaler_of_wrong_shape(run: Path) -> None:
    edit_tensors(run, lambda t: t.__setitem__("scaler.scale", torch.ones(5)))
    refused(run, r"does not match config\.json: shape mismatch scaler\.scale: file \(5,\) vs config \(6,\)")


def test_scaler_with_zero_or_non_finite_scale(run: Path, good: Good) -> None:
    edit_tensors(run, lambda t: t["scaler.scale"].__setitem__(2, 0.0))
    refused(run, r"tensor 'scaler\.scale' holds 1 zero or negative value\(s\); a data scale must be positive")
    shutil.copy(good.run / "model.safetensors", run / "model.safetensors")
    edit_tensors(run, lambda t: t["scaler.scale"].__setitem__(0, float("nan")))
    refused(run, r"tensor 'scaler\.scale' holds 1 NaN or infinite value\(s\)")


def drop_digest(run: Path) -> None:
    """Make the run look like one saved before weights files recorded the digest of their config."""
    path = run / "model.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    del meta["config_sha256"]
    save_file(load_file(path), path, metadata=meta)


def test_run_without_config_digest_still_loads(run: Path, good: Good) -> None:
    drop_digest(run)
    assert_same_outputs(aekit.load(run), good)


def test_constant_scaler_of_its_kind(run: Path) -> None:
    # A "standard" scaler's statistics relabelled "none" would load and compute something else; with
    # no digest to catch the edit, the scaler's constants do.
    drop_digest(run)
    edit_config(run, lambda c: c.__setitem__("scaling", "none"))
    refused(run, r"tensors 'scaler\.shift' and 'scaler\.scale' must be 0\.0 and 1\.0 for field 'scaling' 'none'")


def test_header_checked_before_any_tensor(run: Path) -> None:
    path = run / "model.safetensors"
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    entry = header["module.encoder.1.0.weight"]
    begin, end = entry["data_offsets"]

    def write(h: dict[str, Any]) -> None:
        text = json.dumps(h).encode()
        path.write_bytes(struct.pack("<Q", len(text)) + text + blob[8 + n :])

    write({**header, "module.encoder.1.0.weight": {**entry, "data_offsets": [begin, end + 10**12]}})
    refused(run, r"tensor 'module\.encoder\.1\.0\.weight': data_offsets \[\d+, \d+\] lie outside the \d+ bytes of data")
    write({**header, "module.encoder.1.0.weight": {**entry, "shape": [8, 7]}})
    refused(run, r"tensor 'module\.encoder\.1\.0\.weight': data_offsets span 192 bytes but shape \[8, 7\] of F32 needs 224")
    write({**header, "module.encoder.1.0.weight": {**entry, "dtype": "F128"}})
    refused(run, r"tensor 'module\.encoder\.1\.0\.weight': unknown dtype 'F128'")
    write({**header, "module.encoder.1.0.weight": {**entry, "data_offsets": [begin + 4, end + 4]}})
    refused(run, r"data_offsets start at \d+, expected \d+ \(gap or overlap\)")
    path.write_bytes(struct.pack("<Q", 2**62) + blob[8:])
    refused(run, r"header length 4611686018427387904 runs past the end of the \d+-byte file")
    path.write_bytes(blob + b"\0" * 64)
    refused(run, r"the tensors declare \d+ bytes of data but the file holds \d+")


# ------------------------------------------------------------------------------- config


def test_config_of_another_family_than_the_weights(run: Path) -> None:
    # The denoising family builds exactly the (randomly started) autoencoder's tensors: only the metadata tells
    # them apart once the parameters are ones the denoising family takes (no init, no binary codes, no "auto"
    # training settings).
    def as_denoising(c: dict[str, Any]) -> None:
        c["family"] = "denoising"
        for only_plain in ("init", "binary_codes", "binarization", "sample_norm", "shift_corruption"):
            c["params"].pop(only_plain), c["resolved"].pop(only_plain)
        c["params"].update({k: c["resolved"][k] for k in ("max_epochs", "validation_fraction", "patience")})

    edit_config(run, as_denoising)
    refused(run, r"metadata field 'family' is 'autoencoder' but config\.json names family 'denoising'")


def test_unknown_scaling(run: Path) -> None:
    edit_config(run, lambda c: c.__setitem__("scaling", "log"))
    refused(run, r"config\.json: field 'scaling' is 'log'; valid: none, standard, minmax, normalize")


@pytest.mark.parametrize(
    ("fitted", "match"),
    [
        ([], r"field 'fitted' must be a JSON object, found list"),
        ({"output": 3, "loss": "mse"}, r"field 'fitted\.output' must be one of sigmoid, linear, tanh, clip, got 3"),
        ({"output": "linear", "loss": ["mse"]}, r"field 'fitted\.loss' must be one of bce, mse, got \['mse'\]"),
        ({"output": "linear", "loss": "mse", "classes": "abc"}, r"'fitted\.classes' must be a sorted list of distinct"),
        ({"output": "linear", "loss": "mse", "extra": {"a": 1}}, r"'fitted\.extra' must be a number, string, boolean"),
    ],
)
def test_bogus_fitted_values(run: Path, fitted: Any, match: str) -> None:
    edit_config(run, lambda c: c.__setitem__("fitted", fitted))
    refused(run, match)


@pytest.mark.parametrize("bad", ["8", 8.0, [[8]], [0], [-8], [8.5], ["8"], None])
def test_bad_hidden_dims(run: Path, bad: Any) -> None:
    edit_config(run, lambda c: c["params"].__setitem__("hidden_dims", bad))
    refused(run, r"config\.json cannot be rebuilt: hidden_dims must be a tuple of")


@pytest.mark.parametrize("bad", ["2", 2.0, [2], 0, -1, True])
def test_bad_latent_dim(run: Path, bad: Any) -> None:
    edit_config(run, lambda c: c["params"].__setitem__("latent_dim", bad))
    refused(run, r"config\.json cannot be rebuilt: latent_dim must be a")


@pytest.mark.parametrize("bad", [["6"], [6.0], [[6]], [0], [-6], [], [1, 1, 1, 6], "6", 6, None])
def test_bad_sample_shape(run: Path, bad: Any) -> None:
    edit_config(run, lambda c: c.__setitem__("sample_shape", bad))
    refused(run, r"config\.json: field 'sample_shape' must be a list of 1 to 3 positive integers")


def test_missing_sample_shape(run: Path) -> None:
    edit_config(run, lambda c: c.pop("sample_shape"))
    refused(run, r"config\.json: field 'sample_shape' is missing; the run directory is damaged")


def test_edited_config_that_still_fits_the_weights(run: Path) -> None:
    # A new activation changes no tensor, only what the network computes: the digest catches it.
    edit_config(run, lambda c: c["params"].__setitem__("activation", "gelu"))
    refused(run, r"fields family, params, resolved, data_info, sample_shape, scaling, fitted differ from those model\.safetensors was saved with")


def test_oversized_config(run: Path) -> None:
    with (run / "config.json").open("ab") as f:
        f.truncate(5 * 2**20)
    refused(run, r"config\.json is 5242880 bytes, more than the 4194304 an aekit config can be")


@pytest.mark.parametrize("damage", [b"epoch,loss\n1,abc\n", b"\xff\xfe\x00garbage", b"epoch,loss\n1,[2]\n"])
def test_damaged_history_only_warns(run: Path, good: Good, damage: bytes) -> None:
    (run / "history.csv").write_bytes(damage)
    with pytest.warns(HistoryWarning, match=r"history\.csv is damaged \(.*\); the model loaded with an empty history_"):
        est = aekit.load(run)
    assert est.history_ == []
    assert_same_outputs(est, good)


# ------------------------------------------------------------------------------- no code runs


class _Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickle_payload_never_runs(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    payload = pickle.dumps({"module.encoder.1.0.weight": _Payload(marker)})
    (run / "model.safetensors").write_bytes(payload)
    refused(run, r"model\.safetensors is not a valid safetensors file")
    torch.save({"weights": _Payload(marker)}, run / "model.safetensors")  # a PyTorch zip holding a pickle
    refused(run, r"model\.safetensors is not a valid safetensors file")
    assert not marker.exists()
    # The check is real: unpickling the same bytes would have run the payload.
    pickle.loads(payload)
    assert marker.exists()


# ------------------------------------------------------------------------------- memory bound

_LIMITED_LOADER = textwrap.dedent(
    """
    import json, re, resource, sys, time
    import aekit
    from aekit.engine.rundir import ModelFileError

    # Imports map far more address space than they use; the bound is on what loading adds.
    vm = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + int(1.5 * 2**30), resource.RLIM_INFINITY))
    for run in sys.argv[1:]:
        t = time.perf_counter()
        try:
            aekit.load(run)
            out = {"run": run, "error": None}
        except ModelFileError as exc:
            out = {"run": run, "error": "ModelFileError", "message": str(exc)}
        except BaseException as exc:
            out = {"run": run, "error": type(exc).__name__, "message": str(exc)[:300]}
        out["seconds"] = time.perf_counter() - t
        print(json.dumps(out), flush=True)
    """
)


def _write_sparse_model(path: Path, entries: list[tuple[str, list[int]]], meta: dict[str, str], prefix: bytes) -> None:
    """A safetensors file whose header declares ``entries`` (float32) and whose data is a hole after ``prefix``."""
    header: dict[str, Any] = {"__metadata__": meta}
    pos = 0
    for name, shape in entries:
        n = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [pos, pos + n]}
        pos += n
    text = json.dumps(header).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + prefix)
        f.truncate(8 + len(text) + pos)  # sparse: gigabytes declared, kilobytes on disk


def test_big_allocations_refused_under_memory_limit(good: Good, tmp_path: Path) -> None:
    runs = []
    # 1. A sparse 6.4 GB model.safetensors whose header does not match the config.
    r = Path(shutil.copytree(good.run, tmp_path / "sparse-foreign"))
    meta = {"format": "aekit-run", "family": "autoencoder"}
    _write_sparse_model(r / "model.safetensors", [("module.encoder.1.0.weight", [40000, 40000])], meta, b"")
    runs.append(r)
    # 2. and 3. A config naming a 60000x60000 network, or a 3000x3000 sample, with the small weights.
    r = Path(shutil.copytree(good.run, tmp_path / "wide"))
    edit_config(r, lambda c: (c["params"].__setitem__("hidden_dims", [60000, 60000]),
                              c["resolved"].__setitem__("hidden_dims", [60000, 60000])))
    runs.append(r)
    r = Path(shutil.copytree(good.run, tmp_path / "big-sample"))
    edit_config(r, lambda c: c.__setitem__("sample_shape", [3000, 3000]))
    runs.append(r)
    # 4. A forgery consistent in every check (names, shapes, sizes, digest, scaler): 6.4 GB of weights
    #    that this process may not hold. Loading must say so, not crash.
    r = Path(shutil.copytree(good.run, tmp_path / "consistent"))
    edit_config(r, lambda c: (c["params"].__setitem__("hidden_dims", [40000]), c["resolved"].__setitem__("hidden_dims", [40000]),
                              c.__setitem__("sample_shape", [20000])))
    cfg = json.loads((r / "config.json").read_text())
    est = aekit.Autoencoder(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["params"].items()})
    est.resolved_ = Resolved({**est.get_params(), **cfg["resolved"]})
    with torch.device("meta"):
        sd = est._build_module((20000,)).state_dict()
    entries = [("scaler.scale", [20000]), ("scaler.shift", [20000])] + [(f"module.{k}", list(v.shape)) for k, v in sd.items()]
    meta = {**meta, "config_sha256": config_digest(cfg)}
    _write_sparse_model(r / "model.safetensors", entries, meta, np.ones(20000, np.float32).tobytes())
    runs.append(r)
    assert (r / "model.safetensors").stat().st_size > 6 * 10**9

    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED_LOADER, *map(str, runs)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [res["run"] for res in results] == list(map(str, runs))
    for res in results:
        assert res["error"] == "ModelFileError", res
        # The memory limit is the real bound; time only guards against a slow path (busy machines included).
        assert "\n" not in res["message"] and res["seconds"] < 30, res
    assert "missing tensors" in results[0]["message"]
    assert "module.encoder.1.0.bias: file (8,) vs config (60000,)" in results[1]["message"]
    assert "shape mismatch" in results[2]["message"]
    assert "GiB of weights do not fit in the memory this process may use" in results[3]["message"]


# ------------------------------------------------------------------------------- fuzz

_DELETE = object()
_CONFIG_FIELDS = [
    ("params", "hidden_dims"), ("params", "latent_dim"), ("params", "activation"), ("params", "architecture"),
    ("params", "scaling"), ("params", "output"), ("params", "loss"), ("params", "tied"), ("params", "preset"),
    ("params", "batch_size"), ("params", "max_epochs"), ("params",), ("sample_shape",), ("scaling",), ("family",),
    ("format",), ("fitted",), ("fitted", "output"), ("fitted", "loss"), ("fitted", "classes"),
]
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=2),
    max_leaves=6,
)
_sizes = st.integers(-3, 70000) | st.lists(st.integers(-2, 70000), max_size=3) | st.sampled_from(
    ["8", 8.0, 2.5, [8.0], [[8]], [], [1, 6], [6, 1], [2, 3], [1, 1, 6], [6], [8], 2, 6]
)
_names = st.sampled_from(
    ["autoencoder", "denoising", "linear", "sparse", "stacked", "standard", "none", "minmax", "normalize", "auto",
     "log", "relu", "gelu", "tanh", "sigmoid", "linear", "mse", "bce", "conv", "mlp", "lecture-conv", "hinton",
     "aekit-run"]
)
_mutation = st.tuples(st.sampled_from(_CONFIG_FIELDS), _json | _sizes | _names | st.just(_DELETE))
_FUZZ = settings(
    max_examples=60, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@contextmanager
def scratch_run(good: Good) -> Iterator[Path]:
    # Hypothesis runs many examples per test call: each needs its own copy, not pytest's tmp_path.
    with tempfile.TemporaryDirectory() as d:
        yield Path(shutil.copytree(good.run, Path(d) / "run"))


def load_equal_or_refused(run: Path, good: Good) -> bool:
    """The fuzz property: a load gives the original outputs, or refuses with one ModelFileError line."""
    try:
        est = aekit.load(run)
    except ModelFileError as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return False
    assert_same_outputs(est, good)
    return True


@_FUZZ
@given(mutations=st.lists(_mutation, min_size=1, max_size=3))
def test_fuzz_config_fields(good: Good, mutations: list[tuple[tuple[str, ...], Any]]) -> None:
    def edit(cfg: dict[str, Any]) -> None:
        for path, value in mutations:
            target: Any = cfg
            for key in path[:-1]:
                target = target.get(key) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                continue
            if value is _DELETE:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = value

    with scratch_run(good) as run:
        edit_config(run, edit)
        load_equal_or_refused(run, good)


@_FUZZ
@given(data=st.data())
def test_fuzz_header_bytes(good: Good, data: st.DataObject) -> None:
    blob = bytearray((good.run / "model.safetensors").read_bytes())
    (n,) = struct.unpack("<Q", blob[:8])
    edits = data.draw(st.lists(st.tuples(st.integers(0, 8 + n - 1), st.integers(0, 255)), min_size=1, max_size=4))
    for i, v in edits:
        blob[i] = v
    with scratch_run(good) as run:
        (run / "model.safetensors").write_bytes(bytes(blob))
        load_equal_or_refused(run, good)


_TENSOR_EDITS = ["float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool",
                 "flatten", "transpose", "drop", "grow", "delete", "rename", "extra", "scalar"]


def _edit_tensor(t: dict[str, torch.Tensor], index: int, op: str) -> None:
    name = sorted(t)[index % len(t)]
    v = t[name]
    if op in ("float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool"):
        t[name] = v.to(getattr(torch, op))
    elif op == "flatten":
        t[name] = v.reshape(-1) if v.ndim > 1 else v.reshape(1, -1)
    elif op == "transpose":
        t[name] = v.T.contiguous() if v.ndim == 2 else v.reshape(-1, 1)
    elif op == "drop":
        t[name] = v[:-1].contiguous()
    elif op == "grow":
        t[name] = torch.cat([v, v[:1]])
    elif op == "delete":
        del t[name]
    elif op == "rename":
        t[name + ".x"] = t.pop(name)
    elif op == "extra":
        t["module.extra"] = torch.zeros(3)
    else:
        t[name] = torch.tensor(1.0)


@_FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 100), st.sampled_from(_TENSOR_EDITS)), min_size=1, max_size=2))
def test_fuzz_tensor_shapes_and_dtypes(good: Good, edits: list[tuple[int, str]]) -> None:
    with scratch_run(good) as run:
        edit_tensors(run, lambda t: [_edit_tensor(t, i, op) for i, op in edits])
        assert not load_equal_or_refused(run, good)


@_FUZZ
@given(cut=st.integers(0, 2**20), tail=st.binary(max_size=16))
def test_fuzz_truncations(good: Good, cut: int, tail: bytes) -> None:
    blob = (good.run / "model.safetensors").read_bytes()
    with scratch_run(good) as run:
        (run / "model.safetensors").write_bytes(blob[: cut % len(blob)] + tail)
        load_equal_or_refused(run, good)
