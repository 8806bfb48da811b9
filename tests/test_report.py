"""Tests of aekit.metrics (against hand-computed values) and aekit.report (files, HTML, captions)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import aekit
from aekit.data.datasets import Dataset
from aekit.model.sampling import generate
from aekit.report.figures import latent_figure, loss_figure
from aekit.report.html import write_report
from aekit.report.metrics import reconstruction_metrics

torch.set_num_threads(1)

PNG = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------ metrics


def test_metrics_hand_computed() -> None:
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    R = np.array([[0.25, 0.75], [0.75, 0.25]])
    m = reconstruction_metrics(X, R, images=True)  # two one-row images of two pixels
    assert m["sq_err_per_image"] == pytest.approx(0.125)  # 2 pixels x 0.0625, per image
    assert m["mse_per_pixel"] == pytest.approx(0.0625)
    assert m["bce_per_pixel"] == pytest.approx(-math.log(0.75))
    assert m["psnr_db"] == pytest.approx(10 * math.log10(1 / 0.0625))
    assert m["n_samples"] == 2


def test_metrics_images_sum_over_all_pixels() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(5, 1, 4, 4)).astype(np.float32)
    R = np.clip(X + 0.1, 0, 1)
    m = reconstruction_metrics(X, R)
    assert m["sq_err_per_image"] == pytest.approx(((X - R) ** 2).reshape(5, -1).sum(1).mean(), rel=1e-6)
    assert m["sq_err_per_image"] == pytest.approx(16 * m["mse_per_pixel"])


def test_metrics_real_valued_data() -> None:
    X = np.array([[-2.0, 3.0], [1.0, 0.0]])
    m = reconstruction_metrics(X, X + 0.5, images=True)
    assert "bce_per_pixel" not in m  # cross-entropy needs data in [0, 1]
    assert m["psnr_db"] == pytest.approx(10 * math.log10(5.0**2 / 0.25))  # peak = data range
    assert reconstruction_metrics(X, X, images=True)["psnr_db"] == math.inf
    assert "psnr_db" not in reconstruction_metrics(X, X + 0.5)  # a table (N, D) has no PSNR


def test_metrics_bce_is_clipped_and_finite() -> None:
    m = reconstruction_metrics(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert m["bce_per_feature"] == pytest.approx(-math.log(1e-7), rel=1e-6)


def test_metrics_reject_mismatched_shapes_and_nan() -> None:
    with pytest.raises(ValueError, match=r"X_hat has shape \(3, 2\) but X has shape \(2, 2\)"):
        reconstruction_metrics(np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN or infinity"):
        reconstruction_metrics(np.zeros((2, 2)), np.full((2, 2), np.nan))


# ------------------------------------------------------------------------------------- report


def _digits(n: int = 120) -> Dataset:
    return aekit.load_dataset("digits", split="train", limit=n)


@pytest.fixture(scope="module")
def fitted_ae() -> Any:
    ds = _digits()
    # A random start: the table below lists the cross-entropy of a sigmoid network.
    return aekit.Autoencoder(latent_dim=3, hidden_dims=(16,), max_epochs=3, init="random", verbose=0, random_state=0,
                             device="cpu").fit(ds.X)


def test_write_report_images(fitted_ae: Any, tmp_path: Path) -> None:
    ds = _digits()
    path = write_report(fitted_ae, ds, tmp_path)
    assert path == tmp_path / "report.html"
    html = path.read_text()
    assert html.count("data:image/png;base64,") == 4
    for name in ("reconstructions.png", "loss.png", "latent.png", "samples.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    for key in ("sq_err_per_image", "mse_per_pixel", "bce_per_pixel", "psnr_db", "n_samples"):
        assert f"<td>{key}</td>" in html
    assert "3 epochs" in html and "autoencoder" in html
    assert "projected with PCA" in html  # a 3-D code is shown on its principal plane
    assert "Gaussian" in html  # the family has no sample method
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_write_report_closed_form_tabular_without_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 6)).astype(np.float32)
    ds = Dataset(X=X, y=None, name="table.npy", split="train", kind="tabular")
    est = aekit.LinearAutoencoder(latent_dim=2).fit(X)
    html = write_report(est, ds, tmp_path, metrics={"train": reconstruction_metrics(X, est.reconstruct(X))}).read_text()
    assert "fitted in closed form" in html and not (tmp_path / "loss.png").exists()
    assert "no labels: one colour" in html and "the 2-D code itself" in html
    assert "<td>bce_per_feature</td>" not in html  # real-valued data
    assert "<td>sq_err_per_sample</td>" in html and "psnr_db" not in html  # a table, not images
    assert html.count("data:image/png;base64,") == 3


def test_loss_figure_skips_empty_history_and_draws_terms() -> None:
    assert loss_figure([]) is None
    rows = [{"epoch": i + 1.0, "loss": 3.0 - i, "val_loss": 3.1 - i, "reconstruction": 2.0 - i, "l1": 1.0}
            for i in range(3)]
    assert loss_figure(rows)[:8] == PNG  # type: ignore[index]


def test_loss_figure_leaves_bookkeeping_columns_out() -> None:
    """Threads, the CUDA-graph flag and the bf16 flag of a history row are not loss terms: one term, one panel."""
    from aekit.report.figures import _loss_chart

    rows = [{"epoch": i + 1.0, "loss": 3.0 - i, "reconstruction": 3.0 - i, "threads": 2.0, "cuda_graph": 1.0,
             "bf16": 1.0, "seconds": 0.5, "samples_per_s": 100.0, "lr": 1e-3} for i in range(3)]
    fig = _loss_chart(rows, "epoch")
    assert fig is not None and len(fig.axes) == 1


def test_latent_figure_many_classes_and_1d_codes() -> None:
    png, how = latent_figure(np.random.default_rng(0).standard_normal((50, 1)), np.arange(50) % 20)
    assert png[:8] == PNG and "1-D code" in how


def test_generate_needs_data_without_a_sample_method(fitted_ae: Any) -> None:
    with pytest.raises(ValueError, match="'autoencoder' declares no prior to sample from.*pass data X"):
        generate(fitted_ae, 4)
    g = generate(fitted_ae, 4, _digits().X, source="digits")
    assert g.samples.shape == (4, 1, 8, 8) and "Gaussian" in g.how and "digits" in g.how and g.density == "gaussian"


def test_generate_follows_the_declared_capability() -> None:
    class WithPrior:
        def sample(self, n: int, random_state: int | None = None) -> np.ndarray:
            return np.full((n, 3), float(random_state or 0))

    # Without the declared capability a sample method is not used: the density needs data.
    with pytest.raises(ValueError, match="declares no prior"):
        generate(WithPrior(), 2)
    with pytest.raises(ValueError, match="declares no prior to sample from; choose density gaussian or gmm"):
        generate(WithPrior(), 2, density="prior")


def test_add_report_section_adds_replaces_and_survives_a_new_report(fitted_ae: Any, tmp_path: Path) -> None:
    from aekit.report.html import add_report_section
    from aekit.workflow.train import train_run

    params = {"latent_dim": 2, "hidden_dims": (8,), "max_epochs": 1, "random_state": 0, "device": "cpu", "verbose": 0}
    run = tmp_path / "run"
    train_run("autoencoder", params, {"name": "digits", "limit": 60}, run, eval_limit=30)
    png = loss_figure([{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}])
    assert png is not None
    assert add_report_section(run, "denoise", "Denoising", png, "noisy / restored / clean",
                              table=[{"method": "dae", "psnr_db": 21.5}]) == run / "app-denoise.png"
    page = (run / "report.html").read_text()
    assert "<h2>Denoising</h2>" in page and "noisy / restored / clean" in page and "<td>21.5</td>" in page
    # A second section is added, and a new figure under the first key replaces the old one, in place.
    add_report_section(run, "anomaly", "Anomaly scores", png, "histograms by class")
    add_report_section(run, "denoise", "Denoising", png, "second caption")
    page = (run / "report.html").read_text()
    assert page.count("<h2>Denoising</h2>") == 1 and "second caption" in page and "noisy / restored" not in page
    assert page.index("<h2>Denoising</h2>") < page.index("<h2>Anomaly scores</h2>") < page.index("</body>")
    n_figures = page.count("data:image/png;base64,")
    # A report written again keeps both sections (they are recorded beside the figures).
    page = write_report(aekit.load(run), _digits(), run).read_text()
    assert "second caption" in page and "histograms by class" in page
    assert page.count("data:image/png;base64,") == n_figures
    # Replacing the run removes the applications' files with the rest of it.
    train_run("autoencoder", params, {"name": "digits", "limit": 60}, run, overwrite=True, eval_limit=30)
    assert not list(run.glob("app-*")) and "Denoising" not in (run / "report.html").read_text()
    # A model saved from Python, or any other folder: nothing written. A bad key: a clear message.
    saved = tmp_path / "saved"
    fitted_ae.save(saved)
    before = sorted(p.name for p in saved.iterdir())
    assert add_report_section(saved, "denoise", "t", png, "c") is None
    assert sorted(p.name for p in saved.iterdir()) == before
    with pytest.raises(ValueError, match="report section key 'De noise' must be lower-case"):
        add_report_section(run, "De noise", "t", png, "c")


def test_report_says_how_cuda_steps_ran(fitted_ae: Any, tmp_path: Path) -> None:
    import copy

    est = copy.deepcopy(fitted_ae)
    est.history_ = [{**r, "cuda_graph": 1.0} for r in fitted_ae.history_]
    page = write_report(est, _digits(), tmp_path).read_text()
    assert "on CUDA, every step replayed from one captured CUDA graph" in page
    n = len(est.history_)
    est.history_[0]["cuda_graph"] = 0.0
    assert f"on CUDA, {n - 1} of {n} epochs from a captured CUDA graph" in write_report(est, _digits(), tmp_path).read_text()


def test_report_says_whether_bf16_products_ran(fitted_ae: Any, tmp_path: Path) -> None:
    import copy

    est = copy.deepcopy(fitted_ae)
    est.history_ = [{**r, "bf16": 1.0} for r in fitted_ae.history_]
    assert "matrix products with bf16 inputs on the CPU (cpu_bf16)" in write_report(est, _digits(), tmp_path).read_text()
    est.history_ = [{**r, "bf16": 0.0} for r in fitted_ae.history_]
    page = write_report(est, _digits(), tmp_path).read_text()
    assert "cpu_bf16 asked for, but this CPU has no bf16 units: full fp32" in page
