"""MNIST reconstruction against the published and measured anchors (ANCHORS.md).

Rows: PCA-30 by the linear svd solver; the ``hinton`` preset (784-1000-500-250-30) trained by aekit;
``hinton-stacked``: the same architecture with the paper's logistic units, pretrained greedily layer by
layer (``StackedAutoencoder``, ``--stack-layer-family`` layers, ``--pretrain-epochs`` each) and then
fine-tuned end to end; ``hinton-sigmoid``: the same logistic network fine-tuned from its random
initialization (``pretrain_epochs=0``), the baseline that shows what pretraining brings;
the Keras blog's dense 784-32-784 (Adam, 50 epochs, batch 256); the ``lecture-conv`` preset (Adam 1e-3,
batch 128, 20 epochs). Units: squared error summed over the 784 pixels (pixels in [0, 1]) averaged over
the 10,000 test images, as in Hinton & Salakhutdinov (2006), and binary cross-entropy per pixel as in
the Keras blog. Trained on all 60,000 training images unless ``--limit``.

    python benchmarks/bench_mnist_reconstruction.py --data-dir ../shared/data/mnist
    python benchmarks/bench_mnist_reconstruction.py --data-dir ../shared/data/mnist --only hinton --hinton-epochs 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import aekit
from aekit.report.metrics import reconstruction_metrics

from _common import add_data_args, machine, table

#: The families --hinton-family can train with the hinton preset: the plain autoencoder and its variants.
HINTON_FAMILIES = {"autoencoder": aekit.Autoencoder, "denoising": aekit.DenoisingAutoencoder,
                   "sparse": aekit.SparseAutoencoder, "contractive": aekit.ContractiveAutoencoder}
ANCHOR_SQ = {"pca": 13.87, "hinton": 3.00, "hinton-stacked": 3.00, "hinton-sigmoid": 3.00}
ANCHOR_BCE = {"keras-dense": 0.09}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--only", default="pca,hinton,keras-dense,lecture-conv", help="comma list of rows to run")
    # The hinton row trains the preset's own recipe; each of these flags replaces one of its settings.
    p.add_argument("--hinton-epochs", type=int, default=None, help="default: the preset's max_epochs")
    p.add_argument("--hinton-lr", type=float, default=None, help="default: the preset's learning_rate")
    p.add_argument("--hinton-batch-size", type=int, default=None, help="default: the preset's batch_size")
    p.add_argument("--hinton-weight-decay", type=float, default=None, help="default: the preset's weight_decay")
    p.add_argument("--hinton-output", choices=("clip", "linear", "sigmoid"), default=None,
                   help="default: the preset's output (linear: without the clip to [0, 1]; sigmoid: with BCE, "
                        "random start only)")
    p.add_argument("--hinton-init", choices=("pca", "random"), default=None,
                   help="default: the preset's init (random: the GELU network from a random start; with --hinton-output "
                        "sigmoid, the logistic output and BCE of the preset before)")
    p.add_argument("--hinton-family", choices=tuple(HINTON_FAMILIES), default="autoencoder",
                   help="the family trained with the hinton preset (the variants start at random: the preset's init "
                        "is the plain autoencoder's) (default: %(default)s)")
    p.add_argument("--pretrain-epochs", type=int, default=10, help="greedy epochs per layer of hinton-stacked")
    p.add_argument("--stack-layer-family", default="autoencoder", help="shallow family of each pretrained layer")
    p.add_argument("--keras-epochs", type=int, default=50)
    p.add_argument("--conv-epochs", type=int, default=20)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu-bf16", action="store_true",
                   help="trained rows: bf16 inputs to the matrix products on a CPU with bf16 units (cpu_bf16=True)")
    p.add_argument("--save-dir", default=None, help="save each trained model as a run directory here")
    args = p.parse_args()
    family = HINTON_FAMILIES[args.hinton_family]
    if args.hinton_init is not None and family is not aekit.Autoencoder:
        p.error(f"--hinton-init is the plain autoencoder's; --hinton-family {args.hinton_family} starts at random")

    train = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir, limit=args.limit)
    test = aekit.load_dataset(args.data, split="test", data_dir=args.data_dir)
    common = {"device": args.device, "random_state": args.seed, "verbose": 1, "cpu_bf16": args.cpu_bf16}
    hinton = family.preset_params("hinton")  # for a variant, without the plain autoencoder's init
    flags = {"max_epochs": args.hinton_epochs, "learning_rate": args.hinton_lr, "batch_size": args.hinton_batch_size,
             "weight_decay": args.hinton_weight_decay, "init": args.hinton_init, "output": args.hinton_output}
    hinton.update({k: v for k, v in flags.items() if v is not None})
    # The stacked rows train with the preset's budget, with the papers' logistic units and a random start.
    stack_train = {k: hinton.get(k, v) for k, v in (("max_epochs", 30), ("batch_size", 128), ("learning_rate", 1e-3),
                                                     ("weight_decay", 0.0))}
    models = {
        "pca": lambda: aekit.LinearAutoencoder(latent_dim=30, solver="svd"),
        "hinton": lambda: family(**{**hinton, **common}),
        "hinton-stacked": lambda: aekit.StackedAutoencoder.from_preset(
            # The stacked family's hinton preset keeps the papers' logistic units.
            "hinton", layer_family=args.stack_layer_family, pretrain_epochs=args.pretrain_epochs, **stack_train,
            lr_schedule="cosine", validation_fraction=0.0, patience=None, **common,
        ),
        "hinton-sigmoid": lambda: aekit.StackedAutoencoder.from_preset(
            # The stacked family's hinton preset keeps the papers' logistic units.
            "hinton", pretrain_epochs=0, **stack_train, lr_schedule="cosine", validation_fraction=0.0, patience=None,
            **common,
        ),
        "keras-dense": lambda: aekit.Autoencoder(
            hidden_dims=(), latent_dim=32, activation="relu", max_epochs=args.keras_epochs, batch_size=256,
            validation_fraction=0.0, patience=None, **common,
        ),
        "lecture-conv": lambda: aekit.Autoencoder.from_preset(
            "lecture-conv", max_epochs=args.conv_epochs, batch_size=128, validation_fraction=0.0,
            patience=None, **common,
        ),
    }
    descr = {
        "pca": "PCA-30 (linear, svd solver)",
        "hinton": ("" if family is aekit.Autoencoder else f"{family.__name__}, ")
                  + f"hinton preset, GELU, init={hinton.get('init', 'random')}, output={hinton.get('output', 'auto')}, "
                  f"Adam {hinton.get('learning_rate', 1e-3):g}, weight decay {hinton.get('weight_decay', 0.0):g}, "
                  f"{hinton.get('lr_schedule', 'constant')} lr, batch {hinton.get('batch_size', 128)}, "
                  f"{hinton.get('max_epochs')} epochs",
        "hinton-stacked": f"hinton, logistic units, {args.stack_layer_family} layers pretrained "
                          f"{args.pretrain_epochs} epochs each, then {stack_train['max_epochs']} epochs fine-tuning",
        "hinton-sigmoid": f"hinton, logistic units, no pretraining, {stack_train['max_epochs']} epochs",
        "keras-dense": f"dense 784-32-784, ReLU code, {args.keras_epochs} epochs, batch 256",
        "lecture-conv": f"lecture-conv preset, {args.conv_epochs} epochs",
    }
    rows = []
    for name in args.only.split(","):
        t0 = time.perf_counter()
        est = models[name]().fit(train.X)
        secs = time.perf_counter() - t0
        history = getattr(est, "history_", None) or [{}]
        bf16 = " (bf16 products)" if history[-1].get("bf16") == 1.0 else ""
        m = reconstruction_metrics(test.X, est.reconstruct(test.X))
        if args.save_dir:
            est.save(f"{args.save_dir}/{name}", overwrite=True)
        rows.append([
            descr[name] + bf16, m["sq_err_per_image"], ANCHOR_SQ.get(name, "-"), m.get("bce_per_pixel", float("nan")),
            ANCHOR_BCE.get(name, "-"), secs, len(train.X),
        ])
        print(table(["model", "test sq. err/image", "anchor", "test BCE/pixel", "anchor", "train s", "train images"],
                    rows[-1:]), flush=True)
    print(f"\nMNIST test reconstruction ({machine()})\n")
    print(table(["model", "test sq. err/image", "anchor", "test BCE/pixel", "anchor", "train s", "train images"], rows))
    print("\nAnchors: Hinton & Salakhutdinov 2006 (deep AE 3.00, PCA 13.87); Keras blog (dense 784-32-784: ~0.09).")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
