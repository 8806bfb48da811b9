"""The classifier face of an autoencoder that learns from labels: ``classes_``, ``predict``, ``predict_proba``, ``score``.

A family whose module classifies its codes mixes :class:`ClassifierMixin` in before its estimator
base (``class StackedAutoencoder(ClassifierMixin, Autoencoder)``). The labels are known at build time:
the base class's ``fit`` asks :meth:`ClassifierMixin._classes_of` for the classes of ``y`` and stores
them in ``data_info_.classes`` before ``resolve`` runs and the module is built, so ``resolve`` and
``_build_module`` can size a classifier from them; the training loop gets the labels as indices into
those classes (:meth:`ClassifierMixin._fit_labels`). The module provides
``class_logits(z) -> (B, n_classes)`` on the codes ``z = encode(x)``; the columns follow ``classes_``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score
from sklearn.utils.metaestimators import available_if

from aekit.data.preprocessing import UNLABELLED, check_labels


def class_indices(labels: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Labels (n,) int64 as indices into the sorted ``classes``, :data:`UNLABELLED` kept; (n,) int64.

    A label outside ``classes`` is a ValueError: the classifier has no output for it.
    """
    known = np.asarray(classes, dtype=np.int64)
    idx = np.full(labels.shape, UNLABELLED, dtype=np.int64)
    labelled = labels != UNLABELLED
    pos = np.searchsorted(known, labels[labelled])
    pos_clipped = np.minimum(pos, known.size - 1)
    unknown = known[pos_clipped] != labels[labelled]
    if unknown.any():
        bad = sorted(set(labels[labelled][unknown].tolist()))[:5]
        raise ValueError(f"y holds labels {bad} that are not among the classes {list(classes)} the model was built for")
    idx[labelled] = pos
    return idx


class ClassifierMixin:
    """``classes_``, ``predict``, ``predict_proba`` and ``score`` for an estimator whose module classifies codes.

    The estimator is an aekit estimator (``module_``, ``data_info_``, ``_prepare``, ``_batched``);
    its module has ``class_logits(z)``. A model fitted without classes (``data_info_.classes`` None)
    has no ``classes_``, ``predict`` or ``predict_proba`` and scores as an autoencoder.

    Hooks a family may override:

    - :meth:`_classes_of`: which classes a fit on ``y`` builds its classifier for (default: the labels
      of the labelled samples, or None when ``y`` is None or holds no label).
    - :meth:`_may_classify`: whether an unfitted estimator with its current parameters would classify
      (default True), so that ``hasattr(est, "predict")`` tells the truth before fit.
    """

    # Provided by the estimator base class (aekit.model.base.BaseAutoencoder).
    module_: Any
    data_info_: Any
    _check_fitted: Any
    _prepare: Any
    _batched: Any

    # ------------------------------------------------------------------ labels at fit time

    def _classes_of(self, y: Any, n: int) -> tuple[int, ...] | None:
        """The sorted class labels of the labelled samples of ``y``; None when ``y`` is None or unlabelled."""
        if y is None:
            return None
        return self._labelled_classes(y, n)

    @staticmethod
    def _labelled_classes(y: Any, n: int) -> tuple[int, ...] | None:
        """``y`` checked by :func:`check_labels`; its distinct labels, sorted, or None when all are -1."""
        labels = check_labels(y, n)
        labelled = labels[labels != UNLABELLED]
        return tuple(int(c) for c in np.unique(labelled)) if labelled.size else None

    def _fit_labels(self, y: Any, n: int) -> np.ndarray | None:
        """The labels the training loop gets: (n,) indices into ``classes_`` (-1 unlabelled), or None."""
        classes = self.data_info_.classes
        if classes is None:
            return None
        return class_indices(check_labels(y, n), classes)

    def _may_classify(self) -> bool:
        return True

    def _has_classifier(self) -> bool:
        if not hasattr(self, "module_"):
            return self._may_classify()
        return getattr(self.data_info_, "classes", None) is not None

    # ------------------------------------------------------------------ the classifier

    @property
    def classes_(self) -> np.ndarray:
        """The class labels, (n_classes,) int64, sorted; the columns of :meth:`predict_proba`."""
        self._check_fitted()
        classes = getattr(self.data_info_, "classes", None)
        if classes is None:
            raise AttributeError(
                f"This {type(self).__name__} was fitted without labels, so it has no classes_; call fit(X, y) "
                "with class labels to train its classifier"
            )
        return np.asarray(classes, dtype=np.int64)

    @available_if(_has_classifier)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities softmax(class_logits(encode(x))), (n_samples, n_classes) float32, columns in
        ``classes_`` order."""
        Xs = self._prepare(X)
        module = self.module_
        out: np.ndarray = self._batched(lambda x: torch.softmax(module.class_logits(module.encode(x)), dim=1), Xs)
        return out

    @available_if(_has_classifier)
    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, (n_samples,) int64, a value of ``classes_``."""
        Xs = self._prepare(X)
        classes = self.classes_
        module = self.module_
        idx = self._batched(lambda x: module.class_logits(module.encode(x)).argmax(dim=1).float(), Xs)
        return classes[idx.astype(np.int64)]

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Accuracy of :meth:`predict` on the labelled samples of ``y`` (-1 unlabelled, left out), as a
        scikit-learn classifier's ``score``; for a model without classes, or without ``y``, the
        autoencoder's score (the mean of ``score_samples``)."""
        self._check_fitted()
        if y is None or not self._has_classifier():
            return float(super().score(X))  # type: ignore[misc]
        pred = self.predict(X)
        labels = check_labels(y, pred.shape[0])
        labelled = labels != UNLABELLED
        if not labelled.any():
            raise ValueError(
                f"score needs at least one labelled sample in y, but every label is {UNLABELLED}; pass the labels "
                "of X, or call score(X) for the reconstruction score"
            )
        weight = None
        if sample_weight is not None:
            weight = np.asarray(sample_weight, dtype=np.float64)
            if weight.shape != labels.shape:
                raise ValueError(f"sample_weight has shape {weight.shape}, expected {labels.shape}: one weight per "
                                 "sample of X")
            weight = weight[labelled]
        return float(accuracy_score(labels[labelled], pred[labelled], sample_weight=weight))
