"""The one training loop every gradient-trained family uses.

Nothing in this file knows about any family. A model brings ``forward(x) -> AEOutput`` and
``loss(x, out) -> LossOutput`` (``loss(x, out, y)`` when it sets ``uses_labels``) and, if it needs one,
an ``after_step()`` hook (e.g. to renormalize dictionary atoms). Corruption for denoising is passed
in as a callable applied to each batch afresh.

Speed: the data set lives on the training device as one tensor and batches are drawn by indexing
(no DataLoader, no per-batch Python collation); Adam is the fused implementation where the
PyTorch build has it; on CUDA the whole step (forward, backward, optimizer) is captured once as a
CUDA graph and replayed.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.devices import resolve_device
from aekit.core.outputs import LossOutput
from aekit.core.params import Interval, check_value, field_types
from aekit.engine.rundir import write_history_csv


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the model holds the last good weights."""


@dataclass
class TrainConfig:
    """Settings of the training loop; saved in every run directory."""

    # Most families converge on digits and MNIST well before 50 epochs; early stopping ends them sooner.
    max_epochs: Annotated[int, Interval(1)] = 50
    batch_size: Annotated[int, Interval(1)] = 128  # the common default of the literature; fast on CPU and GPU alike
    learning_rate: Annotated[float, Interval(0, closed="right")] = 1e-3  # Adam's default, stable for every family here
    weight_decay: Annotated[float, Interval(0)] = 0.0  # decoupled (AdamW); 0 gives plain Adam
    # "cosine" decays the rate to 0 over max_epochs; "constant" keeps it, which suits early stopping
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # Held out for early stopping; 0 turns validation (and early stopping) off
    validation_fraction: Annotated[float, Interval(0, 1, closed="left")] = 0.1
    patience: Annotated[int, Interval(1)] | None = 10  # epochs without validation improvement before stopping; None: never
    device: str = "auto"  # "auto" takes CUDA when available, else the CPU; or "cpu", "cuda", "cuda:N"
    # Seed of initialization, shuffling and corruption; None draws a fresh one at each fit
    random_state: int | np.random.RandomState | None = None
    verbose: Annotated[int, Interval(0)] = 1  # 0: silent; 1: a progress bar on a terminal
    cuda_graph: bool = True  # on CUDA, capture the whole step as one CUDA graph (several times faster)

    def validate(self) -> None:
        """Check every field against its declared type, and the device."""
        for name, tp in field_types(TrainConfig).items():
            check_value(name, getattr(self, name), tp)
        resolve_device(self.device)


# ----------------------------------------------------------------------------------------- callbacks


class Callback:
    """Hooks called by :func:`fit_module`; ``state`` holds epoch, history, module and the stop flag."""

    def on_train_begin(self, state: dict[str, Any]) -> None: ...

    def on_epoch_end(self, state: dict[str, Any]) -> None: ...

    def on_train_end(self, state: dict[str, Any]) -> None: ...


class CSVLogger(Callback):
    """Rewrites ``history.csv`` after every epoch (atomically), so a killed run keeps its history."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_epoch_end(self, state: dict[str, Any]) -> None:
        write_history_csv(self.path, state["history"])


class EarlyStopping(Callback):
    """Stops when the validation loss has not improved for ``patience`` epochs; keeps the best weights."""

    def __init__(self, patience: int | None, min_delta: float = 0.0) -> None:
        self.patience, self.min_delta = patience, min_delta

    def on_epoch_end(self, state: dict[str, Any]) -> None:
        val = state["history"][-1].get("val_loss")
        if val is None:
            return
        if val < state["best_val"] - self.min_delta:
            state["best_val"], state["best_epoch"], state["bad_epochs"] = val, state["epoch"], 0
            state["best_state"] = _snapshot(state["module"])
        else:
            state["bad_epochs"] += 1
            if self.patience is not None and state["bad_epochs"] >= self.patience:
                state["stop"] = True


class Checkpointer(Callback):
    """Writes model, optimizer, RNG and loop state after every epoch, atomically, for ``--resume``."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)

    def on_epoch_end(self, state: dict[str, Any]) -> None:
        from aekit.engine.checkpoint import save_checkpoint

        save_checkpoint(self.dir, state)


