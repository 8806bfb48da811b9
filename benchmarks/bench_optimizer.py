"""The training loop's own AdamW against torch.optim.AdamW(fused=True) in the same loop.

Both run the same fused AdamW kernel; the loop's class calls it directly, while torch's optimizer passes every step
through hook, profiler and torch.compile wrappers, and the first call of any of its methods imports ``torch._dynamo``.
This measures the two costs:

1. Per epoch: the same estimator fitted with each optimizer in the loop (torch's swapped in for the loop's), taking
   turns, samples per second as the history records them (the median over epochs after the first, then over
   ``--repeats``). The default digits network is small, so its steps are short and the per-step cost shows; the
   ``hinton`` preset on MNIST (with ``--data-dir``) has steps of about 10 ms.
2. Once per process: ``import torch._dynamo`` in a fresh interpreter that has imported torch, the median of
   ``--repeats``.

    python benchmarks/bench_optimizer.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

import aekit
import aekit.engine.training as training

from _common import add_data_args, machine, table


def torch_adamw(groups: list[dict[str, Any]], config: Any, device: torch.device, capturable: bool) -> Any:
    """The loop's optimizer as torch's class, with the loop's groups and settings (what the loop built before)."""
    for g in groups:
        g["lr"] = torch.tensor(g["initial_lr"], device=device) if capturable else g["initial_lr"]
    kwargs: dict[str, Any] = {"lr": config.learning_rate, "weight_decay": config.weight_decay, "fused": True}
    if capturable:
        kwargs.update(capturable=True, lr=torch.tensor(config.learning_rate, device=device))
    return torch.optim.AdamW(groups, **kwargs)


def samples_per_s(make: Any, X: Any, optimizer: Any) -> float:
    own = training._make_optimizer
    training._make_optimizer = optimizer
    try:
        est = make().fit(X)
    finally:
        training._make_optimizer = own
    return statistics.median(r["samples_per_s"] for r in est.history_[1:])


def dynamo_import_s() -> float:
    code = "import time, torch; t = time.perf_counter(); import torch._dynamo; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--limit", type=int, default=10000, help="MNIST images of the hinton rows (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=11, help="epochs per fit (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="alternating fits of each (default: %(default)s)")
    args = p.parse_args()

    fixed = {"validation_fraction": 0.0, "patience": None, "random_state": 0, "verbose": 0, "device": "cpu"}
    cases = [("default Autoencoder, digits (1,437 images)", aekit.load_dataset("digits", split="train").X,
              lambda: aekit.Autoencoder(max_epochs=args.epochs, **fixed))]
    if args.data_dir:
        X = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir, limit=args.limit).X
        cases.append((f"hinton preset, {args.data} ({len(X):,} images)", X,
                      lambda: aekit.Autoencoder.from_preset("hinton", max_epochs=max(2, args.epochs // 5), **fixed)))
    rows = []
    for name, X, make in cases:
        own, ref = [], []
        for _ in range(args.repeats):
            ref.append(samples_per_s(make, X, torch_adamw))
            own.append(samples_per_s(make, X, training._make_optimizer))
        ratios = [a / b for a, b in zip(own, ref)]
        rows.append([name, statistics.median(ref), statistics.median(own), statistics.median(ratios),
                     f"{min(ratios):.2f}-{max(ratios):.2f}"])
        print(f"{name}: done", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    imports = [dynamo_import_s() for _ in range(args.repeats)]
    print(f"Per epoch, {args.repeats} alternating repeats, torch threads chosen by the loop ({machine()})\n")
    print(table(["model", "torch.optim.AdamW(fused=True), samples/s", "aekit AdamW, samples/s",
                 "speed-up (median)", "per-repeat range"], rows))
    print(f"\nOnce per process: import torch._dynamo (what torch's optimizer's first call costs) took "
          f"{statistics.median(imports):.3f} s (median of {len(imports)} fresh interpreters; "
          f"{time.perf_counter() - t0:.1f} s in all).")


if __name__ == "__main__":
    main()
