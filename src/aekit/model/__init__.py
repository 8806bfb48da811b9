"""What every family shares: the estimator base, the family registry, saving and loading fitted models."""
