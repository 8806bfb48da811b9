"""AdamW for the training loop: torch.optim.AdamW's update and state format, without torch.optim's machinery.

The update is Adam with decoupled weight decay (Kingma and Ba 2015; Loshchilov and Hutter 2019), for each
parameter ``p`` with gradient ``g`` at step ``t``::

    p   <- p * (1 - lr * weight_decay)
    m   <- beta1 * m + (1 - beta1) * g
    v   <- beta2 * v + (1 - beta2) * g**2
    p   <- p - lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)

computed by the same fused kernel ``torch.optim.AdamW(fused=True)`` runs (a ``foreach`` version of the same
update where a device has no fused kernel). The state dict has torch's layout (``state`` keyed by parameter
index with ``step``, ``exp_avg`` and ``exp_avg_sq``; ``param_groups`` listing indices), so checkpoints are
interchangeable with torch's optimizer.

Why not torch.optim.AdamW itself: every method of ``torch.optim.Optimizer`` is wrapped to be skipped by
torch.compile, and the first call of one imports ``torch._dynamo`` (0.8 s on a 2-core machine, a tenth of
a one-epoch ``aekit train`` on MNIST); each step also passes through hook and profiler wrappers. The loop
compiles nothing, so it pays for none of that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import torch
from torch import Tensor

# torch's fused AdamW kernel (CUDA since torch 2.0, CPU since 2.4); without it, the foreach version below.
_FUSED = getattr(torch, "_fused_adamw_", None)


class AdamW:
    """Adam with decoupled weight decay over parameter groups in torch's format.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters, or groups: dicts with ``params`` and optionally any of ``lr``, ``betas``, ``eps``,
        ``weight_decay`` (and other keys, such as a schedule's ``initial_lr``, kept as they are).
    lr : float or 0-d Tensor
        Step size; a tensor on the parameters' device for a step captured in a CUDA graph, which
        reads the value when replayed (change it in place with ``fill_``).
    betas : (float, float)
        Decay rates of the first and second moment estimates.
    eps : float
        Added to the denominator's square root.
    weight_decay : float
        Decoupled decay: each step multiplies the parameters by ``1 - lr * weight_decay``.

    Attributes
    ----------
    param_groups : list of dict
        The groups, each with every key above; the training loop's schedule sets ``lr`` per epoch.
    state : dict of Tensor to dict
        Per parameter, after its first step: ``step`` (0-d float32 on the parameter's device),
        ``exp_avg`` and ``exp_avg_sq``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        given: list[Any] = list(params)
        if not given:
            raise ValueError("AdamW got an empty parameter list; pass the parameters to train")
        groups: list[dict[str, Any]] = given if isinstance(given[0], dict) else [{"params": given}]
        self.defaults: dict[str, Any] = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Tensor]] = {}
        seen: set[int] = set()
        for g in groups:
            group = {**self.defaults, **g, "params": list(g["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.is_leaf:
                    raise TypeError(f"AdamW optimizes leaf tensors; got {type(p).__name__}")
                if id(p) in seen:
                    raise ValueError("a parameter appears in more than one group; put each in exactly one")
                seen.add(id(p))
            self.param_groups.append(group)
        self._fused_ok: dict[tuple[torch.device, torch.dtype], bool] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) every parameter's gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("AdamW does not take sparse gradients")
            for p in params:
                if p not in self.state:
                    self.state[p] = {
                        "step": torch.zeros((), dtype=torch.float32, device=p.device),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                    }
            # The fused kernel takes tensors of one device and dtype per call.
            buckets: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
            for p in params:
                buckets.setdefault((p.device, p.dtype), []).append(p)
            for key, ps in buckets.items():
                self._update(key, ps, group)

    def _update(self, key: tuple[torch.device, torch.dtype], params: list[Tensor], group: Mapping[str, Any]) -> None:
        grads = [cast(Tensor, p.grad) for p in params]  # step() passes only parameters with a gradient
        sts = [self.state[p] for p in params]
        exp_avgs, exp_avg_sqs, steps = [s["exp_avg"] for s in sts], [s["exp_avg_sq"] for s in sts], [s["step"] for s in sts]
        beta1, beta2 = (float(b) for b in group["betas"])
        lr, eps, wd = group["lr"], float(group["eps"]), float(group["weight_decay"])
        torch._foreach_add_(steps, 1)
        if _FUSED is not None and self._fused_ok.get(key, True):
            try:
                _FUSED(
                    params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr, beta1=beta1, beta2=beta2,
                    weight_decay=wd, eps=eps, maximize=False, grad_scale=None, found_inf=None,
                )
                self._fused_ok[key] = True
                return
            except (RuntimeError, NotImplementedError):
                if key in self._fused_ok:  # the kernel ran before for these tensors: a real failure
                    raise
                self._fused_ok[key] = False  # no fused kernel for this device or dtype
        _foreach_adamw(params, grads, exp_avgs, exp_avg_sqs, steps, lr, beta1, beta2, eps, wd)

    def state_dict(self) -> dict[str, Any]:
        """torch's layout: ``state`` by parameter index, ``param_groups`` with ``params`` as indices."""
        # Each parameter is in exactly one group (the constructor checks), so its index is its place in order.
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": list(range(start, start + n))})
            start += n
        params = [p for g in self.param_groups for p in g["params"]]
        state = {i: dict(self.state[p]) for i, p in enumerate(params) if p in self.state}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (this class's or ``torch.optim.AdamW``'s) onto the same parameters.

        Moments are copied to each parameter's device and dtype, step counts to float32 on its device.
        """
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"the state has {len(groups)} parameter groups; this optimizer has {len(self.param_groups)}")
        for saved, own in zip(groups, self.param_groups):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(
                    f"a saved parameter group has {len(saved['params'])} parameters; this optimizer's has {len(own['params'])}"
                )
        params = [p for g in self.param_groups for p in g["params"]]
        by_index = dict(zip((i for g in groups for i in g["params"]), params))
        state: dict[Tensor, dict[str, Tensor]] = {}
        for i, st in state_dict["state"].items():
            p = by_index[int(i)]
            state[p] = {
                # Copies: the loaded state must not share buffers with the optimizer it came from.
                k: (torch.as_tensor(v).to(device=p.device, dtype=torch.float32, copy=True).reshape(())
                    if k == "step" else v.to(device=p.device, dtype=p.dtype, copy=True))
                for k, v in st.items()
            }
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = v
        self.state = state


def _foreach_adamw(
    params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], steps: list[Tensor],
    lr: float | Tensor, beta1: float, beta2: float, eps: float, weight_decay: float,
) -> None:
    """The fused kernel's update with foreach operations (steps already incremented)."""
    lr_f = float(lr)
    torch._foreach_mul_(params, 1 - lr_f * weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    ts = [float(s) for s in steps]
    step_sizes = [-lr_f / (1 - beta1**t) for t in ts]
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [(1 - beta2**t) ** 0.5 for t in ts])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)
