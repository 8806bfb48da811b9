"""Learned features for a classifier: the codes of a trained encoder as the input of a scikit-learn classifier.

The lectures' eigenfaces method is k-nearest neighbours on the codes of a linear autoencoder (PCA); the same
applies to the codes of any family. Every aekit estimator is also a scikit-learn transformer, so it goes into a
:class:`~sklearn.pipeline.Pipeline` directly::

    Pipeline([("ae", aekit.Autoencoder(latent_dim=32)), ("clf", LogisticRegression())])

and :func:`code_features` measures a classifier on the codes of an already fitted model, beside the same
classifier on the raw inputs.

:class:`FineTunedClassifier` fine-tunes the encoder itself with a linear softmax head on its code, as the stacked
autoencoders of Bengio et al. (2007) and Vincent et al. (2010) are fine-tuned after pretraining::

    min_{f, V, c}  -(1/N) sum_n  log softmax(V f(x_n) + c)_{y_n}

starting from the fitted encoder f (the "pretraining") and a zero head, trained by the same loop as every family
(:func:`~aekit.engine.training.fit_module`), with early stopping on held-out labelled data. The model it starts
from is copied, never changed.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.base import ClassifierMixin as SkClassifierMixin
from torch import Tensor, nn

from aekit.apps import clone_keeping_fitted
from aekit.core.devices import resolve_device
from aekit.core.outputs import AEOutput, LossOutput, classifier_output
from aekit.core.params import seed_from
from aekit.data.corruption import check_translation, random_translate
from aekit.data.preprocessing import check_array, check_labels

CLASSIFIERS = ("logistic", "knn")
#: The capability of a family whose encoder is trained by gradient, which fine-tuning needs.
_GRADIENT = "gradient"


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


# ------------------------------------------------------------------------------------------ fine-tuning


class FineTuneModule(nn.Module):
    """A fitted model's module with a linear softmax head on its code: (B, *sample_shape) -> (B, n_classes).

    ``encode`` is the model's; the decoder is not trained (``forward`` reconstructs only in evaluation mode,
    without a graph: :func:`aekit.core.outputs.classifier_output`). The head starts at zero, so training starts from
    the uniform distribution over the classes and the encoder's first steps follow the head's gradient only.
    """

    #: The training loop passes the labels (indices into the classes) to ``loss``.
    uses_labels = True

    def __init__(self, body: nn.Module, code_dim: int, n_classes: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(code_dim, n_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def encode(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, K)."""
        return self.body.encode(x)  # type: ignore[operator,no-any-return]

    def class_logits(self, z: Tensor) -> Tensor:
        """(B, K) -> (B, n_classes)."""
        return self.head(z)  # type: ignore[no-any-return]

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)
        return classifier_output(z, self.head(z), self.body.decode, self.training, x_in=x)  # type: ignore[arg-type]

    def loss(self, x: Tensor, out: AEOutput, y: Tensor | None = None) -> LossOutput:
        if y is None:
            raise ValueError("fine-tuning trains a classifier from labels; pass y")
        ce = F.cross_entropy(out.extras["class_logits"], y)
        return LossOutput(ce, {"cross_entropy": ce})


