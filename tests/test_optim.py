"""The training loop's AdamW against torch.optim.AdamW: the same update (fused and foreach), the same state
layout both ways, refusals, and a training process that never imports torch._dynamo."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import pytest
import torch

from aekit.engine.optim import AdamW

GROUPS = ({"lr": 0.01}, {"lr": 0.003, "weight_decay": 0.1})


def _params(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 3, generator=g, dtype=dtype).requires_grad_(), torch.randn(7, generator=g, dtype=dtype).requires_grad_()]


def _grouped(ps: list[torch.Tensor]) -> list[dict]:
    return [{"params": [ps[0]], **GROUPS[0]}, {"params": [ps[1]], **GROUPS[1]}]


def _run(opts_and_params: list[tuple[object, list[torch.Tensor]]], steps: int, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in opts_and_params[0][1]]
        for opt, ps in opts_and_params:
            opt.zero_grad()  # type: ignore[attr-defined]
            for p, gr in zip(ps, grads):
                p.grad = gr.clone()
            opt.step()  # type: ignore[attr-defined]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_update_equals_torch_adamw_fused(dtype: torch.dtype) -> None:
    ours, ref = _params(dtype), _params(dtype)
    a = AdamW(_grouped(ours), lr=1e-3, weight_decay=0.01)
    b = torch.optim.AdamW(_grouped(ref), lr=1e-3, weight_decay=0.01, fused=True)
    _run([(a, ours), (b, ref)], 25)
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert not all(torch.equal(p, q) for p, q in zip(ours, _params(dtype)))  # the parameters did move


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_foreach_update_equals_torch_adamw_foreach(dtype: torch.dtype) -> None:
    ours, ref = _params(dtype), _params(dtype)
    a = AdamW(_grouped(ours), lr=1e-3, weight_decay=0.01)
    a._fused_ok = {(torch.device("cpu"), dtype): False}  # as on a device without the fused kernel
    b = torch.optim.AdamW(_grouped(ref), lr=1e-3, weight_decay=0.01, foreach=True)
    _run([(a, ours), (b, ref)], 25)
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_state_dict_has_torch_s_layout_and_loads_both_ways() -> None:
    ours, ref = _params(torch.float32), _params(torch.float32)
    a = AdamW(_grouped(ours), lr=1e-3, weight_decay=0.01)
    b = torch.optim.AdamW(_grouped(ref), lr=1e-3, weight_decay=0.01, fused=True)
    _run([(a, ours), (b, ref)], 7)
    sa, sb = a.state_dict(), b.state_dict()
    assert [g["params"] for g in sa["param_groups"]] == [g["params"] for g in sb["param_groups"]] == [[0], [1]]
    assert set(sa["state"]) == set(sb["state"]) == {0, 1}
    for i in (0, 1):
        assert set(sa["state"][i]) == set(sb["state"][i]) == {"step", "exp_avg", "exp_avg_sq"}
        assert float(sa["state"][i]["step"]) == float(sb["state"][i]["step"]) == 7
    for g_a, g_b in zip(sa["param_groups"], sb["param_groups"]):
        assert (g_a["lr"], g_a["weight_decay"], tuple(g_a["betas"]), g_a["eps"]) == (
            g_b["lr"], g_b["weight_decay"], tuple(g_b["betas"]), g_b["eps"])

    # torch's state into ours, ours into torch's: both then take the same next steps as the originals.
    ours2 = [p.detach().clone().requires_grad_() for p in ref]
    ref2 = [p.detach().clone().requires_grad_() for p in ours]
    a2 = AdamW(_grouped(ours2), lr=1e-3, weight_decay=0.01)
    a2.load_state_dict(b.state_dict())
    b2 = torch.optim.AdamW(_grouped(ref2), lr=1e-3, weight_decay=0.01, fused=True)
    b2.load_state_dict(copy.deepcopy(a.state_dict()))  # torch's loading keeps references to the given tensors
    _run([(a2, ours2), (b, ref), (b2, ref2), (a, ours)], 5, seed=2)
    for p, q in zip(ours2, ref):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    for p, q in zip(ref2, ours):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_a_group_with_lr_zero_stays_and_parameters_without_gradient_are_skipped() -> None:
    ps = _params(torch.float32)
    before = [p.detach().clone() for p in ps]
    opt = AdamW([{"params": [ps[0]], "lr": 0.0}, {"params": [ps[1]]}], lr=0.1, weight_decay=0.5)
    ps[0].grad = torch.ones_like(ps[0])
    opt.step()
    assert torch.equal(ps[0], before[0])
    assert torch.equal(ps[1], before[1]) and ps[1] not in opt.state  # no gradient: no state, no decay


def test_zero_grad_keeps_or_drops_the_gradient_tensors() -> None:
    ps = _params(torch.float32)
    opt = AdamW(ps)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in ps)
    opt.zero_grad()
    assert all(p.grad is None for p in ps)


@pytest.mark.parametrize("make, match", [
    (lambda ps: AdamW([]), "empty parameter list"),
    (lambda ps: AdamW([{"params": ps}, {"params": ps[:1]}]), "more than one group"),
    (lambda ps: AdamW([ps[0] * 2]), "leaf tensors"),
])
def test_bad_parameters_are_refused(make, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        make(_params(torch.float32))


def test_a_state_of_another_layout_is_refused() -> None:
    ps = _params(torch.float32)
    opt = AdamW(_grouped(ps))
    with pytest.raises(ValueError, match="state has 1 parameter groups; this optimizer has 2"):
        opt.load_state_dict({"state": {}, "param_groups": [{"params": [0, 1], "lr": 1e-3}]})
    with pytest.raises(ValueError, match="has 2 parameters; this optimizer's has 1"):
        opt.load_state_dict({"state": {}, "param_groups": [{"params": [0, 1]}, {"params": []}]})


def test_training_never_imports_torch_dynamo() -> None:
    """torch.optim's optimizers import torch._dynamo (0.8 s) on their first call; the loop's does not."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from aekit import Autoencoder
        X = np.random.default_rng(0).random((64, 10), dtype=np.float32)
        Autoencoder(hidden_dims=(8,), latent_dim=2, max_epochs=2, batch_size=16).fit(X)
        print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_a_tensor_learning_rate_changed_in_place_is_read_at_each_step() -> None:
    """The CUDA-graph path's form (lr a 0-d tensor the schedule fills in place), checked on the CPU kernel."""
    ours, ref = _params(torch.float32), _params(torch.float32)
    a = AdamW([{"params": ours, "lr": torch.tensor(0.01)}])
    b = torch.optim.AdamW([{"params": ref, "lr": torch.tensor(0.01)}], fused=True)
    _run([(a, ours), (b, ref)], 3)
    a.param_groups[0]["lr"].fill_(0.002)
    b.param_groups[0]["lr"].fill_(0.002)
    _run([(a, ours), (b, ref)], 3, seed=2)
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
