"""Data: loaders for built-in and user data sets, corruption processes, validation and scaling."""

from aekit.data.datasets import Dataset, load_dataset

__all__ = ["Dataset", "load_dataset"]
