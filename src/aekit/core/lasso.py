"""The lasso solvers behind sparse coding and predictive sparse decomposition.

For each sample x (a row), with a dictionary D of shape (K, n_features) holding the atoms as rows::

    h*(x) = argmin_h  0.5 * ||x - h D||_2^2 + alpha * ||h||_1

solved exactly by feature-sign search (H. Lee, A. Battle, R. Raina and A. Y. Ng, "Efficient sparse
coding algorithms", NIPS 2007), run for all samples at once, or by FISTA (A. Beck and M. Teboulle,
SIAM J. Imaging Sciences 2, 2009) and ISTA. The 0.5 and the row convention are scikit-learn's, so
objectives compare number for number with ``sklearn.decomposition.sparse_encode``.

As in scikit-learn, a validated public function (:func:`sparse_encode`) sits over an unchecked core
(:func:`lasso_core`, as scikit-learn's ``_sparse_encode`` sits under its ``sparse_encode``) that internal
callers (the sparse-coding and predictive-sparse-decomposition families) use without re-checking, with the
pieces those families share: :func:`unit_rows`, :func:`init_dictionary` and :func:`lipschitz`. The
declarations :data:`Alpha`, :data:`Tol` and :data:`MaxIter` are those the families declare their
parameters with, so :func:`sparse_encode` and the estimators refuse a bad value in the same words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from aekit.core.devices import resolve_device
from aekit.core.params import Explain, Interval, check_value

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Alpha",
    "MaxIter",
    "Tol",
    "init_dictionary",
    "lasso_core",
    "lipschitz",
    "sparse_coding_objective",
    "sparse_encode",
    "unit_rows",
]

#: The solvers of :func:`sparse_encode`.
Algorithm = Literal["feature-sign", "fista", "ista"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)

#: The weight of the L1 penalty, as :func:`sparse_encode` and the sparse-coding families declare it.
Alpha = Annotated[
    float,
    Interval(0),
    Explain("the weight of the L1 penalty", "use alpha=0 for least-squares codes or a positive value for sparse codes"),
]
#: The stopping tolerance of FISTA and ISTA (and of the FISTA fallback of feature-sign search).
Tol = Annotated[float, Interval(0), Explain("", "e.g. 1e-4, or 0 to iterate until the codes stop changing")]
#: The most steps of feature-sign search, or iterations of FISTA and ISTA.
MaxIter = Annotated[int, Interval(1)]
# How often the stopping rule is checked: each check moves a few numbers to the host (a GPU sync).
_CHECK_EVERY = 10
# Supports larger than this are not polished (the batched solve would need (rows, m, m) memory).
_POLISH_MAX_SUPPORT = 64
_POLISH_CHUNK = 512


# ---------------------------------------------------------------------------------- the solvers


def lipschitz(gram: Tensor) -> float:
    """Largest eigenvalue of the symmetric PSD ``gram`` (K, K): the Lipschitz constant of the gradient.

    For ``gram = D D^T`` it bounds the step size of ISTA and FISTA on the lasso over ``D``. No checks.
    """
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
    L = lipschitz(gram) + beta
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


# ------------------------------------------------------------------------- feature-sign search

# Coordinates activated per step, the most violating first: four at a time needs about half the
# gradient passes of one at a time, and a wrong guess is dropped before it costs anything.
_FS_ADD = 4
# Candidates per step early in the search on large dictionaries (see _feature_sign).
_FS_ADD_EARLY = 8
_FS_MIN_SLOTS = 8
_FS_MERGE = 512  # sets of equal capacity smaller than this together are merged
_FS_TAIL = 256  # this few rows left go in one set
# The float32 search that guesses supports for the float64 refinement (see lasso_core) tolerates
# violations of the optimality conditions of 2 eps instead of 64 eps: a looser test stops it short of
# small coefficients near the threshold, and their rows fail the refinement's check.
_FS_GUESS_ROUNDING = 2.0
# Its steps: rounding can make it cycle on degenerate rows (supports at the dimension of the data),
# which the float64 search then finishes.
_FS_GUESS_MAX_STEPS = 64
_REFINE_STEPS = 3  # iterative refinement steps on the support (see _refine_on_support)
_REFINE_GATHER = 32  # see _refine_on_support
# The float32 search on incoherent dictionaries follows the regularization path (see _guess_codes):
# each row's penalty from this multiple of alpha, times _PATH_RATE per round, down to alpha.
_FS_GUESS_PATH = 8.0
_PATH_RATE = 0.85
_LS_SHORT = 2  # pieces of the line search per step for rows whose support is below half the rank
_LS_MAX = 3  # pieces of the line search per step and row (see _step)
_FS_FIELDS = (
    "rows", "idx", "val", "sgn", "G", "live", "grad", "refined", "exact", "settled", "cS", "cand", "cand_sgn", "cand_c"
)


@dataclass
class _ActiveSet:
    """Feature-sign state of rows that share one slot capacity M.

    Each row keeps its support in M slots: the atom (``K`` marks a free slot), the code and the sign
    pattern theta, and G, the inverse of A restricted to the support, embedded in (M, M) with zero rows
    and columns on free slots, so that adding or removing coordinates is a low-rank update of G (the
    bordering formulas) instead of a new factorization.
    """

    rows: Tensor  # (n,) row of the problem
    idx: Tensor  # (n, M) int64 atom per slot, K when free
    val: Tensor  # (n, M) float64 codes on the slots
    sgn: Tensor  # (n, M) float64 theta, 0 on free slots
    G: Tensor  # (n, M, M) float64 inverse of A[S, S]
    live: Tensor  # (n,) bool: still being solved (finished rows wait here for the next compaction)
    grad: Tensor  # (n,) bool: cS holds the gradient b - h A at the current codes
    refined: Tensor  # (n,) bool: the last step refined the codes with a gradient at full precision
    exact: Tensor  # (n,) bool: the next optimality check is to be made at full precision
    settled: Tensor  # (n,) bool: the last full-precision check found the codes optimal on their support
    cS: Tensor  # (n, M) float64 the gradient on the slots, when grad
    cand: Tensor  # (n, C) int64 coordinates to activate, the valid ones first, K for none
    cand_sgn: Tensor  # (n, C) float64 their signs
    cand_c: Tensor  # (n, C) float64 their gradients

    def take(self, sel: Tensor) -> _ActiveSet:
        if sel.dtype == torch.bool:
            sel = torch.nonzero(sel).flatten()  # once, not once per field
        return _ActiveSet(*(getattr(self, f).index_select(0, sel) for f in _FS_FIELDS))

    def grown(self, M: int, K: int) -> _ActiveSet:
        """The same rows with M slots (free slots appended)."""
        n, M0 = self.idx.shape
        if M == M0:
            return self

        def pad(x: Tensor, fill: float = 0.0) -> Tensor:
            out = x.new_full((n, M), fill)
            out[:, :M0] = x
            return out

        G = self.G.new_zeros(n, M, M)  # (torch.nn.functional.pad is several times slower here)
        G[:, :M0, :M0] = self.G
        return _ActiveSet(
            self.rows, pad(self.idx, K), pad(self.val), pad(self.sgn), G, self.live, self.grad, self.refined,
            self.exact, self.settled, pad(self.cS), self.cand, self.cand_sgn, self.cand_c,
        )


def _capacity(need: int, K: int) -> int:
    """Slots for a support of ``need`` coordinates: a multiple of 8 up to 64, of 16 up to 128, then of 32.

    Work on G grows as the square of the slots, so they follow the support closely; the coarser steps
    further up keep the number of distinct capacities (each a batch of its own) small.
    """
    unit = 8 if need <= 64 else 16 if need <= 128 else 32
    return min(K, max(_FS_MIN_SLOTS, -(-need // unit) * unit))


def _cat_sets(sets: list[_ActiveSet]) -> _ActiveSet:
    return _ActiveSet(*(torch.cat([getattr(s, f) for s in sets]) for f in _FS_FIELDS))


def _schur_inverse(S: Tensor, diag: Tensor, allow: Tensor, piv: float) -> tuple[Tensor, Tensor]:
    """Inverse of the symmetric (n, C, C) ``S`` on the allowed candidates whose pivots are large enough.

    Cholesky in candidate order: the squared diagonal of the factor holds the pivots, each the squared
    distance of a candidate's atom (in the metric of A) to the span of the support's and the earlier
    candidates' atoms. Below ``piv`` times the atom's own norm the atoms are nearly dependent: the
    first such candidate of a row is refused and the row factored again (rare). Returns (C^-1 on the
    accepted candidates, 0 elsewhere) and the accepted mask.
    """
    C = S.shape[1]
    eye = torch.eye(C, dtype=S.dtype, device=S.device)
    acc = allow.clone()
    while True:
        both = acc.unsqueeze(2) & acc.unsqueeze(1)
        L, info = torch.linalg.cholesky_ex(torch.where(both, S, eye))
        d = torch.diagonal(L, dim1=1, dim2=2).square()  # (n, C); beyond a failed pivot, garbage
        small = acc & ~(d > piv * diag)
        first = torch.where(small.any(1), small.to(torch.uint8).argmax(1), C)
        first = torch.where(info > 0, torch.minimum(first, info - 1), first)
        refuse = first < C
        if not bool(refuse.any()):
            return torch.where(both, torch.cholesky_inverse(L), 0.0), acc
        r = torch.nonzero(refuse).flatten()
        acc[r, first[r]] = False


def _free(st: _ActiveSet, r: Tensor, p: Tensor, K: int) -> None:
    """Empty slots ``p`` of rows ``r`` (G's row and column there are already 0 up to rounding)."""
    st.G[r, p, :] = 0.0
    st.G[r, :, p] = 0.0
    st.idx[r, p] = K
    st.val[r, p] = 0.0
    st.sgn[r, p] = 0.0


def _support_inverse(A: Tensor, idx: Tensor, dtype: torch.dtype, piv: float = 0.0) -> tuple[Tensor, Tensor]:
    """G = A[S, S]^-1 in ``dtype`` for the slots ``idx`` (n, M) of each row (Cholesky), and where it holds.

    ``A`` is padded with the free slots' atom, index K (a zero row and column): G is 0 on free slots. A row
    holds where A[S, S] is positive definite and, with ``piv`` > 0, every pivot of the factor is above ``piv``
    times its atom's squared norm (no nearly dependent atoms); elsewhere its G is meaningless.
    """
    K1 = A.shape[0]
    free = idx == K1 - 1
    Ass = A.take(idx.unsqueeze(2) * K1 + idx.unsqueeze(1)) + torch.diag_embed(free.to(A.dtype))  # 1 on free slots
    L, info = torch.linalg.cholesky_ex(Ass.to(dtype))
    ok = info == 0
    if piv:
        pivots = torch.diagonal(L, dim1=1, dim2=2).square()
        ok &= ~((pivots <= piv * torch.diagonal(Ass, dim1=1, dim2=2).to(dtype)) & ~free).any(1)
    # (a failed factor is replaced by I before inverting: its zero pivot would raise)
    G = torch.cholesky_inverse(torch.where(ok[:, None, None], L, torch.eye(L.shape[1], dtype=L.dtype, device=L.device)))
    return torch.where(free.unsqueeze(2) | free.unsqueeze(1), 0.0, G), ok


def _refresh(st: _ActiveSet, sel: Tensor, A: Tensor) -> Tensor:
    """Recompute G of rows ``sel`` from A (Cholesky); returns the rows where A[S, S] is not positive definite."""
    G, ok = _support_inverse(A, st.idx[sel], st.G.dtype)
    st.G[sel[ok]] = G[ok]
    return sel[~ok]


def _swap(
    st: _ActiveSet, sel: Tensor, j: Tensor, A: Tensor, Bflat: Tensor, alpha: float | Tensor, piv: float
) -> Tensor:
    """Let atom ``j`` of rows ``sel`` enter a support whose atoms span it; False where that fails.

    With S spanning d_j, A[S + j, S + j] is singular and has the null direction e (e_j = theta, the
    sign of c_j = b_j - (h A)_j, e_S = -theta G A[S, j]): along it the smooth part stays put and, at
    an optimum on S, the objective falls at the rate |c_j| - alpha. Walk along e until a coordinate of
    S reaches zero, then exchange it for j (a downdate and a bordering of G): the degenerate step of the
    simplex method, which feature-sign search needs when supports reach the dimension of the data
    (K > n_features and a small alpha).
    """
    K1 = A.shape[0]
    K = K1 - 1
    n = sel.numel()
    ar = torch.arange(n, device=sel.device)
    idx, val, G = st.idx[sel], st.val[sel], st.G[sel]
    used = idx < K
    a = A.take(j.unsqueeze(1) * K1 + idx)  # (n, M) A[j, S]
    c = Bflat[st.rows[sel] * K1 + j] - (a * val).sum(1)  # b_j - (h A)_j at the codes after this step
    u = torch.bmm(a.unsqueeze(1), G).squeeze(1)  # (n, M) G a (G symmetric; the faster batched product)
    ajj = A.take(j * (K1 + 1))
    # This step may have settled j or removed a coordinate of S (j's pivot is then no longer 0 and the
    # next step adds it as usual): only the rows still degenerate and violating swap.
    need = (c.abs() > alpha) & (ajj - (a * u).sum(1) <= piv * ajj)
    theta = torch.sign(c)
    e = -theta.unsqueeze(1) * u
    hit = used & (val * e < 0)
    t = torch.where(hit, -val / torch.where(hit, e, 1.0), torch.inf)
    t1, q = t.min(1)
    ok = torch.isfinite(t1) & need
    val = torch.where(ok.unsqueeze(1), val + torch.where(ok, t1, 0.0).unsqueeze(1) * e, val)
    val[ar, q] = torch.where(ok, 0.0, val[ar, q])
    # Remove q (downdate of G), then border with j in its slot.
    g = G[ar, q]
    coef = torch.where(ok, 1.0 / torch.where(ok, g[ar, q], 1.0), 0.0)
    G = G - coef[:, None, None] * g.unsqueeze(2) * g.unsqueeze(1)
    G[ar, q, :] = torch.where(ok.unsqueeze(1), 0.0, G[ar, q, :])
    G[ar, :, q] = torch.where(ok.unsqueeze(1), 0.0, G[ar, :, q])
    idx = idx.clone()
    idx[ar, q] = torch.where(ok, K, idx[ar, q])
    a = A.take(j.unsqueeze(1) * K1 + idx)
    u = torch.bmm(a.unsqueeze(1), G).squeeze(1)
    s = ajj - (a * u).sum(1)
    ok &= s > piv * ajj
    u[ar, q] = -1.0
    G = G + torch.where(ok, 1.0 / torch.where(ok, s, 1.0), 0.0)[:, None, None] * (u.unsqueeze(2) * u.unsqueeze(1))
    idx[ar, q] = torch.where(ok, j, idx[ar, q])
    val[ar, q] = torch.where(ok, t1 * theta, val[ar, q])
    r = sel[ok]
    st.idx[r], st.val[r], st.G[r] = idx[ok], val[ok], G[ok]
    st.sgn[r] = torch.sign(st.val[r])
    return ok | ~need


def _step(
    st: _ActiveSet, A: Tensor, Bflat: Tensor, alpha: float | Tensor, piv: float, n_cand: int = _FS_ADD, rank: int = 0
) -> tuple[Tensor, Tensor]:
    """One feature-sign step for every live row of ``st`` (in place); returns two bool (n,) masks.

    With S the support, theta its signs and J the candidates (signs from their gradients), the codes
    minimizing the quadratic with the linear term alpha theta.h on S + J are found by block
    elimination: G gives the solution on S, the small Schur complement C = A[J, J] - A[J, S] G A[S, J]
    adds the candidates. A candidate whose solution takes the other sign is dropped (its sign is then
    no descent direction; alone, the most violating one always keeps its sign, so at least one enters
    from an optimum on the support). Then the line search of Lee et al. (below). G is updated for the
    candidates and the coordinates that left in a single low-rank product.

    Returns ``stuck`` (the most violating candidate was refused: its atom lies in the span of the
    support's, and no candidate entered; :func:`_swap` lets it in) and ``lost`` (it was dropped for its
    sign, which at an optimum on the support only rounding can cause).
    """
    K1 = A.shape[0]
    K = K1 - 1
    n, M = st.idx.shape
    ar = torch.arange(n, device=st.idx.device)
    live = st.live.unsqueeze(1)
    used = st.idx < K
    grad = st.grad.unsqueeze(1)
    # With the gradient at hand, solve for the correction from the current codes (iterative refinement:
    # exact whatever rounding G has gathered); otherwise for the codes. Usually every live row has it
    # (then the rows that are not live compute garbage, never kept): b need not be gathered.
    all_grad = bool((st.grad | ~st.live).all())
    if all_grad:
        rS = st.cS - alpha * st.sgn  # (n, M), 0 on free slots (cS and sgn are)
    else:
        BS = Bflat[(st.rows * K1).unsqueeze(1) + st.idx]  # (n, M) b on the slots, 0 on free ones
        rS = torch.where(used, torch.where(grad, st.cS, BS) - alpha * st.sgn, 0.0)
    valid = (st.cand < K) & live
    C = int(valid.sum(1).max()) if n else 0
    stuck = torch.zeros(n, dtype=torch.bool, device=ar.device)
    lost = stuck
    W: Tensor | None = None  # (n, M, C) and W C^-1, the candidates' low-rank update of G
    WC: Tensor | None = None
    if C:
        cand, csgn = st.cand[:, :C], st.cand_sgn[:, :C]
        valid = valid[:, :C]
        # (n, C, M) A[J, S], gathered along the rows of A (A symmetric), and A[S, J]
        AJt = A.take((cand * K1).unsqueeze(2) + st.idx.unsqueeze(1))
        AJ = AJt.transpose(1, 2)
        Y = torch.bmm(torch.cat([AJt, rS.unsqueeze(1)], 1), st.G)  # (n, C + 1, M), G symmetric
        Ut, g0 = Y[:, :C], Y[:, C]  # U^T = (G A[S, J])^T and G r_S
        S = A.take(cand.unsqueeze(2) * K1 + cand.unsqueeze(1)) - torch.bmm(Ut, AJ)  # (n, C, C)
        diag = A.take(cand * (K1 + 1))
        bJ = st.cand_c[:, :C] if all_grad else torch.where(grad, st.cand_c[:, :C], Bflat[(st.rows * K1).unsqueeze(1) + cand])
        zJ = torch.where(valid, bJ - alpha * csgn, 0.0) - torch.bmm(Ut, rS.unsqueeze(2)).squeeze(2)  # (n, C)
        Cinv, acc = _schur_inverse(S, diag, valid, piv)
        stuck = valid[:, 0] & ~acc[:, 0]
        if bool(stuck.any()):  # these rows take a swap step instead (see _swap): no candidate enters now
            acc &= ~stuck.unsqueeze(1)
            Cinv = torch.where(stuck[:, None, None], 0.0, Cinv)
        took = acc[:, 0].clone()
        xJ = torch.bmm(Cinv, zJ.unsqueeze(2)).squeeze(2)  # (n, C) the candidates' codes
        for _ in range(C + 1):
            bad = acc & (xJ * csgn <= 0)
            if not bool(bad.any()):
                break
            # Drop the wrong-signed candidates; if the most violating one is among them, drop the others
            # instead: alone it keeps its sign. Each drop is a rank-1 downdate of C^-1.
            top_bad = bad[:, :1] & acc[:, 1:].any(1, keepdim=True)
            drop = torch.where(top_bad, acc, bad)
            drop[:, 0] &= ~top_bad[:, 0]
            for j in torch.nonzero(drop.any(0)).flatten().tolist():
                m = drop[:, j]
                col = Cinv[:, :, j]
                coef = torch.where(m, 1.0 / torch.where(m, col[:, j], 1.0), 0.0)
                Cinv = Cinv - col.unsqueeze(2) * (col * coef[:, None]).unsqueeze(1)
            acc &= ~drop
            Cinv = torch.where(acc.unsqueeze(2) & acc.unsqueeze(1), Cinv, 0.0)
            xJ = torch.bmm(Cinv, zJ.unsqueeze(2)).squeeze(2)
        xJ = torch.where(acc, xJ, 0.0)
        lost = took & ~acc[:, 0]
        xS = g0 - (Ut * xJ.unsqueeze(2)).sum(1)  # (n, M) the support's codes (or correction)
        if bool(acc.any()):
            # The first C free slots of each row, in order (the largest keys; cheaper than a stable sort).
            key = (~used).to(torch.int32) * M - torch.arange(M, dtype=torch.int32, device=used.device)
            slots = torch.topk(key, C, dim=1).indices
            W = Ut.transpose(1, 2).clone()  # (n, M, C): U - E, E placing the candidates in their slots
            r, c = torch.nonzero(acc, as_tuple=True)
            W[r, slots[r, c], c] = -1.0
            WC = torch.bmm(W, Cinv)
    else:
        xS = torch.bmm(rS.unsqueeze(1), st.G).squeeze(1)
    # (n, M) the solution on the support (xS is 0 on free slots: so are the rows of G)
    hn = xS + st.val if all_grad else torch.where(used, xS + torch.where(grad, st.val, 0.0), 0.0)
    # The low-rank update of G, as factors Z V^T: + W C^-1 W^T for the candidates, then - g g^T / g_q
    # for each coordinate q that leaves (g the column q of the inverse updated so far).
    Zs: list[Tensor] = [WC] if WC is not None else []
    Vs: list[Tensor] = [W] if W is not None else []
    val, sgn = st.val, st.sgn
    if W is not None:
        hn[r, slots[r, c]] = xJ[r, c]  # the candidates enter with their signs (at 0 so far)
        val = val.clone()
        sgn = sgn.clone()
        sgn[r, slots[r, c]] = csgn[r, c]
    # Line search of Lee et al.: walk toward the solution; where a coordinate reaches zero first, stop,
    # remove it (its row of the solution vanishes: h <- h - g h_q / g_q) and walk on toward the
    # solution on the smaller support. On each piece the objective is the quadratic with the linear
    # term alpha theta.h, which decreases strictly: every piece lowers the objective. A row walks at
    # most _LS_MAX pieces in one step (one fewer while its support is below half ``rank``, the rank of
    # A: 0 for no such limit): one still crossing then stops at its last crossing point (lower
    # objective, consistent signs) and walks on in the next step, so that a few long walks do not keep
    # every row's loop going.
    gone = torch.zeros_like(used)
    removed: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # (rows, their position map, g * coef, g)
    cut = torch.zeros_like(st.live)
    act: Tensor | None = None  # the rows that walked the last piece: only they can cross again
    for it_ls in range(M):
        if act is None:
            cross = (sgn != 0) & live & (hn * sgn <= 0)
            rq = torch.nonzero(cross.any(1)).flatten()  # rows where a coordinate reaches zero on the way
            cr = cross[rq]
        else:
            sa = sgn[act]
            cross = (sa != 0) & (hn[act] * sa <= 0)
            m = cross.any(1)
            rq, cr = act[m], cross[m]
        if rq.numel() == 0:
            break
        if it_ls >= _LS_SHORT:
            # Rows whose support is below half the rank of A stop one piece earlier: their walks are
            # short, and the rounds they save do not pay for the longer loop of every row.
            stop = (it_ls >= _LS_MAX) | (2 * used[rq].sum(1) < rank)
            if bool(stop.any()):
                rs = rq[stop]
                hn[rs] = val[rs]
                cut[rs] = True
                rq, cr = rq[~stop], cr[~stop]
                if rq.numel() == 0:
                    break
        act = rq
        v, h0 = val[rq], hn[rq]
        t = (v / (v - h0)).masked_fill_(~cr, torch.inf)  # where each coordinate reaches zero (NaN masked)
        q = t.argmin(1)  # the first to reach zero
        t1 = t.gather(1, q.unsqueeze(1))
        g = st.G[rq, q]  # (nq, M) row q of G (symmetric), then of the inverse updated so far
        if W is not None and WC is not None:
            g += (WC[rq] * W[rq, q].unsqueeze(1)).sum(2)
        for _rk, pos, zk, vk in removed:
            p = pos[rq]
            m = torch.nonzero(p >= 0).flatten()
            if m.numel():
                g[m] += zk[p[m]] * vk[p[m], q[m]].unsqueeze(1)
        coef = -1.0 / g.gather(1, q.unsqueeze(1))  # (nq, 1)
        h = h0 + g * (coef * h0.gather(1, q.unsqueeze(1)))
        v = v + t1 * (h0 - v)
        aq = torch.arange(rq.numel(), device=rq.device)
        pos = torch.full((n,), -1, dtype=torch.long, device=rq.device)
        pos[rq] = aq
        removed.append((rq, pos, g * coef, g))
        gone[rq, q] = True
        for x, y in ((hn, h), (val, v)):
            y[aq, q] = 0.0
            x[rq] = y
        sgn[rq, q] = 0.0
    if removed:
        # Pack each row's removals side by side: the update's rank is the most any row had.
        count = torch.zeros(n, dtype=torch.long, device=ar.device)
        cols = []
        for rk, _, _, _ in removed:
            cols.append(count[rk].clone())
            count[rk] += 1
        L = int(count.max())
        Zr = st.G.new_zeros(n, M, L)
        Vr = st.G.new_zeros(n, M, L)
        for (rk, _, zk, vk), ck in zip(removed, cols):
            Zr[rk, :, ck] = zk
            Vr[rk, :, ck] = vk
        Zs.append(Zr)
        Vs.append(Vr)
    if Zs:
        st.G.baddbmm_(torch.cat(Zs, 2), torch.cat(Vs, 2).transpose(1, 2))
    if W is not None:
        st.idx[r, slots[r, c]] = cand[r, c]
    st.val = torch.where(live, hn, st.val)
    if bool(gone.any()):
        rg, pg = torch.nonzero(gone, as_tuple=True)
        _free(st, rg, pg, K)
    st.sgn = torch.sign(st.val)
    st.refined = st.grad & st.live & ~cut
    st.grad = torch.zeros_like(st.live)
    C_next = min(n_cand, K)
    st.cand = torch.full((n, C_next), K, dtype=st.cand.dtype, device=ar.device)
    st.cand_sgn = st.val.new_zeros(n, C_next)
    st.cand_c = st.val.new_zeros(n, C_next)
    st.cS = torch.zeros_like(st.val)
    return stuck, lost


def _float32_holds(A: Tensor, B: Tensor, alpha: float) -> bool:
    """Whether a lasso problem (Gram ``A``, correlations ``B``, penalty ``alpha``) lies well inside float32's
    range, so that a float32 pass over it cannot overflow or flush to zero (its largest magnitude between
    1e-20 and 1e20); beyond, a float32 search or screening would choose wrong atoms."""
    size = max(alpha, float(B.abs().max()) if B.numel() else 0.0, float(A.abs().max()) if A.numel() else 0.0)
    return 1e-20 < size < 1e20


def _gradient_fn(A: Tensor, D: Tensor | None, beta: float) -> Any:
    """``(b, h) -> b - h A`` for A = D D^T + beta I (or A as given when D is None), in the cheaper form."""
    if D is not None and 2 * D.shape[1] < D.shape[0]:
        Dt = D.t().contiguous()
        if beta:
            return lambda b, h: torch.addmm(b - beta * h, h @ D, Dt, alpha=-1.0)
        return lambda b, h: torch.addmm(b, h @ D, Dt, alpha=-1.0)
    return lambda b, h: torch.addmm(b, h, A, alpha=-1.0)


def _feature_sign(
    A: Tensor,
    B: Tensor,
    alpha: float,
    max_iter: int,
    D: Tensor | None = None,
    beta: float = 0.0,
    init: Tensor | None = None,
    rounding_factor: float = 64.0,
    keep: list[tuple[Tensor, Tensor, Tensor]] | None = None,
    path: float = 1.0,
) -> tuple[Tensor, Tensor, int]:
    """Exact lasso codes by feature-sign search, all rows at once; no checks.

    Minimizes ``0.5 h A h^T - h . b + alpha ||h||_1`` for every row b of ``B`` (N, K); A (K, K) is
    symmetric positive semidefinite, equal to ``D D^T + beta I`` when ``D`` (K, F) is given (used for
    the cheaper gradient when K > 2F).

    H. Lee, A. Battle, R. Raina and A. Y. Ng, "Efficient sparse coding algorithms", NIPS 2007, with
    all rows stepping together. Each round: (1) every row gets its gradient c = b - h A (in float32
    first, several times cheaper on a CPU; a row that looks optimal is checked again at full
    precision); rows whose optimality conditions hold (|c_j| <= alpha off the support, c_j = alpha
    theta_j on it, to rounding) are done, the others get their most violating coordinates as
    candidates; (2) rows whose supports outgrow their slots move to sets of larger capacity; (3) one
    step (:func:`_step`, or :func:`_swap` when a candidate's atom lies in the span of the support).
    Rows of similar support size share a batch, so the work on G follows each row's support.

    The search runs in the dtype of ``B``. With ``init`` (N, K), codes to start from (in practice
    those of a float32 search: :func:`lasso_core`), each row starts on their support and signs, with
    G from one batched Cholesky factorization; feature-sign search descends from any start, so the
    result is as exact as from zero, in the few steps the start leaves to do.

    With ``path`` > 1 each row follows the regularization path: its penalty starts at ``path`` alpha
    (at most ``_PATH_RATE`` times its largest correlation) and is multiplied by ``_PATH_RATE`` each round
    until alpha; a row optimal at its penalty goes to alpha at once, and only at alpha can a row finish.
    Each step descends for the row's current penalty, so the end point is the same.

    Returns the codes (N, K) in the dtype of ``B``, a bool (N,) marking rows that met nearly dependent atoms
    (their codes are the best found, for another solver to finish) and the number of rounds taken.
    """
    N, K = B.shape
    dev, wd = B.device, B.dtype  # the working dtype: float64, or float32 for a first pass
    eps = torch.finfo(B.dtype).eps
    # Pivots below this (relative) mean nearly dependent atoms: refused, as G would lose accuracy.
    piv = 1e-6
    gradient = _gradient_fn(A, D, beta)
    # Gradients for choosing candidates are taken in float32 (several times faster on a CPU); a row
    # is declared optimal only after a check at the problem's precision.
    # Only where float32 can hold the problem: beyond its range the screening gradients overflow to inf and
    # would choose wrong candidates (a problem scaled by 1e40 got wrong codes).
    screen = B.dtype == torch.float64 and B.device.type == "cpu" and _float32_holds(A, B, alpha)
    B32 = B.float() if screen else B
    gradient32 = _gradient_fn(A.float(), D.float() if D is not None else None, beta) if screen else gradient
    slack32 = 64 * torch.finfo(torch.float32).eps
    Ap = torch.zeros(K + 1, K + 1, dtype=wd, device=dev)  # row and column K: the free slots' zeros
    Ap[:K, :K] = A
    Bp = torch.zeros(N, K + 1, dtype=wd, device=dev)
    Bp[:, :K] = B
    Bflat = Bp.reshape(-1)
    scale = Bp.abs().amax(1).clamp_min(alpha)  # (N,) the largest correlation
    rel = rounding_factor * eps  # KKT violations tolerated: rounding (the solution is exact)
    slack = rel * scale
    amax = float(A.diagonal().abs().max())
    # Where each round's gradient costs much more than a step (K min(K, 2 n_features) per row, against
    # about 15 M^2 for G: large dictionaries), rows whose support is below a quarter of the rank of A
    # take _FS_ADD_EARLY candidates per step, for fewer rounds (MNIST with 1,024 atoms: 20 % faster;
    # with 256 atoms, or on digits, it is slower: wrong candidates cost more than the rounds saved).
    nf = D.shape[1] if D is not None else K
    rank = min(K, nf) if D is not None and not beta else K  # of A, at most
    early = rank // 4 if K * min(K, 2 * nf) >= 2**19 else 0
    n_cand = min(_FS_ADD_EARLY if early else _FS_ADD, K)  # the width of the candidate lists
    caps = torch.tensor([_capacity(i, K) for i in range(K + 1)], device=dev)
    out = torch.zeros(N, K + 1, dtype=wd, device=dev)
    failed = torch.zeros(N, dtype=torch.bool, device=dev)

    # Following the path (``path`` > 1): each row's penalty this round and at its last step.
    lv: Tensor | None = None
    lv_prev = lv
    if path > 1:
        top0 = Bp[:, :K].abs().amax(1)
        lv = (_PATH_RATE * top0).clamp_(max=path * alpha).clamp_(min=alpha)
        lv_prev = torch.full_like(lv, alpha)

    def finish(st: _ActiveSet, sel: Tensor) -> None:
        codes = torch.zeros(int(sel.sum()), K + 1, dtype=wd, device=dev)
        out[st.rows[sel]] = codes.scatter_(1, st.idx[sel], st.val[sel])
        st.live = st.live & ~sel
        if keep is not None:
            keep.append((st.rows[sel], st.idx[sel], st.G[sel]))

    def check(st: _ActiveSet, fi: Tensor, single: bool) -> Tensor:
        """Gradient of rows ``fi``, their next candidates; returns which rows are optimal.

        ``single``: in float32 (only to choose candidates; "optimal" then means "worth a check").
        """
        r, idx = st.rows[fi], st.idx[fi]
        dt = torch.float32 if single else B.dtype
        h = torch.zeros(fi.numel(), K + 1, dtype=dt, device=dev).scatter_(1, idx, st.val[fi].to(dt))[:, :K]
        c = torch.zeros(fi.numel(), K + 1, dtype=dt, device=dev)
        c[:, :K] = gradient32(B32[r], h) if single else gradient(B[r], h)
        # Rounding of b - h A grows with ||h||_1 (entries of A are at most amax in size).
        rounding = rounding_factor * torch.finfo(dt).eps * amax * st.val[fi].abs().sum(1)
        tolerance = ((slack32 if single else rel) * scale[r] + rounding).to(dt)
        cS = torch.gather(c, 1, idx)
        a: float | Tensor = alpha
        if lv is not None and lv_prev is not None:
            a, ap = lv[r].to(dt), lv_prev[r].to(dt)
            res = (cS - ap.unsqueeze(1) * st.sgn[fi].to(dt)).abs().amax(1)
        else:
            res = (cS - alpha * st.sgn[fi].to(dt)).abs().amax(1)  # 0 on free slots (c[:, K] = 0)
        # |gradient| off the support (scattering a tensor of zeros: several times faster than the scalar)
        v = c.abs().scatter_(1, idx, c.new_zeros(idx.shape))[:, :K]
        top, ti = v.topk(n_cand, dim=1)
        viol = top > (a + tolerance).unsqueeze(1)
        opt = ~viol[:, 0] & (res <= tolerance)
        if lv is not None and lv_prev is not None and not single:
            # Optimal at its penalty, above alpha: the row leaves the path for alpha at once.
            idle = opt & (lv[r] > alpha)
            if bool(idle.any()):
                lv[r[idle]] = alpha
                a = torch.where(idle, alpha, a)
                viol = top > (a + tolerance).unsqueeze(1)
            opt &= (lv[r] <= alpha) & (lv_prev[r] <= alpha)
        if early:
            viol[:, _FS_ADD:] &= ((idx < K).sum(1) + n_cand <= early).unsqueeze(1)
        ti = torch.where(viol, ti, K)
        cc = torch.gather(c, 1, ti).to(wd)
        st.cand[fi, : ti.shape[1]] = ti
        st.cand_c[fi, : ti.shape[1]] = cc
        st.cand_sgn[fi, : ti.shape[1]] = torch.sign(cc)
        if not single:  # the step refines the codes with this gradient
            st.cS[fi] = cS.to(wd)
            st.grad[fi] = True
            st.exact[fi] = False
            st.settled[fi] = res <= tolerance
        return opt

    sets: list[_ActiveSet] = []
    # The first step, from h = 0 where the gradient is b: its most violating coordinates.
    top, cand = Bp[:, :K].abs().topk(n_cand if n_cand <= early else min(_FS_ADD, K), dim=1)
    cand = torch.where(top > (alpha + slack).unsqueeze(1), cand, K)
    rows = torch.nonzero(cand[:, 0] < K).flatten()  # rows with nothing to activate are solved by h = 0
    if init is not None:  # from the given codes: the first round checks them like any other
        sets = _warm_sets(init.to(wd), Ap, caps, piv, n_cand)
    elif rows.numel():
        cand = cand[rows]
        cand_c = torch.gather(Bp[rows], 1, cand)
        cand_sgn = torch.sign(cand_c)
        n, M = rows.numel(), _capacity(cand.shape[1], K)
        no = torch.zeros(n, dtype=torch.bool, device=dev)
        z = torch.zeros(n, M, dtype=wd, device=dev)
        sets.append(_ActiveSet(
            rows, torch.full((n, M), K, dtype=torch.long, device=dev), z, z.clone(),
            torch.zeros(n, M, M, dtype=wd, device=dev), ~no, no, no, no, no, z.clone(), cand,
            cand_sgn, cand_c,
        ))
    n_steps = 0
    for it in range(max_iter):
        if not sets:
            break
        n_steps = it + 1
        if lv is not None and it:
            lv.mul_(_PATH_RATE).clamp_(min=alpha)
        # Every row after its first step: gradient, optimality check, the next candidates.
        for st in sets if it or init is not None else ():
            fi = torch.nonzero(st.live).flatten()
            if fi.numel() == 0:
                continue
            if screen:
                ex = st.exact[fi]
                fi = torch.cat([fi[ex], fi[~ex][check(st, fi[~ex], True)]])  # those that look optimal
                if fi.numel() == 0:
                    continue
            done = check(st, fi, False)
            # A refined row still off optimality on its support: G has lost accuracy (nearly
            # dependent atoms); recompute it.
            stale = fi[~st.settled[fi] & st.refined[fi]]
            if stale.numel():
                failed_rows = _refresh(st, stale, Ap)
                if failed_rows.numel():
                    failed[st.rows[failed_rows]] = True
                    sel = torch.zeros_like(st.live)
                    sel[failed_rows] = True
                    finish(st, sel)
            if bool(done.any()):
                sel = torch.zeros_like(st.live)
                sel[fi[done]] = True
                finish(st, sel)
        # Rows whose support outgrows their slots move to a larger capacity.
        for i, st in enumerate(list(sets)):
            need = (st.idx < K).sum(1) + (st.cand < K).sum(1)
            up = (need > st.idx.shape[1]) & st.live
            n_up = int(up.sum())
            if not n_up:
                continue
            ui = torch.nonzero(up).flatten()
            cap = caps[(need[ui] + _FS_ADD).clamp_max(K)]  # room for the next step's candidates too
            if 2 * n_up >= int(st.live.sum()):
                # Most rows outgrow their slots (supports grow in step): the whole set grows, one copy,
                # to the capacity most of them need; the few that need more move on.
                M2 = int(cap.median())
                sets[i] = st = st.grown(M2, K)
                beyond = cap > M2
                ui, cap = ui[beyond], cap[beyond]
                if not ui.numel():
                    continue
            for M2 in cap.unique().tolist():
                sets.append(st.take(ui[cap == M2]).grown(int(M2), K))
            st.live[ui] = False
        sets = _compact(sets, K)
        # The step.
        for st in sets:
            grad = st.grad & st.live
            top = st.cand[:, 0].clone()
            lr = None if lv is None else lv[st.rows]  # the rows' penalties on the path
            stuck, lost = _step(st, Ap, Bflat, alpha if lr is None else lr.unsqueeze(1), piv, n_cand, rank)
            if bool(stuck.any()):
                sr = torch.nonzero(stuck).flatten()
                bad = sr[~_swap(st, sr, top[sr], Ap, Bflat, alpha if lr is None else lr[sr], piv)]
                if bad.numel():
                    sel = torch.zeros_like(st.live)
                    sel[bad] = True
                    failed[st.rows[bad]] = True
                    finish(st, sel)
            if bool(lost.any()):
                # The most violating coordinate would enter with the wrong sign, which the theory
                # rules out at an optimum on the support: its violation is rounding. Screened in
                # float32, check again at full precision; checked at full precision, the row is done.
                on = lost & grad & st.settled
                if lr is not None and lv_prev is not None:
                    on &= (lr <= alpha) & (lv_prev[st.rows] <= alpha)
                finish(st, on)
                st.exact |= lost & ~grad
        sets = _compact(sets, K)
        if lv is not None and lv_prev is not None:
            lv_prev.copy_(lv)
    for st in sets:  # out of steps: the best codes found
        finish(st, st.live)
    return out[:, :K], failed, n_steps


def _warm_sets(init: Tensor, Ap: Tensor, caps: Tensor, piv: float, n_cand: int = _FS_ADD) -> list[_ActiveSet]:
    """Feature-sign state of every row on the support, signs and values of ``init`` (N, K).

    ``Ap`` is A padded with a zero row and column (the free slots' atom). Rows are grouped by the
    capacity their support needs, and each group's inverses G come from one batched Cholesky
    factorization. A row whose support's atoms are nearly dependent (a pivot below ``piv`` times the
    atom's squared norm) starts from zero instead.
    """
    N, K = init.shape
    dev, wd = init.device, Ap.dtype
    size = (init != 0).sum(1)
    cap = caps[(size + _FS_ADD).clamp_max(K)]
    sets = []
    for M in cap.unique().tolist():
        rows = torch.nonzero(cap == M).flatten()
        n = rows.numel()
        h = init[rows]
        idx = torch.topk((h != 0).to(torch.int8), M, dim=1, sorted=False).indices  # the support first
        val = h.gather(1, idx)
        free = val == 0
        idx = torch.where(free, K, idx)
        G, ok = _support_inverse(Ap, idx, wd, piv)
        free |= ~ok.unsqueeze(1)
        G = torch.where(free.unsqueeze(2) | free.unsqueeze(1), 0.0, G)
        idx = torch.where(free, K, idx)
        val = torch.where(free, 0.0, val)
        no = torch.zeros(n, dtype=torch.bool, device=dev)
        cand = torch.full((n, min(n_cand, K)), K, dtype=torch.long, device=dev)
        zc = torch.zeros(cand.shape, dtype=wd, device=dev)
        sets.append(_ActiveSet(
            rows, idx, val, torch.sign(val), G, ~no, no, no, no, no, torch.zeros_like(val), cand, zc, zc.clone()
        ))
    return sets


def _refine_on_support(
    A: Tensor, B: Tensor, alpha: float, H0: Tensor, kept: list[tuple[Tensor, Tensor, Tensor]], gradient: Any,
    steps: int,
) -> tuple[Tensor, Tensor]:
    """Codes on the supports and signs of ``H0`` refined at the precision of ``B``, and which rows they solve.

    ``kept`` holds, for the rows of a lower-precision search, their slots' atoms and G, the inverse of
    A on their support (``(rows, idx, G)`` per batch of rows). On the support S with signs theta the
    solution solves ``A[S, S] h_S = b_S - alpha theta``; iterative refinement, ``h_S += G r`` with the
    residual ``r = b_S - alpha theta - A[S, S] h_S`` at full precision, reaches it at full precision in
    a few steps when G is a fair approximation (each step multiplies the error by about the relative
    error of G, times the condition number of A[S, S]). The residual comes from A[S, S] gathered for each row where
    supports are small (up to ``_REFINE_GATHER`` slots), and from the gradient, one matrix product
    for all rows, where they are larger. A row is marked solved only when its codes have the signs
    theta exactly (zero off S) and its gradient ``c = b - h A`` satisfies the lasso's optimality
    conditions to rounding, with the tolerances of feature-sign search itself: ``|c_j - alpha theta_j|``
    on S and ``|c_j| - alpha`` off S at most ``64 eps (max_j |b_j| + max |A| ||h||_1)``. That check
    alone makes a row's codes exact, whatever ``kept`` holds; a row with a wrong support or signs fails
    it, for another solver to finish.
    """
    N, K = H0.shape
    K1 = K + 1
    dev, wd = B.device, B.dtype
    eps = torch.finfo(wd).eps
    Ap = torch.zeros(K1, K1, dtype=wd, device=dev)  # row and column K: the free slots' zeros
    Ap[:K, :K] = A
    Bp = torch.zeros(N, K1, dtype=wd, device=dev)
    Bp[:, :K] = B
    theta = torch.zeros(N, K1, dtype=wd, device=dev)
    theta[:, :K] = torch.sign(H0)
    H = torch.zeros(N, K1, dtype=wd, device=dev)
    H[:, :K] = H0
    by_M: dict[int, list[tuple[Tensor, Tensor, Tensor]]] = {}
    for r, idx, G in kept:
        by_M.setdefault(idx.shape[1], []).append((r, idx, G))
    large = []
    for M, lst in by_M.items():
        r, idx, G = (torch.cat(x) for x in zip(*lst))
        if M > _REFINE_GATHER:
            large.append((r, idx, G))
            continue
        ts = theta[r].gather(1, idx)  # 0 on free slots and off S
        rhs = Bp[r].gather(1, idx) - alpha * ts
        Ass = Ap.take(idx.unsqueeze(2) * K1 + idx.unsqueeze(1))
        hs = H[r].gather(1, idx)
        on = ts != 0
        for _ in range(steps):
            # Ass and G are symmetric: x^T M, several times faster than M x in a batched product here
            res = torch.where(on, rhs - torch.bmm(hs.unsqueeze(1), Ass).squeeze(1), 0.0)
            d = torch.bmm(res.to(G.dtype).unsqueeze(1), G).squeeze(1)
            hs = hs + torch.where(on, d.to(wd), 0.0)
        H[r] = H[r].scatter_(1, idx, hs)
    if large:
        rows = torch.cat([r for r, _, _ in large])
        for _ in range(steps - 1):  # the last step's gradient is the check's
            R = torch.zeros(N, K1, dtype=wd, device=dev)  # the residual on S: c_S - alpha theta_S
            R[rows, :K] = gradient(B[rows], H[rows, :K]) - alpha * theta[rows, :K]
            for r, idx, G in large:
                ts = theta[r].gather(1, idx)
                res = torch.where(ts != 0, R[r].gather(1, idx), 0.0)
                d = torch.bmm(res.to(G.dtype).unsqueeze(1), G).squeeze(1)  # G symmetric (see above)
                H[r] = H[r].scatter_add_(1, idx, torch.where(ts != 0, d.to(wd), 0.0))
    H = H[:, :K]
    c = gradient(B, H)
    th = theta[:, :K]
    tol = 64 * eps * (B.abs().amax(1).clamp_min(alpha) + A.diagonal().abs().max() * H.abs().sum(1))
    res = torch.where(th != 0, (c - alpha * th).abs(), c.abs() - alpha).amax(1)
    return H, (res <= tol) & (torch.sign(H) == th).all(1)


def _compact(sets: list[_ActiveSet], K: int) -> list[_ActiveSet]:
    """Drop finished rows once they are a quarter of a set; merge small sets of equal capacity.

    Merging copies the sets merged, so large sets are left apart unless there are many of them.
    """
    by_M: dict[int, list[_ActiveSet]] = {}
    for st in sets:
        n_live = int(st.live.sum())
        if n_live == 0:
            continue
        if 4 * (st.live.numel() - n_live) > st.live.numel():
            st = st.take(st.live)
        by_M.setdefault(st.idx.shape[1], []).append(st)
    live = [s for lst in by_M.values() for s in lst]
    if len(live) > 1 and sum(int(s.live.sum()) for s in live) <= _FS_TAIL:
        # The last few rows: one batch at the largest capacity costs less than a batch per capacity.
        M = max(by_M)
        return [_cat_sets([(s if bool(s.live.all()) else s.take(s.live)).grown(M, K) for s in live])]
    out = []
    for lst in by_M.values():
        lst.sort(key=lambda s: s.rows.numel())
        while len(lst) > 1 and (lst[0].rows.numel() + lst[1].rows.numel() < _FS_MERGE or len(lst) > 3):
            lst[:2] = [_cat_sets([s if bool(s.live.all()) else s.take(s.live) for s in lst[:2]])]
            lst.sort(key=lambda s: s.rows.numel())
        out += lst
    return out


def _guess_codes(
    A: Tensor, B: Tensor, D: Tensor, alpha: float, beta: float, steps: int
) -> tuple[Tensor, list[tuple[Tensor, Tensor, Tensor]]]:
    """The float32 search of :func:`lasso_core`: codes (float64) and, per batch of rows, their slots and G.

    Where the atoms spread evenly over the dimensions of the data (the effective rank of A,
    ``tr(A)^2 / ||A||_F^2``, at least half its rank: incoherent atoms, e.g. gaussian ones), supports
    fill most of the dimension at small alpha (digits on gaussian atoms: 55 of 64), and a row takes many
    steps that add four atoms while the line search removes about two. There the search follows the
    regularization path: each row's penalty starts at ``_FS_GUESS_PATH`` alpha (at most a little below
    its largest correlation) and falls by ``_PATH_RATE`` per round to alpha, so that atoms enter in a
    better order. On coherent dictionaries (atoms drawn from or learned on the data: effective ranks of
    2 to 6) it costs rounds, and it is not used.
    """
    K, F = D.shape
    rank = min(K, F) if not beta else K
    eff = float(A.diagonal().sum()) ** 2 / max(float(A.square().sum()), 1e-300)
    path = _FS_GUESS_PATH if 2 * eff >= rank else 1.0
    kept: list[tuple[Tensor, Tensor, Tensor]] = []
    H = _feature_sign(A, B, alpha, steps, D=D, beta=beta, rounding_factor=_FS_GUESS_ROUNDING, keep=kept, path=path)[0]
    return H.double(), kept


def lasso_core(
    X: Tensor,
    D: Tensor,
    alpha: float,
    max_iter: int,
    tol: float,
    *,
    beta: float = 0.0,
    prior: Tensor | None = None,
) -> Tensor:
    """Exact codes minimizing ``0.5 ||x - h D||^2 + alpha ||h||_1 + 0.5 beta ||h - prior||^2``, row by row.

    The unchecked core of :func:`sparse_encode` (``algorithm="feature-sign"``), for internal callers
    that have validated their arguments: nothing is checked or converted here, so the caller makes sure
    that ``X`` and ``D`` are finite tensors on one device, ``alpha >= 0``, ``max_iter >= 1``,
    ``tol >= 0``, and that ``prior`` (when ``beta > 0``) has the codes' shape. The extra term
    ``0.5 beta ||h - prior||^2`` is the prediction term of predictive sparse decomposition; with
    ``beta = 0`` this is the lasso of :func:`sparse_encode`.

    The codes are the float64 solution whatever the dtype of ``X`` (float32 data get it rounded). On
    a CPU the search runs in float32 first (half the memory traffic), then each row's codes are refined
    on its support and signs in float64 and kept where the optimality conditions hold at float64
    precision (:func:`_refine_on_support`); the other rows, about 1 %, are searched again in float64
    from their float32 codes. Elsewhere the search runs in float64 from the start. ``max_iter`` bounds
    each search (the float32 one also at 64 steps: rounding can make it cycle on degenerate rows). The rare rows whose
    support meets nearly dependent atoms are finished by FISTA (``tol``) from where the search stopped.

    Parameters
    ----------
    X : Tensor, (N, n_features)
    D : Tensor, (K, n_features)
        The dictionary, atoms as rows.
    alpha : float
        Weight of the L1 penalty.
    max_iter : int
        Most feature-sign steps (and FISTA iterations of the fallback).
    tol : float
        Stopping tolerance of the FISTA fallback.
    beta : float
        Weight of the pull toward ``prior``; 0 turns it off.
    prior : Tensor, (N, K), optional
        The codes the extra term pulls toward (used only when ``beta > 0``).

    Returns
    -------
    Tensor, (N, K), of the dtype of ``X``.
    """
    Xd, Dd = X.double(), D.double()
    gram = Dd @ Dd.t()  # (K, K)
    B = Xd @ Dd.t()  # (N, K)
    if beta:
        gram = gram + beta * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        B = B + beta * prior.double() if prior is not None else B
    if Xd.device.type == "cpu" and _float32_holds(gram, B, alpha):
        # The search in float32 first (half the memory traffic of float64), then the float64 solution
        # on each row's support and signs by iterative refinement, kept where the optimality conditions
        # confirm it; the other rows (about 1 %) are searched again in float64 from the float32 codes.
        init, kept = _guess_codes(gram.float(), B.float(), Dd.float(), alpha, beta, min(max_iter, _FS_GUESS_MAX_STEPS))
        H, ok = _refine_on_support(gram, B, alpha, init, kept, _gradient_fn(gram, Dd, beta), _REFINE_STEPS)
        failed = torch.zeros_like(ok)
        redo = torch.nonzero(~ok).flatten()
        if redo.numel():
            # From their float32 codes (from zero where float32 overflowed).
            init = torch.where(torch.isfinite(init).all(1, keepdim=True), init, 0.0)
            H[redo], failed[redo], _ = _feature_sign(gram, B[redo], alpha, max_iter, D=Dd, beta=beta, init=init[redo])
    else:
        H, failed, _ = _feature_sign(gram, B, alpha, max_iter, D=Dd, beta=beta)
    if bool(failed.any()):
        rows = torch.nonzero(failed).flatten()
        L = lipschitz(gram)
        factors = (Dd, Xd[rows], float(beta)) if 2 * D.shape[1] < D.shape[0] else None
        H[rows] = _prox_grad(gram, B[rows], L, alpha, max_iter, tol, H[rows], True, True, factors)[0]
    return H.to(X.dtype)


def _feature_sign_codes(X: Tensor, D: Tensor, alpha: float, max_iter: int, tol: float, init: Tensor | None) -> Tensor:
    """Exact sparse codes (N, K) of ``X`` on ``D`` by feature-sign search (which needs no ``init``); no checks."""
    return lasso_core(X, D, alpha, max_iter, tol)


_SOLVERS = {"feature-sign": _feature_sign_codes, "fista": _fista, "ista": _ista}


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


# --------------------------------------------------------------------------------- public API


def sparse_encode(
    X: Any,
    dictionary: Any,
    alpha: float,
    *,
    algorithm: str = "feature-sign",
    max_iter: int = 1000,
    tol: float = 1e-6,
    init: Any = None,
    device: str = "cpu",
) -> np.ndarray:
    """Sparse codes of ``X`` on a fixed dictionary, all samples at once: exact by default.

    Solves, independently for each sample x (row of ``X``)::

        min_h  0.5 * ||x - h D||_2^2 + alpha * ||h||_1

    the objective of ``sklearn.decomposition.sparse_encode(X, D, algorithm="lasso_cd", alpha=alpha)``.

    ``"feature-sign"`` (the default) is the feature-sign search of Lee et al. (NIPS 2007): guess the
    support and signs of the solution, solve the linear system they give, and correct the guess. Each
    step activates the coordinates that violate the optimality condition most (four at a time), solves
    on the support with those signs, drops a new coordinate whose solution has the other sign, and
    moves toward the solution until a coordinate reaches zero (it leaves the support there); every
    step lowers the objective, and the search ends when the optimality conditions hold, to rounding:
    the codes are exact, not approximate. The steps of all samples are taken together; each sample
    keeps the inverse of its support's Gram matrix and updates it by low-rank corrections. The codes
    are the float64 solution whatever the input dtype (on a CPU, a float32 search guesses the supports
    and signs, and float64 refinement on them, checked against the optimality conditions, makes them
    exact), and a sample stops as soon as it is solved.

    ``"fista"`` and ``"ista"`` are proximal gradient methods, for teaching and comparison: each
    iteration is a gradient step of size 1/L (L the largest eigenvalue of D D^T) followed by soft
    thresholding, for all samples as one or two matrix products. FISTA adds Nesterov momentum, which
    brings the objective within O(1/k^2) of the optimum after k iterations instead of ISTA's O(1/k);
    here its momentum is restarted per sample when it points uphill, and a sample whose signs are
    stable gets the exact solution on its support where the optimality conditions confirm it.

    Parameters
    ----------
    X : array-like, (n_samples, n_features)
    dictionary : array-like, (n_components, n_features)
        The atoms as rows (scikit-learn's convention). They need not have unit norm.
    alpha : float >= 0
        Weight of the L1 penalty; 0 gives least-squares codes.
    algorithm : {"feature-sign", "fista", "ista"}
    max_iter : int
        Most steps (feature-sign search) or iterations (FISTA, ISTA).
    tol : float >= 0
        FISTA and ISTA: a sample stops when the largest change of its code entries in one iteration is
        at most ``tol`` times its largest code entry (checked every 10 iterations), or when its code
        is proven exact; 0 stops a sample only when its code no longer changes or is proven exact.
        Feature-sign search is exact and uses it only for the rare samples whose support meets nearly
        dependent atoms, which it hands to FISTA.
    init : array-like, (n_samples, n_components), optional
        Starting codes for FISTA and ISTA (warm start); zeros by default. Feature-sign search starts
        from zero and ignores it.
    device : str
        Where to compute ("cpu", "cuda", "auto").

    Returns
    -------
    codes : ndarray, (n_samples, n_components)
        float64 when ``X`` or ``dictionary`` is float64, else float32.

    Notes
    -----
    A feature-sign step is many small tensor operations; on a CPU shared with other work, one torch
    thread (``torch.set_num_threads(1)``) is often faster than several.

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
    check_value("alpha", alpha, Alpha)
    check_value("algorithm", algorithm, Algorithm)
    check_value("max_iter", max_iter, MaxIter)
    check_value("tol", tol, Tol)
    a, n_iter, t = float(alpha), int(max_iter), float(tol)
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
    check_value("alpha", alpha, Alpha)
    for name, a in (("X", Xa), ("dictionary", Da), ("codes", Ha)):
        if a.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} holds NaN or infinite values; the objective is defined for finite values only")
    if Da.shape[1] != Xa.shape[1] or Ha.shape != (Xa.shape[0], Da.shape[0]):
        raise ValueError(
            f"X {Xa.shape}, dictionary {Da.shape} and codes {Ha.shape} do not fit together: expected the dictionary "
            f"as (n_atoms, {Xa.shape[1]}) and the codes as ({Xa.shape[0]}, n_atoms), one row per sample of X "
            "(the argument order is X, dictionary, codes)")
    return 0.5 * ((Xa - Ha @ Da) ** 2).sum(axis=1) + float(alpha) * np.abs(Ha).sum(axis=1)


# ------------------------------------------------------------------------- dictionaries



def unit_rows(D: Tensor) -> Tensor:
    """Rows of ``D`` (K, n_features) scaled to unit L2 norm (a zero row stays zero); the atoms' constraint."""
    return D / D.norm(dim=1, keepdim=True).clamp_min(1e-12)


def init_dictionary(X: Tensor, n_components: int, generator: torch.Generator) -> Tensor:
    """Atoms from randomly drawn samples plus a little noise, unit norm, (K, n_features).

    ``X`` (N, n_features) is the training data; every draw comes from ``generator``, so the caller's
    global random state is left alone. No checks.

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
    return unit_rows(atoms + 0.01 * scale * noise)


