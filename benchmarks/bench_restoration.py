"""Restoration on MNIST: the denoising autoencoder against classical denoisers and inpainters.

Denoising (the corruptions and the fixed noise draw of ``bench_denoising.py``: ``gaussian:0.5``, not
clipped, and ``masking:0.25``), scored on the test images against the clean ones, PSNR and SSIM
(scikit-image) per image and averaged; every method's output is clipped to [0, 1]:

- noisy input; PCA (K tuned on held-out training images, as in ``bench_denoising.py``);
- scikit-image's non-local means (``h``), total variation (Chambolle, ``weight``) and wavelet (BayesShrink,
  ``sigma``) denoisers and BM3D (the ``bm3d`` package, ``sigma_psd``), each parameter chosen from a grid by
  the mean PSNR on ``--tune`` held-out training images noised with another draw. Wavelets need PyWavelets
  and BM3D the bm3d package (benchmark-only; ``--extra-path`` adds a folder they were installed into);
  without them their rows say so;
- the denoising autoencoder trained against the corruption (``aekit.denoise``).

Inpainting: one 12x12 block per test image at a seeded random position (``aekit.make_mask``), scored on the
masked pixels only: the zero-filled input, scikit-image's biharmonic inpainting, PCA with the known pixels
fixed (the code that fits the known pixels best by least squares, K tuned on held-out images, decoded on the
missing ones) and the denoising autoencoder trained with ``block:12`` occlusion (``aekit.inpaint``, 1 and 5
iterations).

BM3D takes about a second per 28x28 image here, so it runs on the first ``--bm3d-limit`` test images only; a
second table scores every method on that same subset.

    python benchmarks/bench_restoration.py --data-dir ../shared/data/mnist --extra-path /tmp/bm3d-pkgs
    python benchmarks/bench_restoration.py --data-dir ../shared/data/mnist --test-limit 10000 --bm3d-limit 0 \
        --tasks denoise
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from bench_denoising import CORRUPTIONS, corrupt, pca_sweep

import aekit

from _common import add_data_args, machine, table

HEADER = ["task", "method", "PSNR (dB)", "SSIM", "parameter", "seconds"]


def per_image(fn: Callable[[np.ndarray], np.ndarray], X: np.ndarray) -> np.ndarray:
    """Apply a 2-D restorer to each (1, H, W) image; output clipped to [0, 1]."""
    return np.stack([np.clip(fn(x[0]), 0.0, 1.0)[None] for x in X]).astype(np.float32)


def tune(make: Callable[[Any], Callable[[np.ndarray], np.ndarray]], grid: list[Any], clean: np.ndarray,
         noisy: np.ndarray) -> Any:
    """The grid value whose restorer gives the best mean PSNR on the held-out images."""
    scores = [aekit.restoration_scores(clean, per_image(make(v), noisy)).mean_psnr for v in grid]
    return grid[int(np.argmax(scores))]


def classical() -> dict[str, tuple[Callable[[Any], Callable[[np.ndarray], np.ndarray]] | None, list[Any], str]]:
    """Restorer factories by name, with their grids; None with the reason when the package is missing."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    out: dict[str, tuple[Any, list[Any], str]] = {
        "non-local means (skimage)": (lambda h: lambda x: denoise_nl_means(x, h=h, patch_size=5, patch_distance=6),
                                      [0.1, 0.2, 0.3, 0.45, 0.6, 0.8], "h"),
        "total variation (skimage, Chambolle)": (lambda w: lambda x: denoise_tv_chambolle(x, weight=w),
                                                 [0.05, 0.1, 0.2, 0.3, 0.5, 0.8], "weight"),
    }
    try:
        import pywt  # noqa: F401
        from skimage.restoration import denoise_wavelet

        out["wavelet (skimage, BayesShrink)"] = (
            lambda s: lambda x: denoise_wavelet(x, sigma=s, method="BayesShrink", mode="soft", rescale_sigma=True),
            [0.1, 0.2, 0.3, 0.5, 0.7], "sigma")
    except ImportError as exc:
        out["wavelet (skimage, BayesShrink)"] = (None, [], f"skipped: {exc}")
    try:
        import bm3d

        # About a second per 28x28 image here: a coarser grid, tuned on at most 4 of the held-out images.
        out["BM3D (bm3d package)"] = (lambda s: lambda x: bm3d.bm3d(x, sigma_psd=s), [0.2, 0.35, 0.5], "sigma_psd")
    except ImportError as exc:
        out["BM3D (bm3d package)"] = (None, [], f"skipped: {exc}")
    return out


