"""Test negative log-likelihood of a VAE and an IWAE on dynamically binarized MNIST (ANCHORS.md).

Burda et al. (2016), one stochastic layer, 784-200-200-50 with tanh units (aekit's ``iwae`` preset):
VAE (k = 1) 86.76 nats and IWAE (k = 50) 84.78 nats, with the test NLL estimated by importance sampling
with 5,000 samples. Training images are redrawn as Bernoulli(x) at every use (``binarize="dynamic"``);
the test images are binarized once with a fixed seed. Adam, batch 100, cosine learning rate, no
validation split (the paper trained 3,280 epochs). Prints nats, epochs, training seconds, epochs per
second, the training path (eager or CUDA graph, from the run's checkpoint) and the device.

    python benchmarks/bench_vae_nll.py --data-dir ../shared/data/mnist                     # the paper's protocol
    python benchmarks/bench_vae_nll.py --data-dir ../shared/data/mnist --epochs 3 --test-limit 1000 --nll-samples 1000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch
from safetensors import safe_open

import aekit
from aekit.engine.checkpoint import META_KEY
from aekit.engine.rundir import CHECKPOINT_FILE

from _common import add_data_args, machine, table

ANCHOR = {1: 86.76, 50: 84.78}


def training_path(directory: str) -> str:
    """"eager" or "cuda-graph", as the run's checkpoint records it."""
    with safe_open(f"{directory}/{CHECKPOINT_FILE}", framework="pt") as f:
        return str(json.loads((f.metadata() or {})[META_KEY])["path"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--ks", default="1,50", help="comma list of training importance samples k (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--iwae-epochs", type=int, default=None, help="epochs of the k > 1 rows (default: --epochs)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="estimate the NLL on the first N test images")
    p.add_argument("--nll-samples", type=int, default=5000, help="importance samples of the NLL estimate")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    train = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir, limit=args.limit)
    test = aekit.load_dataset(args.data, split="test", data_dir=args.data_dir, limit=args.test_limit)
    X = train.X.reshape(len(train), -1)
    X_test = (np.random.default_rng(12345).random(test.X.shape) < test.X).astype(np.float32).reshape(len(test), -1)
    rows = []
    for k in (int(s) for s in args.ks.split(",")):
        epochs = args.epochs if k == 1 or args.iwae_epochs is None else args.iwae_epochs
        vae = aekit.VAE.from_preset(
            "iwae", k=k, max_epochs=epochs, batch_size=args.batch_size, learning_rate=args.lr, lr_schedule="cosine",
            validation_fraction=0.0, patience=None, binarize="dynamic", device=args.device, random_state=args.seed,
            verbose=1,
        )
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            vae.fit(X, checkpoint_dir=tmp)
            wall = time.perf_counter() - t0
            path = training_path(tmp)
        seconds = sum(r["seconds"] for r in vae.history_)
        t0 = time.perf_counter()
        nll = -float(np.mean(vae.log_likelihood(X_test, n_samples=args.nll_samples)))
        elbo = float(np.mean(vae.elbo(X_test)))
        t_nll = time.perf_counter() - t0
        name = "VAE" if k == 1 else "IWAE"
        rows.append([f"{name} k={k}", nll, ANCHOR.get(k, "n/a"), -elbo, len(vae.history_), seconds, wall,
                     len(vae.history_) / seconds, path, t_nll])
        print(f"{name} k={k}: NLL {nll:.2f} nats ({len(vae.history_)} epochs, {seconds:.1f} s)", flush=True)
    dev = torch.cuda.get_device_name(0) if vae.device_.type == "cuda" else "CPU"
    print()
    print(table(["model (784-200-200-50)", "test NLL (nats)", "paper", "-ELBO (nats)", "epochs", "train s",
                 "fit wall s", "epochs/s", "path", "NLL s"], rows))
    print()
    print(f"device: {dev}; training images: {len(X)}; test images: {len(X_test)}; NLL importance samples: "
          f"{args.nll_samples}; {machine()}")


if __name__ == "__main__":
    main()
