"""Semi-supervised MNIST with 100 labels, against the published anchors (ANCHORS.md).

``--labels-per-class`` training images of each digit (10, so 100 labels, drawn with ``--seed``) keep their
labels; the other 59,900 training images are unlabelled (-1). Rows, each scored by its test error % on
the 10,000 MNIST test images:

- ``labels-only``: the same encoder (batch-normalized) and classifier head trained on the labelled images
  alone, with the same random shifts (``SemiSupervisedAutoencoder`` fitted on those images only, with the
  reconstruction, consistency, balance and entropy terms off: the cross-entropy alone); anchor 25.8 (a
  neural net on the 100 labels, Kingma et al. 2014);
- ``semi-supervised``: ``SemiSupervisedAutoencoder`` on all 60,000 training images, 100 of them labelled
  (cross-entropy, reconstruction, consistency: by default confident pseudo-labels under random shifts of
  2 pixels, ramped up over the first fifth of the epochs; the class-balance term). The test error is
  printed after every epoch, so a run cut short still leaves a figure.

Beside them the anchors of the same setting: contractive autoencoder 13.5, M1+M2 3.33 (Kingma et al.
2014), Ladder network 1.06 (Rasmus et al. 2015). There is no validation split (a fixed epoch count,
cosine learning-rate decay). "train s" is the wall time of the fit.

    python benchmarks/bench_semisupervised.py --data-dir ../shared/data/mnist --threads 1
    python benchmarks/bench_semisupervised.py --data-dir ../shared/data/mnist --epochs 10 --limit 10000   # design runs
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

import aekit
from aekit.data.preprocessing import UNLABELLED
from aekit.engine.state import TrainState
from aekit.engine.training import Callback

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


class TestError(Callback):
    """Prints (and logs as ``test_error``) the test error % after every epoch, so a run cut short still
    leaves a figure. The test images are not used by training."""

    def __init__(self, X: np.ndarray, y: np.ndarray, classes: np.ndarray) -> None:
        self.X, self.y, self.classes = torch.from_numpy(X), y, classes

    @torch.no_grad()
    def on_epoch_end(self, state: TrainState) -> None:
        module: Any = state.module
        module.eval()
        dev = next(module.parameters()).device
        pred = torch.cat([module.classify(self.X[i : i + 2000].to(dev)).argmax(1).cpu()
                          for i in range(0, len(self.X), 2000)])
        module.train()
        err = 100.0 * float(np.mean(self.classes[pred.numpy()] != self.y))
        row = state.history[-1]
        row["test_error"] = err
        terms = ", ".join(f"{k} {row[k]:.4g}" for k in ("classification", "reconstruction", "consistency", "balance",
                                                         "consistency_ramp") if k in row)
        print(f"epoch {int(row['epoch'])}: test error {err:.2f} %  ({terms}; {row['seconds']:.0f} s)", flush=True)


class Tracked(aekit.SemiSupervisedAutoencoder):
    """The estimator with the per-epoch test error of :class:`TestError` added to its callbacks."""

    test_data: tuple[np.ndarray, np.ndarray] | None = None

    def _callbacks(self) -> list[Callback]:
        cbs = super()._callbacks()
        if self.test_data is not None:
            X, y = self.test_data
            cbs.append(TestError(self.scaler_.transform(X), y, np.asarray(self.data_info_.classes)))
        return cbs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--epochs", type=int, default=12, help="epochs of the semi-supervised fit over all images")
    p.add_argument("--labels-only-epochs", type=int, default=300,
                   help="epochs of the labels-only fit (an epoch is a pass over the labelled images)")
    p.add_argument("--labels-per-class", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke runs)")
    p.add_argument("--hidden", default="32,64", help="hidden widths (mlp) or channels (conv) of the encoder (default: %(default)s)")
    p.add_argument("--latent-dim", type=int, default=64)
    p.add_argument("--architecture", default="conv", choices=["mlp", "conv"])
    p.add_argument("--consistency", default="pseudo-label", choices=["pseudo-label", "vat", "noise", "none"])
    p.add_argument("--epsilon", type=float, default=1.0, help="perturbation size of the consistency term")
    p.add_argument("--translation", default="auto", help="largest random shift in pixels, or auto")
    p.add_argument("--threshold", type=float, default=0.8, help="confidence needed for a pseudo-label")
    p.add_argument("--rampup", type=float, default=0.2, help="fraction of the epochs the consistency ramps up over")
    p.add_argument("--balance-weight", type=float, default=1.0, help="weight of the class-balance term")
    p.add_argument("--no-batch-norm", action="store_true", help="leave batch normalization out of the encoder")
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
        "architecture": args.architecture, "hidden_dims": tuple(int(h) for h in args.hidden.split(",")),
        "latent_dim": args.latent_dim, "batch_norm": not args.no_batch_norm, "translation": args.translation if args.translation == "auto" else int(args.translation),
        "learning_rate": args.lr, "lr_schedule": "cosine", "batch_size": args.batch_size,
        "labelled_batch_size": args.labelled_batch_size, "validation_fraction": 0.0, "patience": None,
        "device": args.device, "random_state": args.seed, "threads": args.threads, "verbose": 1,
    }
    rows = []
    if "labels-only" in args.only:
        t0 = time.perf_counter()
        est = aekit.SemiSupervisedAutoencoder(
            consistency="none", entropy_weight=0.0, reconstruction_weight=0.0, balance_weight=0.0,
            max_epochs=args.labels_only_epochs, **common,
        ).fit(train.X[labelled], y[labelled])
        err = 100.0 * (1.0 - est.score(test.X, test.y))
        rows.append(["same encoder + classifier, labelled images only", err, args.labels_only_epochs,
                     time.perf_counter() - t0, labelled.size, 0])
        print(table(HEADER, rows[-1:]), flush=True)
    if "semi-supervised" in args.only:
        t0 = time.perf_counter()
        est = Tracked(
            consistency=args.consistency, epsilon=args.epsilon, entropy_weight=args.entropy_weight,
            reconstruction_weight=rec_w, max_epochs=args.epochs, confidence_threshold=args.threshold,
            consistency_rampup=args.rampup, balance_weight=args.balance_weight, **common,
        )
        est.test_data = (test.X, test.y)
        est.fit(train.X, y)
        err = 100.0 * (1.0 - est.score(test.X, test.y))
        rows.append([f"semi-supervised autoencoder ({args.consistency}, shifts {est.resolved_.translation} px)", err, args.epochs,
                     time.perf_counter() - t0, labelled.size, len(train.X) - labelled.size])
        print(table(HEADER, rows[-1:]), flush=True)
        last = est.history_[-1]
        terms = ", ".join(f"{k} {last[k]:.4g}" for k in ("classification", "reconstruction", "consistency", "entropy", "balance")
                          if k in last)
        print(f"last epoch: {terms}; {last['seconds']:.1f} s/epoch", flush=True)
    print(f"\nMNIST, {labelled.size} labels ({args.labels_per_class} per class, seed {args.seed}), {args.architecture} "
          f"encoder {args.hidden}, code {args.latent_dim} ({machine()})\n")
    print(table(HEADER, rows))
    print()
    print(table(["anchor (same setting)", "test error %"], [[n, e] for n, e in ANCHORS]))


if __name__ == "__main__":
    main()
