"""MNIST classification with autoencoder features, against the published anchors (ANCHORS.md).

Rows, each scored by its test error % on the 10,000 MNIST test images:

- ``pixels``, ``pixels-knn``: logistic regression, 5-NN on the raw pixels;
- ``pca``, ``pca-knn``: the same on PCA codes of ``--code`` values;
- ``aekit-codes``, ``aekit-codes-knn``: the same on the codes of the default ``Autoencoder(latent_dim=--code)``
  (PCA plus a correction, ``--ae-epochs`` epochs);
- ``aekit-finetune``: that autoencoder's encoder fine-tuned with a softmax head on its code
  (``aekit.apps.features.FineTunedClassifier``, ``--epochs`` epochs, early stopping on a tenth of the training
  images), what ``aekit features RUN --finetune`` runs;
- ``aekit-finetune-conv``: the same with a convolutional ``Autoencoder(architecture="conv",
  hidden_dims=--conv-channels, latent_dim=--conv-code)`` trained ``--conv-ae-epochs`` epochs, its encoder fine-tuned
  ``--conv-epochs`` epochs (same learning rate, schedule and validation split as ``aekit-finetune``);
- ``ae-codes``, ``dae-codes``, ``cae-codes``: logistic regression on the frozen codes of a one-layer
  autoencoder of ``--hidden`` sigmoid units, plain, denoising (masking noise) or contractive, trained
  greedily and never fine-tuned (``StackedAutoencoder`` with one layer and ``objective="none"``, the
  frozen features of Vincent et al. 2010, sec. 7);
- ``sda``: a stacked denoising autoencoder, ``--sda-layers`` layers of ``--hidden`` units, pretrained
  layer by layer, then fine-tuned with a softmax layer on the top code (``objective="classify"``);
  anchor 1.28 (SdA-3, Vincent et al., JMLR 2010);
- ``sda-no-pretraining``: the same network fine-tuned from its random initialization
  (``pretrain_epochs=0``), the baseline that shows what the pretraining brings;
- ``cae``: a contractive autoencoder of ``--cae-layers`` layers of ``--hidden`` units, pretrained then
  fine-tuned the same way; anchor 1.14 (CAE, one layer of 1,000 units, Rifai et al., ICML 2011).

Logistic regression is scikit-learn's (lbfgs, ``--lr-max-iter`` iterations) on standardized inputs.
The networks use logistic units and Adam; there is no validation split (fixed epoch counts, all
training images used). "train s" is the wall time of everything fitted for the row (autoencoder and
logistic regression).

    python benchmarks/bench_features.py --data-dir ../shared/data/mnist
    python benchmarks/bench_features.py --data-dir ../shared/data/mnist --limit 2000 --epochs 1 --pretrain-epochs 1
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import aekit
from aekit.apps.features import FineTunedClassifier, make_classifier
from aekit.families.stacked import StackedAutoencoder

from _common import add_data_args, machine, table

ROWS = ("pixels", "pixels-knn", "pca", "pca-knn", "aekit-codes", "aekit-codes-knn", "aekit-finetune", "aekit-finetune-conv", "ae-codes", "dae-codes", "cae-codes", "sda", "sda-no-pretraining", "cae")
ANCHORS = {"sda": 1.28, "cae": 1.14}
HEADER = ["model", "test error %", "anchor %", "train s", "train images"]


def logistic_error(F_train: np.ndarray, y_train: np.ndarray, F_test: np.ndarray, y_test: np.ndarray,
                   max_iter: int) -> float:
    """Test error % of a logistic regression fitted on the features ``F_train`` (n, d)."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():
        # A capped iteration count is the setting of this row, not a fault to report on every run.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(F_train, y_train)
    return 100.0 * float(np.mean(clf.predict(F_test) != y_test))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--only", default=",".join(ROWS), help="comma list of rows to run (default: all)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs (default: %(default)s)")
    p.add_argument("--pretrain-epochs", type=int, default=15, help="greedy epochs per layer (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=1000, help="units per layer (default: %(default)s)")
    p.add_argument("--code", type=int, default=32, help="code size of the pca and aekit rows (default: %(default)s)")
    p.add_argument("--ae-epochs", type=int, default=10, help="epochs of the aekit autoencoder (default: %(default)s)")
    p.add_argument("--ft-validation", type=float, default=0.1,
                   help="held out for early stopping of aekit-finetune; 0: none (default: %(default)s)")
    p.add_argument("--ft-schedule", default="constant", choices=("constant", "cosine"),
                   help="learning-rate schedule of the fine-tuned rows (aekit-finetune, aekit-finetune-conv, sda, cae; for sda and "
                        "cae it also schedules each layer's pretraining) (default: %(default)s)")
    p.add_argument("--ft-weight-decay", type=float, default=0.0,
                   help="decoupled weight decay (AdamW) of the fine-tuned rows (aekit-finetune, aekit-finetune-conv, sda, "
                        "cae; for sda and cae also of each layer's pretraining) (default: %(default)s)")
    p.add_argument("--ft-translation", type=int, default=0,
                   help="random shifts of up to N pixels of every training image while fine-tuning aekit-finetune and "
                        "aekit-finetune-conv (an augmentation; 0: none) (default: %(default)s)")
    p.add_argument("--ft-dropout", type=float, default=0.0,
                   help="dropout of the hidden units while the sda and cae rows fine-tune (default: %(default)s)")
    p.add_argument("--ft-input-dropout", type=float, default=0.0,
                   help="dropout of the input while the sda and cae rows fine-tune (default: %(default)s)")
    p.add_argument("--ft-max-norm", type=float, default=0.0,
                   help="longest incoming weight vector of a hidden unit while the sda and cae rows fine-tune "
                        "(0: no constraint) (default: %(default)s)")
    p.add_argument("--conv-channels", default="32,64",
                   help="channel counts of aekit-finetune-conv's strided convolutions (default: %(default)s)")
    p.add_argument("--conv-code", type=int, default=128, help="code size of aekit-finetune-conv (default: %(default)s)")
    p.add_argument("--conv-ae-epochs", type=int, default=5,
                   help="epochs of aekit-finetune-conv's autoencoder (default: %(default)s)")
    p.add_argument("--conv-epochs", type=int, default=10,
                   help="fine-tuning epochs of aekit-finetune-conv (default: %(default)s)")
    p.add_argument("--sda-layers", type=int, default=3)
    p.add_argument("--cae-layers", type=int, default=1)
    p.add_argument("--corruption", default="masking:0.25", help="q(h'|h) of the denoising layers")
    p.add_argument("--cae-alpha", type=float, default=0.1, help="weight of the contractive penalty")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate, pretraining and fine-tuning")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr-max-iter", type=int, default=200, help="lbfgs iterations of the logistic regressions")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    rows_wanted = [r for r in args.only.split(",") if r]
    unknown = sorted(set(rows_wanted) - set(ROWS))
    if unknown:
        p.error(f"unknown rows {unknown}; valid: {', '.join(ROWS)}")

    train = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir, limit=args.limit)
    test = aekit.load_dataset(args.data, split="test", data_dir=args.data_dir)
    if train.y is None or test.y is None:
        p.error(f"{args.data} has no labels; this benchmark needs a labelled data set such as mnist")
    common: dict[str, Any] = {
        "learning_rate": args.lr, "batch_size": args.batch_size, "validation_fraction": 0.0, "patience": None,
        "device": args.device, "random_state": args.seed, "verbose": 1,
    }

    def shallow(layer_family: str) -> StackedAutoencoder:
        return StackedAutoencoder(
            hidden_dims=(), latent_dim=args.hidden, layer_family=layer_family, layer_corruption=args.corruption,
            layer_alpha=args.cae_alpha if layer_family == "contractive" else "auto",
            pretrain_epochs=args.pretrain_epochs, objective="none", **common,
        )

    def deep(layer_family: str, n_layers: int, pretrain_epochs: int) -> StackedAutoencoder:
        return StackedAutoencoder(
            hidden_dims=(args.hidden,) * (n_layers - 1), latent_dim=args.hidden, layer_family=layer_family,
            layer_corruption=args.corruption, layer_alpha=args.cae_alpha if layer_family == "contractive" else "auto",
            pretrain_epochs=pretrain_epochs, max_epochs=args.epochs, objective="classify",
            lr_schedule=args.ft_schedule, finetune_dropout=args.ft_dropout,
            finetune_input_dropout=args.ft_input_dropout, finetune_max_norm=args.ft_max_norm, weight_decay=args.ft_weight_decay, **common,
        )

    Xtr, Xte = train.X.reshape(len(train.X), -1), test.X.reshape(len(test.X), -1)
    codes = {"ae-codes": "autoencoder", "dae-codes": "denoising", "cae-codes": "contractive"}
    networks = {
        "sda": lambda: deep("denoising", args.sda_layers, args.pretrain_epochs),
        "sda-no-pretraining": lambda: deep("denoising", args.sda_layers, 0),
        "cae": lambda: deep("contractive", args.cae_layers, args.pretrain_epochs),
    }
    unit = f"{args.hidden} sigmoid units"
    descr = {
        "pixels": "logistic regression, raw pixels",
        "ae-codes": f"logistic regression, frozen codes of an autoencoder ({unit})",
        "dae-codes": f"logistic regression, frozen codes of a denoising autoencoder ({unit}, {args.corruption})",
        "cae-codes": f"logistic regression, frozen codes of a contractive autoencoder ({unit}, alpha {args.cae_alpha:g})",
        "sda": f"stacked denoising autoencoder {args.sda_layers}x{args.hidden}, fine-tuned",
        "sda-no-pretraining": "same network as sda, fine-tuned from random initialization",
        "cae": f"contractive autoencoder {args.cae_layers}x{args.hidden}, fine-tuned",
    }
    for row in ("sda", "sda-no-pretraining", "cae"):
        if args.ft_weight_decay:
            descr[row] += f", weight decay {args.ft_weight_decay:g}"
        if args.ft_max_norm:
            descr[row] += f", max-norm {args.ft_max_norm:g}"
    descr.update({
        "pixels-knn": "5-NN, raw pixels", "pca": f"logistic regression, PCA codes ({args.code})",
        "pca-knn": f"5-NN, PCA codes ({args.code})",
        "aekit-codes": f"logistic regression, codes of the default Autoencoder ({args.code}, {args.ae_epochs} epochs)",
        "aekit-codes-knn": f"5-NN, codes of the default Autoencoder ({args.code})",
        "aekit-finetune": f"default Autoencoder ({args.code}) fine-tuned with a softmax head (FineTunedClassifier)",
        "aekit-finetune-conv": f"conv Autoencoder (channels {args.conv_channels}, code {args.conv_code}, "
                               f"{args.conv_ae_epochs} epochs) fine-tuned {args.conv_epochs} epochs with a softmax head"
                               + (f", shifts of up to {args.ft_translation} px" if args.ft_translation else "")
                               + (f", weight decay {args.ft_weight_decay:g}" if args.ft_weight_decay else ""),
    })
    cache: dict[str, Any] = {}

    def aekit_ae() -> Any:
        if "ae" not in cache:
            cache["ae"] = aekit.Autoencoder(latent_dim=args.code, max_epochs=args.ae_epochs, device=args.device,
                                            random_state=args.seed, verbose=0).fit(train.X)
        return cache["ae"]

    def finetune(ae: Any, epochs: int) -> float:
        clf = FineTunedClassifier(ae, max_epochs=epochs, learning_rate=args.lr, batch_size=args.batch_size,
                                  lr_schedule=args.ft_schedule, validation_fraction=args.ft_validation,
                                  weight_decay=args.ft_weight_decay, translation=args.ft_translation,
                                  device=args.device, random_state=args.seed, verbose=1).fit(train.X, train.y)
        print("fine-tuning epochs:", len(clf.history_), "val_loss by epoch:",
              [round(r.get("val_loss", float("nan")), 4) for r in clf.history_], flush=True)
        return 100.0 * (1.0 - clf.score(test.X, test.y))

    def pca_codes() -> tuple[np.ndarray, np.ndarray]:
        if "pca" not in cache:
            pca = PCA(args.code, random_state=args.seed).fit(Xtr)
            cache["pca"] = (pca.transform(Xtr), pca.transform(Xte))
        return cache["pca"]  # type: ignore[no-any-return]

    def knn_error(F_train: np.ndarray, F_test: np.ndarray) -> float:
        clf = make_classifier("knn").fit(F_train, train.y)
        return 100.0 * float(np.mean(clf.predict(F_test) != test.y))

    rows = []
    for name in rows_wanted:
        t0 = time.perf_counter()
        if name == "pixels":
            err = logistic_error(Xtr, train.y, Xte, test.y, args.lr_max_iter)
        elif name == "pixels-knn":
            err = knn_error(Xtr, Xte)
        elif name in ("pca", "pca-knn"):
            F_tr, F_te = pca_codes()
            err = knn_error(F_tr, F_te) if name == "pca-knn" else logistic_error(F_tr, train.y, F_te, test.y,
                                                                                  args.lr_max_iter)
        elif name in ("aekit-codes", "aekit-codes-knn"):
            ae = aekit_ae()
            F_tr, F_te = ae.transform(train.X), ae.transform(test.X)
            err = knn_error(F_tr, F_te) if name.endswith("knn") else logistic_error(F_tr, train.y, F_te, test.y,
                                                                                     args.lr_max_iter)
        elif name == "aekit-finetune":
            err = finetune(aekit_ae(), args.epochs)
        elif name == "aekit-finetune-conv":
            channels = tuple(int(c) for c in args.conv_channels.split(","))
            conv = aekit.Autoencoder(architecture="conv", hidden_dims=channels, latent_dim=args.conv_code,
                                     max_epochs=args.conv_ae_epochs, batch_size=args.batch_size, device=args.device,
                                     random_state=args.seed, verbose=1).fit(train.X)
            print(f"conv autoencoder: {time.perf_counter() - t0:.1f} s", flush=True)
            err = finetune(conv, args.conv_epochs)
        elif name in codes:
            est = shallow(codes[name]).fit(train.X)
            err = logistic_error(est.transform(train.X), train.y, est.transform(test.X), test.y, args.lr_max_iter)
        else:
            est = networks[name]().fit(train.X, train.y)
            err = 100.0 * (1.0 - est.score(test.X, test.y))
        secs = time.perf_counter() - t0
        rows.append([descr[name], err, ANCHORS.get(name, "-"), secs, len(train.X)])
        print(table(HEADER, rows[-1:]), flush=True)
    print(f"\nMNIST test error, {args.pretrain_epochs} pretraining epochs per layer, {args.epochs} fine-tuning epochs "
          f"({machine()})\n")
    print(table(HEADER, rows))
    print("\nAnchors: SdA-3 1.28% (Vincent et al., JMLR 2010); CAE 1.14% (Rifai et al., ICML 2011).")


if __name__ == "__main__":
    main()
