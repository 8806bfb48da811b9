"""Applications built on trained autoencoders, one file each (restoration, compression, anomaly
detection, retrieval, features)."""

from typing import Any


def is_fitted(model: Any) -> bool:
    """Whether ``model`` has fitted attributes (:func:`aekit.model.base.fitted_name`)."""
    from aekit.model.base import fitted_name

    return any(fitted_name(k) for k in getattr(model, "__dict__", {}))


def clone_keeping_fitted(est: Any, name: str = "model") -> Any:
    """scikit-learn's ``clone`` of ``est``, except that a fitted estimator in its parameter ``name`` is kept.

    An application built on a trained autoencoder takes the fitted model as its input, not as a setting to
    refit; scikit-learn's own clone (which ``GridSearchCV`` and ``cross_val_score`` call) would hand the copy an
    unfitted model instead. The clone shares the fitted model, as ``sklearn.frozen.FrozenEstimator`` shares
    its estimator; the applications never change the model they are given. Other parameters are cloned as usual.
    """
    from sklearn.base import clone

    params = est.get_params(deep=False)
    model = params.pop(name)
    params = {k: clone(v, safe=False) for k, v in params.items()}
    params[name] = model if model is not None and is_fitted(model) else clone(model, safe=False)
    return type(est)(**params)
