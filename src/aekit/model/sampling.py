"""Drawing from any fitted autoencoder: densities over codes, generation and interpolation.

A family that declares the ``"sample"`` capability has a generative model of its own (codes from its prior
N(0, I), then its decoder) and samples with ``est.sample(n, random_state=...)``. A deterministic autoencoder
has none: random vectors fed to its decoder fall where no training code lies, so it samples by fitting a
density to its training codes (:class:`LatentDensity`, a full-covariance Gaussian or a Gaussian mixture) and
decoding draws of it. :func:`generate` chooses between the two from the declared capability, never from the
family's name; :func:`interpolate` walks between the codes of two inputs, linearly or along a great circle.

The public face of these functions is :mod:`aekit.apps.generation`; they live here, below the report, so
that the report's figures and the command line draw samples the one same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from aekit.core.params import check_count

__all__ = [
    "DENSITIES",
    "Generated",
    "LatentDensity",
    "can_sample",
    "generate",
    "interpolate",
    "sample_codes",
    "slerp",
]

#: What :func:`generate` can draw from: ``auto`` is ``prior`` for a family that declares one, else ``gaussian``.
DENSITIES = ("auto", "prior", "normal", "gaussian", "gmm")
#: Densities fitted to codes (the others need no data).
FITTED = ("gaussian", "gmm")

Density = Literal["auto", "prior", "normal", "gaussian", "gmm"]


def _check_estimator(est: Any) -> None:
    """A fitted estimator with a decoder (an aekit one is asked whether it is fitted); TypeError for anything else."""
    if callable(getattr(est, "_check_fitted", None)):
        est._check_fitted()
    if not callable(getattr(est, "inverse_transform", None)) and not callable(getattr(est, "sample", None)):
        raise TypeError(f"expected a fitted aekit estimator with an encoder and a decoder (e.g. "
                        f"aekit.Autoencoder().fit(X)), got {type(est).__name__}")


def is_conditional(est: Any) -> bool:
    """Whether a fitted estimator's generative model takes a class label (a VAE fitted with ``conditional=True``)."""
    return bool(dict(getattr(est, "resolved_", None) or {}).get("conditional", False))


def can_sample(est: Any) -> bool:
    """Whether the estimator's family declares the ``"sample"`` capability (its own prior and ``sample``)."""
    from aekit.model.registry import declared_capabilities

    return "sample" in declared_capabilities(est)


