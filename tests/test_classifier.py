"""The classifier face (model/classifier.py) on a tiny module of its own, and the one label validator."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score
from torch import Tensor, nn

import aekit.model.base
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import Interval
from aekit.data.preprocessing import UNLABELLED, check_labels
from aekit.engine.training import TrainConfig, fit_module
from aekit.model.base import BaseAutoencoder, declare_params
from aekit.model.classifier import ClassifierMixin, class_indices

# ------------------------------------------------------------------------------------- a tiny family


@dataclass
class TinyConfig:
    latent_dim: Annotated[int, Interval(1)] = 2  # A code of two values separates the three blobs.


class TinyModule(nn.Module):
    """A linear autoencoder with a softmax head on its code when it is built with classes."""

    def __init__(self, d: int, k: int, n_classes: int | None) -> None:
        super().__init__()
        self.encoder, self.decoder = nn.Linear(d, k), nn.Linear(k, d)
        self.head = nn.Linear(k, n_classes) if n_classes is not None else None
        self.uses_labels = n_classes is not None

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def class_logits(self, z: Tensor) -> Tensor:
        assert self.head is not None
        return self.head(z)

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        return AEOutput(z=z, x_hat=self.decode(z))

    def loss(self, x: Tensor, out: AEOutput, y: Tensor | None = None) -> LossOutput:
        rec = F.mse_loss(out.x_hat, x)
        if self.head is None or y is None:
            return LossOutput(rec, {"reconstruction": rec})
        ce = F.cross_entropy(self.class_logits(out.z), y, ignore_index=UNLABELLED)
        ce = torch.nan_to_num(ce)  # a batch without labels
        return LossOutput(rec + ce, {"reconstruction": rec, "cross_entropy": ce})


@declare_params(TinyConfig, TrainConfig)
class TinyClassifier(ClassifierMixin, BaseAutoencoder):
    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        classes = self.data_info_.classes  # known before the module is built
        return TinyModule(math.prod(sample_shape), int(self.resolved_["latent_dim"]),
                          None if classes is None else len(classes))


def tiny(**kw: Any) -> TinyClassifier:
    params: dict[str, Any] = {"max_epochs": 40, "batch_size": 32, "learning_rate": 3e-2, "verbose": 0,
                              "random_state": 0, "device": "cpu", "patience": None}
    return TinyClassifier(**{**params, **kw})


def blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs in 4-D labelled 3, 7 and 9; (n, 4) float32, (n,) int64."""
    rng = np.random.default_rng(seed)
    labels = np.array([3, 7, 9])
    centres = 4.0 * np.eye(3, 4)
    which = rng.integers(0, 3, n)
    X = (centres[which] + 0.5 * rng.standard_normal((n, 4))).astype(np.float32)
    return X, labels[which]


@pytest.fixture(scope="module")
def fitted() -> tuple[TinyClassifier, np.ndarray, np.ndarray]:
    X, y = blobs()
    y_train = y.copy()
    y_train[::4] = UNLABELLED
    return tiny().fit(X, y_train), X, y


# ------------------------------------------------------------------------------------------ the face


def test_classes_are_known_when_the_module_is_built(fitted: tuple[TinyClassifier, np.ndarray, np.ndarray]) -> None:
    est, _, _ = fitted
    assert est.data_info_.classes == (3, 7, 9)  # -1 is no class
    assert est.module_.head.out_features == 3
    assert est.classes_.tolist() == [3, 7, 9] and est.classes_.dtype == np.int64


def test_predict_and_predict_proba(fitted: tuple[TinyClassifier, np.ndarray, np.ndarray]) -> None:
    est, X, y = fitted
    P = est.predict_proba(X)
    assert P.shape == (300, 3) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    pred = est.predict(X)
    assert pred.shape == (300,) and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, est.classes_[P.argmax(axis=1)])
    # The blobs are far apart: a trained head separates them; chance is 1/3.
    assert est.score(X, y) > 0.95


def test_an_untrained_head_does_not_reach_the_trained_accuracy() -> None:
    X, y = blobs()
    untrained = tiny(max_epochs=1, learning_rate=1e-6).fit(X, y)
    assert untrained.score(X, y) < 0.8


