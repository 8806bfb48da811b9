"""scikit-learn's own estimator checks on every registered family and every declared variant.

The estimators come from the registry: each family's tiny configuration (``_test_params``) and each
parameter set it declares as another training path (``_test_variants``), so a new family or variant
is checked as soon as it is declared. The checks fit on tiny data (a few dozen samples, as few as one
feature), so every instance is shrunk further: a 2-unit code and small batches.
"""

from __future__ import annotations

from typing import Any

from conftest import declared_variants, fit_data, tiny_params
from sklearn.utils.estimator_checks import parametrize_with_checks

from aekit.model.registry import families

# The checks' data has as few as 2 features and 20 samples: a code of 2 units fits every family.
SKLEARN_SMALL = {"latent_dim": 2, "batch_size": 16, "k": 1}


def registry_estimators() -> list[Any]:
    out = []
    for info in families().values():
        cls = info.estimator
        for variant in declared_variants(cls):
            params = tiny_params(cls, **{**SKLEARN_SMALL, **variant})
            # The checks give tabular data only: a variant that needs images (a convolutional network) is
            # checked by the conformance suite on images. The default configuration must take tabular data.
            if not variant or fit_data(info, **params).ndim == 2:
                out.append(cls(**params))
    return out


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """Checks that cannot apply to an estimator, with the reason.

    None at present: every estimator passes every check that scikit-learn runs on a transformer.
    Add an entry ``{"check_name": "why it cannot apply"}`` here, never a skip in the test body.
    """
    return {}


@parametrize_with_checks(registry_estimators(), expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator: Any, check: Any) -> None:
    check(estimator)
