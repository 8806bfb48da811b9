"""The one training loop every gradient-trained family uses.

Nothing in this file knows about any family. A model brings ``forward(x) -> AEOutput`` and
``loss(x, out) -> LossOutput`` (``loss(x, out, y)`` when it sets ``uses_labels``; ``forward(x, y)`` too when
it also sets ``conditions_on_labels``) and, if it needs them,
an ``after_step()`` hook (e.g. to renormalize dictionary atoms), ``param_groups() -> list[dict]``
(optimizer parameter groups in torch's format, each with its own ``lr`` and ``weight_decay``) and
``starts_at_solution = True`` when its initial weights are already a solution (PCA's) that early stopping
should keep unless training improves on it.
Corruption for denoising is passed in as a callable applied to each batch afresh; anything that
changes during training (a loss weight annealed by epoch or step) is a :class:`Callback`.

Speed: the data set lives on the training device as one tensor and batches are drawn by indexing
(no DataLoader, no per-batch Python collation); Adam runs torch's fused kernel, called directly
(:class:`aekit.engine.optim.AdamW`); on CUDA the whole step (forward, backward, optimizer) is captured once as a
CUDA graph and replayed.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from aekit.core.devices import resolve_device
from aekit.core.outputs import LossOutput
from aekit.core.params import Interval, check_value, field_types
from aekit.engine.checkpoint import load_checkpoint, save_checkpoint
from aekit.engine.optim import AdamW
from aekit.engine.rundir import write_history_csv
from aekit.engine.state import TrainState


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the model holds the last good weights, ``history`` their epochs' rows."""

    history: list[dict[str, float]] = []


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
    # On CUDA, the training steps' matrix products and convolutions in TensorFloat-32 (fp32 range, 10-bit
    # mantissa) on tensor cores: on one H100 the hinton preset's epoch took 0.17 s against 0.25 s at batch
    # 128 (benchmarks/RESULTS.md). Only while fitting: predictions and likelihoods stay in full precision.
    # False trains in full fp32 throughout. No effect on the CPU.
    tf32: bool = True
    # On a CPU with bf16 matrix units (Intel AMX or AVX512-BF16), the training steps' matrix products and
    # convolutions round their fp32 inputs to bf16 (8-bit mantissa) and accumulate in fp32 (oneDNN's fp32 math
    # mode); weights, activations, gradients and Adam stay fp32. The hinton preset trained 1.7x faster with it
    # on a Xeon with AMX, at the same test error (benchmarks/RESULTS.md). Only while fitting: predictions stay
    # in full precision. The history's bf16 column says whether it applied. No effect on other CPUs or on CUDA.
    cpu_bf16: bool = False
    # Why not torch's default: on 2 cores beside a busy process, the denoising autoencoder on digits
    # trained in 44 s with it against 1.2 s with one thread; threads pay only for large matrices on free
    # cores, and a resumed run keeps the count it recorded (float sums may depend on it).
    threads: Annotated[int, Interval(0)] = 0  # CPU threads while training; 0: chosen from the work (1 for a small model or busy cores, at most 4 and at most OMP_NUM_THREADS)
    # "dynamic" redraws every training and validation batch as Bernoulli(x) at each use (data in [0, 1]), the
    # binarization of the VAE literature's MNIST; "none" trains on the data as given.
    binarize: Literal["none", "dynamic"] = "none"

    def validate(self) -> None:
        """Check every field against its declared type, and the device."""
        for name, tp in field_types(TrainConfig).items():
            check_value(name, getattr(self, name), tp)
        resolve_device(self.device)


def binarize_dynamic(x: Tensor) -> Tensor:
    """Each value of ``x`` (in [0, 1]) redrawn as a Bernoulli of itself: (B, ...) -> (B, ...) of 0s and 1s.

    Drawn from torch's default generator of ``x``'s device, so it runs inside a captured CUDA graph and
    is resumed exactly from a checkpoint's random state.
    """
    return torch.bernoulli(x)