def pca_inpaint(pca: Any, k: int, X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Fill the masked pixels with the PCA reconstruction whose code best fits the known pixels (least squares)."""
    D = int(np.prod(X.shape[1:]))
    V = pca.components_[:k].astype(np.float64)  # (k, D)
    mean = pca.inverse_transform(np.zeros((1, pca.components_.shape[0]), np.float32)).reshape(D).astype(np.float64)
    out = X.reshape(len(X), D).astype(np.float64).copy()
    for i, m in enumerate(M.reshape(len(X), D)):
        known = ~m
        z, *_ = np.linalg.lstsq(V[:, known].T, out[i, known] - mean[known], rcond=None)
        out[i, m] = np.clip(mean[m] + z @ V[:, m], 0.0, 1.0)
    return out.reshape(X.shape).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    p.add_argument("--limit", type=int, default=60000, help="training images (default: all %(default)s)")
    p.add_argument("--test-limit", type=int, default=2000, help="test images (default: %(default)s; 10000 for all)")
    p.add_argument("--bm3d-limit", type=int, default=30,
                   help="test images BM3D restores (the first ones; default: %(default)s); 0 skips BM3D")
    p.add_argument("--tune", type=int, default=20, help="held-out training images for the parameters (default: 20)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each autoencoder (default: %(default)s)")
    p.add_argument("--tasks", default="denoise,inpaint", help="comma-separated: denoise, inpaint (default: both)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra-path", default=None, help="a folder of benchmark-only packages (bm3d, PyWavelets)")
    args = p.parse_args()
    if args.extra_path:
        sys.path.append(args.extra_path)

    train = aekit.load_dataset(args.data, split="train", data_dir=args.data_dir, limit=args.limit)
    test = aekit.load_dataset(args.data, split="test", data_dir=args.data_dir, limit=args.test_limit)
    X, X_test = train.X, test.X
    X_fit, X_val = X[: -args.tune], X[-args.tune :]
    common: dict[str, Any] = {
        "hidden_dims": (512,), "latent_dim": 128, "activation": "relu", "max_epochs": args.epochs,
        "batch_size": 128, "learning_rate": 3e-3, "lr_schedule": "cosine", "validation_fraction": 0.0,
        "patience": None, "device": args.device, "random_state": args.seed, "verbose": 0,
    }
    rows: list[list[object]] = []
    sub_rows: list[list[object]] = []
    n_sub = min(args.bm3d_limit, len(X_test))

    def add(task: str, method: str, clean: np.ndarray, R: np.ndarray, param: object, secs: object,
            mask: np.ndarray | None = None) -> None:
        """Score on every test image given, and on the BM3D subset (the first ``n_sub`` images)."""
        if len(R) == len(clean):
            s = aekit.restoration_scores(clean, R, mask=mask)
            rows.append([task, method, s.mean_psnr, s.mean_ssim, param, secs])
            print(table(HEADER, rows[-1:]), flush=True)
        if n_sub:
            s = aekit.restoration_scores(clean[:n_sub], R[:n_sub], mask=None if mask is None else mask[:n_sub])
            sub_rows.append([task, method, s.mean_psnr, s.mean_ssim, param, secs])

    best_k, _ = pca_sweep(X_fit, X_val, args.seed)
    methods = classical()
    tasks = set(args.tasks.split(","))
    for i, spec in enumerate(CORRUPTIONS if "denoise" in tasks else ()):
        Xn = corrupt(X_test, spec, args.seed + 1 + i)
        Xv = corrupt(X_val, spec, args.seed + 201 + i)
        add(spec, "noisy input, clipped to [0, 1]", X_test, np.clip(Xn, 0, 1), "-", "-")
        t0 = time.perf_counter()
        pca = aekit.LinearAutoencoder(latent_dim=best_k[spec], solver="svd").fit(X)
        add(spec, "PCA (svd)", X_test, np.clip(pca.reconstruct(Xn), 0, 1), f"K={best_k[spec]}",
            round(time.perf_counter() - t0, 1))
        for name, (make, grid, pname) in methods.items():
            bm3d = name.startswith("BM3D")
            if make is None or (bm3d and not n_sub):
                rows.append([spec, name, "-", "-", pname if make is None else "skipped: --bm3d-limit 0", "-"])
                continue
            t0 = time.perf_counter()
            n_tune = 2 if bm3d else len(X_val)
            v = tune(make, grid, X_val[:n_tune], Xv[:n_tune])
            R = per_image(make(v), Xn[:n_sub] if bm3d else Xn)
            if bm3d and n_sub < len(X_test):
                rows.append([spec, name, "-", "-", f"on the first {n_sub} images only (second table)", "-"])
            add(spec, name, X_test, R, f"{pname}={v}", round(time.perf_counter() - t0, 1))
        t0 = time.perf_counter()
        dae = aekit.DenoisingAutoencoder(corruption=spec, **common).fit(X)
        add(spec, "denoising autoencoder, MLP 784-512-128", X_test, np.clip(aekit.denoise(dae, Xn), 0, 1),
            f"{args.epochs} epochs", round(time.perf_counter() - t0, 1))

    if "inpaint" in tasks:
        inpainting(args, X, X_fit, X_val, X_test, common, add)
    print(f"\nMNIST restoration: {len(X_test)} test images, {len(X)} training images ({args.tune} held out for the "
          f"parameters), {args.epochs} epochs per autoencoder ({machine()})\n")
    print(table(HEADER, rows))
    if n_sub:
        print(f"\nThe same methods on the first {n_sub} test images (the subset BM3D restores):\n")
        print(table(HEADER, sub_rows))


def inpainting(args: argparse.Namespace, X: np.ndarray, X_fit: np.ndarray, X_val: np.ndarray, X_test: np.ndarray,
               common: dict[str, Any], add: Callable[..., None]) -> None:
    """Inpainting a 12x12 block, scored on the masked pixels."""
    task = "inpaint block:12x12"
    M = aekit.make_mask("block:12x12", X_test.shape, random_state=args.seed)  # (N, H, W)
    Mv = aekit.make_mask("block:12x12", X_val.shape, random_state=args.seed + 7)
    Mb = M[:, None]
    add(task, "zero-filled input", X_test, np.where(Mb, 0.0, X_test), "-", "-", M)
    from skimage.restoration import inpaint_biharmonic

    t0 = time.perf_counter()
    R = np.stack([np.clip(inpaint_biharmonic(x[0], m), 0, 1)[None] for x, m in zip(X_test, M, strict=True)])
    add(task, "biharmonic (skimage)", X_test, R.astype(np.float32), "-", round(time.perf_counter() - t0, 1), M)
    t0 = time.perf_counter()
    pca = aekit.LinearAutoencoder(latent_dim=128, solver="svd").fit(X_fit)
    ks = [8, 16, 32, 64, 96, 128]
    scores = [aekit.restoration_scores(X_val, pca_inpaint(pca, k, X_val, Mv[:, None]), mask=Mv).mean_psnr for k in ks]
    k = ks[int(np.argmax(scores))]
    add(task, "PCA, known pixels fixed (least squares)", X_test, pca_inpaint(pca, k, X_test, Mb), f"K={k}",
        round(time.perf_counter() - t0, 1), M)
    t0 = time.perf_counter()
    dae = aekit.DenoisingAutoencoder(corruption="block:12", **common).fit(X)
    secs = round(time.perf_counter() - t0, 1)
    for it in (1, 5):
        add(task, f"denoising autoencoder (block:12), {it} iteration(s)", X_test,
            aekit.inpaint(dae, X_test, M, iterations=it), f"{args.epochs} epochs", secs, M)


if __name__ == "__main__":
    main()