class FineTunedClassifier(SkClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted autoencoder's encoder fine-tuned with a softmax head: a scikit-learn classifier.

    Parameters
    ----------
    model : fitted aekit estimator
        A family trained by gradient (the ``"gradient"`` capability: autoencoder, denoising, sparse,
        contractive, stacked, VAE, ...); it is copied, not changed. The inputs are scaled as the model scales them.
    max_epochs : int
        Epochs of fine-tuning.
    learning_rate : float
        Adam's learning rate for the encoder and the head.
    batch_size : int
    weight_decay : float
        Decoupled weight decay (AdamW).
    lr_schedule : {"constant", "cosine"}
    validation_fraction : float
        Labelled samples held out for early stopping (0: none, train for ``max_epochs``).
    patience : int or None
        Epochs without improvement of the held-out cross-entropy before stopping; the best weights are kept.
    translation : int
        Images only: each training image is shifted by its own random offsets of up to this many pixels along
        each axis at every use (the border repeats the edge), a data augmentation; 0 (the default) trains on the
        images as they are. Prediction always sees the images as they are.
    device : str
    random_state : int or None
    verbose : int

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    model_ : the fine-tuned copy of ``model`` (its ``transform`` gives the fine-tuned codes)
    module_ : FineTuneModule
    history_ : list of dict
        The training loop's rows, one per epoch.

    Examples
    --------
    >>> import aekit
    >>> from aekit.apps.features import FineTunedClassifier
    >>> tr, te = (aekit.load_dataset("digits", split=s) for s in ("train", "test"))
    >>> ae = aekit.Autoencoder(latent_dim=16, max_epochs=2, verbose=0, random_state=0).fit(tr.X)
    >>> clf = FineTunedClassifier(ae, max_epochs=3, random_state=0).fit(tr.X, tr.y)
    >>> clf.predict(te.X[:4]).shape
    (4,)
    """

    def __init__(
        self, model: Any = None, *, max_epochs: int = 20, learning_rate: float = 1e-3, batch_size: int = 128,
        weight_decay: float = 0.0, lr_schedule: str = "constant", validation_fraction: float = 0.1,
        patience: int | None = 5, translation: int = 0, device: str = "auto", random_state: int | None = 0,
        verbose: int = 0,
    ) -> None:
        self.model = model
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.translation = translation
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> FineTunedClassifier:
        """Fine-tune a copy of ``model``'s encoder with a softmax head on ``X`` (n, *sample_shape) and labels
        ``y`` (n,); returns self."""
        from aekit.engine.training import TrainConfig, fit_module
        from aekit.model.classifier import class_indices

        check_finetunable(self.model)
        seed = seed_from(self.random_state)
        model = copy.deepcopy(self.model)
        Xs = model._prepare(X)
        labels = _labels(y, Xs.shape[0], "y", "X")
        shift = check_translation(self.translation, Xs.shape[1:])
        classes = np.unique(labels)
        if classes.size < 2:
            raise ValueError("y holds a single class; a classifier needs samples of at least two classes")
        config = TrainConfig(
            max_epochs=self.max_epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, lr_schedule=self.lr_schedule,  # type: ignore[arg-type]
            validation_fraction=self.validation_fraction, patience=self.patience, device=self.device,
            random_state=seed, verbose=self.verbose,
        )
        augment = (lambda x: random_translate(x, shift)) if shift else None
        # Torch's global random state is forked (dropout and shifts draw from it), so the caller's is unchanged.
        cuda = resolve_device(config.device).type == "cuda"
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
            torch.manual_seed(seed)
            module = FineTuneModule(model.module_, model._n_features_out, int(classes.size))
            self.history_ = fit_module(module, Xs, class_indices(labels, tuple(int(c) for c in classes)), config,
                                       augment, seed=seed)
        module.eval()
        self.classes_ = classes
        self.n_features_in_ = int(np.prod(Xs.shape[1:]))
        self.model_, self.module_ = model, module
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, (n_samples, n_classes) float32, columns in ``classes_`` order."""
        self._fitted()
        Xs = self.model_._prepare(X)
        m = self.module_
        out: np.ndarray = self.model_._batched(lambda x: torch.softmax(m.class_logits(m.encode(x)), dim=1), Xs)
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, (n_samples,), a value of ``classes_``."""
        self._fitted()
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])

    def _fitted(self) -> None:
        if not hasattr(self, "module_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This FineTunedClassifier is not fitted yet; call fit(X, y) first")

    def __sklearn_clone__(self) -> FineTunedClassifier:
        # The fitted model to fine-tune is the classifier's input, so a clone (GridSearchCV, cross_val_score)
        # shares it rather than getting an unfitted copy; fit copies it and never changes it.
        return clone_keeping_fitted(self)  # type: ignore[no-any-return]


def check_finetunable(model: Any) -> None:
    """A ValueError naming the families that can be fine-tuned unless ``model`` is a fitted one of them."""
    from aekit.model.registry import declared_capabilities, families

    if _GRADIENT in declared_capabilities(model) and not hasattr(model, "module_"):
        raise ValueError(f"the {type(model).__name__} to fine-tune is not fitted; fit it first (fine-tuning starts "
                         "from a trained encoder)")
    if _GRADIENT not in declared_capabilities(model) or not hasattr(model, "module_"):
        can = ", ".join(n for n, f in families().items() if _GRADIENT in f.capabilities)
        name = getattr(model, "_family_name", type(model).__name__)
        raise ValueError(
            f"{name!r} has no encoder trained by gradient to fine-tune (or is not fitted); fine-tuning needs a "
            f"fitted model of one of the families {can}, or use its codes as fixed features (no --finetune)"
        )


def finetune_features(
    model: Any, X_train: Any, y_train: Any, X_test: Any, y_test: Any, **params: Any
) -> dict[str, Any]:
    """Test accuracy of :class:`FineTunedClassifier` (``params``) fine-tuned from ``model`` on the training data.

    Returns
    -------
    dict
        ``classifier`` ("finetune"), ``accuracy``, ``n_features`` (the code size), ``epochs`` (trained) and
        ``seconds`` (the fine-tuning's wall time).
    """
    import time

    check_finetunable(model)
    X_train, X_test = check_array(X_train, name="X_train"), check_array(X_test, name="X_test")
    y_train = _labels(y_train, X_train.shape[0], "y_train", "X_train")
    y_test = _labels(y_test, X_test.shape[0], "y_test", "X_test")
    t = time.perf_counter()
    clf = FineTunedClassifier(model, **params).fit(X_train, y_train)
    secs = time.perf_counter() - t
    return {
        "classifier": "finetune", "accuracy": float(clf.score(X_test, y_test)),
        "n_features": int(clf.module_.head.in_features), "epochs": len(clf.history_), "seconds": round(secs, 2),
    }


def accuracy_figure(labels: list[str], accuracies: list[float], *, title: str = "Test accuracy") -> bytes:
    """PNG of a horizontal bar chart of test accuracies, one bar per row of features, its value written on it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 0.5 * len(labels) + 1.0), layout="constrained")
    ax = fig.subplots()
    pos = np.arange(len(labels))[::-1]
    ax.barh(pos, accuracies, color="#4c72b0")
    for p, a in zip(pos, accuracies, strict=True):
        ax.text(a, p, f" {a:.4f}", va="center", fontsize="small")
    ax.set_yticks(pos, labels, fontsize="small")
    ax.set_xlim(0.0, 1.12)
    ax.set_xlabel("test accuracy")
    ax.set_title(title)
    from aekit.report.figures import figure_png

    return figure_png(fig)
