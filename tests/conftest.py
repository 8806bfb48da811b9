"""Shared fixtures: small real digits, synthetic low-rank data, and tiny configurations per family.

Everything here is small on purpose: the whole suite must run in a few minutes on a 2-core CPU.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pytest
import torch

from aekit.model.registry import FamilyInfo, families

# The test models are tiny: with several threads, synchronization costs more than the work.
torch.set_num_threads(1)

N_DIGITS = 120  # enough for a validation split (n >= 20) and a few batches


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    # The first rows cycle through the classes 0..9, so a prefix is a balanced subset.
    X = (d.data[:N_DIGITS] / 16.0).astype(np.float32)  # (N, 64) in [0, 1]
    return X, d.target[:N_DIGITS].astype(np.int64)


def digits_data() -> np.ndarray:
    """A fresh copy of the digits subset, (N, 64), float32 in [0, 1]."""
    return _digits()[0].copy()


def digits_labels() -> np.ndarray:
    return _digits()[1].copy()


def low_rank_data(
    n: int = 2000, d: int = 20, rank: int = 3, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Data with a rank-``rank`` signal plus small isotropic noise; returns (X (n, d), basis (d, rank)).

    The signal's scales are well separated (3, 2, 1.5, ...), so the top principal subspace is the
    signal's span and is far from degenerate.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, rank)))
    scales = np.linspace(3.0, 1.5, rank)
    Z = rng.standard_normal((n, rank)) * scales
    X = Z @ basis.T + noise * rng.standard_normal((n, d)) + rng.standard_normal(d)
    return X.astype(np.float32), basis


@pytest.fixture
def digits() -> np.ndarray:
    """(N, 64) digits in [0, 1]."""
    return digits_data()


@pytest.fixture
def digits_images() -> np.ndarray:
    """(N, 1, 8, 8) digits in [0, 1]."""
    return digits_data().reshape(-1, 1, 8, 8)


@pytest.fixture
def low_rank() -> tuple[np.ndarray, np.ndarray]:
    return low_rank_data()


# ----------------------------------------------------------------------------------- tiny configurations


def tiny_params(estimator_cls: type, **overrides: Any) -> dict[str, Any]:
    """The family's declared tiny test configuration (``_test_params``), else a short default.

    ``_test_params`` may be a dict class attribute or a classmethod returning one. Families without
    one are trained with their defaults for 2 epochs, silently. A ``random_state`` of 0 is added when
    the estimator takes one, so fits are reproducible.
    """
    declared = getattr(estimator_cls, "_test_params", None)
    if callable(declared):
        declared = declared()
    valid = set(estimator_cls().get_params(deep=False))
    params: dict[str, Any] = dict(declared) if declared is not None else {"max_epochs": 2, "verbose": 0}
    if "random_state" in valid:
        params.setdefault("random_state", 0)
    if "verbose" in valid:
        params.setdefault("verbose", 0)
    if "device" in valid:
        params.setdefault("device", "cpu")  # determinism tests compare exact outputs
    params.update(overrides)
    return {k: v for k, v in params.items() if k in valid}


def make_tiny(info: FamilyInfo | type, **overrides: Any) -> Any:
    cls = info.estimator if isinstance(info, FamilyInfo) else info
    return cls(**tiny_params(cls, **overrides))


def fit_args(info: FamilyInfo, X: np.ndarray) -> dict[str, Any]:
    """Keyword ``y`` for families that learn from labels (``"labels"`` capability)."""
    if "labels" in info.capabilities:
        y = np.resize(digits_labels(), X.shape[0])
        y[1::2] = -1  # half unlabelled, the semi-supervised setting
        return {"y": y}
    return {}


def declared_variants(estimator_cls: type) -> list[dict[str, Any]]:
    """The parameter sets that change the training path, declared on the estimator class itself
    (``_test_variants``; a subclass does not inherit its parent's): the defaults first."""
    return [{}, *(dict(v) for v in vars(estimator_cls).get("_test_variants", ()))]


def fit_data(info: FamilyInfo, **params: Any) -> np.ndarray:
    """The digits as flat rows (N, 64), or as images (N, 1, 8, 8) for a configuration that needs images
    (a convolutional variant). A model fitted on images also takes the flat rows."""
    X = digits_data()
    try:
        make_tiny(info, **params)._resolve_for(X)
    except ValueError:
        return X.reshape(-1, 1, 8, 8)
    return X


def variant_id(name: str, variant: dict[str, Any]) -> str:
    return "-".join([name, *(f"{k}={v}" for k, v in variant.items())])


def family_variants(capability: str | None = None) -> list[Any]:
    """``pytest.param(name, variant)`` per registered family and each of its declared variants."""
    return [
        pytest.param(name, variant, id=variant_id(name, variant))
        for name, info in families().items()
        if capability is None or capability in info.capabilities
        for variant in declared_variants(info.estimator)
    ]


def family_params(capability: str | None = None) -> list[Any]:
    """``pytest.param`` per registered family (optionally only those with ``capability``)."""
    return [
        pytest.param(name, id=name)
        for name, info in families().items()
        if capability is None or capability in info.capabilities
    ]


def interrupt_after_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Simulate Ctrl-C right after the checkpoint and ``history.csv`` of ``epoch`` are written."""
    import aekit.engine.training

    original = aekit.engine.training.CSVLogger.on_epoch_end

    def on_epoch_end(self: Any, state: Any) -> None:
        original(self, state)
        if state.epoch == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(aekit.engine.training.CSVLogger, "on_epoch_end", on_epoch_end)


# A tiny network with a random start, for command-line runs that only check files and messages.
CLI_TINY = ["--latent-dim", "2", "--hidden-dims", "16", "--batch-size", "32", "--seed", "0", "--limit", "120",
            "--quiet", "--init", "random"]


def cli_call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the ``aekit`` command line in this process: its exit status, stdout and stderr."""
    from aekit.cli.main import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err
