"""Learned features for a classifier: the codes of a trained encoder as the input of a scikit-learn classifier.

The lectures' eigenfaces method is k-nearest neighbours on the codes of a linear autoencoder (PCA); the same
applies to the codes of any family. Every aekit estimator is also a scikit-learn transformer, so it goes into a
:class:`~sklearn.pipeline.Pipeline` directly::

    Pipeline([("ae", aekit.Autoencoder(latent_dim=32)), ("clf", LogisticRegression())])

and :func:`code_features` measures a classifier on the codes of an already fitted model, beside the same
classifier on the raw inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aekit.data.preprocessing import check_array, check_labels

CLASSIFIERS = ("logistic", "knn")


def make_classifier(kind: str = "logistic", *, n_neighbors: int = 5, max_iter: int = 1000) -> Any:
    """The scikit-learn classifier ``kind`` as :func:`code_features` fits it.

    - ``"logistic"``: the features standardized, then multinomial logistic regression (L2, C=1): codes of
      different families live on very different scales, which the default regularization is not invariant to.
    - ``"knn"``: k-nearest neighbours by Euclidean distance on the features as they are (for 0/1 codes the
      squared Euclidean distance is the Hamming distance).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    if kind == "knn":
        return KNeighborsClassifier(n_neighbors=n_neighbors)
    raise ValueError(f"classifier={kind!r} is not one of {', '.join(CLASSIFIERS)}; use one of them")


def code_features(
    model: Any,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    *,
    classifier: str = "logistic",
    n_neighbors: int = 5,
    raw: bool = False,
    max_iter: int = 1000,
) -> dict[str, Any]:
    """Test accuracy of ``classifier`` fitted on the codes ``model.transform(X_train)``.

    Parameters
    ----------
    model : fitted aekit estimator
        Any family with an encoder (``transform``).
    X_train, X_test : array-like of shape (n, *sample_shape) or (n, n_features)
    y_train, y_test : array-like of shape (n,)
        Integer class labels.
    classifier : {"logistic", "knn"}
        See :func:`make_classifier`.
    n_neighbors : int
        k of k-nearest neighbours.
    raw : bool
        Also fit the classifier on the raw inputs (flattened) and report ``raw_accuracy``.

    Returns
    -------
    dict
        ``classifier``, ``accuracy`` (on the test codes), ``n_features`` (the code size), and with ``raw``
        ``raw_accuracy`` and ``raw_n_features``.
    """
    if not callable(getattr(model, "transform", None)):
        raise ValueError(
            f"{type(model).__name__} has no encoder (no transform), so it has no codes to use as features; "
            "use a fitted aekit model"
        )
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier={classifier!r} is not one of {', '.join(CLASSIFIERS)}; use one of them")
    X_train, X_test = check_array(X_train, name="X_train"), check_array(X_test, name="X_test")
    y_train = _labels(y_train, X_train.shape[0], "y_train", "X_train")
    y_test = _labels(y_test, X_test.shape[0], "y_test", "X_test")
    if np.unique(y_train).size < 2:
        raise ValueError("y_train holds a single class; a classifier needs samples of at least two classes")
    Z_train, Z_test = model.transform(X_train), model.transform(X_test)
    clf = make_classifier(classifier, n_neighbors=n_neighbors, max_iter=max_iter).fit(Z_train, y_train)
    out: dict[str, Any] = {
        "classifier": classifier, "accuracy": float(clf.score(Z_test, y_test)), "n_features": int(Z_train.shape[1]),
    }
    if raw:
        R_train, R_test = X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)
        rclf = make_classifier(classifier, n_neighbors=n_neighbors, max_iter=max_iter).fit(R_train, y_train)
        out.update(raw_accuracy=float(rclf.score(R_test, y_test)), raw_n_features=int(R_train.shape[1]))
    return out


def _labels(y: Any, n: int, name: str, x_name: str) -> np.ndarray:
    arr = np.asarray(y) if y is not None else None
    if arr is not None and arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}, but {x_name} has {n} samples; give one label per sample, "
                         f"of shape ({n},)")
    labels = check_labels(y, n)
    if (labels < 0).any():
        raise ValueError(f"{name} holds negative labels (unlabelled samples); a classifier needs a label for every sample")
    return labels