class LatentDensity(BaseEstimator):  # type: ignore[misc]
    """A density over codes, fitted to the training codes of a deterministic autoencoder.

    ``kind="gaussian"`` fits N(m, S) by maximum likelihood (the sample mean and the biased sample
    covariance, plus ``reg_covar`` on the diagonal); ``kind="gmm"`` fits a mixture
    sum_j pi_j N(m_j, S_j) of ``n_components`` full-covariance Gaussians by EM (scikit-learn's
    :class:`~sklearn.mixture.GaussianMixture`, k-means initialization).

    Parameters
    ----------
    kind : {"gaussian", "gmm"}
    n_components : int
        Components of the mixture (``kind="gmm"`` only; a Gaussian has one).
    reg_covar : float
        Added to the diagonal of every covariance, so that a code with a constant unit still has one.
    random_state : int, RandomState or None
        Seeds the EM initialization.

    Attributes
    ----------
    weights_ : ndarray (n_components,)
    means_ : ndarray (n_components, n_features)
    covariances_ : ndarray (n_components, n_features, n_features)
    n_features_in_ : int
    """

    def __init__(self, kind: Literal["gaussian", "gmm"] = "gaussian", n_components: int = 10, reg_covar: float = 1e-6,
                 random_state: Any = None) -> None:
        self.kind = kind
        self.n_components = n_components
        self.reg_covar = reg_covar
        self.random_state = random_state

    def _mixture(self) -> Any:
        from sklearn.mixture import GaussianMixture

        if self.kind not in FITTED:
            raise ValueError(f"kind={self.kind!r} is not a density over codes; choose one of {', '.join(FITTED)}")
        k = 1 if self.kind == "gaussian" else check_count("n_components", self.n_components)
        r = self.reg_covar
        if isinstance(r, bool) or not (isinstance(r, float | int | np.number) and math.isfinite(r) and r >= 0):
            raise ValueError(f"reg_covar must be a finite number >= 0, got {r!r}; e.g. reg_covar=1e-6")
        return GaussianMixture(n_components=k, covariance_type="full", reg_covar=float(self.reg_covar),
                               random_state=self.random_state, max_iter=200)

    def fit(self, Z: Any, y: Any = None) -> LatentDensity:
        """Fit to codes ``Z`` (n_samples, n_features); returns self."""
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or not np.isfinite(Z).all():
            raise ValueError(f"codes must be a finite 2-D array (n_samples, latent_dim), got shape {Z.shape}")
        gm = self._mixture()
        if Z.shape[0] < gm.n_components:
            raise ValueError(f"a {self.kind} density with {gm.n_components} components needs at least as many codes, "
                             f"got {Z.shape[0]}; fit it to more data or lower n_components")
        if gm.n_components == 1:
            # The maximum-likelihood Gaussian in closed form (what EM reaches in one step).
            mean = Z.mean(axis=0)
            cov = np.cov(Z, rowvar=False, bias=True).reshape(Z.shape[1], Z.shape[1])
            weights, means, covs = np.ones(1), mean[None], (cov + self.reg_covar * np.eye(Z.shape[1]))[None]
        else:
            gm.fit(Z)
            weights, means, covs = gm.weights_, gm.means_, gm.covariances_
        try:
            np.linalg.cholesky(covs)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"the codes' covariance is singular with reg_covar={self.reg_covar!r} (a unit of the code is constant, "
                "or the units are linearly dependent), so there is no density to draw from; use reg_covar > 0, e.g. "
                "reg_covar=1e-6") from None
        self.weights_, self.means_, self.covariances_ = weights, means, covs
        self.n_features_in_ = Z.shape[1]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this LatentDensity is not fitted yet; call fit(Z) with the training codes first")

    def sample(self, n_samples: int, random_state: Any = None) -> np.ndarray:
        """Draw ``n_samples`` codes, float32 (n_samples, n_features); ``random_state`` seeds this call only."""
        self._check_fitted()
        n = check_count("n_samples", n_samples)
        rng = check_random_state(random_state)
        comp = rng.choice(len(self.weights_), size=n, p=self.weights_ / self.weights_.sum())  # (n,)
        L = np.linalg.cholesky(self.covariances_)  # (J, K, K)
        eps = rng.standard_normal((n, self.n_features_in_))  # (n, K)
        Z = self.means_[comp] + np.einsum("nij,nj->ni", L[comp], eps)
        return Z.astype(np.float32)

    def score_samples(self, Z: Any) -> np.ndarray:
        """Log-density of each code, (n_samples,)."""
        from scipy.special import logsumexp
        from scipy.stats import multivariate_normal

        self._check_fitted()
        Z = np.asarray(Z, dtype=np.float64)
        logp = np.stack([np.log(w) + multivariate_normal(m, c).logpdf(Z).reshape(-1)
                         for w, m, c in zip(self.weights_, self.means_, self.covariances_)], axis=1)
        return np.asarray(logsumexp(logp, axis=1))


def _density_name(kind: str, n_components: int) -> str:
    if kind == "gaussian":
        return "a Gaussian N(mean, covariance)"
    return f"a mixture of {n_components} full-covariance Gaussians"


