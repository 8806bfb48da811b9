"""Semi-supervised MNIST with 100 labels, against the published anchors (ANCHORS.md).

``--labels-per-class`` training images of each digit (10, so 100 labels, drawn with ``--seed``) keep their
labels; the other 59,900 training images are unlabelled (-1). Rows, each scored by its test error % on
the 10,000 MNIST test images:

- ``labels-only``: the same encoder and classifier head trained on the labelled images alone
  (``SemiSupervisedAutoencoder`` fitted on those images only, with the reconstruction, consistency
  and entropy terms off: the cross-entropy alone); anchor 25.8 (a neural net on the 100 labels,
  Kingma et al. 2014);
- ``semi-supervised``: ``SemiSupervisedAutoencoder`` on all 60,000 training images, 100 of them labelled
  (cross-entropy, reconstruction, virtual adversarial consistency, entropy minimization).

Beside them the anchors of the same setting: contractive autoencoder 13.5, M1+M2 3.33 (Kingma et al.
2014), Ladder network 1.06 (Rasmus et al. 2015). There is no validation split (a fixed epoch count,
cosine learning-rate decay). "train s" is the wall time of the fit.

    python benchmarks/bench_semisupervised.py --data-dir ../shared/data/mnist --epochs 10
    python benchmarks/bench_semisupervised.py --data-dir ../shared/data/mnist --epochs 1 --limit 5000   # smoke run
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import aekit
from aekit.data.preprocessing import UNLABELLED

from _common import add_data_args, machine, table

ANCHORS = (
    ("neural net on the 100 labels alone (Kingma et al. 2014)", 25.8),
    ("contractive autoencoder (Kingma et al. 2014)", 13.5),
    ("M1+M2 (Kingma et al. 2014)", 3.33),
    ("Ladder network (Rasmus et al. 2015)", 1.06),
)
HEADER = ["model", "test error %", "epochs", "train s", "labelled", "unlabelled"]


def pick_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` samples of each class, drawn without replacement with ``seed``, sorted."""
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(picked))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--epochs", type=int, default=10, help="epochs of the semi-supervised fit over all images")
    p.add_argument("--labels-only-epochs", type=int, default=300,
                   help="epochs of the labels-only fit (an epoch is a pass over the labelled images)")
    p.add_argument("--labels-per-class", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke runs)")
    p.add_argument("--hidden", default="1200,600", help="hidden widths of the encoder (default: %(default)s)")
    p.add_argument("--latent-dim", type=int, default=100)
    p.add_argument("--consistency", default="vat", choices=["vat", "noise", "none"])
    p.add_argument("--epsilon", type=float, default=1.0, help="perturbation size of the consistency term")
    p.add_argument("--entropy-weight", type=float, default=0.0)
    p.add_argument("--reconstruction-weight", default="auto")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=128, help="samples of all images per step")
    p.add_argument("--labelled-batch-size", type=int, default=32, help="labelled samples per step")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="labels-only,semi-supervised")
    args = p.parse_args()

    train = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir, limit=args.limit)
    test = aekit.load_dataset(args.data, split="test", data_dir=args.data_dir)
    if train.y is None or test.y is None:
        p.error(f"{args.data} has no labels; this benchmark needs a labelled data set such as mnist")
    labelled = pick_labels(train.y, args.labels_per_class, args.seed)
    y = np.full(train.y.shape, UNLABELLED, dtype=np.int64)
    y[labelled] = train.y[labelled]
    rec_w: Any = args.reconstruction_weight if args.reconstruction_weight == "auto" else float(args.reconstruction_weight)
    common: dict[str, Any] = {
        "hidden_dims": tuple(int(h) for h in args.hidden.split(",")), "latent_dim": args.latent_dim,
        "learning_rate": args.lr, "lr_schedule": "cosine", "batch_size": args.batch_size,
        "labelled_batch_size": args.labelled_batch_size, "validation_fraction": 0.0, "patience": None,
        "device": args.device, "random_state": args.seed, "threads": args.threads, "verbose": 1,
    }
    rows = []
    if "labels-only" in args.only:
        t0 = time.perf_counter()
        est = aekit.SemiSupervisedAutoencoder(
            consistency="none", entropy_weight=0.0, reconstruction_weight=0.0, max_epochs=args.labels_only_epochs,
            **common,
        ).fit(train.X[labelled], y[labelled])
        err = 100.0 * (1.0 - est.score(test.X, test.y))
        rows.append(["same encoder + classifier, labelled images only", err, args.labels_only_epochs,
                     time.perf_counter() - t0, labelled.size, 0])
        print(table(HEADER, rows[-1:]), flush=True)
    if "semi-supervised" in args.only:
        t0 = time.perf_counter()
        est = aekit.SemiSupervisedAutoencoder(
            consistency=args.consistency, epsilon=args.epsilon, entropy_weight=args.entropy_weight,
            reconstruction_weight=rec_w, max_epochs=args.epochs, **common,
        ).fit(train.X, y)
        err = 100.0 * (1.0 - est.score(test.X, test.y))
        rows.append([f"semi-supervised autoencoder ({args.consistency}, epsilon {args.epsilon:g})", err, args.epochs,
                     time.perf_counter() - t0, labelled.size, len(train.X) - labelled.size])
        print(table(HEADER, rows[-1:]), flush=True)
        last = est.history_[-1]
        terms = ", ".join(f"{k} {last[k]:.4g}" for k in ("classification", "reconstruction", "consistency", "entropy")
                          if k in last)
        print(f"last epoch: {terms}; {last['seconds']:.1f} s/epoch", flush=True)
    print(f"\nMNIST, {labelled.size} labels ({args.labels_per_class} per class, seed {args.seed}), encoder "
          f"{args.hidden}, code {args.latent_dim} ({machine()})\n")
    print(table(HEADER, rows))
    print()
    print(table(["anchor (same setting)", "test error %"], [[n, e] for n, e in ANCHORS]))


if __name__ == "__main__":
    main()
