"""The state of the training loop, shared by the loop, its callbacks and the checkpoint I/O.

It lives in its own module so that :mod:`aekit.engine.checkpoint` can read and write it without
importing the loop (:mod:`aekit.engine.training` imports the checkpoint module, never the reverse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from aekit.engine.optim import AdamW

if TYPE_CHECKING:  # for the annotation only: the loop's module imports this one at run time
    from aekit.engine.training import TrainConfig

PATHS = ("eager", "cuda-graph")


@dataclass(eq=False)
class TrainState:
    """Everything the training loop knows between two steps.

    Callbacks receive this object and may read every field; they may set ``stop`` and change
    tensors held by ``module`` in place (see :class:`aekit.engine.training.Callback`).

    Attributes
    ----------
    module : nn.Module
        The model being trained.
    optimizer : aekit.engine.optim.AdamW
        AdamW over the module's parameters (or over its ``param_groups()``).
    generator : torch.Generator
        Draws the batch order; saved in checkpoints so a resumed run draws the same batches.
    config : TrainConfig
        The loop's settings.
    history : list of dict
        One row per finished epoch: ``epoch``, ``lr``, ``loss`` and its named terms, ``val_loss``,
        ``seconds``, ``samples_per_s`` and ``threads``; on CUDA also ``cuda_graph`` (1 when the
        epoch's steps were replayed from a captured CUDA graph, 0 when they ran eagerly); with
        ``config.cpu_bf16`` on the CPU also ``bf16`` (1 when the products took bf16 inputs).
    epoch : int
        Epochs finished.
    step : int
        Optimizer steps taken (counted per batch, so a callback's ``on_step_end`` sees it grow).
    steps_per_epoch : list of int
        Optimizer steps of each finished epoch (the CUDA-graph path drops a last partial batch, the
        eager one does not, so a run resumed on another device may take another count per epoch).
    best_val, best_epoch, bad_epochs : float, int, int
        Early stopping: the best validation loss, the epoch (1-based) it was reached, -1 before any,
        and the epochs since.
    best_state : dict of str to Tensor or None
        The module's weights at ``best_epoch``.
    stop : bool
        Set by a callback to end training after the current epoch.
    path : {"eager", "cuda-graph"}
        How the steps run: eagerly, or replayed from one captured CUDA graph.
    bf16 : bool
        True while the steps' matrix products and convolutions take bf16 inputs on the CPU
        (``config.cpu_bf16`` on a CPU with bf16 units).
    threads : int
        The torch CPU thread count the loop trains with; a resumed run keeps the count it recorded
        unless ``config.threads`` names one.
    """

    module: nn.Module
    optimizer: AdamW
    generator: torch.Generator
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    epoch: int = 0
    step: int = 0
    steps_per_epoch: list[int] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    best_state: dict[str, Tensor] | None = None
    stop: bool = False
    path: str = "eager"
    bf16: bool = False
    threads: int = 1