def _batch_transform(config: TrainConfig) -> Callable[[Tensor], Tensor] | None:
    """The transform every batch drawn from the data goes through before the model sees it, if any."""
    return binarize_dynamic if config.binarize == "dynamic" else None


def check_binarizable(binarize: str, lo: float, hi: float) -> None:
    """Raise a ValueError when ``binarize`` cannot apply to (scaled) data ranging over [lo, hi]."""
    if binarize == "dynamic":
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"binarize='dynamic' draws each value as a Bernoulli of itself, so it needs data in [0, 1], but the "
                f"scaled data range over [{lo:.4g}, {hi:.4g}]; use scaling='minmax', or binarize='none'"
            )


def _forward(module: nn.Module, x: Tensor, y: Tensor | None) -> Any:
    """``module(x)``, or ``module(x, y)`` for a module that sets ``conditions_on_labels`` (a conditional model)."""
    return module(x, y) if (y is not None and getattr(module, "conditions_on_labels", False)) else module(x)


def _batch_loss(
    module: nn.Module, xb: Tensor, y: Tensor | None, corruption: Callable[[Tensor], Tensor] | None
) -> LossOutput:
    """The objective of one batch: the forward pass on the corrupted batch, the loss against the clean one,
    with the batch's labels when there are any (only a module that sets ``uses_labels`` is given them)."""
    out = _forward(module, corruption(xb) if corruption is not None else xb, y)
    # nn.Module types unknown attributes as Tensor | Module; ``loss`` is the model's method.
    return module.loss(xb, out, y) if y is not None else module.loss(xb, out)  # type: ignore[operator,no-any-return]


# ----------------------------------------------------------------------------------------- callbacks