def sample_codes(
    est: Any, n: int, X: Any = None, *, density: Literal["normal", "gaussian", "gmm"] = "gaussian",
    n_components: int = 10, random_state: Any = 0,
) -> tuple[np.ndarray, str]:
    """Draw ``n`` codes for the decoder of ``est``, and say how.

    ``normal`` draws N(0, I) in the code space (no data needed: the prior of the families that declare
    one, and what a plain decoder was never trained on); ``gaussian`` and ``gmm`` fit a
    :class:`LatentDensity` to the codes of ``X`` and draw from it.

    Returns
    -------
    codes : ndarray (n, latent_dim), float32
    how : str
        A phrase for captions.
    """
    n = check_count("n_samples", n)
    if density == "normal":
        k = _latent_dim(est)
        rng = check_random_state(random_state)
        return rng.standard_normal((n, k)).astype(np.float32), "decoded from draws of N(0, I) in the code space"
    if density not in FITTED:
        raise ValueError(f"density={density!r} is not a density over codes; choose normal, gaussian or gmm")
    if X is None:
        raise ValueError(
            f"density={density!r} is fitted to the codes of data: pass the training data X to fit it to")
    Z = np.asarray(est.transform(X), dtype=np.float64)
    fitted = LatentDensity(density, n_components=n_components, random_state=random_state).fit(Z)
    return (fitted.sample(n, random_state=random_state),
            f"decoded from draws of {_density_name(density, n_components)} fitted to the codes of {Z.shape[0]} samples")


def _latent_dim(est: Any) -> int:
    est._check_fitted()
    probe = np.asarray(est.transform(np.zeros((1, *est.sample_shape_), dtype=np.float32)))
    return int(probe.shape[1])


@dataclass(frozen=True)
class Generated:
    """What :func:`generate` returns.

    Attributes
    ----------
    samples : ndarray (n, *sample_shape), in data units
    codes : ndarray (n, latent_dim) or None
        The decoded codes; None when the model drew from its own generative model.
    how : str
        A phrase saying how they were drawn, for captions.
    density : str
        The density used (``auto`` resolved).
    """

    samples: np.ndarray
    codes: np.ndarray | None
    how: str
    density: str


def generate(
    est: Any, n: int, X: Any = None, *, density: Density = "auto", n_components: int = 10, random_state: Any = 0,
    source: str | None = None, label: int | None = None,
) -> Generated:
    """Draw ``n`` samples from a fitted autoencoder.

    ``density="prior"`` samples from the model's own generative model (families that declare the
    ``"sample"`` capability: ``est.sample(n, random_state=...)``); ``"normal"`` decodes N(0, I) draws;
    ``"gaussian"`` and ``"gmm"`` decode draws of a :class:`LatentDensity` fitted to the codes of ``X``;
    ``"auto"`` (the default) is ``prior`` for a family that declares one, else ``gaussian``.

    Parameters
    ----------
    est : fitted aekit estimator
    n : int
        Number of samples, at least 1.
    X : array (N, *sample_shape), optional
        Data whose codes the density is fitted to (the training data); needed by ``gaussian`` and ``gmm``.
    density : {"auto", "prior", "normal", "gaussian", "gmm"}
    n_components : int
        Components of the ``gmm`` density.
    random_state : int, RandomState or None
        Seeds the draws (and the mixture's EM); the global NumPy state is not touched.
    source : str, optional
        Names ``X`` in the returned description.
    label : int, optional
        For a conditional model (a ``vae`` fitted with ``conditional=True``): the class to generate.
        Only the model's own prior can be conditioned, so it implies ``density="prior"``.

    Returns
    -------
    Generated
    """
    if density not in DENSITIES:
        raise ValueError(f"unknown density {density!r}; choose one of {', '.join(DENSITIES)}")
    _check_estimator(est)
    n = check_count("n_samples", n)
    family = getattr(est, "_family_name", type(est).__name__)
    if label is not None:
        if not can_sample(est):
            raise ValueError(f"label={label!r}: family {family!r} has no generative model to condition on a label; "
                             "leave the label out")
        if not is_conditional(est):
            raise ValueError(f"label={label!r}: this {family!r} model was not fitted conditional on labels; fit a "
                             "conditional one (a VAE with conditional=True and labels y), or leave the label out")
        if density not in ("auto", "prior"):
            raise ValueError(f"label={label!r} conditions the model's own prior, but density={density!r} was asked "
                             "for; leave the density at auto or prior")
        return Generated(np.asarray(est.sample(n, random_state=random_state, label=label)), None,
                         f"drawn from the model's own generative distribution given the label {label}", "prior")
    if density == "auto":
        density = "prior" if can_sample(est) else "gaussian"
    if density == "prior":
        if not can_sample(est):
            raise ValueError(
                f"family {family!r} declares no prior to sample from; choose density gaussian or gmm (a density "
                "fitted to the codes of data) or normal (N(0, I) draws decoded)")
        return Generated(np.asarray(est.sample(n, random_state=random_state)), None,
                         "drawn from the model's own generative distribution (codes from its prior, then its decoder)",
                         "prior")
    if density in FITTED and X is None:
        raise ValueError(
            f"family {family!r} declares no prior to sample from; samples are decoded from a density fitted to the "
            "codes of data, so pass data X to fit it to" if not can_sample(est) else
            f"density={density!r} is fitted to the codes of data: pass the training data X to fit it to")
    Z, how = sample_codes(est, n, X, density=density, n_components=n_components,  # type: ignore[arg-type]
                          random_state=random_state)
    if source and density in FITTED:
        how += f" ({source})"
    return Generated(np.asarray(est.inverse_transform(Z)), Z, how, density)


