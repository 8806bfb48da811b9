"""Restoration of natural colour images (the CIFAR-10 subset): denoising and colorization.

Denoising: gaussian noise of sigma 25/255 and 50/255 (not clipped; one fixed draw) on the 1,000 test images,
scored against the clean ones with PSNR and SSIM (scikit-image, over the three channels) per image and averaged;
every output is clipped to [0, 1]. Rows:

- noisy input, clipped to [0, 1];
- scikit-image's non-local means (``h``), total variation (Chambolle, ``weight``) and wavelet (BayesShrink on
  YCbCr, ``sigma``), on the colour image, each parameter chosen from a grid by the mean PSNR on ``--tune``
  held-out training images (noised with another draw, never seen by the autoencoder);
- BM3D (the ``bm3d`` package, ``bm3d_rgb`` with the true ``sigma_psd``), on the first ``--bm3d-limit`` test
  images only (a few seconds an image here); a second table scores every method on that subset;
- the denoising autoencoder: an MLP trained with ``aekit.DenoisingAutoencoder(corruption="gaussian:sigma")`` on
  ``--patch`` x ``--patch`` colour patches cropped at random from the training images (and their mirror
  images), then applied with ``aekit.denoise``: overlapping windows of the patch size at ``--stride``,
  averaged.

Colorization: the same network trained with ``corruption="grayscale"`` on the same patches; each test image is
turned to gray (ITU-R BT.601 luma, as the corruption does) and coloured with ``aekit.colorize``. Rows: the gray
image replicated over R, G and B; the per-pixel mean colour of the training images (the same picture for every
input); the autoencoder.

    python benchmarks/bench_restoration_cifar.py --data ../shared/data/cifar10-subset/cifar10_subset.npz \\
        --extra-path /tmp/bm3d-pkgs
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import aekit
from aekit.data.corruption import make_corruption

from _common import machine, table

HEADER = ["task", "method", "PSNR (dB)", "SSIM", "parameter", "seconds"]
SIGMAS = (25, 50)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def corrupt(X: np.ndarray, spec: str, seed: int) -> np.ndarray:
    """One fixed draw of x' ~ q(x'|x) for every image of ``X`` (same shape, float32)."""
    return make_corruption(spec)(torch.from_numpy(X), torch.Generator().manual_seed(seed)).numpy()


def patches(X: np.ndarray, size: int, per_image: int, seed: int) -> np.ndarray:
    """``per_image`` random ``size`` x ``size`` crops of each image, half of them mirrored: (N * per_image, C, s, s)."""
    rng = np.random.default_rng(seed)
    N, C, H, W = X.shape
    n = np.repeat(np.arange(N), per_image)
    ys = rng.integers(0, H - size + 1, len(n))
    xs = rng.integers(0, W - size + 1, len(n))
    idx_y = ys[:, None] + np.arange(size)[None]  # (P, s)
    idx_x = xs[:, None] + np.arange(size)[None]
    P = X[n[:, None, None, None], np.arange(C)[None, :, None, None], idx_y[:, None, :, None], idx_x[:, None, None, :]]
    flip = rng.random(len(n)) < 0.5
    P[flip] = P[flip][..., ::-1]
    return np.ascontiguousarray(P, dtype=np.float32)


def per_image(fn: Callable[[np.ndarray], np.ndarray], X: np.ndarray) -> np.ndarray:
    """Apply a restorer of (H, W, 3) images to each (3, H, W) image; output clipped to [0, 1]."""
    return np.stack([np.clip(fn(x.transpose(1, 2, 0)), 0, 1).transpose(2, 0, 1) for x in X]).astype(np.float32)


def classical(sigma: float) -> dict[str, tuple[Callable[[Any], Callable[[np.ndarray], np.ndarray]] | None, list[Any], str]]:
    """Colour restorer factories by name, with their grids (None and the reason when a package is missing)."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

    out: dict[str, tuple[Any, list[Any], str]] = {
        "non-local means (skimage)": (
            lambda h: lambda x: denoise_nl_means(x, h=h, sigma=sigma, patch_size=5, patch_distance=6, channel_axis=-1,
                                                 fast_mode=True),
            [s * sigma for s in (0.4, 0.6, 0.8, 1.0, 1.2)], "h"),
        "total variation (skimage, Chambolle)": (
            lambda w: lambda x: denoise_tv_chambolle(x, weight=w, channel_axis=-1),
            [s * sigma for s in (0.3, 0.5, 0.7, 1.0, 1.5)], "weight"),
    }
    try:
        import pywt  # noqa: F401
        from skimage.restoration import denoise_wavelet

        out["wavelet (skimage, BayesShrink, YCbCr)"] = (
            lambda s: lambda x: denoise_wavelet(x, sigma=s, method="BayesShrink", mode="soft", rescale_sigma=True,
                                                channel_axis=-1, convert2ycbcr=True),
            [s * sigma for s in (0.5, 0.75, 1.0, 1.25)], "sigma")
    except ImportError as exc:
        out["wavelet (skimage, BayesShrink, YCbCr)"] = (None, [], f"skipped: {exc}")
    try:
        import bm3d

        out["BM3D (bm3d package, bm3d_rgb)"] = (lambda s: lambda x: bm3d.bm3d_rgb(x, sigma_psd=s), [sigma], "sigma_psd")
    except ImportError as exc:
        out["BM3D (bm3d package, bm3d_rgb)"] = (None, [], f"skipped: {exc}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/cifar10-subset/cifar10_subset.npz",
                   help="the CIFAR-10 subset .npz (x_train, x_test; default: %(default)s)")
    p.add_argument("--test-limit", type=int, default=200, help="test images (default: %(default)s; 1000 for all)")
    p.add_argument("--bm3d-limit", type=int, default=20, help="test images BM3D restores, the first ones (default: "
                   "%(default)s); 0 skips it")
    p.add_argument("--tune", type=int, default=30, help="training images held out for the parameters (default: 30)")
    p.add_argument("--patch", type=int, default=8, help="side of the training patches (default: %(default)s)")
    p.add_argument("--per-image", type=int, default=8, help="patches cropped per training image (default: %(default)s)")
    p.add_argument("--stride", type=int, default=2, help="step of the restoring windows (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each autoencoder (default: %(default)s)")
    p.add_argument("--tasks", default="denoise,colorize", help="comma-separated: denoise, colorize (default: both)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extra-path", default=None, help="a folder of benchmark-only packages (bm3d, PyWavelets)")
    args = p.parse_args()
    if args.extra_path:
        sys.path.append(args.extra_path)
    tasks = set(args.tasks.split(","))

    X = aekit.load_dataset(args.data, split="train").X  # (4000, 3, 32, 32) in [0, 1]
    X_test = aekit.load_dataset(args.data, split="test").X[: args.test_limit]
    X_fit, X_val = X[: -args.tune], X[-args.tune :]
    P = patches(X_fit, args.patch, args.per_image, args.seed)
    print(f"{len(P)} training patches {P.shape[1:]} from {len(X_fit)} images", flush=True)
    common: dict[str, Any] = {
        "hidden_dims": (1024,), "latent_dim": 512, "activation": "relu", "max_epochs": args.epochs,
        "batch_size": 128, "learning_rate": 2e-3, "lr_schedule": "cosine", "validation_fraction": 0.0,
        "patience": None, "device": args.device, "random_state": args.seed, "verbose": 0,
    }
    net = f"MLP {int(np.prod(P.shape[1:]))}-1024-512 on {args.patch}x{args.patch} patches"
    n_sub = min(args.bm3d_limit, len(X_test))
    rows: list[list[object]] = []
    sub_rows: list[list[object]] = []

    def add(task: str, method: str, clean: np.ndarray, R: np.ndarray, param: object, secs: object) -> None:
        if len(R) == len(clean):
            s = aekit.restoration_scores(clean, R)
            rows.append([task, method, s.mean_psnr, s.mean_ssim, param, secs])
            print(table(HEADER, rows[-1:]), flush=True)
        if n_sub:
            s = aekit.restoration_scores(clean[:n_sub], R[:n_sub])
            sub_rows.append([task, method, s.mean_psnr, s.mean_ssim, param, secs])

    for i, level in enumerate(SIGMAS if "denoise" in tasks else ()):
        sigma = level / 255
        spec, task = f"gaussian:{sigma:.6g}", f"sigma {level}/255"
        Xn = corrupt(X_test, spec, args.seed + 1 + i)
        Xv = corrupt(X_val, spec, args.seed + 201 + i)
        add(task, "noisy input, clipped to [0, 1]", X_test, np.clip(Xn, 0, 1), "-", "-")
        for name, (make, grid, pname) in classical(sigma).items():
            bm3d = name.startswith("BM3D")
            if make is None or (bm3d and not n_sub):
                rows.append([task, name, "-", "-", pname if make is None else "skipped: --bm3d-limit 0", "-"])
                continue
            t0 = time.perf_counter()
            if len(grid) > 1:
                scores = [aekit.restoration_scores(X_val, per_image(make(v), Xv)).mean_psnr for v in grid]
                v = grid[int(np.argmax(scores))]
            else:
                v = grid[0]
            R = per_image(make(v), Xn[:n_sub] if bm3d else Xn)
            if bm3d and n_sub < len(X_test):
                rows.append([task, name, "-", "-", f"on the first {n_sub} images only (second table)", "-"])
            add(task, name, X_test, R, f"{pname}={v:.4g}", round(time.perf_counter() - t0, 1))
        t0 = time.perf_counter()
        dae = aekit.DenoisingAutoencoder(corruption=spec, **common).fit(P)
        secs = round(time.perf_counter() - t0, 1)
        add(task, f"denoising autoencoder, {net}", X_test, np.clip(aekit.denoise(dae, Xn, stride=args.stride), 0, 1),
            f"{args.epochs} epochs, stride {args.stride}", secs)

    if "colorize" in tasks:
        task = "colorize"
        gray = np.einsum("c,nchw->nhw", LUMA, X_test)[:, None]  # (N, 1, H, W)
        add(task, "gray replicated to RGB", X_test, np.repeat(gray, 3, axis=1), "-", "-")
        mean = X_fit.mean(axis=0, keepdims=True)  # (1, 3, H, W)
        add(task, "per-pixel mean colour of the training images", X_test,
            np.broadcast_to(mean, X_test.shape).astype(np.float32), "-", "-")
        t0 = time.perf_counter()
        dae = aekit.DenoisingAutoencoder(corruption="grayscale", **common).fit(P)
        secs = round(time.perf_counter() - t0, 1)
        add(task, f"autoencoder trained with the grayscale corruption, {net}", X_test,
            np.clip(aekit.colorize(dae, gray, stride=args.stride), 0, 1), f"{args.epochs} epochs, stride {args.stride}",
            secs)

    print(f"\nCIFAR-10 subset restoration: {len(X_test)} test images, {len(P)} training patches from {len(X_fit)} "
          f"images ({args.tune} held out for the parameters), {args.epochs} epochs per autoencoder ({machine()})\n")
    print(table(HEADER, rows))
    if n_sub:
        print(f"\nThe same methods on the first {n_sub} test images (the subset BM3D restores):\n")
        print(table(HEADER, sub_rows))


if __name__ == "__main__":
    main()
