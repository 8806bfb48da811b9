"""Seconds per epoch by torch CPU thread count: 1, 2 and the loop's own choice (``threads=0``), on the
machine as found and beside one more busy process, for a small and a large model.

Small: the denoising autoencoder with its default network on the bundled digits (1,797 8x8 images).
Large: Hinton's 784-1000-500-250-30 autoencoder on generated 28x28 images (smoothed noise in [0, 1]).
The busy process spins on one core, as another user's job would. Each cell is the median over epochs
of the seconds the loop records per epoch; the table gives the machine's 1-minute load average before
each row (other users' processes count: a shared machine is rarely idle).

    python benchmarks/bench_threads.py --epochs 2 --large-samples 2000     # about 1 minute on 2 cores
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits

import aekit

from _common import machine, table


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy(on: bool) -> Iterator[None]:
    """One process spinning on a core for the duration of the block."""
    if not on:
        yield
        return
    proc = mp.get_context("spawn").Process(target=_spin, daemon=True)
    proc.start()
    try:
        yield
    finally:
        proc.terminate()
        proc.join()


def generated_images(n: int, seed: int = 0) -> np.ndarray:
    """(n, 784) float32 in [0, 1]: white noise blurred over 5x5 pixels, so images have structure to learn."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.random((n, 1, 28, 28), dtype=np.float32))
    x = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2)
    x = (x - x.amin()) / (x.amax() - x.amin())
    return x.reshape(n, 784).numpy()


def seconds_per_epoch(make: Any, X: np.ndarray, threads: int, epochs: int) -> tuple[float, int]:
    est = make(threads=threads, max_epochs=epochs, patience=None, verbose=0, random_state=0, device="cpu")
    est.fit(X)
    rows = est.history_
    return statistics.median(r["seconds"] for r in rows), int(rows[0]["threads"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3, help="epochs per measurement (default: %(default)s)")
    p.add_argument("--large-samples", type=int, default=3000, help="generated 28x28 images (default: %(default)s)")
    args = p.parse_args()

    small_X = (load_digits().data / 16.0).astype(np.float32)
    cases = [
        ("small: denoising, default net, digits (1,797 x 64)",
         lambda **kw: aekit.DenoisingAutoencoder(**kw), small_X),
        (f"large: 784-1000-500-250-30, generated ({args.large_samples:,} x 784)",
         lambda **kw: aekit.Autoencoder(hidden_dims=(1000, 500, 250), latent_dim=30, **kw),
         generated_images(args.large_samples)),
    ]
    rows = []
    for name, make, X in cases:
        for load in (False, True):
            cells: list[object] = [name, "+1 busy process" if load else "as found", f"{os.getloadavg()[0]:.1f}"]
            with busy(load):
                for threads in (1, 2, 0):
                    sec, used = seconds_per_epoch(make, X, threads, args.epochs)
                    cells.append(f"{sec:.3f}" + (f" ({used})" if threads == 0 else ""))
            rows.append(cells)
    print(f"## Seconds per epoch by thread count ({machine()}; median over {args.epochs} epochs)\n")
    print(table(["model", "machine", "load before", "1 thread", "2 threads", "automatic (threads chosen)"], rows))


if __name__ == "__main__":
    main()
