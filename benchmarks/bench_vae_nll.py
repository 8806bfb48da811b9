"""Test negative log-likelihood of a VAE and an IWAE on dynamically binarized MNIST (ANCHORS.md).

Burda et al. (2016), one stochastic layer, 784-200-200-50 with tanh units (aekit's ``iwae`` preset):
VAE (k = 1) 86.76 nats and IWAE (k = 50) 84.78 nats, with the test NLL estimated by importance sampling
with 5,000 samples. Training images are redrawn as Bernoulli(x) at every use (``binarize="dynamic"``);
the test images are binarized once with a fixed seed. Adam, batch 100, cosine learning rate, no
validation split (the paper trained 3,280 epochs). Prints nats, epochs, training seconds, epochs per
second, the training path (eager or CUDA graph, from the run's history) and the device.

    python benchmarks/bench_vae_nll.py --data-dir ../shared/data/mnist                     # the paper's protocol
    python benchmarks/bench_vae_nll.py --data-dir ../shared/data/mnist --epochs 3 --test-limit 1000 --nll-samples 1000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import aekit

from _common import add_data_args, machine, table, training_path

ANCHOR = {1: 86.76, 50: 84.78}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--ks", default="1,50", help="comma list of training importance samples k (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--iwae-epochs", type=int, default=None, help="epochs of the k > 1 rows (default: --epochs)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--iwae-lr", type=float, default=None, help="learning rate of the k > 1 rows (default: --lr)")
    p.add_argument("--iwae-batch-size", type=int, default=None, help="batch size of the k > 1 rows (default: --batch-size)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="estimate the NLL on the first N test images")
    p.add_argument("--nll-samples", type=int, default=5000, help="importance samples of the NLL estimate")
    p.add_argument("--nll-block", type=int, default=1000, help="test images per printed step of the NLL estimate")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.nll_block < 1:
        p.error(f"--nll-block must be at least 1, got {args.nll_block}")

    train = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir, limit=args.limit)
    test = aekit.load_dataset(args.data, split="test", data_dir=args.data_dir, limit=args.test_limit)
    X = train.X.reshape(len(train), -1)
    X_test = (np.random.default_rng(12345).random(test.X.shape) < test.X).astype(np.float32).reshape(len(test), -1)
    rows = []
    for k in (int(s) for s in args.ks.split(",")):
        iwae = k > 1
        epochs = args.iwae_epochs if iwae and args.iwae_epochs is not None else args.epochs
        bs = args.iwae_batch_size if iwae and args.iwae_batch_size is not None else args.batch_size
        lr = args.iwae_lr if iwae and args.iwae_lr is not None else args.lr
        vae = aekit.VAE.from_preset(
            "iwae", k=k, max_epochs=epochs, batch_size=bs, learning_rate=lr, lr_schedule="cosine",
            validation_fraction=0.0, patience=None, binarize="dynamic", device=args.device, random_state=args.seed,
            verbose=1 if epochs <= 300 else 0,
        )
        t0 = time.perf_counter()
        vae.fit(X)
        wall = time.perf_counter() - t0
        path = training_path(vae.history_)
        seconds = sum(r["seconds"] for r in vae.history_)
        name = "VAE" if k == 1 else "IWAE"
        print(f"{name} k={k}: trained {len(vae.history_)} epochs in {seconds:.1f} s ({wall:.1f} s wall, {path}); "
              f"estimating the NLL", flush=True)
        t0 = time.perf_counter()
        elbo = float(np.mean(vae.elbo(X_test)))
        # A block of rows at a time, with the running figure printed: a long estimate shows its progress, and
        # a run stopped part-way still says what it had. Each row's samples are seeded by the row alone, so
        # the blocks give what one call over all rows gives.
        ll: list[np.ndarray] = []
        for i in range(0, len(X_test), args.nll_block):
            ll.append(vae.log_likelihood(X_test[i : i + args.nll_block], n_samples=args.nll_samples))
            done = sum(len(v) for v in ll)
            print(f"  NLL of the first {done} test images: {-np.mean(np.concatenate(ll)):.3f} nats "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        nll = -float(np.mean(np.concatenate(ll)))
        t_nll = time.perf_counter() - t0
        rows.append([f"{name} k={k}", bs, lr, nll, ANCHOR.get(k, "n/a"), -elbo, len(vae.history_), seconds, wall,
                     len(vae.history_) / seconds, path, t_nll])
        print(f"{name} k={k}: NLL {nll:.2f} nats ({len(vae.history_)} epochs, {seconds:.1f} s)", flush=True)
    dev = torch.cuda.get_device_name(0) if vae.device_.type == "cuda" else "CPU"
    print()
    print(table(["model (784-200-200-50)", "batch", "lr", "test NLL (nats)", "paper", "-ELBO (nats)", "epochs", "train s",
                 "fit wall s", "epochs/s", "path", "NLL s"], rows))
    print()
    print(f"device: {dev}; training images: {len(X)}; test images: {len(X_test)}; NLL importance samples: "
          f"{args.nll_samples}; {machine()}")


if __name__ == "__main__":
    main()
