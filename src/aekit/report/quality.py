"""Sample quality without an Inception network: a small classifier trained on the data itself.

The measure the MNIST literature uses where the Inception network of FID cannot be had: a small
convolutional classifier is trained on the labelled training split, and generated samples are judged by

1. the Fréchet distance between the Gaussians fitted to its penultimate-layer features of the samples and
   of test images (lower is better; test images against other test images give the floor),
2. the mean maximum class probability of the samples (does each look like some class?),
3. the class histogram of the samples (do they cover every class?).

The classifier is trained by the one training loop of :mod:`aekit.engine.training`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.outputs import AEOutput, LossOutput

__all__ = ["QualityScores", "SampleQuality", "feature_statistics", "frechet_distance"]


def feature_statistics(F: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features ``F`` (N, D), float64 (the unbiased covariance, as FID)."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2 or F.shape[0] < 2:
        raise ValueError(f"features must be (n_samples, n_features) with at least 2 samples, got shape {F.shape}")
    return F.mean(axis=0), np.cov(F, rowvar=False).reshape(F.shape[1], F.shape[1])


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """The Fréchet (2-Wasserstein) distance, squared, between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)),

    the quantity FID reports. The trace of the matrix square root is taken from the eigenvalues of
    sigma1^(1/2) sigma2 sigma1^(1/2), which are real and non-negative for covariance matrices (the
    product sigma1 sigma2 itself need not be symmetric), so no complex parts are dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"means of shape {mu1.shape} and {mu2.shape} and covariances of shape {s1.shape} and "
                         f"{s2.shape} do not describe two Gaussians of one dimension")
    w1, V1 = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (V1 * np.sqrt(np.clip(w1, 0.0, None))) @ V1.T  # sigma1^(1/2)
    inner = root1 @ s2 @ root1
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


class _Classifier(nn.Module):
    """Conv 32 k3 -> ReLU -> MaxPool 2 -> Conv 64 k3 -> ReLU -> MaxPool 2 -> Linear 128 (the features) -> classes."""

    uses_labels = True

    def __init__(self, shape: tuple[int, int, int], n_classes: int, mean: float, std: float) -> None:
        super().__init__()
        c, h, w = shape
        self.mean, self.std = mean, std  # of the training images: inputs are standardized by these
        self.conv = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        )
        self.features = nn.Sequential(nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU())
        self.head = nn.Linear(128, n_classes)

    def forward(self, x: Tensor) -> AEOutput:
        f = self.features(self.conv((x - self.mean) / self.std))  # (B, 128)
        return AEOutput(z=f, x_hat=x, logits=self.head(f))

    def loss(self, x: Tensor, out: AEOutput, y: Tensor | None) -> LossOutput:
        assert out.logits is not None and y is not None
        ce = nn.functional.cross_entropy(out.logits, y)
        return LossOutput(ce, {"cross_entropy": ce})


@dataclass(frozen=True)
class QualityScores:
    """The sample-quality measure of a set of samples.

    Attributes
    ----------
    frechet : float
        Fréchet distance between classifier features of the samples and of the reference (test) images.
    mean_max_prob : float
        Mean over samples of the classifier's largest class probability.
    class_histogram : ndarray (n_classes,)
        Fraction of samples the classifier puts in each class.
    n_samples : int
    """

    frechet: float
    mean_max_prob: float
    class_histogram: np.ndarray
    n_samples: int

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers and lists, for JSON and tables."""
        return {"frechet": self.frechet, "mean_max_prob": self.mean_max_prob,
                "class_histogram": [round(float(v), 4) for v in self.class_histogram], "n_samples": self.n_samples}


class SampleQuality:
    """A small convolutional classifier of images, and the sample-quality measure built on it.

    Parameters
    ----------
    max_epochs : int
        Epochs of training (no early stopping: a fixed, cheap budget).
    batch_size : int
    learning_rate : float
    device : str
        "auto", "cpu", "cuda", ...
    random_state : int
        Seeds initialization and batch order.
    verbose : int
        0: silent; 1: a progress bar on a terminal.

    Attributes
    ----------
    module_ : nn.Module
    classes_ : ndarray (n_classes,)
    history_ : list of dict
    """

    def __init__(self, max_epochs: int = 5, batch_size: int = 128, learning_rate: float = 1e-3, device: str = "auto",
                 random_state: int = 0, verbose: int = 0) -> None:
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> SampleQuality:
        """Train on images ``X`` (N, C, H, W) with integer labels ``y`` (N,); returns self."""
        from aekit.core.devices import resolve_device
        from aekit.engine.training import TrainConfig, fit_module

        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 4 or min(X.shape[2:]) < 4:
            raise ValueError(f"the sample-quality classifier takes images (n_samples, channels, height, width) of at "
                             f"least 4 x 4 pixels, got shape {X.shape}")
        y = np.asarray(y)
        if y.shape != (X.shape[0],) or (y < 0).any():
            raise ValueError(f"y must hold one class label >= 0 per image, {X.shape[0]} in all; got shape {y.shape}")
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"the classifier needs at least 2 classes, got {len(self.classes_)}")
        device = resolve_device(self.device)
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
            torch.manual_seed(self.random_state)
            self.module_ = _Classifier(X.shape[1:], len(self.classes_), float(X.mean()), float(X.std()) or 1.0)
            config = TrainConfig(max_epochs=self.max_epochs, batch_size=self.batch_size,
                                 learning_rate=self.learning_rate, validation_fraction=0.0, patience=None,
                                 device=self.device, verbose=self.verbose, random_state=self.random_state)
            self.history_ = fit_module(self.module_, X, yi.astype(np.int64), config, seed=self.random_state)
        self.module_.eval()
        return self

    def _outputs(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "module_"):
            raise ValueError("this SampleQuality is not fitted yet; call fit(X, y) with labelled training images first")
        X = np.asarray(X, dtype=np.float32)
        p = next(self.module_.parameters())
        feats, probs = [], []
        with torch.no_grad():
            for i in range(0, X.shape[0], 1024):
                out = self.module_(torch.from_numpy(X[i:i + 1024]).to(p.device))
                assert out.logits is not None
                feats.append(out.z.cpu().numpy())
                probs.append(torch.softmax(out.logits, dim=1).cpu().numpy())
        return np.concatenate(feats).astype(np.float64), np.concatenate(probs).astype(np.float64)

    def features(self, X: Any) -> np.ndarray:
        """Penultimate-layer features (N, 128) of images ``X``."""
        return self._outputs(X)[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, n_classes), columns in the order of ``classes_``."""
        return self._outputs(X)[1]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on labelled images."""
        pred = self.classes_[self.predict_proba(X).argmax(axis=1)]
        return float(np.mean(pred == np.asarray(y)))

    def evaluate(self, samples: Any, reference: Any) -> QualityScores:
        """The measure of ``samples`` (N, C, H, W) against ``reference`` images (test images)."""
        fs, ps = self._outputs(samples)
        fr, _ = self._outputs(reference)
        d = frechet_distance(*feature_statistics(fs), *feature_statistics(fr))
        hist = np.bincount(ps.argmax(axis=1), minlength=len(self.classes_)) / ps.shape[0]
        return QualityScores(d, float(ps.max(axis=1).mean()), hist, int(ps.shape[0]))

    def floor(self, reference: Any, random_state: int = 0) -> float:
        """The Fréchet distance between two random halves of ``reference``: what real images score."""
        R = np.asarray(reference)
        perm = np.random.default_rng(random_state).permutation(R.shape[0])
        half = R.shape[0] // 2
        return self.evaluate(R[perm[:half]], R[perm[half:2 * half]]).frechet
