"""Loading a run directory back into a fitted estimator: no code runs, and nothing is allocated unchecked.

The order is the point. :func:`load` checks ``config.json`` field by field and the estimator's
parameters, builds the network on PyTorch's meta device (shapes, no memory) to learn which tensors the
weights file must hold, compares them with the file's header (names, shapes, dtypes, sizes against the
file size), and only then reads the tensors and builds the network for real. Every refusal is one
:class:`ModelFileError` line naming the file and the field.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from aekit.core.nets import OUTPUTS
from aekit.engine.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    FORMAT,
    MODEL_FILE,
    ModelFileError,
    read_history,
    read_json,
)
from aekit.engine.weights import (
    DIGEST_FIELDS,
    TORCH_DTYPES,
    check_finite,
    check_header,
    config_digest,
    out_of_memory,
    read_header,
    read_tensors,
)
from aekit.model.base import DataInfo, Resolved
from aekit.model.persist import _tupled

# A config.json that aekit writes is a few kilobytes; reading a huge one whole is the allocation this
# module exists to avoid.
MAX_CONFIG_BYTES = 4 * 2**20
# The scalings a saved model can hold: "auto" is resolved at fit time and never saved.
SAVED_SCALINGS = ("none", "standard", "minmax", "normalize")
# Scalings whose statistics are constants, (shift, scale): anything else means a file was edited.
_FIXED_SCALERS = {"none": (0.0, 1.0), "normalize": (0.5, 0.5)}
# Reconstruction losses that fit() stores in config.json's "fitted" entry (its outputs: nets.OUTPUTS).
_LOSSES = ("bce", "mse")


class HistoryWarning(UserWarning):
    """A run's ``history.csv`` could not be read; the model loaded with an empty history."""


