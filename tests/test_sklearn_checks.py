"""scikit-learn's own estimator checks on small instances of the estimators.

The checks fit on tiny data (a few dozen samples, a handful of features), so every instance is kept
small: few epochs, narrow networks. A random_state is set by the checks themselves where one exists.
"""

from __future__ import annotations

from typing import Any

from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit

ESTIMATORS = [
    aekit.LinearAutoencoder(latent_dim=2),
    aekit.LinearAutoencoder(latent_dim=2, solver="gradient", max_epochs=2, batch_size=16, verbose=0),
    aekit.FactorAnalysisAutoencoder(latent_dim=2, max_iter=100),
    aekit.Autoencoder(hidden_dims=(8,), latent_dim=2, max_epochs=2, batch_size=16, verbose=0),
    aekit.Autoencoder(hidden_dims=(8,), latent_dim=2, tied=True, max_epochs=2, batch_size=16, verbose=0),
    aekit.SparseAutoencoder(hidden_dims=(8,), latent_dim=6, penalty="topk", k=2, max_epochs=2, batch_size=16, verbose=0),
    aekit.SparseAutoencoder(hidden_dims=(), latent_dim=4, penalty="kl", max_epochs=2, batch_size=16, verbose=0),
    aekit.DenoisingAutoencoder(hidden_dims=(8,), latent_dim=2, corruption="gaussian:0.1", max_epochs=2, batch_size=16, verbose=0),
    aekit.ContractiveAutoencoder(hidden_dims=(), latent_dim=3, max_epochs=2, batch_size=16, verbose=0),
    aekit.SparseCoding(latent_dim=4, alpha=0.1, max_epochs=2, batch_size=16, verbose=0),
    aekit.SparseCoding(latent_dim=4, alpha=0.1, fit_algorithm="alternating", max_epochs=2),
    aekit.PredictiveSparseDecomposition(latent_dim=4, alpha=0.1, max_epochs=2, batch_size=16, verbose=0),
    # ReLU units: the CPU sigmoid kernel rounds the tail of a tensor differently (1 ulp), which the
    # sample-order invariance check's rtol of 1e-7 does not allow.
    aekit.StackedAutoencoder(hidden_dims=(8,), latent_dim=2, activation="relu", pretrain_epochs=1, max_epochs=2,
                             batch_size=16, verbose=0),
]


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """Checks that cannot apply to an estimator, with the reason.

    None at present: every estimator passes every check that scikit-learn runs on a transformer.
    Add an entry ``{"check_name": "why it cannot apply"}`` here, never a skip in the test body.
    """
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator: Any, check: Any) -> None:
    check(estimator)
