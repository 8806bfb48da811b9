"""Rate and distortion of learned compression against JPEG and WebP (Pillow), on MNIST or the CIFAR-10 subset.

Bits per image are file sizes: the bytes of ``aekit.compress`` (header, length and checksum included) and
of Pillow's JPEG and WebP files. Two ways:

- single: every test image in a file of its own (what a user storing one image pays, headers included);
- mosaic: 100 images per file (a 10x10 mosaic for JPEG and WebP, an array of 100 for aekit), headers
  amortized; bits per image = file size / 100.

PSNR is ``10 log10(1 / MSE)`` with the MSE over every pixel of the test images (values in [0, 1]).
The aekit codec is an autoencoder trained here (MLP, K code units), its probability model fitted to the
training codes; its points are the codes alone at several steps and the codes plus the refinement layer
(residual steps), and its curve is their lower envelope (the best PSNR reachable at each rate).

    python benchmarks/bench_compression.py --data-dir ../shared/data/mnist
    python benchmarks/bench_compression.py --data ../shared/data/cifar10-subset/cifar10_subset.npz

``--family rate-distortion`` trains a :class:`aekit.RateDistortionAutoencoder` for each of ``--lmbdas`` instead
(rate and distortion trained together); its points are the codes alone under the learned densities at the
steps ``--rd-steps`` (step 1 is the trained rate), and, for comparison, at step 1 under Laplace densities fitted
to the codes afterwards (``fit_code_model(..., learned=False)``, the codec of any other model).
"""

from __future__ import annotations

import argparse
import io
import math
import time
from typing import Any

import numpy as np

import aekit

from _common import add_data_args, machine, table

QUALITIES = (1, 5, 10, 20, 30, 50, 70, 90)
STEPS = (8.0, 4.0, 2.0, 1.0, 0.5, 0.25)
REFINE = ((2.0, 0.5), (1.0, 0.5), (1.0, 0.45), (2.0, 0.4), (1.0, 0.4), (1.0, 0.35), (2.0, 0.3), (1.0, 0.3),
          (0.7, 0.3), (1.0, 0.25), (1.0, 0.2), (0.7, 0.2), (0.7, 0.15), (1.0, 0.15), (1.0, 0.1), (0.5, 0.1),
          (1.0, 0.07), (0.5, 0.07), (1.0, 0.05), (0.5, 0.05), (0.5, 0.035), (0.5, 0.025))


def psnr(X: np.ndarray, R: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(X, np.float64) - np.asarray(R, np.float64)) ** 2))
    return 10 * math.log10(1.0 / mse) if mse > 0 else math.inf


def to_pil(img: np.ndarray) -> Any:
    from PIL import Image

    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)  # (C, H, W)
    return Image.fromarray(u8[0]) if u8.shape[0] == 1 else Image.fromarray(u8.transpose(1, 2, 0))


def pil_codec(img: np.ndarray, fmt: str, quality: int) -> tuple[int, np.ndarray]:
    """Bytes of ``img`` (C, H, W) in [0, 1] saved as JPEG or WebP, and its decoding."""
    from PIL import Image

    buf = io.BytesIO()
    to_pil(img).save(buf, format=fmt, quality=quality)
    n = buf.tell()
    buf.seek(0)
    with Image.open(buf) as im:
        a = np.asarray(im.convert("L" if img.shape[0] == 1 else "RGB"), np.float64) / 255.0
    return n, (a[None] if a.ndim == 2 else a.transpose(2, 0, 1))


