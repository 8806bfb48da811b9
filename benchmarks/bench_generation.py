"""Sample quality on MNIST: a plain autoencoder's decoder fed N(0, I) draws, the same decoder fed draws of a
Gaussian mixture fitted to its training codes, and a VAE sampling from its prior, at several code sizes.

The measure (aekit.report.quality): a small convolutional classifier trained here on the training split
(its test accuracy is printed), then for ``--samples`` samples of each model

- ``frechet``: the Fréchet distance between the classifier's penultimate-layer features of the samples and
  of the test images (lower is better); two halves of the test images give the floor, printed first;
- ``max prob``: the mean maximum class probability of the samples (does each look like some digit?);
- ``classes``: how many of the ten classes get at least 2 % of the samples, and the largest share.

The test reconstruction error (squared error per image) of each model is printed beside. The VAE rows
are skipped with a note when ``aekit.VAE`` does not exist.

    python benchmarks/bench_generation.py --data-dir ../shared/data/mnist
    python benchmarks/bench_generation.py --data-dir ../shared/data/mnist --train-limit 10000 --epochs 5 \\
        --quality-epochs 2 --test-limit 2000 --samples 1000

``--frey PATH --figures DIR`` instead trains an autoencoder on the Frey faces (squared error: a Gaussian
decoder of fixed variance) and a VAE (a Gaussian decoder of learned variance) and writes figures: the
autoencoder's decodings of N(0, I) draws beside draws of a Gaussian mixture fitted to its codes; the same
N(0, I) draws through the plain decoder and through the VAE's; linear and spherical interpolations between
two faces for each.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

import aekit
from aekit.report.metrics import reconstruction_metrics
from aekit.report.quality import SampleQuality

from _common import add_data_args, machine, table


def _row(name: str, d: int, draws: str, est: Any, S: np.ndarray, q: SampleQuality, test: Any, secs: float) -> list[Any]:
    s = q.evaluate(S, test.X)
    err = reconstruction_metrics(test.X, est.reconstruct(test.X))["sq_err_per_image"]
    covered = int((s.class_histogram >= 0.02).sum())
    return [d, name, draws, s.frechet, s.mean_max_prob, f"{covered} (max {s.class_histogram.max():.0%})", err, secs]


def frey_figures(path: str, out: str, epochs: int, latent_dim: int, components: int) -> None:
    from pathlib import Path

    from aekit.report.figures import image_rows_figure, samples_comparison_figure

    faces = aekit.load_dataset(path)
    ae = aekit.Autoencoder(latent_dim=latent_dim, max_epochs=epochs, loss="mse", random_state=0, verbose=0)
    t0 = time.perf_counter()
    ae.fit(faces.X)
    print(f"Frey faces {faces.X.shape}: autoencoder d={latent_dim}, {len(ae.history_)} epochs in "
          f"{time.perf_counter() - t0:.0f} s, squared error per image "
          f"{reconstruction_metrics(faces.X, ae.reconstruct(faces.X))['sq_err_per_image']:.4g}")
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    normal = aekit.generate(ae, 24, density="normal", random_state=0)
    gmm = aekit.generate(ae, 24, faces.X, density="gmm", n_components=components, random_state=0)
    (d / "frey-samples.png").write_bytes(samples_comparison_figure(
        [("N(0, I) codes, decoded", normal.samples), (f"codes from a {components}-component GMM", gmm.samples)],
        title=f"Frey faces: samples of an autoencoder with a {latent_dim}-D code"))
    Z = ae.transform(faces.X)
    i = 0
    j = int(np.linalg.norm(Z - Z[i], axis=1).argmax())  # the face whose code is farthest: the most change to see
    rows = [(m, aekit.interpolate(ae, faces.X[i], faces.X[j], steps=10, method=m)) for m in ("linear", "slerp")]
    (d / "frey-interpolation.png").write_bytes(image_rows_figure(
        rows, title=f"Frey faces: from face {i} to face {j}, decoded along the path between their codes"))
    print(f"wrote {d / 'frey-samples.png'} and {d / 'frey-interpolation.png'}")

    # The VAE with a Gaussian decoder of learned per-pixel variance, as Kingma and Welling trained it on these faces.
    vae = aekit.VAE(latent_dim=latent_dim, likelihood="gaussian", decoder_variance="learned", max_epochs=epochs,
                    random_state=0, verbose=0)
    t0 = time.perf_counter()
    vae.fit(faces.X)
    elbo = float(np.mean(vae.elbo(faces.X)))
    print(f"Frey faces: VAE d={latent_dim}, Gaussian decoder (learned variance), {len(vae.history_)} epochs in "
          f"{time.perf_counter() - t0:.0f} s, ELBO {elbo:.1f} nats per face, squared error per image "
          f"{reconstruction_metrics(faces.X, vae.reconstruct(faces.X))['sq_err_per_image']:.4g}")
    prior = aekit.generate(vae, 24, density="prior", random_state=0)
    normal_ae = aekit.generate(ae, 24, density="normal", random_state=0)
    (d / "frey-vae-samples.png").write_bytes(samples_comparison_figure(
        [("plain autoencoder: N(0, I) codes, decoded", normal_ae.samples),
         ("VAE: draws of its prior N(0, I), decoded (means of p(x|z))", prior.samples)],
        title=f"Frey faces: the same N(0, I) draws through a plain decoder and a VAE's ({latent_dim}-D codes)"))
    rows = [(m, aekit.interpolate(vae, faces.X[i], faces.X[j], steps=10, method=m)) for m in ("linear", "slerp")]
    (d / "frey-vae-interpolation.png").write_bytes(image_rows_figure(
        rows, title=f"Frey faces, VAE: from face {i} to face {j}, decoded along the path between their code means"))
    print(f"wrote {d / 'frey-vae-samples.png'} and {d / 'frey-vae-interpolation.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p)
    p.add_argument("--dims", default="8,16,32", help="code sizes (default: 8,16,32)")
    p.add_argument("--train-limit", type=int, default=None, help="first N training images (default: all 60,000)")
    p.add_argument("--test-limit", type=int, default=None, help="first N test images (default: all 10,000)")
    p.add_argument("--epochs", type=int, default=20, help="epochs of each autoencoder and VAE (default: 20)")
    p.add_argument("--quality-epochs", type=int, default=5, help="epochs of the classifier (default: 5)")
    p.add_argument("--samples", type=int, default=5000, help="samples scored per model (default: 5000)")
    p.add_argument("--components", type=int, default=10, help="components of the Gaussian mixture (default: 10)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--frey", metavar="PATH", help="the Frey faces .npy: write its figures instead (see --figures)")
    p.add_argument("--figures", default="frey-figures", metavar="DIR", help="where the Frey faces figures go")
    p.add_argument("--frey-dim", type=int, default=8, help="code size of the Frey faces autoencoder (default: 8)")
    a = p.parse_args()
    torch.manual_seed(0)
    if a.frey:
        frey_figures(a.frey, a.figures, a.epochs, a.frey_dim, a.components)
        return
    dims = [int(d) for d in a.dims.split(",")]
    train = aekit.load_dataset(a.data, split="train", data_dir=a.data_dir, limit=a.train_limit)
    test = aekit.load_dataset(a.data, split="test", data_dir=a.data_dir, limit=a.test_limit)
    print(f"# {machine()}; {len(train)} training and {len(test)} test images, {a.epochs} epochs, {a.samples} samples")

    t0 = time.perf_counter()
    q = SampleQuality(max_epochs=a.quality_epochs, device=a.device, random_state=0).fit(train.X, train.y)
    print(f"classifier: test accuracy {q.score(test.X, test.y):.4f} after {a.quality_epochs} epochs "
          f"({time.perf_counter() - t0:.0f} s)")
    print(f"floor: Fréchet distance between two halves of the test images {q.floor(test.X):.4g}")

    try:
        vae_cls: Any = aekit.VAE  # type: ignore[attr-defined]
    except (AttributeError, ImportError):
        vae_cls = None
    if vae_cls is None:
        print("note: aekit.VAE does not exist in this version; the VAE rows are skipped")
    common = {"max_epochs": a.epochs, "device": a.device, "random_state": 0, "verbose": 0}
    rows: list[list[Any]] = []
    for d in dims:
        t0 = time.perf_counter()
        ae = aekit.Autoencoder(latent_dim=d, **common).fit(train.X)
        secs = time.perf_counter() - t0
        for draws, density in (("N(0, I)", "normal"), (f"GMM ({a.components})", "gmm")):
            g = aekit.generate(ae, a.samples, train.X, density=density, n_components=a.components, random_state=0)
            rows.append(_row("autoencoder", d, draws, ae, g.samples, q, test, secs))
            print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
        if vae_cls is not None:
            t0 = time.perf_counter()
            vae = vae_cls(latent_dim=d, **common).fit(train.X)
            secs = time.perf_counter() - t0
            g = aekit.generate(vae, a.samples, random_state=0)
            rows.append(_row("vae", d, "prior", vae, g.samples, q, test, secs))
            print(table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(HEADER, rows))


HEADER = ["d", "model", "draws", "frechet", "max prob", "classes >= 2 %", "test sq err / image", "train s"]

if __name__ == "__main__":
    main()
