"""aekit: autoencoders from the lectures, faithful to their math, fast on a CPU or a GPU."""

__version__ = "0.1.0"

from aekit.core.lasso import sparse_coding_objective, sparse_encode
from aekit.data.corruption import (
    BlockOcclusion,
    Compose,
    Corruption,
    GaussianNoise,
    Grayscale,
    MaskingNoise,
    SaltAndPepper,
    make_corruption,
)
from aekit.data.datasets import Dataset, load_dataset
from aekit.engine.rundir import ModelFileError
from aekit.engine.training import TrainConfig, TrainingDivergedError
from aekit.families.autoencoder import Autoencoder
from aekit.families.contractive import ContractiveAutoencoder
from aekit.families.denoising import DenoisingAutoencoder
from aekit.families.factor_analysis import FactorAnalysisAutoencoder
from aekit.families.linear import LinearAutoencoder
from aekit.families.psd import PredictiveSparseDecomposition
from aekit.families.sparse import SparseAutoencoder
from aekit.families.sparse_coding import SparseCoding
from aekit.families.stacked import StackedAutoencoder
from aekit.model.loading import load
from aekit.model.registry import families as list_families
from aekit.model.registry import get_family

__all__ = [
    "Autoencoder",
    "BlockOcclusion",
    "Compose",
    "ContractiveAutoencoder",
    "Corruption",
    "Dataset",
    "DenoisingAutoencoder",
    "FactorAnalysisAutoencoder",
    "GaussianNoise",
    "Grayscale",
    "LinearAutoencoder",
    "MaskingNoise",
    "ModelFileError",
    "PredictiveSparseDecomposition",
    "SaltAndPepper",
    "SparseAutoencoder",
    "SparseCoding",
    "StackedAutoencoder",
    "TrainConfig",
    "TrainingDivergedError",
    "__version__",
    "get_family",
    "load",
    "list_families",
    "load_dataset",
    "make_corruption",
    "sparse_coding_objective",
    "sparse_encode",
]
