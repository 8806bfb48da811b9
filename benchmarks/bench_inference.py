"""Inference passes: seconds to encode and to reconstruct a data set, by rows per pass.

aekit runs every inference pass of a model with the same number of rows (``aekit.model.base.inference_rows``:
256, fewer for large samples; the last pass padded), so that a sample's outputs never depend on the samples it is
passed with. This times ``transform`` and ``reconstruct`` of the images with that count against other fixed
counts (2,048 was the earlier one), for the default MLP autoencoder and a convolutional one, the counts taking
turns within each repetition; the median of ``--repeats``. The networks are trained one epoch on ``--train``
images (inference costs the same whatever the weights).

    python benchmarks/bench_inference.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import aekit
from aekit.model import base

from _common import add_data_args, machine, table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--rows", type=int, nargs="+", default=[base.INFERENCE_ROWS, 2048],
                   help="rows per pass to compare (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="images to encode (default: all training images)")
    p.add_argument("--train", type=int, default=5000, help="images the networks are trained on (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    X = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir, limit=args.limit).X
    models = {
        "default MLP": aekit.Autoencoder(latent_dim=32, max_epochs=1, verbose=0, random_state=0),
        "conv (32, 64), code 128": aekit.Autoencoder(architecture="conv", hidden_dims=(32, 64), latent_dim=128,
                                                     max_epochs=1, verbose=0, random_state=0),
    }
    rows_out = []
    for name, model in models.items():
        model.fit(X[: args.train])
        times: dict[tuple[int, str], list[float]] = {}
        for _ in range(args.repeats):
            for rows in args.rows:
                for what, fn in (("transform", model.transform), ("reconstruct", model.reconstruct)):
                    original = base.inference_rows
                    base.inference_rows = lambda shape, r=rows: r  # type: ignore[assignment]
                    try:
                        t = time.perf_counter()
                        fn(X)
                        times.setdefault((rows, what), []).append(time.perf_counter() - t)
                    finally:
                        base.inference_rows = original
        ref = {what: float(np.median(times[(args.rows[-1], what)])) for what in ("transform", "reconstruct")}
        for rows in args.rows:
            for what in ("transform", "reconstruct"):
                s = float(np.median(times[(rows, what)]))
                rows_out.append([name, what, rows, s, f"{ref[what] / s:.2f}x"])
    print(f"## Inference by rows per pass ({len(X)} images of {args.data}, torch threads {args.threads}, "
          f"median of {args.repeats})\n\n{machine()}\n")
    print(table(["model", "call", "rows per pass", "seconds", f"speed vs {args.rows[-1]} rows"], rows_out))


if __name__ == "__main__":
    main()
