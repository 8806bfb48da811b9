"""Pure loss and penalty functions. Families combine these and never copy them.

Convention: every reconstruction term and every per-sample penalty returns one value per sample,
summed over features, shape (B,). The training loop averages over the batch, so a loss reads in the
units of the literature (e.g. squared error summed over the 784 pixels of an MNIST image).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def _flat(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1)  # (B, D)


def squared_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """Squared error ``||x_hat - x||^2`` per sample, shape (B,)."""
    return _flat(x_hat - x).pow(2).sum(dim=1)


def binary_cross_entropy_with_logits(logits: Tensor, x: Tensor) -> Tensor:
    """Bernoulli negative log-likelihood ``-sum_i x_i log p_i + (1-x_i) log(1-p_i)``, p = sigmoid(logits).

    Per sample, shape (B,). Works on logits for numerical stability; x may be any value in [0, 1].
    """
    return _flat(F.binary_cross_entropy_with_logits(logits, x, reduction="none")).sum(dim=1)


def gaussian_nll(mean: Tensor, logvar: Tensor | float, x: Tensor) -> Tensor:
    """Gaussian negative log-likelihood ``-log N(x; mean, exp(logvar))`` per sample, shape (B,)."""
    lv = logvar if isinstance(logvar, Tensor) else torch.full_like(mean, float(logvar))
    nll = 0.5 * (math.log(2 * math.pi) + lv + (x - mean).pow(2) * torch.exp(-lv))
    return _flat(nll).sum(dim=1)


def kl_normal_std_dims(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL( N(mu_j, exp(logvar_j)) || N(0, 1) ) of each code dimension, shape (B, K).

    ``0.5 * (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)``; zero exactly at the prior.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


def kl_normal_std(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per sample, shape (B,).

    ``0.5 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)``; zero exactly at the prior.
    """
    return kl_normal_std_dims(mu, logvar).sum(dim=1)


def free_bits_kl(kl_dims: Tensor, floor: float) -> Tensor:
    """The KL with a floor of ``floor`` nats per code dimension (free bits), a scalar.

    ``sum_j max(floor, (1/B) sum_b KL_bj)`` (Kingma et al., "Improved variational inference with inverse
    autoregressive flow", 2016): a dimension whose batch-mean KL is below the floor costs the floor and gets
    no gradient pushing it further towards the prior. ``floor=0`` gives the batch mean of the plain KL.
    """
    return kl_dims.mean(dim=0).clamp(min=floor).sum()


