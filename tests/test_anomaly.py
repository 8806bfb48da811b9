"""Anomaly detection: AnomalyDetector's sign conventions and threshold, its scores, scikit-learn's own outlier
checks, and the ``aekit anomaly`` command."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit.apps.anomaly import AnomalyDetector, scoring_families

TINY = {"hidden_dims": (8,), "latent_dim": 2, "max_epochs": 2, "batch_size": 16, "verbose": 0, "random_state": 0}


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normal data near a 2-D plane in 6-D, and a far cluster of outliers off it."""
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((2, 6))
    normal = rng.standard_normal((200, 2)) @ B + 0.05 * rng.standard_normal((200, 6))
    outliers = 4.0 + rng.standard_normal((20, 6))
    return normal.astype(np.float32), outliers.astype(np.float32)


def test_signs_threshold_and_outlier_cluster() -> None:
    normal, outliers = _blobs()
    det = AnomalyDetector(aekit.Autoencoder(**{**TINY, "max_epochs": 20}), contamination=0.1).fit(normal)
    X = np.concatenate([normal, outliers])
    s, d, p = det.score_samples(X), det.decision_function(X), det.predict(X)
    # score_samples is minus the reconstruction error; decision_function is its negation shifted by threshold_.
    np.testing.assert_allclose(s, -det.model_.reconstruction_error(X), rtol=1e-6)
    np.testing.assert_allclose(d, -s - det.threshold_, rtol=1e-6)
    assert det.offset_ == -det.threshold_
    np.testing.assert_array_equal(p, np.where(d > 0, -1, 1))
    assert set(np.unique(p)) <= {-1, 1} and p.dtype.kind == "i"
    # The threshold is the (1 - contamination) quantile of the training abnormality.
    train_abn = det.model_.reconstruction_error(normal)
    assert det.threshold_ == pytest.approx(np.quantile(train_abn, 0.9), rel=1e-6)
    np.testing.assert_allclose(det.decision_scores_, det.decision_function(normal), rtol=1e-5)
    assert np.mean(det.predict(normal) == -1) == pytest.approx(0.1, abs=0.01)
    # The far cluster scores above every normal sample and is called anomalous.
    assert d[200:].min() > np.quantile(d[:200], 0.99)
    assert (p[200:] == -1).all()
    # fit_predict labels the training data as predict does after fit.
    np.testing.assert_array_equal(AnomalyDetector(aekit.Autoencoder(**TINY)).fit_predict(normal),
                                  AnomalyDetector(aekit.Autoencoder(**TINY)).fit(normal).predict(normal))


def test_fitted_model_is_used_as_is_and_likelihood_scores() -> None:
    normal, outliers = _blobs(1)
    fa = aekit.FactorAnalysisAutoencoder(latent_dim=2).fit(normal)
    det = AnomalyDetector(fa, contamination=0.05).fit(normal)
    assert det.model_ is fa and det.score_ == "likelihood"  # "auto" picks the likelihood of a loglik family
    X = np.concatenate([normal, outliers])
    np.testing.assert_allclose(det.score_samples(X), fa.score_samples(X), rtol=1e-6)
    assert det.decision_function(outliers).min() > det.decision_function(normal).max()
    rec = AnomalyDetector(fa, score_type="reconstruction").fit(normal)
    np.testing.assert_allclose(rec.score_samples(X), -fa.reconstruction_error(X), rtol=1e-6)
    # An unfitted model is cloned, never fitted in place.
    ae = aekit.Autoencoder(**TINY)
    assert AnomalyDetector(ae).fit(normal).model_ is not ae and not hasattr(ae, "module_")
    assert "factor-analysis" in scoring_families()["likelihood"]


def test_images_of_any_shape() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 3, 5, 7)).astype(np.float32)
    det = AnomalyDetector(aekit.Autoencoder(**TINY)).fit(X)
    assert det.decision_function(X).shape == (40,) and det.n_features_in_ == 105


@pytest.mark.parametrize(("kw", "match"), [
    ({"contamination": 0.0}, r"contamination=0\.0 must be a fraction in \(0, 0\.5\]"),
    ({"contamination": 0.7}, r"contamination=0\.7 must be a fraction in \(0, 0\.5\]"),
    ({"score_type": "magic"}, r"score_type='magic' is not one of auto, reconstruction, likelihood"),
    ({"score_type": "likelihood"}, r"score_type='likelihood' needs a family with a likelihood, and 'autoencoder' has none; "
                              r"use score_type='reconstruction', or a family that has one: .*vae"),
])
def test_bad_parameters(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnomalyDetector(aekit.Autoencoder(**TINY), **kw).fit(_blobs()[0])


def test_unfitted_detector() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted yet"):
        AnomalyDetector().decision_function(_blobs()[0])


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """Checks that cannot apply, with the reason."""
    return {
        "check_outliers_train": "decision_function has PyOD's sign (higher is more abnormal, positive for anomalies) "
                                "where this check wants scikit-learn's (positive for inliers); the rest of what it "
                                "checks is tested in test_signs_threshold_and_outlier_cluster",
    }


@parametrize_with_checks([AnomalyDetector(aekit.Autoencoder(**TINY))], expected_failed_checks=expected_failed_checks)
def test_sklearn_outlier_checks(estimator: Any, check: Any) -> None:
    check(estimator)
