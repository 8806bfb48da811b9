"""Sparse coding: a linear decoder and an optimization-based encoder, the dictionary learned from data.

B. A. Olshausen and D. J. Field, "Emergence of simple-cell receptive field properties by learning a
sparse code for natural images", Nature 381 (1996). The encoder solves, for each sample x (a row),
the lasso::

    h*(x) = argmin_h  0.5 * ||x - h D||_2^2 + alpha * ||h||_1,      D: (K, n_features), atoms = rows

by FISTA (A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding algorithm for linear
inverse problems", SIAM J. Imaging Sciences 2 (2009)) or ISTA, and the dictionary solves::

    min_{D, ||D_k|| = 1}  (1/N) sum_n  0.5 * ||x_n - h*(x_n) D||^2 + alpha * ||h*(x_n)||_1

The 0.5 and the row convention are scikit-learn's (``sklearn.decomposition.sparse_encode`` with
``algorithm="lasso_cd"`` minimizes the same objective for the same ``alpha``), so objectives can be
compared number for number. Two ways to learn D: ``"minibatch"`` (codes of each batch by FISTA, then
one Adam step on D, then the atoms renormalized: the training loop) and ``"alternating"`` (full batch:
codes of all data, then the least-squares update D = argmin_D ||X - H D||^2 under ||D_k|| <= 1, as in
the "method of optimal directions" of K. Engan et al., ICASSP 1999, solved exactly atom by atom as in
Mairal et al., JMLR 2010, then renormalization; every round lowers the objective).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from aekit.estimator import BaseAutoencoder, declare_params
from aekit.losses import l1_penalty, squared_error
from aekit.outputs import AEOutput, LossOutput
from aekit.preprocessing import SCALINGS
from aekit.registry import register
from aekit.training import TrainConfig, resolve_device

ALGORITHMS = ("fista", "ista")
FIT_ALGORITHMS = ("minibatch", "alternating")
# How often the stopping rule is checked: each check moves a few numbers to the host (a GPU sync).
_CHECK_EVERY = 10
# Supports larger than this are not polished (the batched solve would need (rows, m, m) memory).
_POLISH_MAX_SUPPORT = 64
_POLISH_CHUNK = 512


# ---------------------------------------------------------------------------------- the solvers


def _lipschitz(gram: Tensor) -> float:
    """Largest eigenvalue of the symmetric PSD ``gram`` (K, K): the Lipschitz constant of the gradient."""
    return max(float(torch.linalg.eigvalsh(gram)[-1]), torch.finfo(gram.dtype).tiny)


def _polish(A: Tensor, B: Tensor, alpha: float, z: Tensor) -> tuple[Tensor, Tensor]:
    """Exact minimizers on the supports and signs of ``z``, and which rows they provably solve.

    On the support S with signs s of the solution, the problem is a linear system,
    ``A_SS h_S = b_S - alpha s_S``; its solution is the exact optimum when its signs are s and the
    optimality condition ``|b_j - (h A)_j| <= alpha`` holds off S. Both are checked here, so a row
    marked ok is the lasso solution to rounding error, not an approximation. Rows are sorted by
    support size and each chunk's systems, padded to its largest support (identity on the padding),
    are solved as one batch.

    Returns ``h`` (N, K) and ``ok`` (N,) bool.
    """
    n, K = z.shape
    h = torch.zeros_like(z)
    ok = torch.zeros(n, dtype=torch.bool, device=z.device)
    support = z != 0
    sizes = support.sum(dim=1)
    order = torch.argsort(sizes)
    n_small = int((sizes <= _POLISH_MAX_SUPPORT).sum())  # the rest wait for FISTA to thin their support
    A_flat = A.reshape(-1)
    slack = 1e3 * torch.finfo(z.dtype).eps
    for s in range(0, n_small, _POLISH_CHUNK):
        r = order[s : min(s + _POLISH_CHUNK, n_small)]  # (c,) rows of this chunk
        size = sizes[r]
        m = int(size.max())
        hc = torch.zeros(r.numel(), K, dtype=z.dtype, device=z.device)
        good = torch.ones(r.numel(), dtype=torch.bool, device=z.device)
        if m > 0:
            # Each row's support (ones of the mask) first, padded with off-support indices.
            idx = torch.topk(support[r].to(torch.int8), m, dim=1, sorted=False).indices  # (c, m)
            zr = z[r].gather(1, idx)
            mask = zr != 0  # (c, m)
            G = torch.take(A_flat, idx[:, :, None] * K + idx[:, None, :])  # (c, m, m) = A[S, S] per row
            G = torch.where(mask[:, :, None] & mask[:, None, :], G, torch.eye(m, dtype=G.dtype, device=G.device))
            sign = torch.sign(zr)
            rhs = torch.where(mask, B[r].gather(1, idx) - alpha * sign, 0.0)
            hs, info = torch.linalg.solve_ex(G, rhs)  # (c, m)
            hs = torch.where(mask, hs, 0.0)
            good &= (info == 0) & ((hs * sign > 0) | ~mask).all(dim=1)
            hc.scatter_(1, idx, hs)
        grad = B[r] - hc @ A  # (c, K)
        off = torch.where(support[r], 0.0, grad.abs()).amax(dim=1)
        good &= off <= alpha + slack * B[r].abs().amax(dim=1).clamp_min(alpha)
        h[r] = hc
        ok[r] = good
    return h, ok


def _prox_grad(
    A: Tensor,
    B: Tensor,
    L: float,
    alpha: float,
    max_iter: int,
    tol: float,
    init: Tensor | None,
    momentum: bool = True,
    polish: bool = False,
    factors: tuple[Tensor, Tensor, float] | None = None,
) -> tuple[Tensor, int]:
    """Minimize ``0.5 h A h^T - h . b + alpha ||h||_1`` for every row b of ``B``; return codes and iterations.

    The private core of ISTA/FISTA, used without checks. ``A`` (K, K) symmetric PSD with largest
    eigenvalue at most ``L``; ``B`` (N, K). For sparse coding A = D D^T and B = X D^T, so an iteration
    is one (N, K) x (K, K) matmul however many features the data have: the gradient step
    ``y - (y A - B) / L`` is folded into ``y M + B / L`` with ``M = I - A / L`` (one ``addmm``). When
    ``factors = (D, X, beta)`` says that A = D D^T + beta I and B = X D^T + beta p with D (K, F), the
    step is taken as ``y (1 - beta/L) + beta p / L + (X - y D) D^T / L`` instead: two matmuls of cost
    N K F each, cheaper than N K^2 for an overcomplete dictionary (K > 2F). Every other operation
    writes into preallocated buffers: on a CPU, allocating and touching fresh (N, K) tensors costs as
    much as the arithmetic.

    FISTA's momentum is restarted per sample whenever it points uphill (the gradient restart test of
    O'Donoghue and Candes, "Adaptive restart for accelerated gradient schemes", 2015): lasso problems
    are strongly convex on the support, where restarting turns FISTA's O(1/k^2) into a linear rate.

    Each sample stops when ``max_j |h_t - h_{t-1}|_j <= tol * max_j |h_t|_j`` (checked every few
    iterations, so a GPU synchronizes rarely); finished rows leave the batch, so the slow few do not
    make every row pay. With ``polish``, at each check the exact solution on the current support of
    each row whose signs held since the last check is computed and kept where it provably solves the
    problem (:func:`_polish`): once FISTA has found the support, the answer is exact instead of
    approached at a linear rate.
    """
    N, K = B.shape
    step, thr = 1.0 / L, alpha / L
    Bs = B * step  # (n, K): the rows still iterating
    if factors is None:
        M = torch.eye(K, dtype=A.dtype, device=A.device) - A * step  # (K, K)
    else:
        D, Xr, beta = factors  # D (K, F), Xr (n, F)
        Dt = D.t().contiguous()  # (F, K)
        # beta p / L, the prior's constant pull (only with a prediction term, as in PSD)
        C0 = Bs - step * (Xr @ Dt) if beta else None
        r = torch.empty(N, D.shape[1], dtype=B.dtype, device=B.device)
    z = init.clone() if init is not None else torch.zeros_like(B)
    y = z.clone()
    t = torch.ones(N, 1, dtype=B.dtype, device=B.device)  # per-sample momentum counters
    rows = torch.arange(N, device=B.device)  # original index of each row still iterating
    out = torch.empty_like(B)
    u, diff, buf, dot = torch.empty_like(z), torch.empty_like(z), torch.empty_like(z), torch.empty_like(t)
    signs = torch.sign(z).to(torch.int8) if polish else None  # at the previous check
    n_iter = 0
    for k in range(max_iter):
        n_iter = k + 1
        if factors is None:
            torch.addmm(Bs, y, M, out=u)
        else:
            torch.addmm(Xr, y, D, alpha=-1.0, out=r)  # (n, F): x - y D
            if C0 is not None:
                torch.add(C0, y, alpha=1.0 - step * beta, out=u)
                u.addmm_(r, Dt, alpha=step)
            else:
                torch.addmm(y, r, Dt, alpha=step, out=u)
        torch.ops.aten.softshrink.out(u, thr, out=u)  # u = prox step from y: the new iterate
        torch.sub(u, z, out=diff)  # h_t - h_{t-1}
        if momentum:
            torch.sub(y, u, out=buf)
            torch.sum(buf.mul_(diff), dim=1, keepdim=True, out=dot)
            t.masked_fill_(dot > 0, 1.0)  # restart: momentum pointed uphill for this sample
            t_next = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
            torch.addcmul(u, diff, (t - 1.0) / t_next, out=y)
            t = t_next
        else:
            y = u
        z, u = u, z
        last = n_iter == max_iter
        if n_iter % _CHECK_EVERY and not last:
            continue
        done = torch.linalg.vector_norm(diff, ord=math.inf, dim=1) <= tol * torch.linalg.vector_norm(z, ord=math.inf, dim=1)
        if signs is not None:
            # Polish only rows whose signs held since the last check: a support still in flux would fail.
            new_signs = torch.sign(z).to(torch.int8)
            sel = torch.nonzero((new_signs == signs).all(dim=1) & ~done).flatten()
            signs = new_signs
            if sel.numel():
                exact, ok = _polish(A, Bs[sel] * L, alpha, z[sel])
                z[sel[ok]] = exact[ok]
                done[sel[ok]] = True
        if last:
            done.fill_(True)
        n_done = int(done.sum())
        if n_done == 0:
            continue
        out[rows[done]] = z[done]
        if n_done == rows.numel():
            break
        keep = ~done
        rows, z, y, t, Bs = rows[keep], z[keep], y[keep], t[keep], Bs[keep]
        signs = signs[keep] if signs is not None else None
        if factors is not None:
            Xr, C0 = Xr[keep], (C0[keep] if C0 is not None else None)
            r = torch.empty(Xr.shape, dtype=B.dtype, device=B.device)
        u, diff, buf, dot = torch.empty_like(z), torch.empty_like(z), torch.empty_like(z), torch.empty_like(t)
    return out, n_iter


def _lasso(
    X: Tensor,
    D: Tensor,
    alpha: float,
    max_iter: int,
    tol: float,
    init: Tensor | None,
    *,
    momentum: bool = True,
    polish: bool = True,
    beta: float = 0.0,
    prior: Tensor | None = None,
) -> tuple[Tensor, int]:
    """Codes (N, K) minimizing ``0.5 ||x - h D||^2 + alpha ||h||_1 + 0.5 beta ||h - prior||^2`` per row; no checks.

    Builds the quadratic (Gram matrix, Lipschitz constant) once and picks the cheaper iteration
    (Gram form for K <= 2F, factored form otherwise; see :func:`_prox_grad`).
    """
    gram = D @ D.t()  # (K, K)
    L = _lipschitz(gram) + beta
    B = X @ D.t()  # (N, K)
    if beta:
        gram = gram + beta * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        B = B + beta * prior if prior is not None else B
    factors = (D, X, float(beta)) if 2 * D.shape[1] < D.shape[0] else None
    return _prox_grad(gram, B, L, alpha, max_iter, tol, init, momentum, polish, factors)


def _fista(X: Tensor, D: Tensor, alpha: float, max_iter: int, tol: float, init: Tensor | None) -> Tensor:
    """Sparse codes (N, K) of ``X`` (N, n_features) on dictionary ``D`` (K, n_features) by FISTA; no checks."""
    return _lasso(X, D, alpha, max_iter, tol, init, momentum=True, polish=True)[0]


def _ista(X: Tensor, D: Tensor, alpha: float, max_iter: int, tol: float, init: Tensor | None) -> Tensor:
    """Sparse codes (N, K) by ISTA (proximal gradient without momentum, nor polishing); no checks."""
    return _lasso(X, D, alpha, max_iter, tol, init, momentum=False, polish=False)[0]


_SOLVERS = {"fista": _fista, "ista": _ista}


# --------------------------------------------------------------------------------- validation


def _as_matrix(A: Any, name: str, shape_hint: str) -> np.ndarray:
    if isinstance(A, Tensor):
        A = A.detach().cpu().numpy()
    arr = np.asarray(A)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape {shape_hint}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); it needs shape {shape_hint} with no zero dimension")
    if arr.dtype != np.float64:
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains NaN or infinity ({bad} values); drop or impute those values first")
    return arr


def _check_alpha(alpha: Any) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}") from None
    if isinstance(alpha, bool) or not (a >= 0 and math.isfinite(a)):
        raise ValueError(
            f"alpha must be a finite number >= 0, got {alpha!r}; use alpha=0 for least-squares codes or a "
            "positive value for sparse codes"
        )
    return a


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_tol(tol: Any) -> float:
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.floating | np.integer) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}; e.g. 1e-4, or 0 to iterate until codes stop changing")
    return float(tol)


# --------------------------------------------------------------------------------- public API


def sparse_encode(
    X: Any,
    dictionary: Any,
    alpha: float,
    *,
    algorithm: str = "fista",
    max_iter: int = 1000,
    tol: float = 1e-6,
    init: Any = None,
    device: str = "cpu",
) -> np.ndarray:
    """Sparse codes of ``X`` on a fixed dictionary, by FISTA or ISTA, all samples at once.

    Solves, independently for each sample x (row of ``X``)::

        min_h  0.5 * ||x - h D||_2^2 + alpha * ||h||_1

    the objective of ``sklearn.decomposition.sparse_encode(X, D, algorithm="lasso_cd", alpha=alpha)``.
    Each iteration is a proximal gradient step of size 1/L, L the largest eigenvalue of D D^T, taken
    for all samples at once as one or two matrix products (the Gram matrix D D^T and X D^T are
    computed once). FISTA adds Nesterov momentum, which brings the objective within O(1/k^2) of the
    optimum after k iterations instead of ISTA's O(1/k); here its momentum is restarted per sample
    when it points uphill, and each sample whose signs are stable gets the exact solution on its
    support, kept only where the optimality conditions confirm it (so most codes come back exact to
    rounding). ``"ista"`` is the plain method, for teaching and comparison.

    Parameters
    ----------
    X : array-like, (n_samples, n_features)
    dictionary : array-like, (n_components, n_features)
        The atoms as rows (scikit-learn's convention). They need not have unit norm.
    alpha : float >= 0
        Weight of the L1 penalty; 0 gives least-squares codes.
    algorithm : {"fista", "ista"}
    max_iter : int
        Most iterations.
    tol : float >= 0
        A sample stops when the largest change of its code entries in one iteration is at most ``tol``
        times its largest code entry (checked every 10 iterations), or when its code is proven exact;
        0 stops a sample only when its code no longer changes or is proven exact.
    init : array-like, (n_samples, n_components), optional
        Starting codes (warm start); zeros by default.
    device : str
        Where to compute ("cpu", "cuda", "auto").

    Returns
    -------
    codes : ndarray, (n_samples, n_components)
        float64 when ``X`` or ``dictionary`` is float64, else float32.

    Examples
    --------
    >>> import numpy as np
    >>> D = np.eye(3)
    >>> sparse_encode(np.array([[2.0, 0.5, -3.0]]), D, alpha=1.0)
    array([[ 1.,  0., -2.]])
    """
    Xa = _as_matrix(X, "X", "(n_samples, n_features)")
    Da = _as_matrix(dictionary, "dictionary", "(n_components, n_features)")
    if Da.shape[1] != Xa.shape[1]:
        raise ValueError(
            f"dictionary has {Da.shape[1]} features (shape {Da.shape}), but X has {Xa.shape[1]}; the dictionary "
            f"must have shape (n_components, {Xa.shape[1]}) with one atom per row (transpose it if atoms are columns)"
        )
    a = _check_alpha(alpha)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; valid: {', '.join(ALGORITHMS)}")
    n_iter = _check_positive_int("max_iter", max_iter)
    t = _check_tol(tol)
    dtype = torch.float64 if np.float64 in (Xa.dtype, Da.dtype) else torch.float32
    dev = resolve_device(device)
    init_t = None
    if init is not None:
        ia = _as_matrix(init, "init", "(n_samples, n_components)")
        if ia.shape != (Xa.shape[0], Da.shape[0]):
            raise ValueError(f"init has shape {ia.shape}, expected (n_samples, n_components) = {(Xa.shape[0], Da.shape[0])}")
        init_t = torch.as_tensor(ia, dtype=dtype, device=dev)
    Xt = torch.as_tensor(Xa, dtype=dtype, device=dev)
    Dt = torch.as_tensor(Da, dtype=dtype, device=dev)
    with torch.no_grad():
        codes = _SOLVERS[algorithm](Xt, Dt, a, n_iter, t, init_t)
    return codes.cpu().numpy()


def sparse_coding_objective(X: Any, dictionary: Any, codes: Any, alpha: float) -> np.ndarray:
    """Per-sample objective ``0.5 ||x - h D||^2 + alpha ||h||_1`` in float64, shape (n_samples,).

    The function :func:`sparse_encode` minimizes; use it to compare codes from any solver.
    """
    Xa = np.asarray(X, dtype=np.float64)
    Da = np.asarray(dictionary, dtype=np.float64)
    Ha = np.asarray(codes, dtype=np.float64)
    a = _check_alpha(alpha)
    return 0.5 * ((Xa - Ha @ Da) ** 2).sum(axis=1) + a * np.abs(Ha).sum(axis=1)


# ---------------------------------------------------------------------------------- the module


def _unit_rows(D: Tensor) -> Tensor:
    """Rows of ``D`` scaled to unit L2 norm (a zero row stays zero)."""
    return D / D.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _init_dictionary(X: Tensor, n_components: int, generator: torch.Generator) -> Tensor:
    """Atoms from randomly drawn samples plus a little noise, unit norm, (K, n_features).

    Data samples start the atoms where the data are, so no atom starts unused; the noise breaks ties
    when samples repeat (K > N).
    """
    n, d = X.shape
    if n_components <= n:  # distinct samples: duplicated atoms would make the codes non-unique
        idx = torch.randperm(n, generator=generator)[:n_components]
    else:
        idx = torch.randint(0, n, (n_components,), generator=generator)
    noise = torch.randn(n_components, d, generator=generator).to(X)
    atoms = X[idx.to(X.device)]
    scale = atoms.norm(dim=1, keepdim=True).clamp_min(1e-3) / math.sqrt(d)
    return _unit_rows(atoms + 0.01 * scale * noise)


class SparseCodingModule(nn.Module):
    """Linear decoder h D and the FISTA encoder. Shapes: x (B, *sample_shape), h (B, K), D (K, n_features).

    ``loss`` is the sparse-coding objective with named terms ``reconstruction`` (0.5 ||x - h D||^2)
    and ``l1`` (alpha ||h||_1, constant for D since codes are computed without gradient).
    """

    def __init__(self, sample_shape: tuple[int, ...], n_components: int, alpha: float, max_iter: int, tol: float) -> None:
        super().__init__()
        d = int(np.prod(sample_shape))
        self.sample_shape = sample_shape
        self.alpha, self.max_iter, self.tol = float(alpha), int(max_iter), float(tol)
        self.dictionary = nn.Parameter(_unit_rows(torch.randn(n_components, d)))

    def encode(self, x: Tensor, init: Tensor | None = None) -> Tensor:
        """FISTA codes, (B, K); no gradient flows through the optimization."""
        with torch.no_grad():
            D = self.dictionary.detach()
            return _fista(x.reshape(x.shape[0], -1).to(D.dtype), D, self.alpha, self.max_iter, self.tol, init)

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
        self.dictionary.copy_(_unit_rows(self.dictionary))


# -------------------------------------------------------------------------------- the estimator


@dataclass
class SparseCodingConfig:
    """Hyperparameters of sparse coding."""

    latent_dim: int = 128  # K, the number of atoms; 2x overcomplete for digits, the classic sparse-coding regime
    alpha: float = 1.0  # L1 weight, scikit-learn's default; scale it with the norm of the data
    fit_algorithm: str = "minibatch"  # "minibatch": Adam steps on D per batch; "alternating": full-batch MOD
    transform_max_iter: int = 1000  # FISTA iterations at most per encoding (scikit-learn's default)
    tol: float = 1e-4  # FISTA stops when codes change by at most tol relative; 1e-4 is well below data noise
    scaling: str = "none"  # sparse coding works on the data as given; "standard" centres and scales features


@register(
    "sparse-coding",
    "linear decoder h D, encoder argmin_h 0.5||x - h D||^2 + alpha||h||_1 by FISTA; dictionary learned by "
    "minibatch Adam steps or alternating least squares",
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
        See :class:`aekit.training.TrainConfig`. With ``fit_algorithm="alternating"`` each epoch is one
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
    ``transform`` returns the FISTA codes of :func:`sparse_encode` with this estimator's ``alpha``,
    ``transform_max_iter`` and ``tol``; ``inverse_transform`` is ``h @ components_``. The data are used
    as given (``scaling="none"``): centre them first, e.g. remove each image patch's mean, as sparse
    coding of natural images does.

    Examples
    --------
    >>> import aekit
    >>> X = aekit.load_dataset("digits").X.reshape(-1, 64)
    >>> sc = aekit.SparseCoding(latent_dim=32, alpha=0.5, fit_algorithm="alternating", max_epochs=5).fit(X)
    >>> sc.transform(X).shape
    (1437, 32)
    """

    _test_params: ClassVar[dict[str, Any]] = {"latent_dim": 32, "alpha": 0.5, "max_epochs": 2, "batch_size": 32, "verbose": 0}

    def _validate_params(self) -> None:
        _check_positive_int("latent_dim", self.latent_dim)
        _check_alpha(self.alpha)
        _check_positive_int("transform_max_iter", self.transform_max_iter)
        _check_tol(self.tol)
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; valid: {', '.join(SCALINGS)}")
        if self.fit_algorithm not in FIT_ALGORITHMS:
            raise ValueError(f"unknown fit_algorithm {self.fit_algorithm!r}; valid: {', '.join(FIT_ALGORITHMS)}")
        self._train_config()

    def _build_module(self, sample_shape: tuple[int, ...]) -> nn.Module:
        return SparseCodingModule(
            sample_shape, int(self.latent_dim), float(self.alpha), int(self.transform_max_iter), float(self.tol)
        )

    def _fit_module(self, Xs: np.ndarray, y: Any, seed: int, **fit_kw: Any) -> list[dict[str, float]]:
        cfg = self._train_config()
        dev = resolve_device(cfg.device)
        m: SparseCodingModule = self.module_.to(dev)
        X2 = torch.from_numpy(np.ascontiguousarray(Xs.reshape(Xs.shape[0], -1))).to(dev)  # (N, n_features)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            m.dictionary.copy_(_init_dictionary(X2, int(self.latent_dim), gen))
        if self.fit_algorithm == "minibatch":
            return super()._fit_module(Xs, y, seed, **fit_kw)
        if fit_kw.get("resume"):
            raise ValueError("resume is only supported with fit_algorithm='minibatch'; refit from the start instead")
        return _fit_alternating(m, X2, cfg.max_epochs)

    def _prepare(self, X: Any) -> np.ndarray:
        # FISTA's budget may change after fit (set_params); alpha may not: the dictionary was learned for it.
        Xs = super()._prepare(X)
        m: SparseCodingModule = self.module_
        m.max_iter, m.tol = _check_positive_int("transform_max_iter", self.transform_max_iter), _check_tol(self.tol)
        return Xs

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
    """Per round: codes of all data by warm-started FISTA, then the constrained least-squares update of D.

    An atom that ends inside the unit ball is scaled up to unit norm with its codes scaled down, which
    leaves H D unchanged and lowers the L1 term; an atom no sample uses is restarted on the sample the
    current dictionary explains worst.
    """
    history: list[dict[str, float]] = []
    H: Tensor | None = None
    for r in range(n_rounds):
        D = m.dictionary.detach()
        H = _fista(X, D, m.alpha, m.max_iter, m.tol, H)  # (N, K)
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
        H = H * new.norm(dim=1).clamp_min(1e-12)  # the warm start for the renormalized atoms
        m.dictionary.copy_(_unit_rows(new))
    return history