def mosaic(X: np.ndarray, cols: int = 10) -> np.ndarray:
    """(100, C, H, W) -> (C, 10H, 10W)."""
    n, C, H, W = X.shape
    return X.reshape(n // cols, cols, C, H, W).transpose(2, 0, 3, 1, 4).reshape(C, n // cols * H, cols * W)


def unmosaic(M: np.ndarray, H: int, W: int, cols: int = 10) -> np.ndarray:
    C = M.shape[0]
    rows = M.shape[1] // H
    return M.reshape(C, rows, H, cols, W).transpose(1, 3, 0, 2, 4).reshape(rows * cols, C, H, W)


def pil_rows(X: np.ndarray, fmt: str, groups: list[np.ndarray], single: int) -> list[list[Any]]:
    rows = []
    for q in QUALITIES:
        single_bits, single_R = 0, []
        for img in X[:single]:
            n, r = pil_codec(img, fmt, q)
            single_bits += 8 * n
            single_R.append(r)
        mos_bits, mos_R = 0, []
        for G in groups:
            n, r = pil_codec(mosaic(G), fmt, q)
            mos_bits += 8 * n
            mos_R.append(unmosaic(r, *G.shape[2:]))
        rows.append([fmt, f"quality {q}", single_bits / single, psnr(X[:single], np.stack(single_R)),
                     mos_bits / (100 * len(groups)), psnr(np.concatenate(groups), np.concatenate(mos_R))])
    return rows


def aekit_rows(model: Any, cm: Any, X: np.ndarray, groups: list[np.ndarray], single: int) -> list[list[Any]]:
    rows = []
    for step, rs in [(s, None) for s in STEPS] + list(REFINE):
        kw = {"code_model": cm, "step": step, "residual_step": rs}
        single_bits, single_R = 0, []
        for img in X[:single]:
            data = aekit.compress(model, img[None], **kw)
            single_bits += 8 * len(data)
            single_R.append(aekit.decompress(model, data, code_model=cm)[0])
        mos_bits, mos_R = 0, []
        for G in groups:
            data = aekit.compress(model, G, **kw)
            mos_bits += 8 * len(data)
            mos_R.append(aekit.decompress(model, data, code_model=cm))
        name = f"step {step:g}" + ("" if rs is None else f", refine {rs:g}")
        rows.append(["aekit", name, single_bits / single, psnr(X[:single], np.stack(single_R)),
                     mos_bits / (100 * len(groups)), psnr(np.concatenate(groups), np.concatenate(mos_R))])
    return rows


def rd_rows(models: list[tuple[float, Any]], Xtr: np.ndarray, X: np.ndarray, groups: list[np.ndarray], single: int,
            steps: list[float]) -> list[list[Any]]:
    """Rows of rate-distortion models (lmbda, model): learned densities at ``steps``, fitted ones at step 1."""
    rows = []
    for lmbda, model in models:
        for learned, settings in ((True, steps), (False, [1.0])):
            cm = aekit.fit_code_model(model, Xtr, learned=learned)
            for step in settings:
                single_bits, single_R = 0, []
                for img in X[:single]:
                    data = aekit.compress(model, img[None], code_model=cm, step=step)
                    single_bits += 8 * len(data)
                    single_R.append(aekit.decompress(model, data, code_model=cm)[0])
                mos_bits, mos_R = 0, []
                for G in groups:
                    data = aekit.compress(model, G, code_model=cm, step=step)
                    mos_bits += 8 * len(data)
                    mos_R.append(aekit.decompress(model, data, code_model=cm))
                name = f"lmbda {lmbda:g}, step {step:g}" + ("" if learned else ", fitted densities")
                rows.append(["aekit" if learned else "aekit (fitted)", name, single_bits / single,
                             psnr(X[:single], np.stack(single_R)), mos_bits / (100 * len(groups)),
                             psnr(np.concatenate(groups), np.concatenate(mos_R))])
    return rows


def envelope(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats in both rate and PSNR, by rate."""
    pts = sorted(points)
    out: list[tuple[float, float]] = []
    for r, p in pts:
        if not out or p > out[-1][1]:
            out.append((r, p))
    return out


def at_rate(env: list[tuple[float, float]], rate: float) -> float:
    """Best PSNR measured at a rate no higher than ``rate`` (no interpolation; -inf below the lowest rate)."""
    return max((p for r, p in env if r <= rate), default=-math.inf)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(p)
    p.add_argument("--limit", type=int, default=20000, help="training images (default: 20000)")
    p.add_argument("--test-limit", type=int, default=1000, help="test images, a multiple of 100 (default: 1000)")
    p.add_argument("--single", type=int, default=200, help="test images compressed one per file (default: 200)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--architecture", default="mlp", choices=("mlp", "conv"))
    p.add_argument("--plot", default="benchmarks/figures/compression-mnist.png")
    p.add_argument("--family", default="autoencoder", choices=("autoencoder", "rate-distortion"))
    p.add_argument("--lmbdas", default="0.003,0.01,0.03", help="rate-distortion: the models' rate weights")
    p.add_argument("--batch-size", type=int, default=128, help="rate-distortion: training batch size")
    p.add_argument("--rd-steps", default="0.7,1,1.4", help="rate-distortion: quantization steps (1: trained)")
    a = p.parse_args()
    single = a.single
    print(machine())
    t0 = time.perf_counter()
    train = aekit.load_dataset(a.data, split="train", data_dir=a.data_dir, limit=a.limit)
    test = aekit.load_dataset(a.data, split="test", data_dir=a.data_dir, limit=a.test_limit)
    Xtr, X = np.asarray(train.X, np.float32), np.asarray(test.X, np.float32)
    if X.max() > 1.0:
        Xtr, X = Xtr / 255.0, X / 255.0
    X = X[: len(X) // 100 * 100]
    groups = [X[i : i + 100] for i in range(0, len(X), 100)]
    if a.family == "rate-distortion":
        models = []
        for lmbda in (float(v) for v in a.lmbdas.split(",")):
            t1 = time.perf_counter()
            rd = aekit.RateDistortionAutoencoder(lmbda=lmbda, latent_dim=a.latent_dim, max_epochs=a.epochs,
                                                 batch_size=a.batch_size, random_state=0, verbose=0).fit(Xtr)
            h = rd.history_[-1]
            print(f"lmbda {lmbda:g}: {rd.resolved_.architecture} {rd.resolved_.hidden_dims}, code {rd.code_shape_}, "
                  f"{len(rd.history_)} epochs in {time.perf_counter() - t1:.0f} s; last epoch distortion "
                  f"{h['distortion']:.3f}, rate {h['rate'] / lmbda:.0f} bits; test rate_bits "
                  f"{rd.rate_bits(X).mean():.0f}", flush=True)
            models.append((lmbda, rd))
        print(f"{a.data}: {len(Xtr)} training images, {len(X)} test images ({single} one per file); "
              f"rate-distortion models, {a.epochs} epochs each")
        rows = rd_rows(models, Xtr, X, groups, single, [float(v) for v in a.rd_steps.split(",")])
    else:
        model = aekit.Autoencoder(latent_dim=a.latent_dim, architecture=a.architecture, max_epochs=a.epochs,
                                  random_state=0, verbose=0).fit(Xtr)
        t_fit = time.perf_counter() - t0
        cm = aekit.fit_code_model(model, Xtr)
        print(f"{a.data}: {len(Xtr)} training images, {len(X)} test images ({single} one per file); autoencoder "
              f"{a.architecture} K={a.latent_dim}, {a.epochs} epochs, trained in {t_fit:.0f} s; reconstruction "
              f"PSNR {psnr(X, model.reconstruct(X)):.2f} dB")
        rows = aekit_rows(model, cm, X, groups, single)
    for fmt in ("JPEG", "WebP"):
        rows += pil_rows(X, fmt, groups, single)
    header = ["codec", "setting", "bits/image (single)", "PSNR dB (single)", "bits/image (mosaic)",
              "PSNR dB (mosaic)"]
    print(table(header, rows))
    # The goal: on mosaics, higher PSNR than JPEG and WebP at each of their rates up to 1,000 bits per image.
    for way, ri, pi in (("mosaic", 4, 5), ("single", 2, 3)):
        env = envelope([(r[ri], r[pi]) for r in rows if r[0] == "aekit"])
        peers = [r for r in rows if r[0] in ("JPEG", "WebP")]
        lowest = min(r[ri] for r in peers)
        checks = [(r[0], r[1], r[ri], r[pi], at_rate(env, r[ri])) for r in peers if r[ri] <= 1000]
        won = sum(ours > theirs for *_, theirs, ours in checks)
        print(f"\n{way}: aekit beats the peer at {won} of {len(checks)} peer points up to 1,000 bits per image; "
              f"aekit's lowest rate {env[0][0]:.0f} bits ({env[0][1]:.2f} dB), the peers' lowest {lowest:.0f}")
        for codec, setting, r, theirs, ours in checks:
            print(f"  {codec} {setting}: {r:.0f} bits, {theirs:.2f} dB; aekit at no more bits {ours:.2f} dB"
                  f" ({'better' if ours > theirs else 'worse'})")
    if a.plot:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import NullFormatter

        fig = Figure(figsize=(10, 4), layout="constrained")
        for ax, (way, ri, pi) in zip(fig.subplots(1, 2), (("single image per file", 2, 3), ("mosaics of 100", 4, 5))):
            for codec, style in (("aekit", "o-"), ("JPEG", "s--"), ("WebP", "^--")):
                pts = [(r[ri], r[pi]) for r in rows if r[0] == codec]
                pts = envelope(pts) if codec == "aekit" else sorted(pts)
                ax.plot(*zip(*pts), style, label=codec)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("bits per image (file size)")
            ax.set_ylabel("PSNR (dB)")
            ax.set_title(f"{a.data.split('/')[-1]}: {way}")
            ax.grid(alpha=0.3)
            ax.legend()
        FigureCanvasAgg(fig)
        fig.savefig(a.plot, dpi=110)
        print(f"\nplot: {a.plot}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