class Callback:
    """Hooks called by :func:`fit_module` with the loop's :class:`~aekit.engine.state.TrainState`.

    ``on_train_begin`` runs once (after a resumed run's checkpoint is loaded); then, per epoch,
    ``on_epoch_begin`` (the epoch's learning rate is set), ``on_step_end`` after every optimizer step
    (``state.step`` already counts it) and ``on_epoch_end`` (the epoch's history row is appended);
    ``on_train_end`` runs once, also when training fails. The progress bar and early stopping run
    first, then the caller's callbacks in the order given, then the checkpoint and ``history.csv``
    writers, so that what is saved includes what every callback did in the epoch. A family's callback
    should not depend on the order of the others.

    A loss weight that changes during training (a KL weight warmed up by epoch or by step) is held by
    the module as a tensor buffer (``self.register_buffer("beta", torch.tensor(0.0))``) and changed in
    place (``state.module.beta.fill_(w)``) from ``on_epoch_begin`` or ``on_step_end``. In place is
    required: on CUDA the loop captures the step once as a CUDA graph and replays it, so a Python float
    read by ``loss`` is frozen at its value at capture, and a tensor assigned anew is never read by the
    graph, while an in-place change of the captured buffer is read by every replay (the eager path
    reads it the same way). Being a buffer, the weight is saved in checkpoints, so a resumed run
    continues with the weight it had.
    """

    def on_train_begin(self, state: TrainState) -> None: ...

    def on_epoch_begin(self, state: TrainState) -> None: ...

    def on_step_end(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_train_end(self, state: TrainState) -> None: ...


class CSVLogger(Callback):
    """Rewrites ``history.csv`` after every epoch (atomically), so a killed run keeps its history.

    It is written after the checkpoint, so a kill in between leaves it one row short; a resumed run
    rewrites it from the checkpoint's history, which is the truth.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_train_begin(self, state: TrainState) -> None:
        if state.history:
            write_history_csv(self.path, state.history)

    def on_epoch_end(self, state: TrainState) -> None:
        write_history_csv(self.path, state.history)


class EarlyStopping(Callback):
    """Stops when the validation loss has not improved for ``patience`` epochs; keeps the best weights."""

    def __init__(self, patience: int | None) -> None:
        self.patience = patience

    def on_epoch_end(self, state: TrainState) -> None:
        val = state.history[-1].get("val_loss")
        if val is None:
            return
        if val < state.best_val:
            state.best_val, state.best_epoch, state.bad_epochs = val, state.epoch, 0
            state.best_state = _snapshot(state.module)
        else:
            state.bad_epochs += 1
            if self.patience is not None and state.bad_epochs >= self.patience:
                state.stop = True


class Checkpointer(Callback):
    """Writes model, optimizer, RNG and loop state after every epoch, as one atomic file, for ``--resume``."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)

    def on_epoch_end(self, state: TrainState) -> None:
        save_checkpoint(self.dir, state)


class ProgressBar(Callback):
    """A tqdm bar with loss and samples/s; silent unless stderr is a terminal."""

    def __init__(self, total_steps: int, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total_steps
        self.bar: Any = None

    def on_train_begin(self, state: TrainState) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=state.step, unit="step", dynamic_ncols=True, leave=False)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.bar is not None:
            row = state.history[-1]
            post = {"epoch": row["epoch"], "loss": f"{row['loss']:.4g}", "samples/s": f"{row['samples_per_s']:.0f}"}
            if "val_loss" in row:
                post["val"] = f"{row['val_loss']:.4g}"
            self.bar.set_postfix(post)

    def on_train_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------- helpers


def _snapshot(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _scheduled(base_lr: float, config: TrainConfig, epoch: int) -> float:
    if config.lr_schedule == "cosine":
        return 0.5 * base_lr * (1 + math.cos(math.pi * epoch / config.max_epochs))
    return base_lr


def validation_size(n: int, fraction: float) -> int:
    """Samples :func:`fit_module` holds out for validation from ``n``: ``round(n * fraction)``, none below 20
    samples, and never every sample (at least one is left to train on)."""
    return min(int(round(n * fraction)), n - 1) if n >= 20 else 0


def lr_at(config: TrainConfig, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based); a parameter group's own lr is scaled alike."""
    return _scheduled(config.learning_rate, config, epoch)


def _param_groups(module: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The module's ``param_groups()`` (torch's format), checked, each with its base lr as ``initial_lr``."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    declared = getattr(module, "param_groups", None)
    if not callable(declared):
        return [{"params": trainable, "initial_lr": config.learning_rate}]
    name = f"{type(module).__name__}.param_groups()"
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for i, g in enumerate(declared()):
        if not isinstance(g, dict) or "params" not in g:
            raise ValueError(f"{name}[{i}] is {g!r}; each group is a dict with 'params' and optionally 'lr' and 'weight_decay'")
        group = {**g, "params": list(g["params"])}
        lr = group.pop("lr", config.learning_rate)
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not (lr >= 0 and math.isfinite(lr)):
            raise ValueError(f"{name}[{i}] has lr {lr!r}; a group's lr must be a number >= 0 (0 freezes the group)")
        group["initial_lr"] = float(lr)
        seen |= {id(p) for p in group["params"]}
        groups.append(group)
    left_out = sum(id(p) not in seen for p in trainable)
    if left_out:
        raise ValueError(
            f"{name} leaves {left_out} trainable parameter tensor(s) out of every group; put each parameter with "
            "requires_grad in one group (a group with lr 0 freezes its parameters)"
        )
    return groups


def _make_optimizer(groups: list[dict[str, Any]], config: TrainConfig, device: torch.device, capturable: bool) -> AdamW:
    for g in groups:
        # A CUDA graph reads the learning rate from a tensor, changed in place by the schedule.
        g["lr"] = torch.tensor(g["initial_lr"], device=device) if capturable else g["initial_lr"]
    return AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)


def _set_lr(opt: AdamW, config: TrainConfig, epoch: int) -> None:
    for group in opt.param_groups:
        lr = _scheduled(group["initial_lr"], config, epoch)
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


# Forward FLOPs of one batch below which one thread trains fastest (benchmarks/bench_threads.py: the
# default digits net, 2.7e7 at batch 128, trained up to 10x slower on two threads than on one on a shared
# 2-core machine, and never clearly faster).
_SMALL_WORK_FLOPS = 1e8
_MAX_AUTO_THREADS = 4  # beyond 4, these models gain little and a shared machine loses much


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _own_running_threads() -> int:
    """Threads of this process in the running state now (Linux); at least 1, the one asking."""
    n = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            # The state follows the command name, which is in parentheses and may hold spaces.
            n += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue
    return max(n, 1)


def _busy_elsewhere() -> int:
    """Tasks running on the machine besides this one, now (Linux), else the 1-minute load average.

    A thread that finds its core taken stalls every other thread at the next synchronization: on 2
    cores beside one busy process, 2 threads trained the 784-1000-500-250-30 net 10x slower than 1.
    """
    try:
        counts = []
        for _ in range(5):  # a snapshot is noisy: the median of a few, 10 ms apart
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
            # This process's own running threads do not count: the thread asking, and the math library's
            # workers that still spin for a moment after the caller's last parallel operation.
            counts.append(running - _own_running_threads())
            time.sleep(0.01)
        return max(0, sorted(counts)[2])
    except (OSError, ValueError, IndexError):
        try:
            return int(os.getloadavg()[0])
        except (OSError, AttributeError):
            return 0


def _work_per_batch(module: nn.Module, batch_size: int) -> float:
    """Forward FLOPs of one batch as an MLP counts them: 2 x parameters x batch size.

    Read from the parameters, not from a forward pass, so choosing costs nothing and runs no model
    code. It undercounts convolutions (each weight is used at every position), so a convolutional net
    is taken for smaller than it is: one thread, the safe side on a shared machine.
    """
    return 2.0 * batch_size * sum(p.numel() for p in module.parameters())


def choose_threads(config: TrainConfig, module: nn.Module, batch_size: int, device: torch.device) -> int:
    """The CPU thread count to train with: ``config.threads`` if set (at most the cores this process may use,
    with a warning), else chosen from the work.

    One thread when the forward work of one batch (:func:`_work_per_batch`) is under
    ``_SMALL_WORK_FLOPS``, or on an accelerator, where the host only launches kernels: for small
    matrices, waking and synchronizing threads costs more than the arithmetic, and far more when
    another process holds a core. Otherwise the cores that no other task is using now, at most 4 and
    at least 1, and at most ``OMP_NUM_THREADS`` when the environment sets it (as a user, a scheduler
    or a launcher of several training processes does to share the cores out).
    """
    if config.threads > 0:
        cores = _available_cores()
        if config.threads > cores:
            # More threads than cores share them by time slices and wait on each other at every
            # synchronization: 64 threads on 2 cores trained 80 times slower than 2.
            warnings.warn(f"threads={config.threads} is more than the {cores} CPU cores this process may use; "
                          f"training with {cores}", RuntimeWarning, stacklevel=3)
            return cores
        return config.threads
    if device.type != "cpu":
        return 1
    if _work_per_batch(module, batch_size) < _SMALL_WORK_FLOPS:
        return 1
    cap = min(_MAX_AUTO_THREADS, _environment_threads() or _MAX_AUTO_THREADS)
    return max(1, min(_available_cores() - _busy_elsewhere(), cap))


def _environment_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a positive integer, or None when unset or not one."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Set torch's CPU thread count for the block; the caller's count comes back afterwards."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def cpu_bf16_available() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles or AVX512-BF16) and this torch build can
    route fp32 matrix products and convolutions to it (``torch.backends.mkldnn``'s ``fp32_precision``)."""
    mkldnn = torch.backends.mkldnn
    if not (mkldnn.is_available() and hasattr(mkldnn, "matmul") and hasattr(mkldnn.matmul, "fp32_precision")):
        return False
    cpu = torch.cpu
    probes = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(f()) for f in probes if callable(f))


