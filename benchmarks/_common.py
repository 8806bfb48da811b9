"""Shared helpers of the benchmark scripts: data location, markdown tables and what a run's history says."""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import torch


def add_data_args(p: argparse.ArgumentParser, default: str = "mnist") -> None:
    p.add_argument("--data", default=default, help="data set name or path (default: %(default)s)")
    p.add_argument(
        "--data-dir",
        default=os.environ.get("AEKIT_DATA_DIR"),
        help="directory holding the original IDX files (e.g. ../shared/data/mnist); default $AEKIT_DATA_DIR",
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    fmt = [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in fmt]
    return "\n".join(lines)


def machine() -> str:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {dev}"


def training_path(history: Sequence[Mapping[str, Any]]) -> str:
    """"cuda-graph" when the run's history says every epoch replayed the captured step, else "eager"."""
    graph = [row.get("cuda_graph") for row in history]
    return "cuda-graph" if graph and all(g == 1.0 for g in graph) else "eager"


def timed_epochs(history: Sequence[Mapping[str, Any]], device: str) -> Sequence[Mapping[str, Any]]:
    """The epochs to time: on CUDA all but the first (graph capture and allocator warm-up), which hand-written
    loops do not pay alike."""
    return history[1:] if (device.startswith("cuda") and len(history) > 1) else history