def test_score_is_accuracy_on_the_labelled_samples(fitted: tuple[TinyClassifier, np.ndarray, np.ndarray]) -> None:
    est, X, y = fitted
    pred = est.predict(X)
    y_part = y.copy()
    y_part[pred != y] = UNLABELLED  # hide every mistake: what is left is all correct
    if (pred != y).any():
        assert est.score(X, y) < 1.0
    assert est.score(X, y_part) == 1.0
    # A label the model never saw is a wrong prediction, as in scikit-learn.
    y_new = y.copy()
    y_new[:10] = 5
    assert est.score(X, y_new) == pytest.approx(accuracy_score(y_new, pred))
    w = np.linspace(0.1, 1.0, y.size)
    assert est.score(X, y, sample_weight=w) == pytest.approx(accuracy_score(y, pred, sample_weight=w))
    with pytest.raises(ValueError, match=r"score needs at least one labelled sample in y, but every label is -1"):
        est.score(X, np.full(y.size, -1))
    with pytest.raises(ValueError, match=r"y has shape \(3,\), expected \(300,\) to match X"):
        est.score(X, y[:3])
    # Without y it is the autoencoder's score.
    assert est.score(X) == pytest.approx(float(np.mean(est.score_samples(X))))


def test_without_labels_there_is_no_classifier() -> None:
    X, y = blobs()
    for est in (tiny(max_epochs=2).fit(X), tiny(max_epochs=2).fit(X, np.full(y.size, -1))):
        assert est.data_info_.classes is None and est.module_.head is None
        assert not hasattr(est, "classes_") and not hasattr(est, "predict") and not hasattr(est, "predict_proba")
        assert est.score(X, y) == pytest.approx(float(np.mean(est.score_samples(X))))
        with pytest.raises(AttributeError, match=r"fitted without labels, so it has no classes_; call fit\(X, y\)"):
            est.classes_  # noqa: B018


def test_unfitted() -> None:
    est = tiny()
    assert hasattr(est, "predict")  # it would classify, given labels
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        est.classes_  # noqa: B018
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        est.predict(np.zeros((2, 4), np.float32))


def test_the_training_loop_gets_class_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def spy(module: nn.Module, X: np.ndarray, y: Any, *args: Any, **kwargs: Any) -> list[dict[str, float]]:
        seen.append(y)
        return fit_module(module, X, y, *args, **kwargs)

    monkeypatch.setattr(aekit.model.base, "fit_module", spy)
    X, _ = blobs(8)
    y = np.array([9, 3, -1, 7, 7, 3.0, -1, 9])
    tiny(max_epochs=1).fit(X, y)
    np.testing.assert_array_equal(seen[-1], [2, 0, -1, 1, 1, 0, -1, 2])
    tiny(max_epochs=1).fit(X)
    assert seen[-1] is None


def test_class_indices() -> None:
    labels = np.array([7, -1, 3, 9, 3])
    np.testing.assert_array_equal(class_indices(labels, (3, 7, 9)), [1, -1, 0, 2, 0])
    with pytest.raises(ValueError, match=r"y holds labels \[4, 10\] that are not among the classes \[3, 7, 9\]"):
        class_indices(np.array([4, 3, 10]), (3, 7, 9))


# ---------------------------------------------------------------------------------- check_labels


@pytest.mark.parametrize(
    "y",
    [[0, 2, -1], np.array([0, 2, -1], np.int8), np.array([0.0, 2.0, -1.0]), np.array([0, 2, -1], dtype=object),
     np.array([0, 2, 2], np.uint16), np.array([False, True, True])],
    ids=["list", "int8", "integral-floats", "object", "uint16", "bool"],
)
def test_check_labels_accepts(y: Any) -> None:
    out = check_labels(y, 3)
    assert out.dtype == np.int64 and out.shape == (3,)
    np.testing.assert_array_equal(out, np.asarray(y).astype(np.int64))


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (None, r"class labels y are needed here, got None; pass y of shape \(3,\) with integer labels \(-1 for"),
        (np.arange(2), r"y has shape \(2,\), expected \(3,\) to match X"),
        (np.zeros((3, 1)), r"y has shape \(3, 1\), expected \(3,\) to match X"),
        (np.array([0.5, 1.0, 2.25]), r"y must hold integer class labels \(-1 marks an unlabelled sample\), got 2 "
                                     r"values that are not integers, such as \[0.5, 2.25\]; encode the classes"),
        (np.array([0.0, np.nan, 1.0]), r"got 1 values that are not integers, such as \[nan\]"),
        (np.array(["a", "b", "a"]), r"y must hold integer class labels .* got dtype <U1; encode the classes as "
                                    r"integers, e.g. with sklearn.preprocessing.LabelEncoder"),
        (np.array(["a", 1, 2], dtype=object), r"got dtype object"),
    ],
    ids=["none", "short", "column", "fractions", "nan", "strings", "mixed-objects"],
)
def test_check_labels_refuses(y: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_labels(y, 3)
