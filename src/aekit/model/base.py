"""The scikit-learn face shared by every family.

A family declares its hyperparameters once, as a stdlib dataclass with a comment on each default;
:func:`declare_params` turns those dataclasses into the estimator's keyword-only ``__init__`` (which
only stores its arguments, as scikit-learn requires), into ``get_params``/``set_params`` and into the
CLI's flags. Fitted state ends in ``_``.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import NotFittedError
from torch import Tensor, nn

from aekit.core.devices import resolve_device
from aekit.core.params import AUTO, auto_rule, check_value, field_types, seed_from
from aekit.data.preprocessing import Scaler, check_array, data_checksum
from aekit.engine.rundir import open_checkpoint_dir
from aekit.engine.training import Callback, TrainConfig, TrainingDivergedError, fit_module

E = TypeVar("E", bound=type)
C = TypeVar("C")
B = TypeVar("B", bound="BaseAutoencoder")

#: Rows of every forward pass at inference (transform, reconstruct, the scores): each pass of a model gets
#: exactly the same number, the last padded by repeating its final row. Matrix-product kernels are chosen by
#: the row count, and their float32 results differ in the last bits between counts, so without it a sample
#: scored alone could differ from the same sample scored among others; with a fixed count a row's result
#: depends on that row alone. 256 rows keep a convolutional network's activations in cache (1.4x to 1.6x faster
#: than 2,048 on a CPU, level for an MLP: benchmarks/bench_inference.py); large samples get fewer
#: (:func:`inference_rows`).
INFERENCE_ROWS = 256
#: The most values of data in one inference pass (16 MiB of float32): 256 MNIST or CIFAR-10 images, 5 RGB
#: images of 512 x 512, so a single large image is not padded to hundreds.
INFERENCE_BUDGET = 2**22


def inference_rows(sample_shape: Sequence[int]) -> int:
    """Rows of every inference pass of a model of samples ``sample_shape``: at most :data:`INFERENCE_ROWS`
    and :data:`INFERENCE_BUDGET` values, at least one sample."""
    return max(1, min(INFERENCE_ROWS, INFERENCE_BUDGET // max(1, math.prod(sample_shape))))


T = TypeVar("T", np.ndarray, Tensor)


def pad_rows(a: T, rows: int) -> T:
    """``a`` (m, ...) with m <= ``rows``, its last row repeated to make ``rows`` rows (``a`` itself if m == rows)."""
    missing = rows - a.shape[0]
    if missing <= 0:
        return a
    if isinstance(a, Tensor):
        return torch.cat([a, a[-1:].expand(missing, *a.shape[1:])])
    return np.concatenate([a, np.repeat(a[-1:], missing, axis=0)])


def declare_params(*configs: type) -> Callable[[E], E]:
    """Give an estimator class a keyword-only ``__init__`` built from the fields of ``configs``.

    The generated ``__init__`` stores each argument unchanged under its own name and has a real
    signature, so scikit-learn's ``get_params``, ``clone`` and estimator checks see every parameter.
    """
    fields = [f for c in configs for f in dataclasses.fields(c)]
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise RuntimeError(f"duplicate parameter names in {configs}")
    params = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type) for f in fields
    ]

    def decorate(cls: E) -> E:
        def __init__(self: Any, **kwargs: Any) -> None:
            unknown = sorted(set(kwargs) - set(names))
            if unknown:
                raise TypeError(
                    f"{cls.__name__} got unknown parameter(s) {unknown}; valid parameters are: {', '.join(names)}"
                )
            for p in params:
                setattr(self, p.name, kwargs.get(p.name, p.default))

        __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params]
        )
        __init__.__qualname__ = f"{cls.__name__}.__init__"
        cls.__init__ = __init__  # type: ignore[misc]
        cls._param_configs = configs  # type: ignore[attr-defined]
        cls._param_types = {n: tp for c in configs for n, tp in field_types(c).items()}  # type: ignore[attr-defined]
        return cls

    return decorate


@dataclass(frozen=True)
class DataInfo:
    """What a family's ``resolve`` step may read of the training data; saved with the model.

    Attributes
    ----------
    sample_shape : tuple of int
        One sample's shape: (D,) tabular, (C, L) signals, (C, H, W) images.
    n_samples : int
    min, max : float
        Range of the raw training data (before scaling).
    classes : tuple of int or None
        The class labels seen in ``y`` (unlabelled samples, -1, left out), for families that use labels.
    standardized_min, standardized_max : float or None
        Range of the data after ``scaling="standard"`` (which min and max alone cannot tell), so that
        ``resolve`` can check an output layer against the data range of every scaling.
    """

    sample_shape: tuple[int, ...]
    n_samples: int
    min: float
    max: float
    classes: tuple[int, ...] | None = None
    standardized_min: float | None = None
    standardized_max: float | None = None

    @classmethod
    def of(cls, X: np.ndarray, classes: tuple[int, ...] | None = None) -> DataInfo:
        lows, highs = X.min(axis=0), X.max(axis=0)  # (*sample_shape,)
        std = Scaler.fit("standard", X)
        # Standardizing is increasing in each feature, so each feature's extremes map to the scaled extremes.
        s_lo = float(((lows - std.shift) / std.scale).min())
        s_hi = float(((highs - std.shift) / std.scale).max())
        return cls(tuple(int(s) for s in X.shape[1:]), int(X.shape[0]), float(lows.min()), float(highs.max()),
                   classes, s_lo, s_hi)

    def scaled_range(self, scaling: str) -> tuple[float, float]:
        """The range of the data after ``scaling`` (``none``, ``standard``, ``minmax`` or ``normalize``)."""
        if scaling == "minmax":
            return 0.0, (1.0 if self.max > self.min else 0.0)
        if scaling == "normalize":
            return 2.0 * self.min - 1.0, 2.0 * self.max - 1.0
        if scaling == "standard":
            if self.standardized_min is None or self.standardized_max is None:
                raise ValueError("this data summary was saved without its standardized range")
            return self.standardized_min, self.standardized_max
        return self.min, self.max

    @staticmethod
    def auto_scaling(sample_shape: tuple[int, ...], lo: float, hi: float) -> str:
        """``scaling="auto"``: images, signals and data in [0, 1] are kept as they are; tabular data standardized."""
        return "none" if len(sample_shape) > 1 or (lo >= 0.0 and hi <= 1.0) else "standard"

    def to_json(self) -> dict[str, Any]:
        return {"sample_shape": list(self.sample_shape), "n_samples": self.n_samples, "min": self.min, "max": self.max,
                "classes": None if self.classes is None else list(self.classes),
                "standardized_min": self.standardized_min, "standardized_max": self.standardized_max}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> DataInfo:
        classes = obj.get("classes")
        s_lo, s_hi = obj.get("standardized_min"), obj.get("standardized_max")
        return cls(tuple(int(s) for s in obj["sample_shape"]), int(obj["n_samples"]), float(obj["min"]),
                   float(obj["max"]), None if classes is None else tuple(int(c) for c in classes),
                   None if s_lo is None else float(s_lo), None if s_hi is None else float(s_hi))


@dataclass(frozen=True)
class Epochs:
    """What ``max_epochs`` (the CLI's ``--epochs``) means for a family at given parameters.

    Attributes
    ----------
    applies : bool
        Whether the family trains by epochs at these parameters.
    counts : str
        What one epoch is, e.g. "passes of the training loop over the data".
    instead : str
        When it does not apply: why, and the parameter that sets the amount of work instead.
    """

    applies: bool
    counts: str = "passes of the training loop over the data"
    instead: str = ""


class Resolved(Mapping[str, Any]):
    """The parameters a model was built with, every ``"auto"`` replaced; read-only, by key or attribute."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("resolved parameters are read-only; set parameters on the estimator and fit again")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Resolved({self._values!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Resolved, (self._values,))


def fitted_name(name: str) -> bool:
    """A fitted attribute's name, by scikit-learn's convention (``module_``, ``history_``; not ``__dict__``)."""
    return name.endswith("_") and not name.startswith("__")


@contextmanager
def _own_rng(device: torch.device | None = None) -> Iterator[None]:
    """Run with torch's global RNG forked, so the caller's random state is the same afterwards."""
    devices = [torch.cuda.current_device()] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


class BaseAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Shared behaviour of every aekit estimator.

    A fit runs one lifecycle: the declared constraints of every parameter are checked
    (:meth:`_validate_params`, then the family's cross-parameter rules in :meth:`_check_params`); the pure
    :meth:`resolve` step turns the parameters and a summary of the data (:class:`DataInfo`) into the
    parameters the model is built with (``resolved_``: every ``"auto"`` replaced); the module is built
    from them (``_build_module``) and trained (``_fit_module``). ``params_`` keeps the parameters as
    given at fit time: a later ``set_params`` changes the next fit, never the fitted model, and saving
    writes ``params_`` and ``resolved_``. Torch's global random state is forked for the fit, so the
    caller's is unchanged. The module must provide ``encode`` and ``decode``.

    What a family declares on its class:

    - ``_presets``: named parameter sets, see :meth:`from_preset`.
    - :meth:`epochs`: what ``max_epochs`` counts at given parameters, or why it does not apply.
    - :meth:`_callbacks`: training-loop callbacks of the family (e.g. a loss weight changed by epoch).
    - ``_test_params`` (a tiny configuration) and ``_test_variants`` (parameter sets that take another
      training path, each run through the shared test suite and scikit-learn's estimator checks).

    The output features are named by scikit-learn's convention, the lower-cased class name and the
    code unit: ``autoencoder0, autoencoder1, ...``, so ``set_output(transform="pandas")`` works.
    """

    #: Named parameter sets (``{"hinton": {"hidden_dims": (1000, 500, 250), ...}}``); see :meth:`from_preset`.
    _presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: Parameter sets that change the training path, tested like the defaults (on top of ``_test_params``).
    #: Read from the class that declares it, never inherited: a subclass's training path is its own.
    _test_variants: ClassVar[Sequence[Mapping[str, Any]]] = ()

    _family_name: ClassVar[str]
    _param_configs: ClassVar[tuple[type, ...]]
    # The fitted nn.Module. Typed Any because each family's module has its own methods and buffers
    # (nn.Module's __getattr__ would type every one of them as ``Tensor | Module``).
    module_: Any
    #: scaling used when the estimator has no ``scaling`` parameter
    _fixed_scaling: ClassVar[str] = "none"

    # ------------------------------------------------------------------ configuration

    def _config(self, cls: type[C]) -> C:
        """Build the dataclass ``cls`` from this estimator's current parameters."""
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]

    def _train_config(self) -> TrainConfig:
        cfg = self._config(TrainConfig)
        cfg.validate()
        return cfg

    def _fit_config(self) -> TrainConfig:
        """The training loop's settings of the running fit, from ``resolved_`` (never the live parameters)."""
        return TrainConfig(**{f.name: self.resolved_[f.name] for f in dataclasses.fields(TrainConfig)})

    @classmethod
    def from_preset(cls: type[B], name: str, **overrides: Any) -> B:
        """An estimator configured by the named parameter set ``name``, with ``overrides`` on top.

        A preset only fills parameters: the estimator holds (and saves) the concrete values, and an
        explicit keyword wins over the preset's value.

        Parameters
        ----------
        name : str
            One of ``cls.presets()``.
        **overrides
            Parameters that replace the preset's.

        Examples
        --------
        >>> import aekit
        >>> aekit.Autoencoder.from_preset("hinton", max_epochs=5).hidden_dims
        (1000, 500, 250)
        """
        return cls(**{**cls.preset_params(name), **overrides})

    @classmethod
    def presets(cls) -> list[str]:
        """The names of this family's presets."""
        return list(cls._presets)

    @classmethod
    def preset_params(cls, name: str) -> dict[str, Any]:
        """The parameters the preset ``name`` sets; a ValueError lists the valid names."""
        if name not in cls._presets:
            valid = ", ".join(cls.presets()) or f"none ({cls.__name__} has no presets)"
            raise ValueError(f"unknown preset {name!r} for {cls.__name__}; valid: {valid}")
        return dict(cls._presets[name])

    @classmethod
    def epochs(cls, params: Mapping[str, Any]) -> Epochs:
        """What ``max_epochs`` counts for this family at ``params`` (its parameters, defaults filled in).

        The default: families with a ``max_epochs`` parameter train by the training loop, whose epoch is
        a pass over the data; the others do not train by epochs. Families override it where the answer
        depends on a parameter (a closed-form solver) or an epoch counts something else (a stage).
        """
        if "max_epochs" in params:
            return Epochs(True)
        name = getattr(cls, "_family_name", cls.__name__)
        instead = "; its iterations are set by max_iter (--max-iter)" if "max_iter" in params else ""
        return Epochs(False, "", f"family {name!r} is not trained by epochs{instead}")

    def epochs_by_stage(self) -> list[tuple[str, int]]:
        """The epochs the fit trained, by stage: ``[("training", n)]``; staged families list each stage."""
        self._check_fitted()
        return [("training", len(getattr(self, "history_", None) or []))]

    def _validate_params(self) -> None:
        """Check every parameter against its declared type, then the family's cross-parameter rules."""
        types = getattr(type(self), "_param_types", {})
        for name, tp in types.items():
            check_value(name, getattr(self, name), tp)
        self._check_params()

    def _check_params(self) -> None:
        """Rules that tie several parameters together (e.g. k <= latent_dim); families extend."""

    @classmethod
    def resolve(cls, params: Mapping[str, Any], data: DataInfo) -> dict[str, Any]:
        """The parameters the model is built with: ``params`` with every ``"auto"`` decided. Pure.

        Families override it to decide their data-dependent settings (sizes from the data, the output
        layer from the data range) and raise a ValueError for a combination the data cannot support.
        """
        return dict(params)

    def _announce(self, resolved: Mapping[str, Any]) -> None:
        """Print, at the start of training, what was decided from ``"auto"`` and from the data."""
        if not getattr(self, "verbose", 0):
            return
        types = getattr(type(self), "_param_types", {})
        decided = [
            f"{k}={resolved[k]!r}" for k, tp in types.items()
            if auto_rule(tp) is not None and getattr(self, k) == AUTO and k in resolved
        ]
        if decided:
            print(f"aekit: {type(self).__name__} chose {', '.join(decided)}", file=sys.stderr, flush=True)

    def _scaling(self) -> str:
        return str(getattr(self, "scaling", self._fixed_scaling))

    def _seed(self) -> int:
        return seed_from(getattr(self, "random_state", None))

    # ------------------------------------------------------------------ fitting

    def fit(
        self, X: Any, y: Any = None, *, checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
        allow_data_change: bool = False,
    ) -> BaseAutoencoder:
        """Fit the model to ``X``.

        Parameters
        ----------
        X : array-like, (n_samples, n_features) or (n_samples, C, H, W) or (n_samples, C, L)
        y : ignored by unsupervised families; integer labels (-1 for unlabelled) for supervised ones.
        checkpoint_dir : path, optional
            Write a resumable checkpoint and ``history.csv`` there after every epoch. The folder must be new,
            empty, or aekit's own (an earlier checkpoint folder or run); ``fit.json`` records the family
            and a fingerprint of the data.
        resume : bool
            Continue from the checkpoint in ``checkpoint_dir`` (same family, same data, same parameters).
        allow_data_change : bool
            With ``resume``, continue even if the data differs from the data the checkpoint was trained on.

        Returns
        -------
        self

        A fit that fails leaves the estimator as it was before the call (fitted or not), with one exception:
        after :class:`~aekit.engine.training.TrainingDivergedError` it holds the last good weights and the
        history of their epochs, as the error says. The checkpoint folder keeps what training reached.
        """
        before = {k: v for k, v in vars(self).items() if fitted_name(k)}
        try:
            return self._fit(X, y, checkpoint_dir, resume, allow_data_change)
        except TrainingDivergedError as exc:
            self.history_ = list(exc.history)
            self.module_.eval()
            raise
        except BaseException:
            for k in [k for k in vars(self) if fitted_name(k)]:
                delattr(self, k)
            self.__dict__.update(before)
            raise

    def _fit(self, X: Any, y: Any, checkpoint_dir: str | os.PathLike | None, resume: bool,
             allow_data_change: bool) -> BaseAutoencoder:
        X = check_array(X)
        info = self._resolve_for(X, y)
        seed = self._seed()
        if checkpoint_dir is None:
            return self._train_on(X, y, info, seed, None, resume)
        # With allow_data_change the data are not compared, so they need no checksum (a run directory of
        # `aekit train` keeps its own fingerprint of the data and passes it). A resume takes the seed the
        # checkpoint was started with (the validation split and initialization depend on it).
        record = self._fit_record(X, y, seed, checksum=not allow_data_change)
        with open_checkpoint_dir(checkpoint_dir, record, resume=resume, allow_data_change=allow_data_change) as seed:
            return self._train_on(X, y, info, seed, checkpoint_dir, resume)

    def _train_on(self, X: np.ndarray, y: Any, info: DataInfo, seed: int,
                  checkpoint_dir: str | os.PathLike | None, resume: bool) -> BaseAutoencoder:
        scaler = Scaler.fit(str(self.resolved_.get("scaling", self._scaling())), X)
        Xs = scaler.transform(X)
        self.scaler_ = scaler
        self.sample_shape_ = info.sample_shape
        self.n_features_in_ = int(math.prod(self.sample_shape_))
        device = resolve_device(str(self.resolved_.get("device", "cpu")))
        with _own_rng(device):
            torch.manual_seed(seed)
            self.module_ = self._build_module(self.sample_shape_)
            self.history_ = self._fit_module(Xs, y, seed, checkpoint_dir=checkpoint_dir, resume=resume)
        self.module_.eval()
        return self

    def _fit_record(self, X: np.ndarray, y: Any, seed: int, checksum: bool = True) -> dict[str, Any]:
        """The family, the parameters, the seed and a fingerprint of the data (size, shape, a BLAKE2 checksum of
        ``X`` and ``y``, or None without ``checksum``), kept beside a checkpoint so that a resume on other data,
        as another family or with other settings is refused, and a resume takes the seed it started with."""
        data = {"n_samples": int(X.shape[0]), "sample_shape": [int(d) for d in X.shape[1:]],
                "checksum": data_checksum(X, y) if checksum else None}
        params = {k: v if isinstance(v, str | int | float | bool | type(None) | tuple | list) else repr(v)
                  for k, v in self.get_params(deep=False).items()}
        return {"format": "aekit-checkpoint", "family": getattr(type(self), "_family_name", type(self).__name__),
                "params": params, "seed": int(seed), "data": data}

    def _resolve_for(self, X: np.ndarray, y: Any = None) -> DataInfo:
        """Check the parameters and ``X`` (already through ``check_array``), resolve them for this data and
        store ``params_``, ``resolved_`` and ``data_info_``: everything a fit decides before building."""
        self._validate_params()
        self._check_input(X)
        params = copy.deepcopy(self.get_params(deep=False))
        info = DataInfo.of(X, self._classes_of(y, X.shape[0]))
        resolved = Resolved(type(self).resolve(params, info))
        self.params_, self.resolved_, self.data_info_ = params, resolved, info
        self._announce(resolved)
        return info

    def _classes_of(self, y: Any, n: int) -> tuple[int, ...] | None:
        """The labels a family that uses them builds its classifier for; None for the others."""
        return None

    def _fit_labels(self, y: Any, n: int) -> np.ndarray | None:
        """The labels the training loop gets (see :mod:`aekit.model.classifier`); None: ``y`` is ignored,
        as a scikit-learn transformer ignores the labels a pipeline passes it."""
        return None

    def _check_input(self, X: np.ndarray) -> None:
        """Hook for shape rules of a family (e.g. images only)."""

    def _corruption(self) -> Callable[[Tensor], Tensor] | None:
        return None

    def _callbacks(self) -> list[Callback]:
        """Training-loop callbacks the family contributes to its fit (e.g. a loss weight changed by epoch).

        Called once per fit, after the module is built (``self.module_``), so a callback may hold it.
        """
        return []

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        return fit_module(
            self.module_, Xs, self._fit_labels(y, Xs.shape[0]), self._fit_config(), self._corruption(),
            callbacks=self._callbacks(), seed=seed, **fit_kw,
        )

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        raise NotImplementedError

    # ------------------------------------------------------------------ inference

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with appropriate arguments "
                "before using this estimator, or load a saved model with aekit.load(path)."
            )

    def _prepare(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = check_array(X)
        if X.shape[1:] != self.sample_shape_:
            if X.ndim == 2 and len(self.sample_shape_) == 1:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                    "features as input. Pass data with the same features as in fit, or fit a new model."
                )
            if X.ndim == 2 and X.shape[1] == self.n_features_in_:
                X = X.reshape(X.shape[0], *self.sample_shape_)
            else:
                raise ValueError(
                    f"X has sample shape {tuple(X.shape[1:])}, but {type(self).__name__} was fitted on sample "
                    f"shape {self.sample_shape_}. Pass data of the same shape as in fit, or fit a new model."
                )
        return self.scaler_.transform(X)

    @property
    def device_(self) -> torch.device:
        try:
            return next(self.module_.parameters()).device
        except StopIteration:
            return next(self.module_.buffers()).device

    @torch.no_grad()
    def _batched(
        self, fn: Callable[..., Tensor], A: np.ndarray, *aligned: Tensor, batch_size: int | None = None
    ) -> np.ndarray:
        """``fn(x, *rows of aligned)`` on the rows of ``A`` (data or codes) and of the tensors ``aligned`` (one row
        per row of ``A``, e.g. labels), in passes of exactly ``batch_size`` rows, by default the model's
        :func:`inference_rows`; the last pass is padded, and only ``A``'s rows are returned."""
        self.module_.eval()
        dev = self.device_
        batch_size = batch_size or inference_rows(self.sample_shape_)
        outs = []
        for i in range(0, A.shape[0], batch_size):
            block = A[i : i + batch_size]
            extra = [pad_rows(t[i : i + batch_size], batch_size).to(dev) for t in aligned]
            out = fn(torch.from_numpy(pad_rows(block, batch_size)).to(dev), *extra)
            outs.append(out[: block.shape[0]].cpu().numpy())
        return np.concatenate(outs).astype(np.float32, copy=False)

    def transform(self, X: Any) -> np.ndarray:
        """Encode ``X`` to codes of shape (n_samples, n_components)."""
        Xs = self._prepare(X)
        return self._batched(self.module_.encode, Xs)

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Decode codes (n_samples, n_components) back to data space, shape (n_samples, *sample_shape)."""
        self._check_fitted()
        Z = check_array(Z, name="Z")
        k = self._n_features_out
        if Z.ndim != 2 or Z.shape[1] != k:
            raise ValueError(f"Z has shape {Z.shape}, but {type(self).__name__} decodes codes of shape (n_samples, {k})")
        return self.scaler_.inverse_transform(self._batched(self.module_.decode, Z))

    def reconstruct(self, X: Any) -> np.ndarray:
        """``decode(encode(X))`` in the units of ``X``, same shape as ``X``."""
        Xs = self._prepare(X)
        out = self._batched(lambda x: self.module_.decode(self.module_.encode(x)), Xs)
        return self.scaler_.inverse_transform(out).reshape(np.shape(X) if np.ndim(X) > 1 else out.shape)

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Squared reconstruction error per sample, summed over features, in the units of ``X``; shape (n,)."""
        Xarr = check_array(X)
        R = self.reconstruct(Xarr)
        return ((R - Xarr) ** 2).reshape(Xarr.shape[0], -1).sum(axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """Per-sample normality score, higher is more normal: minus the reconstruction error."""
        return -self.reconstruction_error(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of :meth:`score_samples`."""
        return float(np.mean(self.score_samples(X)))

    @property
    def _n_features_out(self) -> int:
        self._check_fitted()
        with torch.no_grad():
            probe = torch.zeros((1, *self.sample_shape_), device=self.device_)
            return int(self.module_.encode(probe).shape[1])

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, extra: dict[str, Any] | None = None) -> Path:
        """Write a run directory (``config.json`` + ``model.safetensors``) at ``path``; returns the path."""
        from aekit.model.persist import save_estimator

        return save_estimator(self, path, overwrite=overwrite, extra=extra)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

