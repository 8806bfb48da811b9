"""Predictive sparse decomposition: sparse coding plus a fast encoder trained to predict the codes.

K. Kavukcuoglu, M. Ranzato and Y. LeCun, "Fast inference in sparse coding algorithms with
applications to object recognition", arXiv:1010.3467 (2008). With the 0.5 convention of
:mod:`aekit.families.sparse_coding` (dictionary D (K, n_features), atoms as rows), training solves::

    min_{D, W_e, z_n}  (1/N) sum_n  0.5 ||x_n - z_n D||^2 + alpha ||z_n||_1 + 0.5 beta ||z_n - F(x_n)||^2

with ||D_k|| = 1 and the fast encoder F(x) = g * tanh(x W_e^T + b) (the paper's choice: a learned
per-unit gain g, since codes are signed) or F(x) = shrink_theta(x W_e^T + b) (soft shrinkage with
learned per-unit thresholds theta, which gives exact zeros like the codes it predicts; it starts at one
ISTA step from zero, W_e = D / L, theta = alpha / L, as LISTA does). Per batch:

1. the codes z are inferred exactly, without gradient, on the whole energy: it is a lasso problem
   whose quadratic part has Hessian D D^T + beta I and linear part x D^T + beta F(x), solved by the
   feature-sign search of :func:`aekit.core.lasso.lasso_core` (the prediction term keeps that
   Hessian positive definite on every support);
2. one Adam step on D (through the reconstruction term) and on W_e, b, g or theta (through the
   prediction term);
3. the atoms are renormalized to unit norm.

At inference ``transform`` returns F(x), one matrix product instead of an optimization; a model
fitted with ``transform_algorithm="optimize"`` returns the exact sparse codes of the learned dictionary
instead (argmin_h 0.5 ||x - h D||^2 + alpha ||h||_1, by feature-sign search), and
:meth:`PredictiveSparseDecomposition.sparse_codes` returns them from any fitted model.
:meth:`PredictiveSparseDecomposition.code_gap` measures how far F(x) is from those codes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.devices import resolve_device
from aekit.core.lasso import Alpha, MaxIter, Tol, init_dictionary, lasso_core, lipschitz, unit_rows
from aekit.core.losses import l1_penalty, squared_error
from aekit.core.outputs import AEOutput, LossOutput
from aekit.core.params import Explain, Interval
from aekit.data.preprocessing import Scaling
from aekit.engine.training import TrainConfig
from aekit.model.base import BaseAutoencoder, declare_params
from aekit.model.registry import register


class PSDModule(nn.Module):
    """Dictionary D (K, n_features), fast encoder F and the exact inference of the PSD energy.

    Shapes: x (B, *sample_shape), codes (B, K). ``forward`` returns the inferred codes as ``z``, the
    reconstruction ``z D`` as ``x_hat`` and the prediction F(x) as ``extras["prediction"]``.
    """

    def __init__(
        self,
        sample_shape: tuple[int, ...],
        n_components: int,
        alpha: float,
        beta: float,
        activation: str,
        transform_algorithm: str,
        max_iter: int,
        tol: float,
    ) -> None:
        super().__init__()
        d = int(np.prod(sample_shape))
        self.sample_shape = sample_shape
        self.alpha, self.beta, self.max_iter, self.tol = float(alpha), float(beta), int(max_iter), float(tol)
        self.activation, self.transform_algorithm = activation, transform_algorithm
        self.dictionary = nn.Parameter(unit_rows(torch.randn(n_components, d)))
        self.encoder = nn.Linear(d, n_components)
        if activation == "tanh":
            self.scale = nn.Parameter(torch.ones(n_components))  # the paper's diagonal gain G
        else:
            self.scale = nn.Parameter(torch.zeros(n_components))  # shrinkage thresholds, used as |theta|

    def predict(self, x: Tensor) -> Tensor:
        """The fast encoder F(x), (B, K); differentiable in W_e, b and the gain or thresholds."""
        u = self.encoder(x.reshape(x.shape[0], -1))
        if self.activation == "tanh":
            return self.scale * torch.tanh(u)
        return torch.sign(u) * torch.relu(u.abs() - self.scale.abs())

    @torch.no_grad()
    def infer(self, x: Tensor, prediction: Tensor | None, beta: float) -> Tensor:
        """argmin_z 0.5 ||x - z D||^2 + alpha ||z||_1 + 0.5 beta ||z - prediction||^2, exactly.

        The search starts from zero, not from the prediction: early in training F(x) is far from
        sparse, and starting from a dense point costs more than the whole search.
        """
        D = self.dictionary.detach()
        X = x.reshape(x.shape[0], -1).to(D.dtype)  # (B, n_features)
        p = prediction.detach() if prediction is not None and beta else None
        return lasso_core(X, D, self.alpha, self.max_iter, self.tol, beta=beta, prior=p)

    def optimal_codes(self, x: Tensor) -> Tensor:
        """Exact sparse codes of the learned dictionary (no prediction term), (B, K)."""
        return self.infer(x, None, 0.0)

    def encode(self, x: Tensor) -> Tensor:
        if self.transform_algorithm == "optimize":
            return self.optimal_codes(x)
        return self.predict(x)

    def decode(self, h: Tensor) -> Tensor:
        return (h @ self.dictionary).reshape(h.shape[0], *self.sample_shape)

    def forward(self, x: Tensor) -> AEOutput:
        p = self.predict(x)
        z = self.infer(x, p, self.beta)
        return AEOutput(z=z, x_hat=self.decode(z), extras={"prediction": p})

    def loss(self, x: Tensor, out: AEOutput) -> LossOutput:
        rec = 0.5 * squared_error(out.x_hat, x).mean()
        l1 = self.alpha * l1_penalty(out.z).mean()
        pred = 0.5 * self.beta * squared_error(out.extras["prediction"], out.z).mean()
        return LossOutput(rec + l1 + pred, {"reconstruction": rec, "l1": l1, "prediction": pred})

    def after_step(self) -> None:
        """Atoms back to unit norm, so the L1 term cannot be cheated by growing D and shrinking z."""
        self.dictionary.copy_(unit_rows(self.dictionary))


#: The weight of the prediction term 0.5 beta ||z - F(x)||^2; above 0, or the codes would not depend on F.
Beta = Annotated[
    float,
    Interval(0, closed="neither"),
    Explain(
        "the weight of the prediction term",
        "use beta=1.0 as in the paper, or larger to pull the codes harder toward the fast encoder's prediction",
    ),
]


@dataclass
class PSDConfig:
    """Hyperparameters of predictive sparse decomposition."""

    latent_dim: Annotated[int, Interval(1)] = 128  # K, the number of atoms: 2x overcomplete for digits
    alpha: Alpha = 1.0  # The L1 weight, scikit-learn's default for sparse coding; scale it with the data's norm
    beta: Beta = 1.0  # The weight of the prediction term, 1 as in the paper
    encoder_activation: Literal["tanh", "shrink"] = "tanh"  # The paper's tanh with a learned gain; "shrink" gives exact zeros
    transform_algorithm: Literal["encoder", "optimize"] = "encoder"  # The fast encoder F(x), the point of PSD; "optimize" gives exact sparse codes
    transform_max_iter: MaxIter = 1000  # At most this many feature-sign steps (training inference and "optimize"); a few dozen are needed
    tol: Tol = 1e-4  # The tolerance of the FISTA fallback for samples meeting nearly dependent atoms (codes stay exact)
    scaling: Scaling = "none"  # The data as given; centre them (e.g. patch means removed) for natural images


@register(
    "psd",
    "predictive sparse decomposition: sparse coding with a fast encoder sigma(W_e x) trained to predict the codes",
    capabilities=("gradient", "images"),
)
@declare_params(PSDConfig, TrainConfig)
class PredictiveSparseDecomposition(BaseAutoencoder):
    """Predictive sparse decomposition (scikit-learn style).

    Parameters
    ----------
    latent_dim, alpha, beta, encoder_activation, transform_algorithm, transform_max_iter, tol, scaling
        See :class:`PSDConfig`.
    max_epochs, batch_size, learning_rate, ..., device, random_state, verbose
        See :class:`aekit.engine.training.TrainConfig`.

    Attributes
    ----------
    components_ : ndarray, (latent_dim, n_features)
        The dictionary, unit-norm atoms as rows.
    history_ : list of dict
        Per epoch: ``loss`` and its terms ``reconstruction``, ``l1``, ``prediction``.

    Notes
    -----
    Inference uses the settings of the fit (``transform_algorithm``, ``transform_max_iter``, ``tol``,
    ``alpha``), in memory and after ``aekit.load`` alike; ``set_params`` after fit changes the next fit
    only. To get the exact sparse codes of a fitted model without refitting, call :meth:`sparse_codes`.

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X.reshape(-1, 64)
    >>> psd = aekit.PredictiveSparseDecomposition(latent_dim=32, alpha=0.5, max_epochs=5).fit(X)
    >>> psd.transform(X).shape, psd.code_gap(X)["relative_distance"] < 1.0
    ((1437, 32), True)
    """

    #: A tiny, fast configuration for the shared test suite.
    _test_params: ClassVar[dict[str, Any]] = {"latent_dim": 16, "alpha": 0.5, "max_epochs": 2, "batch_size": 32, "verbose": 0}
    #: The shrinkage encoder starts from the dictionary (LISTA) instead of at random: another training path.
    _test_variants: ClassVar[Sequence[Mapping[str, Any]]] = ({"encoder_activation": "shrink"},)

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        r = self.resolved_
        return PSDModule(
            sample_shape, int(r.latent_dim), float(r.alpha), float(r.beta), str(r.encoder_activation),
            str(r.transform_algorithm), int(r.transform_max_iter), float(r.tol),
        )

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        m: PSDModule = self.module_.to(resolve_device(self.resolved_.device))
        X2 = torch.from_numpy(np.ascontiguousarray(Xs.reshape(Xs.shape[0], -1))).to(m.dictionary.device)
        with torch.no_grad():
            D = init_dictionary(X2, int(self.resolved_.latent_dim), torch.Generator().manual_seed(seed))
            m.dictionary.copy_(D)
            if m.activation == "shrink":
                # Start the shrinkage encoder at one ISTA step from zero, shrink(x D^T / L, alpha / L)
                # (the LISTA initialization of Gregor and LeCun, 2010), rather than at random.
                L = lipschitz(D @ D.t())
                m.encoder.weight.copy_(D / L)
                m.encoder.bias.zero_()
                m.scale.fill_(m.alpha / L)
        return super()._fit_module(Xs, y, seed, **fit_kw)

    def sparse_codes(self, X: Any) -> np.ndarray:
        """Exact sparse codes of ``X`` on the learned dictionary, whatever ``transform_algorithm`` the fit used.

        ``argmin_h 0.5 ||x - h D||^2 + alpha ||h||_1`` per sample, by feature-sign search, with the
        ``alpha``, ``transform_max_iter`` and ``tol`` of the fit: what ``transform`` returns for a model
        fitted with ``transform_algorithm="optimize"``, without refitting.

        Parameters
        ----------
        X : array-like, (n_samples, n_features) or (n_samples, *sample_shape)

        Returns
        -------
        ndarray, (n_samples, latent_dim), float32
        """
        Xs = self._prepare(X)  # checks the model is fitted
        return self._batched(self.module_.optimal_codes, Xs)

    def code_gap(self, X: Any) -> dict[str, float]:
        """How close the fast codes F(x) are to the exact sparse codes of the learned dictionary.

        Parameters
        ----------
        X : array-like, (n_samples, n_features) or (n_samples, *sample_shape)

        Returns
        -------
        dict with
            ``relative_distance``: ||F(X) - H*||_F / ||H*||_F over all samples (0 when exact);
            ``objective_ratio``: mean objective 0.5 ||x - h D||^2 + alpha ||h||_1 at F(X) divided by
            that at H* (1 when exact, above 1 otherwise);
            ``objective_fast``, ``objective_optimal``: the two mean objectives (in the scaled data);
            ``support_precision``: of the entries where F(X) is nonzero, the fraction where H* is
            nonzero with the same sign; ``support_recall``: of the nonzero entries of H*, the fraction
            F(X) gets nonzero with the same sign (the tanh encoder has no exact zeros: precision is
            then the density of H*). Where a denominator is 0 (every exact code is zero, or a zero objective),
            a ratio is ``inf`` (0 when the numerator is 0 too) and a support fraction ``nan``.
        """
        Xs = self._prepare(X)
        m: PSDModule = self.module_
        dev = self.device_
        sq_diff = sq_opt = obj_fast = obj_opt = 0.0
        n_fast = n_opt = n_both = 0
        D = m.dictionary.detach()
        with torch.no_grad():
            for i in range(0, Xs.shape[0], 2048):
                x = torch.from_numpy(Xs[i : i + 2048]).to(dev)
                xf = x.reshape(x.shape[0], -1)
                fast = m.predict(x)
                opt = m.optimal_codes(x)
                n_fast += int((fast != 0).sum())
                n_opt += int((opt != 0).sum())
                n_both += int(((fast * opt) > 0).sum())
                sq_diff += float((fast - opt).pow(2).sum())
                sq_opt += float(opt.pow(2).sum())
                obj_fast += float((0.5 * squared_error(fast @ D, xf) + m.alpha * l1_penalty(fast)).sum())
                obj_opt += float((0.5 * squared_error(opt @ D, xf) + m.alpha * l1_penalty(opt)).sum())
        n = Xs.shape[0]

        def ratio(a: float, b: float) -> float:
            """a / b, with 0 / 0 = 0 (both exact) and a / 0 = inf (the exact value is 0, the other is not)."""
            return a / b if b > 0 else (0.0 if a == 0 else math.inf)

        return {
            "relative_distance": ratio(math.sqrt(sq_diff), math.sqrt(sq_opt)),
            "objective_ratio": ratio(obj_fast, obj_opt) if obj_opt > 0 or obj_fast > 0 else 1.0,
            "objective_fast": obj_fast / n,
            "objective_optimal": obj_opt / n,
            "support_precision": n_both / n_fast if n_fast else math.nan,  # no nonzero fast code: undefined
            "support_recall": n_both / n_opt if n_opt else math.nan,  # H* all zero: nothing to recall
        }

    @property
    def components_(self) -> np.ndarray:
        self._check_fitted()
        return self.module_.dictionary.detach().cpu().numpy()