def slerp(z0: Any, z1: Any, t: Any) -> np.ndarray:
    """Spherical linear interpolation between codes ``z0`` and ``z1`` (K,) at fractions ``t`` (T,).

    slerp(z0, z1; t) = sin((1 - t) w) / sin(w) z0 + sin(t w) / sin(w) z1, with w the angle between z0
    and z1: the path follows the great circle, so between codes of equal norm every point keeps that
    norm (a linear path cuts through the low-norm interior, where N(0, I) puts little mass in high
    dimensions). Nearly parallel codes (w < 1e-6) fall back to the linear path. Returns (T, K).
    """
    a, b = np.asarray(z0, dtype=np.float64), np.asarray(z1, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(-1, 1)  # (T, 1)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0:
        return (1 - t) * a + t * b
    w = float(np.arccos(np.clip(a @ b / (na * nb), -1.0, 1.0)))
    if w < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * w) * a + np.sin(t * w) * b) / np.sin(w)


def interpolate(est: Any, a: Any, b: Any, steps: int = 10, method: Literal["linear", "slerp"] = "linear") -> np.ndarray:
    """Decodings along a path between the codes of inputs ``a`` and ``b``.

    Parameters
    ----------
    est : fitted aekit estimator
    a, b : array of one sample's shape (or (1, *sample_shape))
    steps : int
        Points on the path, at least 2; the first decodes the code of ``a``, the last that of ``b``.
    method : {"linear", "slerp"}
        z(t) = (1 - t) z_a + t z_b, or :func:`slerp`.

    Returns
    -------
    ndarray (steps, *sample_shape), in data units
    """
    _check_estimator(est)
    steps = check_count("steps", steps)
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the two end points), got {steps}")
    if method not in ("linear", "slerp"):
        raise ValueError(f"unknown interpolation method {method!r}; choose linear or slerp")
    shape = tuple(est.sample_shape_)
    ends = []
    for name, v in (("a", a), ("b", b)):
        arr = np.asarray(v, dtype=np.float32)
        if arr.size != math.prod(shape):
            raise ValueError(f"{name} has shape {arr.shape} ({arr.size} values), but the model takes samples of shape "
                             f"{shape} ({math.prod(shape)} values); give one sample of that shape")
        ends.append(arr.reshape(shape))
    pair = np.stack(ends)  # (2, *sample_shape)
    za, zb = np.asarray(est.transform(pair), dtype=np.float64)
    t = np.linspace(0.0, 1.0, steps)
    Z = slerp(za, zb, t) if method == "slerp" else (1 - t)[:, None] * za + t[:, None] * zb  # (steps, K)
    return np.asarray(est.inverse_transform(Z.astype(np.float32)))
