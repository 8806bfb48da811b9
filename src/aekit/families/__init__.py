"""Importing this package registers every family (one file per family)."""

from aekit.families import autoencoder, factor_analysis, linear  # noqa: F401
