"""aekit: autoencoders from the lectures, faithful to their math, fast on a CPU or a GPU.

The public names below are imported on first use (PEP 562), so ``import aekit`` and the command
line's ``--help``, ``list`` and ``--version`` answer without importing PyTorch or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> (module, attribute in that module). The one table both __getattr__ and __dir__ read.
_EXPORTS: dict[str, tuple[str, str]] = {
    "AnomalyDetector": ("aekit.apps.anomaly", "AnomalyDetector"),
    "LatentDensity": ("aekit.apps.generation", "LatentDensity"),
    "bottleneck_sweep": ("aekit.apps.generation", "bottleneck_sweep"),
    "generate": ("aekit.apps.generation", "generate"),
    "interpolate": ("aekit.apps.generation", "interpolate"),
    "sample_codes": ("aekit.apps.generation", "sample_codes"),
    "slerp": ("aekit.apps.generation", "slerp"),
    "colorize": ("aekit.apps.restoration", "colorize"),
    "denoise": ("aekit.apps.restoration", "denoise"),
    "inpaint": ("aekit.apps.restoration", "inpaint"),
    "make_mask": ("aekit.apps.restoration", "make_mask"),
    "restoration_scores": ("aekit.apps.restoration", "restoration_scores"),
    "CodeIndex": ("aekit.apps.retrieval", "CodeIndex"),
    "CodeModel": ("aekit.apps.compression", "CodeModel"),
    "compress": ("aekit.apps.compression", "compress"),
    "decompress": ("aekit.apps.compression", "decompress"),
    "fit_code_model": ("aekit.apps.compression", "fit_code_model"),
    "code_features": ("aekit.apps.features", "code_features"),
    "FineTunedClassifier": ("aekit.apps.features", "FineTunedClassifier"),
    "finetune_features": ("aekit.apps.features", "finetune_features"),
    "SampleQuality": ("aekit.report.quality", "SampleQuality"),
    "frechet_distance": ("aekit.report.quality", "frechet_distance"),
    "sparse_coding_objective": ("aekit.core.lasso", "sparse_coding_objective"),
    "sparse_encode": ("aekit.core.lasso", "sparse_encode"),
    "BlockOcclusion": ("aekit.data.corruption", "BlockOcclusion"),
    "Compose": ("aekit.data.corruption", "Compose"),
    "Corruption": ("aekit.data.corruption", "Corruption"),
    "GaussianNoise": ("aekit.data.corruption", "GaussianNoise"),
    "Grayscale": ("aekit.data.corruption", "Grayscale"),
    "MaskingNoise": ("aekit.data.corruption", "MaskingNoise"),
    "SaltAndPepper": ("aekit.data.corruption", "SaltAndPepper"),
    "make_corruption": ("aekit.data.corruption", "make_corruption"),
    "Dataset": ("aekit.data.datasets", "Dataset"),
    "load_dataset": ("aekit.data.datasets", "load_dataset"),
    "ModelFileError": ("aekit.engine.rundir", "ModelFileError"),
    "TrainConfig": ("aekit.engine.training", "TrainConfig"),
    "TrainingDivergedError": ("aekit.engine.training", "TrainingDivergedError"),
    "Autoencoder": ("aekit.families.autoencoder", "Autoencoder"),
    "ContractiveAutoencoder": ("aekit.families.contractive", "ContractiveAutoencoder"),
    "DenoisingAutoencoder": ("aekit.families.denoising", "DenoisingAutoencoder"),
    "FactorAnalysisAutoencoder": ("aekit.families.factor_analysis", "FactorAnalysisAutoencoder"),
    "LinearAutoencoder": ("aekit.families.linear", "LinearAutoencoder"),
    "PredictiveSparseDecomposition": ("aekit.families.psd", "PredictiveSparseDecomposition"),
    "RateDistortionAutoencoder": ("aekit.families.rate_distortion", "RateDistortionAutoencoder"),
    "SparseAutoencoder": ("aekit.families.sparse", "SparseAutoencoder"),
    "SparseCoding": ("aekit.families.sparse_coding", "SparseCoding"),
    "StackedAutoencoder": ("aekit.families.stacked", "StackedAutoencoder"),
    "SemiSupervisedAutoencoder": ("aekit.families.semi_supervised", "SemiSupervisedAutoencoder"),
    "VAE": ("aekit.families.vae", "VAE"),
    "load": ("aekit.model.loading", "load"),
    "list_families": ("aekit.model.registry", "families"),
    "get_family": ("aekit.model.registry", "get_family"),
    "RunResult": ("aekit.workflow.train", "RunResult"),
    "resume_run": ("aekit.workflow.train", "resume_run"),
    "train_run": ("aekit.workflow.train", "train_run"),
}

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports on demand
    from aekit.apps.anomaly import AnomalyDetector
    from aekit.apps.compression import CodeModel, compress, decompress, fit_code_model
    from aekit.apps.generation import (
        LatentDensity,
        bottleneck_sweep,
        generate,
        interpolate,
        sample_codes,
        slerp,
    )
    from aekit.apps.restoration import colorize, denoise, inpaint, make_mask, restoration_scores
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
    from aekit.families.rate_distortion import RateDistortionAutoencoder
    from aekit.families.semi_supervised import SemiSupervisedAutoencoder
    from aekit.families.sparse import SparseAutoencoder
    from aekit.families.sparse_coding import SparseCoding
    from aekit.families.stacked import StackedAutoencoder
    from aekit.families.vae import VAE
    from aekit.model.loading import load
    from aekit.model.registry import families as list_families
    from aekit.model.registry import get_family
    from aekit.report.quality import SampleQuality, frechet_distance
    from aekit.workflow.train import RunResult, resume_run, train_run

__all__ = [
    "AnomalyDetector",
    "CodeIndex",
    "FineTunedClassifier",
    "code_features",
    "finetune_features",
    "CodeModel",
    "compress",
    "decompress",
    "fit_code_model",
    "LatentDensity",
    "SampleQuality",
    "bottleneck_sweep",
    "frechet_distance",
    "generate",
    "interpolate",
    "sample_codes",
    "slerp",
    "colorize",
    "denoise",
    "inpaint",
    "make_mask",
    "restoration_scores",
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
    "RateDistortionAutoencoder",
    "RunResult",
    "SaltAndPepper",
    "SemiSupervisedAutoencoder",
    "SparseAutoencoder",
    "SparseCoding",
    "StackedAutoencoder",
    "TrainConfig",
    "TrainingDivergedError",
    "VAE",
    "__version__",
    "get_family",
    "load",
    "list_families",
    "load_dataset",
    "make_corruption",
    "resume_run",
    "sparse_coding_objective",
    "sparse_encode",
    "train_run",
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'aekit' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
