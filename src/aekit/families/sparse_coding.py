"""Sparse coding: a linear decoder and an optimization-based encoder, the dictionary learned from data.

B. A. Olshausen and D. J. Field, "Emergence of simple-cell receptive field properties by learning a
sparse code for natural images", Nature 381 (1996). The encoder solves, for each sample x (a row),
the lasso::

    h*(x) = argmin_h  0.5 * ||x - h D||_2^2 + alpha * ||h||_1,      D: (K, n_features), atoms = rows

exactly, by feature-sign search (H. Lee, A. Battle, R. Raina and A. Y. Ng, "Efficient sparse coding
algorithms", NIPS 2007), run for all samples at once; FISTA (A. Beck and M. Teboulle, "A fast
iterative shrinkage-thresholding algorithm for linear inverse problems", SIAM J. Imaging Sciences 2
(2009)) and ISTA are there too, for teaching and comparison. The dictionary solves::

    min_{D, ||D_k|| = 1}  (1/N) sum_n  0.5 * ||x_n - h*(x_n) D||^2 + alpha * ||h*(x_n)||_1

The 0.5 and the row convention are scikit-learn's (``sklearn.decomposition.sparse_encode`` with
``algorithm="lasso_cd"`` minimizes the same objective for the same ``alpha``), so objectives can be
compared number for number. Two ways to learn D: ``"minibatch"`` (codes of each batch, then one Adam
step on D, then the atoms renormalized: the training loop) and ``"alternating"`` (full batch: codes of
all data, then the least-squares update D = argmin_D ||X - H D||^2 under ||D_k|| <= 1, as in the
"method of optimal directions" of K. Engan et al., ICASSP 1999, solved exactly atom by atom as in
Mairal et al., JMLR 2010, then renormalization; every round lowers the objective).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.devices import resolve_device
from aekit.core.lasso import Alpha, MaxIter, Tol, init_dictionary, lasso_core, unit_rows
from aekit.core.losses import l1_penalty, squared_error
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import Interval
from aekit.data.preprocessing import Scaling
from aekit.engine.training import TrainConfig
from aekit.model.base import BaseAutoencoder, declare_params
from aekit.model.registry import register

# ---------------------------------------------------------------------------------- the module


class SparseCodingModule(nn.Module):
    """Linear decoder h D and the exact lasso encoder. Shapes: x (B, *sample_shape), h (B, K), D (K, n_features).

    ``loss`` is the sparse-coding objective with named terms ``reconstruction`` (0.5 ||x - h D||^2)
    and ``l1`` (alpha ||h||_1, constant for D since codes are computed without gradient).
    """

    def __init__(self, sample_shape: tuple[int, ...], n_components: int, alpha: float, max_iter: int, tol: float) -> None:
        super().__init__()
        d = int(np.prod(sample_shape))
        self.sample_shape = sample_shape
        self.alpha, self.max_iter, self.tol = float(alpha), int(max_iter), float(tol)
        self.dictionary = nn.Parameter(unit_rows(torch.randn(n_components, d)))

    def encode(self, x: Tensor) -> Tensor:
        """Exact sparse codes (feature-sign search), (B, K); no gradient flows through the optimization."""
        with torch.no_grad():
            D = self.dictionary.detach()
            return lasso_core(x.reshape(x.shape[0], -1).to(D.dtype), D, self.alpha, self.max_iter, self.tol)

    def decode(self, h: Tensor) -> Tensor:
        return (h @ self.dictionary).reshape(h.shape[0], *self.sample_shape)

    def forward(self, x: Tensor) -> AEOutput:
        h = self.encode(x)
        return AEOutput(z=h, x_hat=self.decode(h))

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        rec = 0.5 * squared_error(out.x_hat, x).mean()
        l1 = self.alpha * l1_penalty(out.z).mean()
        return LossOutput(rec + l1, {"reconstruction": rec, "l1": l1})

    def after_step(self) -> None:
        """Project the atoms back onto the unit sphere (without it, D grows and h shrinks to cheat the L1)."""
        self.dictionary.copy_(unit_rows(self.dictionary))


# -------------------------------------------------------------------------------- the estimator


@dataclass
class SparseCodingConfig:
    """Hyperparameters of sparse coding."""

    latent_dim: Annotated[int, Interval(1)] = 128  # K, the number of atoms: 2x overcomplete for digits, the classic sparse-coding regime
    alpha: Alpha = 1.0  # The L1 weight, scikit-learn's default; scale it with the norm of the data
    fit_algorithm: Literal["minibatch", "alternating"] = "minibatch"  # Minibatch Adam steps on D, as the other families train; "alternating" is full-batch MOD
    transform_max_iter: MaxIter = 1000  # At most this many feature-sign steps per encoding; a few dozen are needed
    tol: Tol = 1e-4  # The tolerance of the FISTA fallback for samples meeting nearly dependent atoms (codes stay exact)
    scaling: Scaling = "none"  # Sparse coding works on the data as given; "standard" centres and scales features


@register(
    "sparse-coding",
    "linear decoder h D, encoder argmin_h 0.5||x - h D||^2 + alpha||h||_1 (exact, by feature-sign search); "
    "dictionary learned by minibatch Adam steps or alternating least squares",
    capabilities=("gradient", "images"),
)
@declare_params(SparseCodingConfig, TrainConfig)
class SparseCoding(BaseAutoencoder):
    """Sparse coding with a learned dictionary (scikit-learn style).

    Parameters
    ----------
    latent_dim, alpha, fit_algorithm, transform_max_iter, tol, scaling
        See :class:`SparseCodingConfig`.
    max_epochs, batch_size, learning_rate, ..., device, random_state, verbose
        See :class:`aekit.engine.training.TrainConfig`. With ``fit_algorithm="alternating"`` each epoch is one
        round (codes of all data, then the least-squares dictionary update) and only ``max_epochs``,
        ``device`` and ``random_state`` apply (no validation split, checkpoints or resume).

    Attributes
    ----------
    components_ : ndarray, (latent_dim, n_features)
        The dictionary, unit-norm atoms as rows.
    history_ : list of dict
        Per epoch (or round): ``loss`` = mean objective, ``reconstruction``, ``l1``.

    Notes
    -----
    ``transform`` returns the exact codes of :func:`sparse_encode` (feature-sign search) with the
    ``alpha``, ``transform_max_iter`` and ``tol`` of the fit: the dictionary was learned for that
    ``alpha``, and a fitted model encodes the same way in memory and after ``aekit.load``, whatever
    ``set_params`` does later (it changes the next fit). For codes with another ``alpha`` on the
    learned dictionary, call :func:`aekit.sparse_encode` on ``components_``. ``inverse_transform`` is
    ``h @ components_``. The data are used as given (``scaling="none"``): centre them first, e.g.
    remove each image patch's mean, as sparse coding of natural images does. With another ``scaling``
    the dictionary lives in the scaled units: encode ``scaler_.transform(X)`` with it, and
    ``inverse_transform`` maps back to the data's units.

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X.reshape(-1, 64)
    >>> sc = aekit.SparseCoding(latent_dim=32, alpha=0.5, fit_algorithm="alternating", max_epochs=5).fit(X)
    >>> sc.transform(X).shape
    (1437, 32)
    """

    _test_params: ClassVar[dict[str, Any]] = {"latent_dim": 32, "alpha": 0.5, "max_epochs": 2, "batch_size": 32, "verbose": 0}
    #: The full-batch solver takes another training path than the training loop.
    _test_variants: ClassVar[Sequence[Mapping[str, Any]]] = ({"fit_algorithm": "alternating"},)

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        r = self.resolved_
        return SparseCodingModule(sample_shape, int(r.latent_dim), float(r.alpha), int(r.transform_max_iter), float(r.tol))

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        r = self.resolved_
        if r.fit_algorithm == "alternating" and fit_kw.get("resume"):
            raise ValueError("resume is only supported with fit_algorithm='minibatch'; refit from the start instead")
        dev = resolve_device(r.device)
        m: SparseCodingModule = self.module_.to(dev)
        X2 = torch.from_numpy(np.ascontiguousarray(Xs.reshape(Xs.shape[0], -1))).to(dev)  # (N, n_features)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            m.dictionary.copy_(init_dictionary(X2, int(r.latent_dim), gen))
        if r.fit_algorithm == "minibatch":
            return super()._fit_module(Xs, y, seed, **fit_kw)
        return _fit_alternating(m, X2, int(r.max_epochs))

    @property
    def components_(self) -> np.ndarray:
        self._check_fitted()
        return self.module_.dictionary.detach().cpu().numpy()


@torch.no_grad()
def _update_dictionary(D: Tensor, HtH: Tensor, HtX: Tensor, n_sweeps: int = 5) -> Tensor:
    """min_D ||X - H D||^2 subject to ||D_k|| <= 1, by block coordinate descent over the atoms.

    J. Mairal, F. Bach, J. Ponce and G. Sapiro, "Online learning for matrix factorization and sparse
    coding", JMLR 11 (2010), Algorithm 2. Needs only the sufficient statistics H^T H (K, K) and
    H^T X (K, n_features); each atom update is exact, so the objective never increases. (The
    unconstrained least-squares solution followed by renormalization is not monotone: the L1-shrunk
    codes make least squares grow the atoms, and renormalizing them then inflates the codes.)
    """
    D = D.clone()
    diag = torch.diagonal(HtH)
    for _ in range(n_sweeps):
        for k in torch.nonzero(diag > 0).flatten().tolist():
            d = D[k] + (HtX[k] - HtH[k] @ D) / diag[k]
            D[k] = d / d.norm().clamp_min(1.0)  # projection onto the unit ball
    return D


@torch.no_grad()
def _fit_alternating(m: SparseCodingModule, X: Tensor, n_rounds: int) -> list[dict[str, float]]:
    """Per round: exact codes of all data (feature-sign search), then the constrained least-squares update of D.

    An atom that ends inside the unit ball is scaled up to unit norm (its codes would scale down, which
    leaves H D unchanged and lowers the L1 term); an atom no sample uses is restarted on the sample the
    current dictionary explains worst.
    """
    history: list[dict[str, float]] = []
    for r in range(n_rounds):
        D = m.dictionary.detach()
        H = lasso_core(X, D, m.alpha, m.max_iter, m.tol)  # (N, K)
        resid = squared_error(H @ D, X)  # (N,)
        rec = 0.5 * resid.mean()
        l1 = m.alpha * l1_penalty(H).mean()
        history.append({"epoch": float(r + 1), "loss": float(rec + l1), "reconstruction": float(rec), "l1": float(l1)})
        new = _update_dictionary(D, H.t() @ H, H.t() @ X)
        dead = torch.nonzero((H == 0).all(dim=0)).flatten()
        if dead.numel():
            worst = torch.topk(resid, min(dead.numel(), X.shape[0])).indices
            new[dead[: worst.numel()]] = X[worst]
        norms = new.norm(dim=1)
        new = torch.where((norms > 1e-12)[:, None], new, D)  # a zero sample cannot be an atom; keep the old one
        m.dictionary.copy_(unit_rows(new))
    return history