def load(path: str | os.PathLike, *, device: str = "cpu") -> Any:
    """Rebuild a fitted estimator from a run directory (or its ``model.safetensors``).

    Nothing is unpickled: the config is JSON and the weights are safetensors, read only after their
    header matches what the config builds. A damaged ``history.csv`` does not stop the load: the model
    comes back with an empty ``history_`` and a :class:`HistoryWarning` naming the file.

    Parameters
    ----------
    path : path
        A run directory written by ``fit(...).save(path)`` or ``aekit train --out``, or its
        ``model.safetensors``.
    device : str
        Where to put the network ("cpu", "cuda", "auto").

    Returns
    -------
    estimator
        The fitted estimator of the family named in ``config.json``.

    Raises
    ------
    ModelFileError
        One line naming the file and the field, for any missing, damaged, inconsistent or hostile file.
    """
    from aekit.data.preprocessing import Scaler
    from aekit.model.registry import get_family

    p = Path(path)
    if p.is_file():
        if p.name not in (MODEL_FILE, CONFIG_FILE):
            raise ModelFileError(
                f"{p} is a file but not an aekit model: pass the run directory written by fit/save or `aekit train "
                f"--out` (or its {MODEL_FILE})")
        p = p.parent
    if not p.is_dir():
        raise ModelFileError(f"{p} does not exist; pass the run directory written by fit/save or `aekit train --out`")
    cfg_path = p / CONFIG_FILE
    if cfg_path.is_file() and cfg_path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelFileError(
            f"{cfg_path} is {cfg_path.stat().st_size} bytes, more than the {MAX_CONFIG_BYTES} an aekit config can be; "
            "the run directory is damaged"
        )
    cfg = read_json(cfg_path)
    if cfg.get("format") != FORMAT:
        raise ModelFileError(f"{cfg_path} is not an aekit run config (format {_short(cfg.get('format'))})")
    if cfg.get("status") == "training" and ("sample_shape" not in cfg or not (p / MODEL_FILE).is_file()):
        raise ModelFileError(f"{p} has not finished training (it stopped, or another process is training it now); "
                             f"continue it with `aekit train --resume {p}`, or wait for it to finish")
    family_name = cfg.get("family")
    params = cfg.get("params", {})
    if not isinstance(params, dict):
        raise ModelFileError(f"{cfg_path}: field 'params' must be a JSON object, found {type(params).__name__}")
    try:
        family = get_family(str(family_name))
        params = {k: _tupled(v) for k, v in params.items()}
        est = family.estimator(**params)
        _validate_params(est)
    except Exception as exc:  # a family's checks may trip over any JSON value; all of them are refusals
        raise ModelFileError(f"{cfg_path} cannot be rebuilt: {_one_line(exc)}") from None
    sample_shape = _sample_shape(cfg, cfg_path)
    scaling = _scaling(cfg, cfg_path, est)
    fitted = _fitted(cfg, cfg_path)

    model_path = p / MODEL_FILE
    if not model_path.is_file():
        raise ModelFileError(
            f"{p} has no {MODEL_FILE}; its checkpoint holds the weights: rebuild it with `aekit train --resume {p}`"
            if (p / CHECKPOINT_FILE).is_file()
            else f"{p} has no {MODEL_FILE}"
        )
    est.sample_shape_ = sample_shape
    est.n_features_in_ = math.prod(sample_shape)
    est.fitted_info_ = fitted
    # The parameters of the fit and what they resolved to: the module is built from these, never from later ones.
    est.params_ = params
    est.resolved_ = Resolved({**params, **{k: _tupled(v) for k, v in dict(cfg.get("resolved") or {}).items()}})
    if isinstance(cfg.get("data_info"), dict):
        try:
            est.data_info_ = DataInfo.from_json(cfg["data_info"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{cfg_path}: field 'data_info' is malformed ({_one_line(exc)})") from None
    # Shapes and dtypes only: a config naming a huge network costs nothing here.
    try:
        with torch.device("meta"):
            expected_module = est._build_module(sample_shape).state_dict()
    except Exception as exc:
        raise ModelFileError(f"{cfg_path} cannot be rebuilt: {_one_line(exc)}") from None
    expected = {f"module.{k}": (tuple(v.shape), TORCH_DTYPES.get(v.dtype, str(v.dtype))) for k, v in expected_module.items()}
    expected["scaler.shift"] = expected["scaler.scale"] = (sample_shape, "F32")

    header = read_header(model_path)
    check_header(header, expected)
    # Names and shapes can agree across families (denoising and autoencoder build the same network).
    _check_metadata(header.metadata, model_path, str(family_name))
    saved_digest = header.metadata.get("config_sha256")
    # Files written before the digest existed have none; they get every other check.
    if saved_digest is not None and saved_digest != config_digest(cfg):
        raise ModelFileError(
            f"{cfg_path}: fields {', '.join(DIGEST_FIELDS)} differ from those {MODEL_FILE} was saved with (metadata "
            "field 'config_sha256'); the config was edited or belongs to another model. Restore the config.json saved "
            "with the weights"
        )
    # The small scaler tensors first: a damaged file is refused before the network's weights are read.
    scaler_tensors = read_tensors(header, ["scaler.shift", "scaler.scale"])
    check_finite(scaler_tensors, model_path)
    shift, scale = scaler_tensors["scaler.shift"].numpy(), scaler_tensors["scaler.scale"].numpy()
    if not bool((scale > 0).all()):
        raise ModelFileError(
            f"{model_path}: tensor 'scaler.scale' holds {int((scale <= 0).sum())} zero or negative value(s); a data "
            "scale must be positive. The file is damaged: restore it from a copy, or retrain"
        )
    fixed = _FIXED_SCALERS.get(scaling)
    if fixed is not None and not (bool((shift == fixed[0]).all()) and bool((scale == fixed[1]).all())):
        raise ModelFileError(
            f"{model_path}: tensors 'scaler.shift' and 'scaler.scale' must be {fixed[0]} and {fixed[1]} for field "
            f"'scaling' {scaling!r} of {CONFIG_FILE}; one of the two files was edited. Restore them from a copy"
        )
    weights = read_tensors(header, [k for k in header.tensors if k.startswith("module.")])
    check_finite(weights, model_path)
    try:
        with torch.random.fork_rng(devices=[]):  # the weights are overwritten: leave the caller's random state alone
            module = est._build_module(sample_shape)
    except (MemoryError, RuntimeError) as exc:
        raise out_of_memory(model_path, sum(e.nbytes for e in header.tensors.values()), _one_line(exc)) from None
    module.load_state_dict({k[len("module.") :]: v for k, v in weights.items()})
    est.scaler_ = Scaler(scaling, shift, scale)
    module.to(device).eval()
    est.module_ = module
    est.history_ = _history(p / "history.csv")
    return est


def _validate_params(est: Any) -> None:
    """Check the saved hyperparameters with the estimator's own rules, before anything is built.

    The one place to swap in the declared constraints of :mod:`aekit.core.params` once every family
    declares them.
    """
    est._validate_params()


def _sample_shape(cfg: dict[str, Any], cfg_path: Path) -> tuple[int, ...]:
    if "sample_shape" not in cfg:
        raise ModelFileError(f"{cfg_path}: field 'sample_shape' is missing; the run directory is damaged")
    s = cfg["sample_shape"]
    if not (
        isinstance(s, list)
        and 1 <= len(s) <= 3
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in s)
    ):
        raise ModelFileError(
            f"{cfg_path}: field 'sample_shape' must be a list of 1 to 3 positive integers (features, (C, L) or "
            f"(C, H, W)), got {_short(s)}"
        )
    return tuple(s)


def _scaling(cfg: dict[str, Any], cfg_path: Path, est: Any) -> str:
    kind = cfg.get("scaling", "none")
    if kind not in SAVED_SCALINGS:
        raise ModelFileError(f"{cfg_path}: field 'scaling' is {_short(kind)}; valid: {', '.join(SAVED_SCALINGS)}")
    wanted = est._scaling()
    if wanted != "auto" and wanted != kind:
        raise ModelFileError(
            f"{cfg_path}: field 'scaling' is {kind!r} but the parameters ask for {wanted!r}; the config was edited"
        )
    return str(kind)


def _fitted(cfg: dict[str, Any], cfg_path: Path) -> dict[str, Any]:
    fitted = cfg.get("fitted", {})
    if not isinstance(fitted, dict):
        raise ModelFileError(f"{cfg_path}: field 'fitted' must be a JSON object, found {type(fitted).__name__}")
    for key, value in fitted.items():
        rule = _FITTED_RULES.get(key, (_is_flat_json, "a number, string, boolean, null or a list of those"))
        if not rule[0](value):
            raise ModelFileError(f"{cfg_path}: field 'fitted.{_clip(key.encode('unicode_escape').decode(), 40)}' must be {rule[1]}, got {_short(value)}")
    return dict(fitted)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_flat_json(v: Any) -> bool:
    scalar = (str, int, float, bool, type(None))
    return isinstance(v, scalar) or (isinstance(v, list) and all(isinstance(x, scalar) for x in v))


_FITTED_RULES = {
    "output": (lambda v: v in OUTPUTS, f"one of {', '.join(OUTPUTS)}"),
    "loss": (lambda v: v in _LOSSES, f"one of {', '.join(_LOSSES)}"),
    "classes": (
        lambda v: isinstance(v, list)
        and len(v) >= 1
        and all(isinstance(c, int) and not isinstance(c, bool) for c in v)
        and v == sorted(set(v)),
        "a sorted list of distinct integer class labels",
    ),
    "explained_variance": (
        lambda v: isinstance(v, list) and all(_is_number(x) and x >= 0 for x in v),
        "a list of non-negative numbers",
    ),
}


def _check_metadata(meta: dict[str, str], model_path: Path, family: str) -> None:
    if meta.get("format") != FORMAT:
        raise ModelFileError(
            f"{model_path}: metadata field 'format' is {_short(meta.get('format'))}, not {FORMAT!r}; the file was not "
            "written by aekit"
        )
    if meta.get("family") != family:
        raise ModelFileError(
            f"{model_path}: metadata field 'family' is {_short(meta.get('family'))} but {CONFIG_FILE} names family "
            f"{family!r}; the weights belong to another model: use the config.json saved with them"
        )


def _history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    try:
        return read_history(path)
    except (ValueError, TypeError, csv.Error, UnicodeDecodeError, OSError) as exc:
        warnings.warn(
            f"{path} is damaged ({_one_line(exc)}); the model loaded with an empty history_",
            HistoryWarning,
            stacklevel=3,
        )
        return []


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return _clip(text or type(exc).__name__, 300)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _short(value: Any, n: int = 80) -> str:
    # repr keeps control characters escaped, so a hostile value cannot break the message over lines.
    return _clip(repr(value), n)

