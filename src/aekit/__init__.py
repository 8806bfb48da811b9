"""aekit: autoencoders from the lectures, faithful to their math, fast on a CPU or a GPU."""

__version__ = "0.1.0"

from aekit.data import Dataset, load_dataset
from aekit.families.autoencoder import Autoencoder
from aekit.families.factor_analysis import FactorAnalysisAutoencoder
from aekit.families.linear import LinearAutoencoder
from aekit.registry import families, get_family
from aekit.runs import ModelFileError, load
from aekit.training import TrainConfig, TrainingDivergedError

__all__ = [
    "Autoencoder",
    "Dataset",
    "FactorAnalysisAutoencoder",
    "LinearAutoencoder",
    "ModelFileError",
    "TrainConfig",
    "TrainingDivergedError",
    "__version__",
    "families",
    "get_family",
    "load",
    "load_dataset",
]