@contextmanager
def _reduced_precision(device: torch.device, config: TrainConfig) -> Iterator[bool]:
    """The block's matrix products and convolutions in reduced precision where the config asks for it and the
    device has it: TensorFloat-32 on CUDA (``tf32``), bf16 inputs with fp32 sums on a CPU with bf16 units
    (``cpu_bf16``). Yields whether bf16 products apply on the CPU. The caller's settings come back afterwards."""
    if device.type == "cuda":
        before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = config.tf32
        try:
            yield False
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
        return
    if not (device.type == "cpu" and config.cpu_bf16):
        yield False
        return
    if not cpu_bf16_available():
        warnings.warn(
            f"cpu_bf16=True has no effect here: this CPU has no bf16 units (AMX or AVX512-BF16) that torch "
            f"{torch.__version__} can route fp32 products to; training in full fp32 (the history's bf16 column is 0)",
            RuntimeWarning,
            stacklevel=4,
        )
        yield False
        return
    mkldnn: Any = torch.backends.mkldnn
    backends: list[Any] = [b for b in (mkldnn.matmul, getattr(mkldnn, "conv", None)) if hasattr(b, "fp32_precision")]
    before_cpu = [b.fp32_precision for b in backends]
    for b in backends:
        b.fp32_precision = "bf16"
    try:
        yield True
    finally:
        for b, v in zip(backends, before_cpu):
            b.fp32_precision = v


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
    """Train ``module`` on ``X`` (already scaled) with AdamW; return the per-epoch history.

    Minimizes the module's ``loss`` over minibatches; with a cosine schedule the learning rate of
    epoch ``e`` (0-based) of every parameter group is ``lr_g * (1 + cos(pi * e / max_epochs)) / 2``,
    where ``lr_g`` is the group's own lr (``config.learning_rate`` unless ``module.param_groups()``
    says otherwise). torch's CPU thread count is set for the call (see ``TrainConfig.threads``) and
    restored afterwards.

    Parameters
    ----------
    module : nn.Module
        Has ``forward(x) -> AEOutput`` and ``loss(x, out) -> LossOutput``; optionally ``after_step()``
        and ``param_groups() -> list[dict]`` (torch's format: ``params`` and optionally ``lr`` and
        ``weight_decay``; every trainable parameter in exactly one group).
    X : ndarray, float32, (N, *sample_shape)
    y : ndarray of int64, (N,), optional
        Labels, passed to ``module.loss`` when the module sets ``uses_labels``; -1 marks unlabelled.
    config : TrainConfig
    corruption : callable, optional
        Applied to every training batch afresh; the loss compares the output with the clean batch.
    callbacks : sequence of Callback
        Extra callbacks (a family's loss-weight schedule, say), run after progress and early stopping
        and before the checkpoint and history writers.
    seed : int
        Seeds the validation split and the batch order.
    checkpoint_dir : path, optional
        Where ``checkpoint.safetensors`` and ``history.csv`` are written after every epoch.
    resume : bool
        Continue from the checkpoint in ``checkpoint_dir``; its history replaces ``history.csv``.

    Returns
    -------
    list of dict
        One row per epoch: ``epoch``, ``lr``, ``loss`` and the loss's named terms, ``val_loss`` (with a
        validation split), ``seconds``, ``samples_per_s`` and ``threads``.
    """
    config = config or TrainConfig()
    config.validate()
    if config.binarize != "none":
        check_binarizable(config.binarize, float(X.min()), float(X.max()))
    device = resolve_device(config.device)
    module.to(device)
    uses_labels = bool(getattr(module, "uses_labels", False))

    n = X.shape[0]
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    n_val = validation_size(n, config.validation_fraction)
    val_idx, train_idx = order[:n_val], order[n_val:]
    n_train = train_idx.numel()
    bs = min(config.batch_size, n_train)

    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device) if (y is not None and uses_labels) else None
    train_idx_d, val_idx_d = train_idx.to(device), val_idx.to(device)

    use_graph = device.type == "cuda" and config.cuda_graph
    opt = _make_optimizer(_param_groups(module, config), config, device, capturable=use_graph)
    state = TrainState(module=module, optimizer=opt, generator=gen, config=config)
    state.threads = choose_threads(config, module, bs, device)
    with _torch_threads(state.threads), _reduced_precision(device, config) as bf16:
        state.bf16 = bf16
        _train(state, Xt, yt, train_idx_d, val_idx_d, bs, corruption, callbacks, checkpoint_dir, resume, use_graph)
    return state.history