class ProgressBar(Callback):
    """A tqdm bar with loss and samples/s; silent unless stderr is a terminal."""

    def __init__(self, total_steps: int, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total_steps
        self.bar: Any = None

    def on_train_begin(self, state: dict[str, Any]) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=state["step"], unit="step", dynamic_ncols=True, leave=False)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def on_epoch_end(self, state: dict[str, Any]) -> None:
        if self.bar is not None:
            row = state["history"][-1]
            post = {"epoch": row["epoch"], "loss": f"{row['loss']:.4g}", "samples/s": f"{row['samples_per_s']:.0f}"}
            if "val_loss" in row:
                post["val"] = f"{row['val_loss']:.4g}"
            self.bar.set_postfix(post)

    def on_train_end(self, state: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------- helpers


def _snapshot(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def lr_at(config: TrainConfig, epoch: int) -> float:
    if config.lr_schedule == "cosine":
        return 0.5 * config.learning_rate * (1 + math.cos(math.pi * epoch / config.max_epochs))
    return config.learning_rate


def _make_optimizer(params: list[nn.Parameter], config: TrainConfig, device: torch.device, capturable: bool) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": config.learning_rate, "weight_decay": config.weight_decay}
    if capturable:
        kwargs.update(capturable=True, lr=torch.tensor(config.learning_rate, device=device))
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, foreach=True, **kwargs)


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def _divergence_message(epoch: int, lo_terms: dict[str, float], config: TrainConfig, where: str) -> str:
    terms = ", ".join(f"{k}={v:.4g}" for k, v in lo_terms.items())
    return (
        f"training stopped at epoch {epoch}: the loss became NaN or infinite ({terms}). The model holds the last "
        f"good weights{where}. Probable causes: a learning rate too high for this model "
        f"(learning_rate={config.learning_rate:g}; try {config.learning_rate / 10:g}), unscaled inputs with large "
        "values (use scaling='standard'), or a penalty weight so large that it dominates the reconstruction."
    )


# -------------------------------------------------------------------------------------------- the loop


def fit_module(
    module: nn.Module,
    X: np.ndarray,
    y: np.ndarray | None = None,
    config: TrainConfig | None = None,
    corruption: Callable[[Tensor], Tensor] | None = None,
    callbacks: Sequence[Callback] = (),
    *,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> list[dict[str, float]]:
    """Train ``module`` on ``X`` (already scaled) with Adam; return the per-epoch history.

    Parameters
    ----------
    module : nn.Module
        Has ``forward(x) -> AEOutput`` and ``loss(x, out) -> LossOutput``.
    X : ndarray, float32, (N, *sample_shape)
    y : ndarray of int64, (N,), optional
        Labels, passed to ``module.loss`` when the module sets ``uses_labels``; -1 marks unlabelled.
    config : TrainConfig
    corruption : callable, optional
        Applied to every training batch afresh; the loss compares the output with the clean batch.
    callbacks : sequence of Callback
        Extra callbacks, run after the built-in ones.
    seed : int
        Seeds the validation split, the batch order and the global torch RNG (corruption, dropout).
    checkpoint_dir : path, optional
        Where ``checkpoint.safetensors`` and ``history.csv`` are written after every epoch.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir``.
    """
    config = config or TrainConfig()
    config.validate()
    device = resolve_device(config.device)
    module.to(device)
    uses_labels = bool(getattr(module, "uses_labels", False))
    after_step = getattr(module, "after_step", None)

    n = X.shape[0]
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    # Validation never takes every sample: at least one is left to train on.
    n_val = min(int(round(n * config.validation_fraction)), n - 1) if n >= 20 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    n_train = train_idx.numel()
    bs = min(config.batch_size, n_train)

    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device) if (y is not None and uses_labels) else None
    train_idx_d, val_idx_d = train_idx.to(device), val_idx.to(device)

    params = [p for p in module.parameters() if p.requires_grad]
    use_graph = device.type == "cuda" and config.cuda_graph and not after_step
    opt = _make_optimizer(params, config, device, capturable=use_graph)

    state: dict[str, Any] = {
        "module": module, "optimizer": opt, "generator": gen, "config": config, "history": [], "epoch": 0,
        "step": 0, "best_val": math.inf, "best_epoch": -1, "bad_epochs": 0, "best_state": None, "stop": False,
    }
    if resume:
        from aekit.engine.checkpoint import load_checkpoint

        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        load_checkpoint(Path(checkpoint_dir), state)
        if len(state["history"]) >= config.max_epochs or state["stop"]:
            state["stop"] = True

    n_batches = n_train // bs if use_graph else math.ceil(n_train / bs)
    progress = ProgressBar(config.max_epochs * n_batches, config.verbose > 0)
    cbs: list[Callback] = [progress, EarlyStopping(config.patience)]
    if checkpoint_dir is not None:
        cbs.append(Checkpointer(checkpoint_dir))
        cbs.append(CSVLogger(Path(checkpoint_dir) / "history.csv"))
    cbs += list(callbacks)

    def compute_loss(idx: Tensor) -> LossOutput:
        xb = Xt[idx]  # (B, *sample_shape), drawn on the device
        out = module(corruption(xb) if corruption is not None else xb)
        # nn.Module types unknown attributes as Tensor | Module; ``loss`` is the model's method.
        return module.loss(xb, out, yt[idx]) if (uses_labels and yt is not None) else module.loss(xb, out)  # type: ignore[operator]

    # Running sums of the loss and its named terms, weighted by batch size; read once per epoch so the
    # device never waits for the host inside an epoch.
    acc: dict[str, Tensor] = {}

    def accumulate(lo: LossOutput, w: float) -> None:
        for k, v in {"loss": lo.total, **lo.terms}.items():
            if k not in acc:
                acc[k] = torch.zeros((), device=device)
            acc[k] += v.detach() * w

    def eager_step(idx: Tensor) -> None:
        lo = compute_loss(idx)
        opt.zero_grad(set_to_none=True)
        lo.total.backward()
        opt.step()
        if after_step is not None:
            with torch.no_grad():
                after_step()
        accumulate(lo, float(idx.numel()))

    step_fn: Callable[[Tensor], None] = eager_step
    if use_graph and not state["stop"]:
        graph_step = _capture_cuda_graph(module, opt, compute_loss, accumulate, train_idx_d[:bs], acc)
        if graph_step is not None:
            step_fn = graph_step

    good_state = _snapshot(module)
    for cb in cbs:
        cb.on_train_begin(state)
    try:
        while not state["stop"] and state["epoch"] < config.max_epochs:
            epoch = state["epoch"]
            _set_lr(opt, lr_at(config, epoch))
            module.train()
            t0 = time.perf_counter()
            perm = train_idx_d[torch.randperm(n_train, generator=gen).to(device)]
            for v in acc.values():
                v.zero_()
            for b in range(n_batches):
                step_fn(perm[b * bs : (b + 1) * bs])
                if b % 16 == 15 or b == n_batches - 1:
                    progress.advance(16 if b % 16 == 15 else (b % 16) + 1)
            state["step"] += n_batches
            seen = float(min(n_batches * bs, n_train))
            row: dict[str, float] = {"epoch": epoch + 1, "lr": lr_at(config, epoch)}
            row.update({k: float(v) / seen for k, v in acc.items()})
            if not math.isfinite(row["loss"]):
                module.load_state_dict(good_state)
                where = f" of epoch {epoch} (also in {checkpoint_dir})" if checkpoint_dir else f" of epoch {epoch}"
                terms = {k: v for k, v in row.items() if k not in ("epoch", "lr", "loss")}
                raise TrainingDivergedError(_divergence_message(epoch + 1, terms, config, where))
            if n_val:
                row["val_loss"] = evaluate_loss(module, Xt, val_idx_d, yt, corruption, uses_labels)
            dt = time.perf_counter() - t0
            row["seconds"] = dt
            row["samples_per_s"] = seen / dt
            state["history"].append(row)
            state["epoch"] = epoch + 1
            good_state = _snapshot(module)
            for cb in cbs:
                cb.on_epoch_end(state)
    finally:
        for cb in cbs:
            cb.on_train_end(state)
    if state["best_state"] is not None and n_val:
        module.load_state_dict(state["best_state"])
    module.eval()
    return state["history"]


@torch.no_grad()
def evaluate_loss(
    module: nn.Module,
    Xt: Tensor,
    idx: Tensor,
    yt: Tensor | None = None,
    corruption: Callable[[Tensor], Tensor] | None = None,
    uses_labels: bool = False,
    batch_size: int = 1024,
) -> float:
    """Mean training objective over ``Xt[idx]`` in eval mode."""
    was_training = module.training
    module.eval()
    total, count = 0.0, 0
    for i in range(0, idx.numel(), batch_size):
        j = idx[i : i + batch_size]
        xb = Xt[j]
        out = module(corruption(xb) if corruption is not None else xb)
        lo = module.loss(xb, out, yt[j] if yt is not None else None) if uses_labels else module.loss(xb, out)  # type: ignore[operator]
        total += float(lo.total) * j.numel()
        count += j.numel()
    module.train(was_training)
    return total / max(count, 1)


def _capture_cuda_graph(
    module: nn.Module,
    opt: torch.optim.Optimizer,
    compute_loss: Callable[[Tensor], LossOutput],
    accumulate: Callable[[LossOutput, float], None],
    first_idx: Tensor,
    acc: dict[str, Tensor],
) -> Callable[[Tensor], None] | None:
    """Capture gather + forward + backward + optimizer step + loss bookkeeping as one CUDA graph.

    Returns a step function taking the batch's indices, or None if capture fails (then the loop runs
    eagerly). The warm-up steps that capture needs are undone: parameters and optimizer state are
    restored (a fresh optimizer's to zero, a resumed one's to the loaded moments and step counts), so
    the graph path starts from the same point as the eager path. Only full batches
    are captured, so the last partial batch of an epoch is dropped.
    """
    static_idx = first_idx.clone()
    bs = float(static_idx.numel())
    saved_params = _snapshot(module)
    # A resumed run arrives with Adam's moments and step counts loaded: they must survive the warm-up.
    saved_opt = {
        p: {k: v.detach().clone() for k, v in st.items() if isinstance(v, Tensor)} for p, st in opt.state.items()
    }
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                lo = compute_loss(static_idx)
                lo.total.backward()
                opt.step()
                accumulate(lo, bs)  # allocates the accumulators outside the graph's private pool
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            lo = compute_loss(static_idx)
            lo.total.backward()
            opt.step()
            accumulate(lo, bs)
    except Exception as exc:  # capture is an optimization: fall back to eager, loudly
        warnings.warn(f"CUDA graph capture failed ({exc}); training eagerly instead", RuntimeWarning, stacklevel=3)
        module.load_state_dict(saved_params)
        opt.state.clear()
        for p, st in saved_opt.items():
            opt.state[p] = st
        acc.clear()
        return None
    with torch.no_grad():
        for k, v in module.state_dict().items():
            v.copy_(saved_params[k])
        for p, st in opt.state.items():
            before = saved_opt.get(p, {})
            for k, v in st.items():
                if isinstance(v, Tensor):
                    if k in before:
                        v.copy_(before[k])
                    else:
                        v.zero_()

    def step(idx: Tensor) -> None:
        if idx.numel() != static_idx.numel():
            raise AssertionError("the CUDA graph step takes full batches only")
        static_idx.copy_(idx)
        graph.replay()

    return step


def config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)