def gaussian_log_density(z: Tensor, mu: Tensor | float = 0.0, logvar: Tensor | float = 0.0) -> Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` summed over the last dimension: (..., K) -> (...).

    With the defaults, the standard normal prior's log density.
    """
    mu_t = mu if isinstance(mu, Tensor) else torch.full_like(z, float(mu))
    lv = logvar if isinstance(logvar, Tensor) else torch.full_like(z, float(logvar))
    return -0.5 * (math.log(2 * math.pi) + lv + (z - mu_t).pow(2) * torch.exp(-lv)).sum(dim=-1)


def l1_penalty(h: Tensor) -> Tensor:
    """``||h||_1`` per sample, shape (B,): the MAP penalty of a Laplace prior on the code."""
    return _flat(h).abs().sum(dim=1)


def kl_sparsity(h: Tensor, rho: float, eps: float = 1e-6) -> Tensor:
    """Sparsity penalty ``sum_j KL(rho || rho_hat_j)`` with rho_hat_j the mean activation over the batch.

    ``h`` must lie in (0, 1) (sigmoid units). Returns a scalar (the penalty is a batch statistic).
    """
    rho_hat = h.mean(dim=0).clamp(eps, 1 - eps)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def contractive_sigmoid_exact(h: Tensor, weight: Tensor) -> Tensor:
    """Exact ``||J_f(x)||_F^2`` for one sigmoid layer h = sigmoid(W x + b), per sample, shape (B,).

    ``sum_j (h_j (1 - h_j))^2 * ||W_j||^2`` with W_j the j-th row of ``weight`` (shape (K, D)).
    """
    row_norms = weight.pow(2).sum(dim=1)  # (K,)
    return ((h * (1 - h)).pow(2) * row_norms).sum(dim=1)


def contractive_autograd(encode: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Exact ``||J_f(x)||_F^2`` per sample by autograd, shape (B,); one backward pass per code unit.

    Differentiable (uses ``create_graph``), so it can be minimized. Cost grows with the code size K.
    """
    x = x if x.requires_grad else x.detach().requires_grad_(True)
    h = _flat(encode(x))
    total = x.new_zeros(x.shape[0])
    for j in range(h.shape[1]):
        (g,) = torch.autograd.grad(h[:, j].sum(), x, create_graph=True)
        total = total + _flat(g).pow(2).sum(dim=1)
    return total


def contractive_projection(encode: Callable[[Tensor], Tensor], x: Tensor, n_projections: int = 1) -> Tensor:
    """Unbiased random-projection estimate of ``||J_f(x)||_F^2`` per sample, shape (B,).

    For v ~ N(0, I_K), E ||J^T v||^2 = ||J||_F^2; each projection costs one vector-Jacobian product
    instead of K of them.
    """
    x = x if x.requires_grad else x.detach().requires_grad_(True)
    h = _flat(encode(x))
    total = x.new_zeros(x.shape[0])
    for _ in range(n_projections):
        v = torch.randn_like(h)
        (g,) = torch.autograd.grad(h, x, grad_outputs=v, create_graph=True)
        total = total + _flat(g).pow(2).sum(dim=1)
    return total / n_projections


def reconstruction(kind: str, x: Tensor, x_hat: Tensor, logits: Tensor | None) -> Tensor:
    """Dispatch to the reconstruction term named ``kind`` ("bce" or "mse"), per sample, shape (B,)."""
    if kind == "bce":
        if logits is None:
            raise ValueError("loss='bce' needs a sigmoid output; use output='sigmoid' or loss='mse'")
        return binary_cross_entropy_with_logits(logits, x)
    if kind == "mse":
        return squared_error(x_hat, x)
    raise ValueError(f"unknown reconstruction loss {kind!r}; valid: 'bce', 'mse'")


def categorical_entropy(logits: Tensor) -> Tensor:
    """Entropy ``H(p) = -sum_c p_c log p_c`` of p = softmax(logits), per sample, shape (B,); logits (B, C)."""
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def categorical_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """``KL(p || q) = sum_c p_c (log p_c - log q_c)`` for p, q = softmax of (B, C) logits, per sample, shape (B,)."""
    logp, logq = F.log_softmax(p_logits, dim=1), F.log_softmax(q_logits, dim=1)
    return (logp.exp() * (logp - logq)).sum(dim=1)


def _unit(d: Tensor) -> Tensor:
    """Each sample of ``d`` scaled to unit L2 norm over all its features."""
    norm = _flat(d).norm(dim=1).clamp_min(1e-12)
    return d / norm.reshape(-1, *([1] * (d.dim() - 1)))


def virtual_adversarial_kl(
    classify: Callable[[Tensor], Tensor], x: Tensor, logits: Tensor, epsilon: float, xi: float = 1e-1,
    n_power: int = 1,
) -> Tensor:
    """Virtual adversarial loss ``KL(p(.|x) || p(.|x + r_adv))`` per sample, shape (B,) (Miyato et al. 2018).

    ``r_adv = epsilon * argmax_{||r|| <= epsilon} KL(p(.|x) || p(.|x + r))``, the direction found by
    ``n_power`` power iterations ``d <- grad_r KL(p(.|x) || p(.|x + r)) at r = xi * d / ||d||`` from a
    Gaussian ``d``: for small r the KL is ``r^T H r / 2`` with H its Hessian at r = 0 (its gradient there
    is zero), and the gradient at ``xi d`` is ``xi H d``, one power step towards H's top eigenvector.
    ``p(.|x)`` = softmax(``logits``) is held fixed (no gradient flows into it); the gradient of the result
    flows through ``classify(x + r_adv)`` into the model, never into ``r_adv`` itself. The power iteration
    runs with gradients enabled even inside ``torch.no_grad()`` (a validation pass), building no graph
    that outlives it.

    Parameters
    ----------
    classify : callable, (B, *sample_shape) -> (B, C) logits
    x : Tensor, (B, *sample_shape)
    logits : Tensor, (B, C)
        ``classify(x)``, the clean prediction.
    epsilon : float
        The radius of the perturbation, in the units of ``x`` (L2 norm over all features of a sample).
    xi : float
        The finite-difference radius of the power iteration.
    """
    p_logits = logits.detach()
    x0 = x.detach()
    d = torch.randn_like(x0)
    with torch.enable_grad():
        for _ in range(n_power):
            r = (xi * _unit(d)).requires_grad_(True)
            kl = categorical_kl(p_logits, classify(x0 + r)).sum()
            (g,) = torch.autograd.grad(kl, r)
            d = g.detach()
    return categorical_kl(p_logits, classify(x0 + epsilon * _unit(d)))


def laplace_interval_bits(t: Tensor, scale: Tensor) -> Tensor:
    """Code length in bits of ``t`` (B, K) under Laplace(0, scale) densities convolved with U(-1/2, 1/2), per sample (B,).

    ``-sum_k log2 [F(t_k + 1/2) - F(t_k - 1/2)]`` with F the Laplace CDF of scale ``scale`` (K,): the
    probability mass of the unit bin around ``t_k``, which equals the density of ``t_k`` convolved with the
    uniform (Ballé et al. 2017). At integers it is the discrete probability a range coder spends on the
    symbol; at ``z + u``, u ~ U(-1/2, 1/2), it is the differentiable rate of training. Written per side
    of the bin's edge so that neither branch loses precision (far tails, tiny or huge scales)::

        |t| >= 1/2:  log p = log(1/2) - (|t| - 1/2) / b + log(1 - exp(-1/b))
        |t| <  1/2:  log p = log(1 - (exp(-(1/2 - |t|) / b) + exp(-(1/2 + |t|) / b)) / 2)
    """
    a = t.abs()
    b = scale.expand_as(t)
    outer = math.log(0.5) - (a - 0.5).clamp(min=0) / b + torch.log(-torch.expm1(-1.0 / b))
    inner_a = a.clamp(max=0.5)
    inner = torch.log1p(-0.5 * (torch.exp(-(0.5 - inner_a) / b) + torch.exp(-(0.5 + inner_a) / b)))
    log_p = torch.where(a >= 0.5, outer, inner)
    return -_flat(log_p).sum(dim=1) / math.log(2.0)