def _train(
    state: TrainState,
    Xt: Tensor,
    yt: Tensor | None,
    train_idx_d: Tensor,
    val_idx_d: Tensor,
    bs: int,
    corruption: Callable[[Tensor], Tensor] | None,
    callbacks: Sequence[Callback],
    checkpoint_dir: str | os.PathLike | None,
    resume: bool,
    use_graph: bool,
) -> None:
    module, opt, gen, config = state.module, state.optimizer, state.generator, state.config
    device = Xt.device
    uses_labels = yt is not None
    after_step = getattr(module, "after_step", None)
    n_train, n_val = train_idx_d.numel(), val_idx_d.numel()
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        chosen = state.threads
        load_checkpoint(checkpoint_dir, state)
        if config.threads > 0:
            state.threads = chosen
        elif state.threads != chosen:
            # The count recorded by the run: float sums may depend on it, and a resumed run is exact.
            torch.set_num_threads(state.threads)
        if state.epoch >= config.max_epochs:
            state.stop = True

    n_batches = n_train // bs if use_graph else math.ceil(n_train / bs)
    progress = ProgressBar(config.max_epochs * n_batches, config.verbose > 0)
    # The writers run last, so a checkpoint holds what every callback did in the epoch (a column it
    # added to the history row, a stop it asked for).
    cbs: list[Callback] = [progress, EarlyStopping(config.patience), *callbacks]
    if checkpoint_dir is not None:
        cbs.append(Checkpointer(checkpoint_dir))
        cbs.append(CSVLogger(Path(checkpoint_dir) / "history.csv"))
    # Only callbacks that use the per-step hook are called per step: the others would cost a call each.
    step_cbs = [cb for cb in cbs if type(cb).on_step_end is not Callback.on_step_end]

    transform = _batch_transform(config)

    def compute_loss(idx: Tensor) -> LossOutput:
        xb = Xt[idx]  # (B, *sample_shape), drawn on the device
        if transform is not None:
            xb = transform(xb)
        return _batch_loss(module, xb, yt[idx] if yt is not None else None, corruption)

    # Running sums of the loss and its named terms, weighted by batch size; read once per epoch so the
    # device never waits for the host inside an epoch.
    acc: dict[str, Tensor] = {}

    def accumulate(lo: LossOutput, w: float) -> None:
        # One fused multiply-add per term and step (``add_`` with ``alpha``), no temporary tensor.
        for k, v in (("loss", lo.total), *lo.terms.items()):
            a = acc.get(k)
            if a is None:
                a = acc[k] = torch.zeros((), device=device)
            a.add_(v.detach(), alpha=w)

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
    if use_graph and not state.stop:
        graph_step = _capture_cuda_graph(module, opt, compute_loss, accumulate, train_idx_d[:bs], acc, after_step)
        if graph_step is not None:
            step_fn = graph_step
            state.path = "cuda-graph"

    good_state = _snapshot(module)
    if n_val and state.epoch == 0 and getattr(module, "starts_at_solution", False):
        # A module that starts at a solution (e.g. PCA's) keeps it unless training does better on the
        # validation data: the starting weights are the first candidate of early stopping.
        state.best_val = evaluate_loss(module, Xt, val_idx_d, yt, corruption, uses_labels, transform=transform)
        state.best_epoch, state.best_state = 0, good_state
    for cb in cbs:
        cb.on_train_begin(state)
    try:
        while not state.stop and state.epoch < config.max_epochs:
            epoch = state.epoch
            _set_lr(opt, config, epoch)
            for cb in cbs:
                cb.on_epoch_begin(state)
            module.train()
            t0 = time.perf_counter()
            perm = train_idx_d[torch.randperm(n_train, generator=gen).to(device)]
            for v in acc.values():
                v.zero_()
            for b in range(n_batches):
                step_fn(perm[b * bs : (b + 1) * bs])
                state.step += 1
                for cb in step_cbs:
                    cb.on_step_end(state)
                if b % 16 == 15 or b == n_batches - 1:
                    progress.advance(16 if b % 16 == 15 else (b % 16) + 1)
            seen = float(min(n_batches * bs, n_train))
            row: dict[str, float] = {"epoch": epoch + 1, "lr": lr_at(config, epoch)}
            row.update({k: float(v) / seen for k, v in acc.items()})
            if not math.isfinite(row["loss"]):
                module.load_state_dict(good_state)
                # A checkpoint exists once an epoch has ended (epoch 0 is the starting weights, never written).
                saved = checkpoint_dir is not None and epoch > 0
                where = f" of epoch {epoch} (also in {checkpoint_dir})" if saved else f" of epoch {epoch}"
                terms = {k: v for k, v in row.items() if k not in ("epoch", "lr", "loss")}
                err = TrainingDivergedError(_divergence_message(epoch + 1, terms, config, where))
                err.history = list(state.history)  # the epochs before the bad one, which the weights are of
                raise err
            if n_val:
                row["val_loss"] = evaluate_loss(module, Xt, val_idx_d, yt, corruption, uses_labels, transform=transform)
            dt = time.perf_counter() - t0
            row["seconds"] = dt
            row["samples_per_s"] = seen / dt
            row["threads"] = state.threads
            if device.type == "cuda":
                # The run's record of how its steps ran: 1 replayed from a captured CUDA graph, 0 eagerly.
                row["cuda_graph"] = float(state.path == "cuda-graph")
            if config.cpu_bf16 and device.type == "cpu":
                # 1 when the steps' products took bf16 inputs, 0 when this CPU has no bf16 units (full fp32).
                row["bf16"] = float(state.bf16)
            state.history.append(row)
            state.epoch = epoch + 1
            state.steps_per_epoch.append(n_batches)
            good_state = _snapshot(module)
            for cb in cbs:
                cb.on_epoch_end(state)
    finally:
        for cb in cbs:
            cb.on_train_end(state)
    if state.best_state is not None and n_val:
        module.load_state_dict(state.best_state)
    module.eval()


