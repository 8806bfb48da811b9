"""Cost as the work grows: seconds per epoch and peak memory as the data grows and as the model grows.

Each configuration trains in a fresh process (so its peak resident memory is its own) the default
``Autoencoder`` layout, an MLP 784-w-w/2-32 with a sigmoid output and BCE, on generated 28x28 images
in [0, 1] (a smooth random function of 16 hidden factors, so the network has something to learn),
batch 128, no validation split, for ``--epochs`` whole epochs; the time is the median of the epochs'
own timings (every epoch is complete: nothing is extrapolated). Memory is the process's peak resident
set (``getrusage``'s ``ru_maxrss``) beside what the data tensor alone needs (N x 784 x 4 bytes) and
the model with its gradients and Adam's two moments (4 x parameters x 4 bytes); on a GPU, also the
peak device memory that torch allocated.

    python benchmarks/bench_scaling.py                       # the short default grid (CPU)
    python benchmarks/bench_scaling.py --full                # data 10^3..10^6, widths 256..4096
    python benchmarks/bench_scaling.py --device cuda --full
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from _common import machine, table

SRC = str(Path(__file__).resolve().parents[1] / "src")
D = 784


def _vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(n: int, width: int, epochs: int, device: str) -> dict[str, float]:
    """Train one configuration in this process; return its timings and memory."""
    import numpy as np
    import torch

    import aekit

    before = _vm_rss_mb()
    rng = np.random.default_rng(0)
    W = rng.normal(0.0, 1.0, (16, D)).astype(np.float32)
    X = np.empty((n, 1, 28, 28), dtype=np.float32)
    flat = X.reshape(n, D)
    for i in range(0, n, 65536):  # in chunks: the temporaries stay small beside X
        Z = rng.normal(0.0, 1.0, (min(65536, n - i), 16)).astype(np.float32)
        flat[i : i + Z.shape[0]] = 1.0 / (1.0 + np.exp(-(Z @ W)))
    with_data = _vm_rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    est = aekit.Autoencoder(
        hidden_dims=(width, width // 2), latent_dim=32, max_epochs=epochs, batch_size=128, validation_fraction=0.0,
        patience=None, random_state=0, verbose=0, device=device,
    ).fit(X)
    params = sum(p.numel() for p in est.module_.parameters())
    out = {
        "n": n, "width": width, "params": params,
        "s_per_epoch": statistics.median(r["seconds"] for r in est.history_),
        "threads": est.history_[0]["threads"],
        "rss_start_mb": before, "rss_with_data_mb": with_data,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "data_mb": n * D * 4 / 2**20, "model_adam_mb": 4 * params * 4 / 2**20,
    }
    if device.startswith("cuda"):
        out["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run(n: int, width: int, epochs: int, device: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, __file__, "--child", str(n), str(width), str(epochs), device]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        # A process killed by a signal (the kernel's out-of-memory killer sends 9) leaves no message of its own.
        why = f"killed by signal {-res.returncode}" if res.returncode < 0 else f"exit status {res.returncode}"
        return {"n": n, "width": width, "error": (res.stderr.strip().splitlines() or [why])[-1]}
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        n, width, epochs = (int(a) for a in sys.argv[2:5])
        print(json.dumps(child(n, width, epochs, sys.argv[5])))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="the whole grid: data 10^3..10^6, widths 256..4096")
    p.add_argument("--sizes", type=int, nargs="+", help="data sizes (default: 1000 10000 100000; --full adds 10^6)")
    p.add_argument("--widths", type=int, nargs="+", help="first hidden widths (default: 256 1024 4096; --full adds "
                   "512 2048)")
    p.add_argument("--width", type=int, default=256, help="the width while the data grows (default: %(default)s)")
    p.add_argument("--n", type=int, default=5000, help="the data size while the model grows (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=2, help="whole epochs timed per configuration (default: %(default)s)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    sizes = args.sizes or ([1000, 10_000, 100_000, 1_000_000] if args.full else [1000, 10_000, 100_000])
    widths = args.widths or ([256, 512, 1024, 2048, 4096] if args.full else [256, 1024, 4096])

    gpu = args.device.startswith("cuda")
    head = ["samples", "width", "parameters", "s/epoch", "samples/s", "threads", "peak RSS MB", "data MB",
            "model+Adam MB"] + (["peak device MB"] if gpu else [])

    def row(r: dict[str, float]) -> list[object]:
        if "error" in r:
            return [r["n"], r["width"], f"failed: {r['error']}"] + ["-"] * (len(head) - 3)
        cells: list[object] = [int(r["n"]), int(r["width"]), int(r["params"]), r["s_per_epoch"],
                               r["n"] / r["s_per_epoch"], int(r["threads"]), r["peak_rss_mb"], r["data_mb"],
                               r["model_adam_mb"]]
        return cells + ([r["peak_device_mb"]] if gpu else [])

    print(f"Scaling on {args.device} ({machine()}), {args.epochs} epochs each, load before {os.getloadavg()[0]:.1f}\n")
    print(f"Data grows (MLP 784-{args.width}-{args.width // 2}-32):\n")
    print(table(head, [row(run(n, args.width, args.epochs, args.device)) for n in sizes]), flush=True)
    print(f"\nModel grows ({args.n} samples, MLP 784-w-w/2-32):\n")
    print(table(head, [row(run(args.n, w, args.epochs, args.device)) for w in widths]))


if __name__ == "__main__":
    main()
