"""Anomaly detection with any autoencoder: a model of the normal data scores how unlike it a sample is.

An autoencoder fitted to normal data only reconstructs normal data well, so the reconstruction error
||x - g(f(x))||^2 is small on normal samples and large on anomalies; a family with a likelihood (declared
``"loglik"``: factor analysis's exact log p(x), the VAE's evidence lower bound) scores log p(x) directly.
:class:`AnomalyDetector` wraps either, fitted or not, and gives them the outlier-detector face of
scikit-learn and PyOD. Three additions for images, measured on one-class MNIST and Fashion-MNIST
(``benchmarks/bench_anomaly.py``):

* the code's distance to the normal codes: the mean Euclidean distance d_k(z) of the code z = f(x) to its
  ``n_neighbors`` nearest training codes is added to the reconstruction (or likelihood) score, each of the two
  standardized by its mean and standard deviation on the training data (the training samples' own distances
  leave the sample itself out), so that neither dominates by its units:
  ``a(x) = (e(x) - mean e) / std e + (d_k(z) - mean d_k) / std d_k``. A sample can be well reconstructed and
  still lie where no normal code does (a 1 under a model of 8s), or the reverse;
* images scaled to unit Euclidean norm (``normalize="unit"``), as Deep SVDD's preprocessing normalizes each
  image's contrast: the error then measures the shape of a digit, not how much ink it has, so a thin digit is no
  longer normal to a model of a thick one merely for having fewer pixels to get wrong;
* with unit-norm images, the error of the image as given as a third standardized term (``rescaled_error``): the
  reconstruction rescaled to the image's own norm, ||x - ||x|| g(f(x / ||x||))||^2 = ||x||^2 e(x / ||x||), so that
  the amount of light in an image still counts where it tells the classes apart (a bright shirt under a model of
  sandals), while the unit-norm terms keep the shape.

For tables (samples of one axis) the detector given no model trains factor analysis instead and scores by its exact
log-likelihood alone (no code-distance term: the likelihood already measures where the code lies). One-class tables
from scikit-learn's bundled data (``bench_anomaly.py --tables``), ROC-AUC % mean over seeds, this default against the
autoencoder default it replaced (reconstruction error plus the code's 5-NN distance), IsolationForest, OneClassSVM and
PyOD's AutoEncoder and VAE: breast cancer (benign normal, 5 seeds) 97.1 against 94.8, 95.9, 95.6, 95.6, 96.3; wine
(each cultivar normal in turn, 5 seeds) 97.5 against 97.4, 96.4, 97.4, 97.4, 97.3; iris (each species normal in turn,
5 seeds) 98.4 against 98.4, 96.2, 98.1, 97.6, 97.5; but digits as 64 features (each digit normal in turn, 3 seeds)
97.9 against 98.3, 97.2, 97.8, 96.6, 96.2: on a table of pixels the nonlinear autoencoder stays ahead (pass
``aekit.Autoencoder()`` as the model). Pass images with their shape, (n, C, H, W), not flattened, to keep the images'
defaults.

The face:

* ``score_samples(X)``: normality, higher is more normal (scikit-learn): ``-a(x)``;
* ``decision_function(X)``: abnormality, higher is more abnormal (PyOD): ``-score_samples(X) - threshold_``,
  so that it is positive exactly for the samples ``predict`` calls anomalies;
* ``threshold_``: the ``1 - contamination`` quantile of the training abnormality ``-score_samples``, so a
  fraction ``contamination`` of the training data lies above it;
* ``predict(X)``: ``-1`` (anomaly) where ``decision_function(X) > 0``, else ``1`` (normal).

Example::

    import aekit
    det = aekit.AnomalyDetector(contamination=0.05).fit(X_normal)
    det.predict(X_new)          # 1 normal, -1 anomaly
    det.decision_function(X_new)  # higher is more abnormal
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.exceptions import NotFittedError

from aekit.apps import clone_keeping_fitted, is_fitted
from aekit.core.params import is_whole
from aekit.data.preprocessing import unit_norm_samples
from aekit.model.registry import declared_capabilities, families

__all__ = ["NORMALIZE", "SCORES", "AnomalyDetector", "default_model", "scoring_families"]

#: The values of ``score_type`` (not ``score``: scikit-learn reserves that name for a method).
SCORES = ("auto", "reconstruction", "likelihood")
#: The values of ``normalize``.
NORMALIZE = ("auto", "unit", "none")
# The capability of a family whose ``score_samples`` is a log-likelihood (or a bound on one).
_LOGLIK = "loglik"


def default_model(n_features: int, random_state: Any = None, table: bool = False) -> Any:
    """The model :class:`AnomalyDetector` trains when given none, for samples of ``n_features`` values.

    Images and signals (``table=False``): the default :class:`~aekit.Autoencoder` (an MLP that starts at PCA and
    learns a correction, sized from the data) with a narrow code of ``clip(n_features // 8, 2, 16)`` units, trained
    for 30 epochs: the narrower the code, the worse the samples unlike the training data are reconstructed. On
    one-class MNIST a code of 16 scored a higher AUC than 8, 4 or 32 (digits 2 and 8, one seed, scored by the
    reconstruction error of raw pixels; ``benchmarks/bench_anomaly.py``).

    Tables (``table=True``): :class:`~aekit.FactorAnalysisAutoencoder` with as many factors as that code has units
    (at most ``n_features``), the linear autoencoder with a likelihood, fitted by EM (deterministic:
    ``random_state`` is not used). A table of a few hundred samples is too small for the network to move from the
    PCA it starts at (early stopping keeps it there), and factor analysis's log-likelihood scores what PCA's
    reconstruction error leaves out: where a sample lies within the subspace (a Mahalanobis distance of its
    factors) and its residual feature by feature, each under its own noise variance.
    """
    latent = int(min(16, max(2, n_features // 8)))
    if table:
        from aekit.families.factor_analysis import FactorAnalysisAutoencoder

        return FactorAnalysisAutoencoder(latent_dim=min(latent, n_features))
    from aekit.families.autoencoder import Autoencoder

    # The linear output, not the clipped one the autoencoder takes by default for data in [0, 1]: an abnormal
    # image's reconstruction overshooting [0, 1] is evidence the clip would throw away (one-class MNIST: mean
    # ROC-AUC 98.6 unclipped against 98.3 clipped, lower on 8 digits of 10; benchmarks/RESULTS.md).
    return Autoencoder(latent_dim=latent, output="linear", max_epochs=30, verbose=0, random_state=random_state)


def scoring_families() -> dict[str, list[str]]:
    """The registered families by the way they can score: ``{"reconstruction": [...], "likelihood": [...]}``."""
    out: dict[str, list[str]] = {"reconstruction": [], "likelihood": []}
    for name, info in families().items():
        if callable(getattr(info.estimator, "reconstruction_error", None)):
            out["reconstruction"].append(name)
        if _LOGLIK in info.capabilities:
            out["likelihood"].append(name)
    return out


class AnomalyDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Outlier detector from an autoencoder's reconstruction error or likelihood and the distance of its codes.

    The abnormality of a sample x with code z = f(x) is

        a(x) = (e(x) - mean_train e) / std_train e  +  (d_k(z) - mean_train d_k) / std_train d_k
           [ + (r(x) - mean_train r) / std_train r ]

    with e(x) the squared reconstruction error ||x - g(f(x))||^2 (or -log p(x) for ``score_type="likelihood"``)
    and d_k(z) the mean Euclidean distance from z to its k = ``n_neighbors`` nearest codes of the training data
    (on the training data, to the k nearest other samples). With unit-norm images (``normalize``) and the
    reconstruction error, the third term r(x) = ||x||^2 e(x / ||x||) is the error of the image as given, its
    reconstruction rescaled to its norm (``rescaled_error``). ``n_neighbors=0`` leaves the second term out; with no
    term but e left, ``a(x) = e(x)`` unstandardized, the plain reconstruction error.

    Parameters
    ----------
    model : estimator or None, default None
        The autoencoder. A fitted one is used as it is (``fit`` only sets the statistics and the threshold); an
        unfitted one is cloned and the clone fitted to the normal data; ``None`` trains :func:`default_model`: for
        images and signals an autoencoder with a code of ``clip(n_features // 8, 2, 16)`` units, for tables
        (``X`` of shape (n_samples, n_features)) factor analysis with as many factors, scored by its likelihood.
    score_type : {"auto", "reconstruction", "likelihood"}, default "auto"
        ``"reconstruction"``: e(x) is the squared reconstruction error of each sample, summed over its
        features. ``"likelihood"``: e(x) is minus the model's log-likelihood of each sample (families that declare
        the ``"loglik"`` capability). ``"auto"``: the likelihood where the family has one, else the reconstruction
        error.
    n_neighbors : int >= 0 or "auto", default "auto"
        k of the code-distance term; 0 leaves it out (and so does a model without ``transform``). ``"auto"``: 0 for
        a table when the detector trains its default factor analysis (with it the term lowered the AUC: breast
        cancer 97.1 to 96.7, digits 97.9 to 97.8), else 5.
    normalize : {"auto", "unit", "none"}, default "auto"
        ``"unit"``: every sample (training and scored) is divided by its Euclidean norm before the model sees
        it. ``"auto"``: ``"unit"`` for images and signals (samples of more than one axis) when the detector trains
        the model itself, ``"none"`` for tables and for a model given fitted (it was trained on data as it is).
    rescaled_error : bool, default True
        With ``"unit"`` images and the reconstruction score, add the third term r(x) = ||x||^2 e(x / ||x||), the error
        at the image's own scale (ignored otherwise). On one-class Fashion-MNIST it lifted the mean AUC from 89.6 to
        92.0 (sandals: 79.2 to 86.0; one seed), and on one-class MNIST the mean went from 98.54 to 98.63, the lowest
        digit (8) from 96.65 to 96.24 (three seeds).
    contamination : float in (0, 0.5], default 0.1
        The expected fraction of anomalies in the training data: ``threshold_`` is set so that this
        fraction of the training samples is called anomalous.
    random_state : int or None, default None
        Seed of the default autoencoder (ignored when ``model`` is given, and by factor analysis's EM, which is
        deterministic).

    Attributes
    ----------
    model_ : estimator
        The fitted autoencoder.
    score_ : str
        The score used, ``"reconstruction"`` or ``"likelihood"``.
    normalize_ : str
        ``"unit"`` or ``"none"``, what ``normalize`` resolved to.
    n_neighbors_ : int
        k of the code-distance term, 0 when it is left out.
    rescaled_error_ : bool
        Whether the third term r(x) is used.
    term_stats_ : list of (float, float)
        Training mean and standard deviation of each term (e, then d_k, then r, those used); empty when a(x) = e(x).
    threshold_ : float
        Abnormality a(x) above which a sample is an anomaly.
    offset_ : float
        ``-threshold_``, scikit-learn's name: ``score_samples(X) - offset_ = -decision_function(X)``.
    decision_scores_ : ndarray of shape (n_samples,)
        ``decision_function`` of the training data, with each sample's code distance taken to the other training
        samples (PyOD's name and PyOD's k-NN convention).
    n_features_in_ : int
    """

    def __init__(self, model: Any = None, score_type: str = "auto", n_neighbors: int | str = "auto",
                 normalize: str = "auto", rescaled_error: bool = True, contamination: float = 0.1,
                 random_state: Any = None) -> None:
        self.model = model
        self.score_type = score_type
        self.n_neighbors = n_neighbors
        self.normalize = normalize
        self.rescaled_error = rescaled_error
        self.contamination = contamination
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting

    def _check_params(self) -> None:
        if self.score_type not in SCORES:
            raise ValueError(f"score_type={self.score_type!r} is not one of {', '.join(SCORES)}; e.g. score_type='auto'")
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize={self.normalize!r} is not one of {', '.join(NORMALIZE)}; e.g. normalize='auto'")
        if not isinstance(self.rescaled_error, bool | np.bool_):
            raise ValueError(f"rescaled_error={self.rescaled_error!r} must be True or False (whether unit-norm images "
                             "are also scored by their error at their own scale); e.g. rescaled_error=True")
        k = self.n_neighbors
        if not (is_whole(k, 0) or (isinstance(k, str) and k == "auto")):
            raise ValueError(f"n_neighbors={k!r} must be an integer >= 0, the number of training codes a code's "
                             "distance is measured to (0 leaves the term out), or 'auto'; e.g. n_neighbors=5")
        c = self.contamination
        if isinstance(c, bool) or not isinstance(c, int | float | np.number) or not 0 < float(c) <= 0.5:
            raise ValueError(f"contamination={c!r} must be a fraction in (0, 0.5], the expected share of anomalies "
                             "in the training data; e.g. contamination=0.1")

    def _choose_score(self, model: Any) -> str:
        caps = declared_capabilities(model)
        can_rec = callable(getattr(model, "reconstruction_error", None))
        can_lik = _LOGLIK in caps and callable(getattr(model, "score_samples", None))
        name = getattr(model, "_family_name", type(model).__name__)
        able = scoring_families()
        if self.score_type == "likelihood" and not can_lik:
            raise ValueError(
                f"score_type='likelihood' needs a family with a likelihood, and {name!r} has none; use "
                f"score_type='reconstruction', or a family that has one: {', '.join(able['likelihood']) or 'none'}")
        if self.score_type == "reconstruction" and not can_rec:
            raise ValueError(
                f"score_type='reconstruction' needs a model that reconstructs its input, and {name!r} does not; use "
                f"a family that does: {', '.join(able['reconstruction'])}")
        if self.score_type != "auto":
            return str(self.score_type)
        if can_lik:
            return "likelihood"
        if can_rec:
            return "reconstruction"
        raise ValueError(
            f"{name!r} can score anomalies neither by reconstruction error nor by likelihood; use a family that "
            f"reconstructs ({', '.join(able['reconstruction'])}) or one with a likelihood "
            f"({', '.join(able['likelihood']) or 'none'})")

    def fit(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Fit the model to normal data ``X`` (unless it is fitted already) and set the statistics and threshold.

        Parameters
        ----------
        X : array-like, (n_samples, n_features) or (n_samples, C, H, W) or (n_samples, C, L)
            Normal data (at most a fraction ``contamination`` of anomalies).
        y : ignored

        Returns
        -------
        self
        """
        from aekit.data.preprocessing import check_array

        self._check_params()
        X = check_array(X)
        table = X.ndim == 2
        if self.model is None:
            model = default_model(int(np.prod(X.shape[1:])), self.random_state, table=table)
        else:
            model = self.model
        if isinstance(model, type) or not (callable(getattr(model, "fit", None)) or is_fitted(model)):
            raise TypeError(f"model must be an aekit estimator, fitted or not (e.g. aekit.Autoencoder()), got "
                            f"{model!r:.60}")
        self.score_ = self._choose_score(model)  # before any training
        trains = self.model is None or not is_fitted(model)
        if self.normalize == "auto":
            self.normalize_ = "unit" if trains and not table else "none"
        else:
            self.normalize_ = str(self.normalize)
        self.rescaled_error_ = bool(self.rescaled_error) and self.normalize_ == "unit" and self.score_ == "reconstruction"
        Xn, norms = self._normalized(X)
        if trains:
            model = clone(model).fit(Xn)
        self.model_ = model
        if hasattr(model, "n_features_in_"):
            self.n_features_in_ = int(model.n_features_in_)
        k = self.n_neighbors
        if isinstance(k, str):  # "auto": no code distance beside the tabular default's likelihood
            k = 0 if self.model is None and table else 5
        k = int(k) if callable(getattr(model, "transform", None)) else 0
        self.n_neighbors_ = min(k, X.shape[0] - 1)
        terms = self._terms(Xn, norms, fitting=True)
        bad = np.flatnonzero(~np.isfinite(terms[0]))
        if bad.size:
            what = "log-likelihood" if self.score_ == "likelihood" else "reconstruction error"
            hint = (" (a Bernoulli decoder gives a value outside [0, 1] probability 0: clip X to [0, 1], or use "
                    "score_type='reconstruction')" if self.score_ == "likelihood" else "")
            raise ValueError(f"the model's {what} is not finite for {bad.size} of the {X.shape[0]} normal samples "
                             f"(rows {bad[:5].tolist()}){hint}; the threshold needs a finite score for every one")
        self.term_stats_ = [(float(np.mean(t)), float(np.std(t)) or 1.0) for t in terms] if len(terms) > 1 else []
        a = self._combine(terms)
        # Linear interpolation between order statistics, as IsolationForest sets its offset_.
        self.threshold_ = float(np.percentile(a, 100.0 * (1.0 - float(self.contamination))))
        self.offset_ = -self.threshold_
        self.decision_scores_ = a - self.threshold_
        return self

    # ------------------------------------------------------------------ scoring

    def _check_fitted(self) -> None:
        if not hasattr(self, "offset_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with normal "
                                 "data before scoring.")

    def _normalized(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The samples the model sees, and their norms ||x|| (float64, (n,)) where they were scaled to unit norm."""
        return unit_norm_samples(X) if self.normalize_ == "unit" else (X, None)

    def _error(self, Xn: np.ndarray) -> np.ndarray:
        """e(x): the reconstruction error or minus the log-likelihood, float64 (n,)."""
        m = self.model_
        e = -m.score_samples(Xn) if self.score_ == "likelihood" else m.reconstruction_error(Xn)
        return np.asarray(e, dtype=np.float64).reshape(-1)

    def _codes(self, Xn: np.ndarray) -> np.ndarray:
        Z = np.asarray(self.model_.transform(Xn), dtype=np.float64)
        return Z.reshape(Z.shape[0], -1)

    def _terms(self, Xn: np.ndarray, norms: np.ndarray | None, fitting: bool = False) -> list[np.ndarray]:
        """The terms of a(x), unstandardized, each float64 (n,): e, then d_k and r where they are used. When
        ``fitting``, the code index is built and each training code's distance leaves the code itself out."""
        e = self._error(Xn)
        terms = [e]
        if self.n_neighbors_ > 0:
            codes = self._codes(Xn)
            if fitting:
                from sklearn.neighbors import NearestNeighbors

                self.neighbors_ = NearestNeighbors(n_neighbors=self.n_neighbors_).fit(codes)
                # Each training code's distance to the k nearest *other* codes: itself, at 0, is left out.
                dist = self.neighbors_.kneighbors(codes, n_neighbors=self.n_neighbors_ + 1)[0][:, 1:]
            else:
                dist = self.neighbors_.kneighbors(codes)[0]
            terms.append(dist.mean(axis=1))
        if self.rescaled_error_ and norms is not None:  # rescaled_error_ implies unit norm, hence norms
            # ||x - ||x|| g(f(x/||x||))||^2 = ||x||^2 e(x/||x||): the error at the image's own scale.
            terms.append(norms**2 * e)
        return terms

    def _combine(self, terms: list[np.ndarray]) -> np.ndarray:
        if not self.term_stats_:
            return terms[0]
        return np.asarray(np.sum([(t - m) / s for t, (m, s) in zip(terms, self.term_stats_, strict=True)], axis=0))

    def _abnormality(self, X: Any) -> np.ndarray:
        from aekit.data.preprocessing import check_array

        X = check_array(X)
        return self._combine(self._terms(*self._normalized(X)))

    def score_samples(self, X: Any) -> np.ndarray:
        """Normality of each sample, higher is more normal: ``-a(x)`` (with e(x) the only term, minus the
        reconstruction error or the log-likelihood); shape (n_samples,), float64."""
        self._check_fitted()
        return -self._abnormality(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """Abnormality of each sample relative to the threshold, higher is more abnormal (PyOD's sign):
        ``-score_samples(X) - threshold_``, positive for the samples :meth:`predict` calls anomalies."""
        s = self.score_samples(X)
        return self.offset_ - s

    def predict(self, X: Any) -> np.ndarray:
        """1 for normal samples, -1 for anomalies (``decision_function(X) > 0``); shape (n_samples,)."""
        return np.where(self.decision_function(X) > 0, -1, 1).astype(int)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit to ``X`` and label it: 1 normal, -1 anomaly, from ``decision_scores_`` (each training code's distance
        to the *other* training codes, so a sample is not its own neighbour; as scikit-learn's LocalOutlierFactor
        and PyOD's ``labels_``). Without the code term, the same as ``fit(X).predict(X)``."""
        return np.where(self.fit(X).decision_scores_ > 0, -1, 1).astype(int)

    def __sklearn_clone__(self) -> AnomalyDetector:
        # A fitted model is kept (shared) by the clone, so a grid search or cross-validation over the detector's
        # own parameters scores with that model rather than training an unfitted copy with other defaults.
        return clone_keeping_fitted(self)  # type: ignore[no-any-return]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
