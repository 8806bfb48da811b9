"""Generation from any autoencoder: latent densities, slerp, interpolation, the sweep, the report's
generation figures and the sample-quality measure (the Fréchet distance against a closed form and scipy)."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.mixture import GaussianMixture

import aekit
from aekit.cli.main import main
from aekit.model.sampling import LatentDensity, generate, interpolate, sample_codes, slerp
from aekit.report.quality import feature_statistics, frechet_distance

torch.set_num_threads(1)

TINY = ["--hidden-dims", "16", "--batch-size", "32", "--seed", "0", "--limit", "120", "--quiet", "--epochs", "2"]


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def digits() -> Any:
    return aekit.load_dataset("digits", split="train", limit=150)


@pytest.fixture(scope="module")
def ae(digits: Any) -> Any:
    return aekit.Autoencoder(latent_dim=3, hidden_dims=(16,), max_epochs=2, batch_size=32, random_state=0,
                             verbose=0).fit(digits.X)


# ------------------------------------------------------------------------------- the densities


def test_latent_density_against_references() -> None:
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((400, 3)) @ np.array([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, -0.3, 0.2]]) + 1.5
    g = LatentDensity("gaussian", reg_covar=0.0).fit(Z)
    np.testing.assert_allclose(g.means_[0], Z.mean(axis=0))
    np.testing.assert_allclose(g.covariances_[0], np.cov(Z, rowvar=False, bias=True))  # the maximum-likelihood one
    np.testing.assert_allclose(g.score_samples(Z[:5]), multivariate_normal(Z.mean(0), np.cov(Z.T, bias=True)).logpdf(Z[:5]))
    S = g.sample(40_000, random_state=1)
    assert S.shape == (40_000, 3) and S.dtype == np.float32
    np.testing.assert_allclose(S.mean(axis=0), g.means_[0], atol=0.05)
    np.testing.assert_allclose(np.cov(S, rowvar=False), g.covariances_[0], atol=0.06)
    np.testing.assert_array_equal(g.sample(5, random_state=3), g.sample(5, random_state=3))
    assert not np.array_equal(g.sample(5, random_state=3), g.sample(5, random_state=4))
    assert clone(g).get_params() == {"kind": "gaussian", "n_components": 10, "random_state": None, "reg_covar": 0.0}

    # Two well separated clusters: the mixture is scikit-learn's, and its draws land in both, in proportion.
    Z2 = np.concatenate([rng.normal(-5, 0.5, (300, 2)), rng.normal(5, 0.5, (100, 2))])
    m = LatentDensity("gmm", n_components=2, random_state=0).fit(Z2)
    ref = GaussianMixture(2, covariance_type="full", reg_covar=1e-6, random_state=0, max_iter=200).fit(Z2)
    np.testing.assert_allclose(m.means_, ref.means_)
    np.testing.assert_allclose(m.score_samples(Z2[:7]), ref.score_samples(Z2[:7]), rtol=1e-10)
    D = m.sample(4000, random_state=0)
    assert abs(float(np.mean(D[:, 0] < 0)) - 0.75) < 0.03

    with pytest.raises(ValueError, match="n_components must be an integer >= 1, got 0"):
        LatentDensity("gmm", n_components=0).fit(Z)
    with pytest.raises(ValueError, match="with 500 components needs at least as many codes, got 400"):
        LatentDensity("gmm", n_components=500).fit(Z)
    with pytest.raises(ValueError, match="not fitted yet; call fit"):
        LatentDensity().sample(3)
    with pytest.raises(ValueError, match="kind='uniform' is not a density over codes"):
        LatentDensity("uniform").fit(Z)  # type: ignore[arg-type]


def test_slerp_end_points_norms_and_angles() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(16), rng.standard_normal(16)
    b *= np.linalg.norm(a) / np.linalg.norm(b)  # equal norms
    t = np.linspace(0, 1, 9)
    P = slerp(a, b, t)
    np.testing.assert_allclose(P[0], a, atol=1e-12)
    np.testing.assert_allclose(P[-1], b, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(P, axis=1), np.linalg.norm(a), rtol=1e-12)  # on the great circle
    angle = np.arccos(np.clip(P @ a / np.linalg.norm(a) ** 2, -1, 1))
    np.testing.assert_allclose(angle, t * angle[-1], atol=1e-9)  # at constant angular speed
    lin = (1 - t)[:, None] * a + t[:, None] * b
    assert np.linalg.norm(lin[4]) < np.linalg.norm(a)  # the straight line cuts through the inside
    np.testing.assert_allclose(slerp(a, 2 * a, t), lin * 0 + (1 - t)[:, None] * a + t[:, None] * 2 * a)  # parallel


# ------------------------------------------------------------------- generate and interpolate


def test_generate_and_interpolate_from_a_plain_autoencoder(ae: Any, digits: Any) -> None:
    for density in ("normal", "gaussian", "gmm"):
        g = generate(ae, 6, digits.X, density=density, n_components=3, random_state=2)  # type: ignore[arg-type]
        assert g.samples.shape == (6, 1, 8, 8) and g.codes is not None and g.codes.shape == (6, 3)
        np.testing.assert_array_equal(g.samples, generate(ae, 6, digits.X, density=density, n_components=3,  # type: ignore[arg-type]
                                                          random_state=2).samples)
        np.testing.assert_allclose(g.samples, ae.inverse_transform(g.codes))
    assert "N(0, I)" in generate(ae, 2, density="normal").how
    assert "mixture of 3" in generate(ae, 2, digits.X, density="gmm", n_components=3).how
    Z, how = sample_codes(ae, 4, digits.X, density="gaussian", random_state=0)
    assert Z.shape == (4, 3) and "Gaussian" in how
    with pytest.raises(ValueError, match="'autoencoder' declares no prior to sample from; choose density gaussian"):
        generate(ae, 2, density="prior")
    with pytest.raises(ValueError, match="unknown density 'flow'; choose one of auto, prior, normal, gaussian, gmm"):
        generate(ae, 2, density="flow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1, got 0"):
        generate(ae, 0, digits.X)

    for method in ("linear", "slerp"):
        path = interpolate(ae, digits.X[0], digits.X[1], steps=5, method=method)  # type: ignore[arg-type]
        assert path.shape == (5, 1, 8, 8)
        np.testing.assert_allclose(path[[0, -1]], ae.reconstruct(digits.X[:2]), atol=1e-5)
    with pytest.raises(ValueError, match="steps must be at least 2"):
        interpolate(ae, digits.X[0], digits.X[1], steps=1)
    with pytest.raises(ValueError, match="unknown interpolation method 'cubic'; choose linear or slerp"):
        interpolate(ae, digits.X[0], digits.X[1], method="cubic")  # type: ignore[arg-type]


def test_generate_uses_the_prior_of_a_family_that_declares_one(digits: Any) -> None:
    fa = aekit.FactorAnalysisAutoencoder(latent_dim=2).fit(digits.X)
    g = generate(fa, 3, random_state=4)
    assert g.density == "prior" and g.codes is None
    np.testing.assert_array_equal(g.samples, fa.sample(3, random_state=4))
    # The prior's family can still be given a fitted density, and N(0, I) draws decode to its mean W z + mu.
    assert generate(fa, 3, digits.X, density="gmm", n_components=2).density == "gmm"
    g = generate(fa, 3, density="normal")
    assert g.codes is not None and g.samples.shape == (3, 1, 8, 8)


# ------------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def run2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("gen") / "ae2"
    assert main(["train", "--family", "autoencoder", "--data", "digits", "--latent-dim", "2", *TINY,
                 "--out", str(run)]) == 0
    return run


def test_report_of_a_2d_code_has_the_manifold_and_the_interactive_map(run2d: Path) -> None:
    page = (run2d / "report.html").read_text()
    assert (run2d / "manifold.png").is_file() and "manifold.png" in page
    m = re.search(r"<script type='application/json' id='aekit-latent-data'>(.*?)</script>", page)
    assert m is not None
    data = json.loads(m.group(1))
    G = data["grid"]
    assert data["shape"] == [1, 8, 8] and 8 <= G <= 32
    pixels = np.frombuffer(base64.b64decode(data["pixels"]), dtype=np.uint8).reshape(G * G, 1, 8, 8)
    # The embedded decodings are the model's, at the grid over the plotted range (row j: the j-th v).
    est = aekit.load(run2d)
    u, v = np.linspace(*data["xlim"], G), np.linspace(*data["ylim"], G)
    k = 3 * G + 5
    want = est.inverse_transform(np.array([[u[5], v[3]]], dtype=np.float32))
    np.testing.assert_allclose(pixels[k] / 255.0, np.clip(want[0], 0, 1), atol=1 / 255 + 1e-6)
    x0, y0, x1, y1 = data["box"]
    assert 0 <= x0 < x1 <= data["size"][0] and 0 <= y0 < y1 <= data["size"][1]
    assert "addEventListener(\"mousemove\"" in page and "<script src" not in page  # inline, nothing fetched
    assert "N(0, I) codes, decoded" not in page or "samples.png" in page
    assert "decoded from draws of N(0, I)" in page and "Gaussian N(mean, covariance) fitted" in page


def test_manifold_only_for_2d_codes(ae: Any, digits: Any, tmp_path: Path) -> None:
    from aekit.report.html import write_report

    write_report(ae, digits, tmp_path)  # a 3-D code: no manifold, a map over the PCA plane
    page = (tmp_path / "report.html").read_text()
    assert not (tmp_path / "manifold.png").exists() and "manifold.png" not in page
    assert "aekit-latent-data" in page and "PCA plane" in page


def test_generate_command_densities(run2d: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.npy"
    code, o, err = call(capsys, "generate", str(run2d), "--density", "gmm", "--components", "3", "--n", "5",
                        "--out", str(out), "--json")
    assert code == 0, err
    res = json.loads(o)
    assert res["density"] == "gmm" and "mixture of 3" in res["method"] and np.load(out).shape == (5, 1, 8, 8)
    code, _, err = call(capsys, "generate", str(run2d), "--density", "prior", "--out", str(tmp_path / "p.npy"))
    assert code == 2 and "has no prior to sample from; choose --density gaussian or gmm" in err
    code, _, err = call(capsys, "generate", str(run2d), "--density", "normal", "--data", "digits",
                        "--out", str(tmp_path / "p.npy"))
    assert code == 2 and "leave them out" in err and not (tmp_path / "p.npy").exists()


def test_interpolate_command(run2d: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npy, png = tmp_path / "path.npy", tmp_path / "path.png"
    code, out, err = call(capsys, "interpolate", str(run2d), "--pair", "3", "7", "--steps", "6", "--method", "slerp",
                          "--out", str(npy), "--json")
    assert code == 0, err
    assert json.loads(out)["shape"] == [6, 1, 8, 8]
    path = np.load(npy)
    est = aekit.load(run2d)
    X = aekit.load_dataset("digits", split="all").X  # a transforming command indexes all of the data
    np.testing.assert_allclose(path[[0, -1]], est.reconstruct(X[[3, 7]]), atol=1e-5)
    code, out, err = call(capsys, "interpolate", str(run2d), "--pair", "0", "1", "--out", str(png))
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "10 steps" in out
    # An index out of range, or an existing file without --overwrite: refused, nothing written.
    bad = tmp_path / "bad.npy"
    code, _, err = call(capsys, "interpolate", str(run2d), "--pair", "0", "1797", "--out", str(bad))
    assert code == 2 and "--pair 0 1797: index 1797 is out of range for digits, all 1797 samples" in err
    assert "give indices from 0 to 1796" in err
    assert not bad.exists() and len(err.strip().splitlines()) == 1
    before = npy.read_bytes()
    code, _, err = call(capsys, "interpolate", str(run2d), "--pair", "1", "2", "--out", str(npy))
    assert code == 2 and "already exists; pass --overwrite" in err and npy.read_bytes() == before
    code, _, err = call(capsys, "interpolate", str(run2d), "--pair", "1", "2", "--steps", "1", "--out", str(bad))
    assert code == 2 and "at least 2 points" in err and not bad.exists()
    code, _, _ = call(capsys, "interpolate", str(run2d), "--pair", "1", "2", "--out", str(npy), "--overwrite")
    assert code == 0 and npy.read_bytes() != before


def test_sweep_writes_its_table_plot_and_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    code, o, err = call(capsys, "sweep", "--family", "autoencoder", "--latent-dims", "4,2", "--data", "digits",
                        "--limit", "120", "--epochs", "1", "--quality", "--quality-epochs", "1", "--out", str(out),
                        "--json", "--quiet")
    assert code == 0, err
    res = json.loads(o)
    assert [r["latent_dim"] for r in res["rows"]] == [2, 4]
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["latent_dim"]) for r in rows] == [2, 4] and "PCA test sq_err_per_image" in rows[0]
    # PCA's error is PCA's (recomputed here) and falls with the code size.
    from sklearn.decomposition import PCA

    tr, te = (aekit.load_dataset("digits", split=s, limit=120).X for s in ("train", "test"))
    p = PCA(2, svd_solver="full").fit(tr.reshape(120, -1))
    R = p.inverse_transform(p.transform(te.reshape(len(te), -1)))
    assert float(rows[0]["PCA test sq_err_per_image"]) == pytest.approx(((R - te.reshape(len(te), -1)) ** 2).sum(1).mean(),
                                                                        rel=1e-6)
    assert float(rows[1]["PCA test sq_err_per_image"]) < float(rows[0]["PCA test sq_err_per_image"])
    assert all(np.isfinite(float(r["frechet"])) and 0 < float(r["mean_max_prob"]) <= 1 for r in rows)
    js = json.loads((out / "sweep.json").read_text())
    assert js["frechet_floor"] > 0 and len(js["rows"][0]["class_histogram"]) == 10
    for name in ("sweep.png", "reconstructions.png", "samples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "sweep.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<td>2</td>" in page
    assert (out / "latent-2" / "report.html").is_file() and (out / "latent-4" / "model.safetensors").is_file()
    # A second sweep into the same folder is refused before training anything.
    code, _, err = call(capsys, "sweep", "--family", "autoencoder", "--latent-dims", "2", "--limit", "120",
                        "--out", str(out))
    assert code == 2 and "already holds a sweep; pass --overwrite to replace it" in err
    code, _, err = call(capsys, "sweep", "--family", "autoencoder", "--latent-dims", "2,x", "--out", str(tmp_path / "s2"))
    assert code == 2 and "comma-separated positive integers" in err and not (tmp_path / "s2").exists()


# ------------------------------------------------------------------------------ sample quality


def test_frechet_distance_against_the_closed_form_and_scipy() -> None:
    # Commuting covariances: the closed form ||m1 - m2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2 for diagonal ones.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = 5.0 + float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(want, rel=1e-12)
    # General covariances: against scipy's matrix square root of the (non-symmetric) product.
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    s1, s2 = A @ A.T, B @ B.T + np.eye(6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    mu, cov = feature_statistics(rng.standard_normal((50, 3)))
    assert mu.shape == (3,) and cov.shape == (3, 3)
    with pytest.raises(ValueError, match="do not describe two Gaussians of one dimension"):
        frechet_distance(mu1, s1, mu2[:3], s2)
