"""Training throughput: aekit's trainer against the hand-written PyTorch loop, side by side in one run.

Same network (Hinton's 784-1000-500-250-30, GELU units, linear code, sigmoid output), same loss
(binary cross-entropy summed over pixels, averaged over images), same optimizer (Adam, lr 1e-3), same
batch size, same data. The hand-written loop is what a user writes: a DataLoader over a TensorDataset,
``nn.Sigmoid`` output and ``F.binary_cross_entropy``. Runs alternate so drift in the shared machine's
speed hits both alike; the table reports the median over repeats.

    python benchmarks/bench_throughput.py --data-dir ../shared/data/mnist            # CPU
    python benchmarks/bench_throughput.py --data-dir ../shared/data/mnist --device cuda --batch-size 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import aekit

from _common import add_data_args, machine, table


def hinton_net() -> nn.Sequential:
    dims = [784, 1000, 500, 250, 30]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers += [nn.Linear(a, b)] + ([nn.GELU()] if i < len(dims) - 2 else [])
    rdims = dims[::-1]
    for i, (a, b) in enumerate(zip(rdims[:-1], rdims[1:])):
        layers += [nn.Linear(a, b), nn.GELU() if i < len(rdims) - 2 else nn.Sigmoid()]
    layers.append(nn.Unflatten(1, (1, 28, 28)))
    return nn.Sequential(*layers)


def handwritten(X: np.ndarray, epochs: int, batch_size: int, device: str) -> float:
    """The loop users write by hand; returns samples per second."""
    torch.manual_seed(0)
    model = hinton_net().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=batch_size, shuffle=True)
    seen = 0
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for (xb,) in loader:
            xb = xb.to(device)
            loss = F.binary_cross_entropy(model(xb), xb, reduction="sum") / xb.shape[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += xb.shape[0]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def plain_on_device(X: np.ndarray, epochs: int, batch_size: int, device: str) -> float:
    """A plain loop with the data already on the device (the GPU reference row of ANCHORS.md)."""
    torch.manual_seed(0)
    model = hinton_net().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xt = torch.from_numpy(X).to(device)
    n = Xt.shape[0]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, device=device)
        for i in range(0, n, batch_size):
            xb = Xt[perm[i : i + batch_size]]
            loss = F.binary_cross_entropy(model(xb), xb, reduction="sum") / xb.shape[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.cuda.synchronize()
    return epochs * n / (time.perf_counter() - t0)


def aekit_trainer(X: np.ndarray, epochs: int, batch_size: int, device: str, cuda_graph: bool = True) -> float:
    ae = aekit.Autoencoder.from_preset(
        "hinton", max_epochs=epochs, batch_size=batch_size, validation_fraction=0.0, patience=None,
        device=device, random_state=0, verbose=0, cuda_graph=cuda_graph,
    ).fit(X)
    # Skip the first epoch on CUDA (graph capture and allocator warm-up), as the hand-written rows do not
    # pay comparable one-off costs.
    rows = ae.history_[1:] if (device.startswith("cuda") and len(ae.history_) > 1) else ae.history_
    return statistics.median(r["samples_per_s"] for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--epochs", type=int, default=1, help="epochs per timed run (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="alternating repeats of each loop (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    X = aekit.load_dataset(args.data, data_dir=args.data_dir, limit=args.limit).X
    runs: dict[str, list[float]] = {}
    loops = [("hand-written DataLoader loop", handwritten), ("aekit trainer", aekit_trainer)]
    if args.device.startswith("cuda"):
        loops.insert(1, ("plain loop, data on GPU", plain_on_device))
        loops.append(("aekit trainer, no CUDA graph", lambda *a: aekit_trainer(*a, cuda_graph=False)))
    epochs = args.epochs + (1 if args.device.startswith("cuda") else 0)
    for _ in range(args.repeats):
        for name, fn in loops:
            runs.setdefault(name, []).append(fn(X, epochs, args.batch_size, args.device))
    base = statistics.median(runs[loops[0][0]])
    rows = []
    for name, vals in runs.items():
        sps = statistics.median(vals)
        rows.append([name, args.batch_size, sps, len(X) / sps, sps / base])
    print(f"Training throughput, Hinton 784-1000-500-250-30, {len(X)} images, {args.device} ({machine()})\n")
    print(table(["loop", "batch", "samples/s", "s/epoch", "vs hand-written"], rows))


if __name__ == "__main__":
    main()