@torch.no_grad()
def evaluate_loss(
    module: nn.Module,
    Xt: Tensor,
    idx: Tensor,
    yt: Tensor | None = None,
    corruption: Callable[[Tensor], Tensor] | None = None,
    uses_labels: bool = False,
    batch_size: int = 1024,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> float:
    """Mean training objective over ``Xt[idx]`` in eval mode; ``transform`` is the training batches' (binarization)."""
    was_training = module.training
    module.eval()
    total, count = 0.0, 0
    for i in range(0, idx.numel(), batch_size):
        j = idx[i : i + batch_size]
        xb = Xt[j] if transform is None else transform(Xt[j])
        lo = _batch_loss(module, xb, yt[j] if uses_labels and yt is not None else None, corruption)
        total += float(lo.total) * j.numel()
        count += j.numel()
    module.train(was_training)
    return total / max(count, 1)


def _capture_cuda_graph(
    module: nn.Module,
    opt: AdamW,
    compute_loss: Callable[[Tensor], LossOutput],
    accumulate: Callable[[LossOutput, float], None],
    first_idx: Tensor,
    acc: dict[str, Tensor],
    after_step: Callable[[], None] | None = None,
) -> Callable[[Tensor], None] | None:
    """Capture gather + forward + backward + optimizer step + loss bookkeeping as one CUDA graph.

    A module's ``after_step`` (an in-place projection, such as atoms back to unit norm) is captured
    with the step, so families that have one train on the graph path too.

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

    def full_step() -> None:
        lo = compute_loss(static_idx)
        lo.total.backward()
        opt.step()
        if after_step is not None:
            with torch.no_grad():
                after_step()
        accumulate(lo, bs)

    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                full_step()  # the first allocates the accumulators outside the graph's private pool
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            full_step()
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
