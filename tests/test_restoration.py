"""Restoration: denoise, inpaint and colorize, patch-wise reassembly, scores against scikit-image, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import aekit
from aekit.apps.restoration import check_mask, restore_patches
from aekit.cli.main import main


@pytest.fixture(scope="module")
def gray_model() -> aekit.LinearAutoencoder:
    X = aekit.load_dataset("digits").X[:400]  # (400, 1, 8, 8)
    return aekit.LinearAutoencoder(latent_dim=12, random_state=0).fit(X)


@pytest.fixture(scope="module")
def colour_model() -> aekit.LinearAutoencoder:
    rng = np.random.default_rng(0)
    base = rng.random((200, 3, 1, 1)) * np.linspace(0.2, 1.0, 8)[None, None, :, None]
    X = np.broadcast_to(base, (200, 3, 8, 8)).astype(np.float32).copy()
    return aekit.LinearAutoencoder(latent_dim=6, random_state=0).fit(X)


def test_patch_reassembly_is_exact_for_the_identity_and_batches_stay_bounded() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((2, 3, 20, 30)).astype(np.float32)
    sizes: list[int] = []

    def identity(P: np.ndarray) -> np.ndarray:
        sizes.append(P.shape[0])
        assert P.shape[1:] == (3, 8, 8)
        return P

    for window in ("uniform", "hann"):
        for stride in (None, 3, (5, 7), 8):
            sizes.clear()
            R = restore_patches(identity, X, (8, 8), stride=stride, window=window, batch_size=7)
            assert R.shape == X.shape
            np.testing.assert_allclose(R, X, rtol=0, atol=1e-6)
            assert max(sizes) <= 7
    # A map that adds 1 to every pixel of each window adds exactly 1 after averaging (windows weigh 1 in total).
    C = np.full((1, 1, 13, 17), 0.25, np.float32)
    np.testing.assert_allclose(restore_patches(lambda P: P + 1.0, C, (5, 4)), C + 1.0, atol=1e-6)


def test_denoise_any_size_and_colour_channel_by_channel(gray_model: aekit.LinearAutoencoder) -> None:
    X = aekit.load_dataset("digits").X[:3]
    np.testing.assert_allclose(aekit.denoise(gray_model, X), gray_model.reconstruct(X), atol=1e-6)
    rng = np.random.default_rng(2)
    big = rng.random((2, 3, 20, 29)).astype(np.float32)
    R = aekit.denoise(gray_model, big, stride=4)
    assert R.shape == big.shape and R.dtype == np.float32
    # A gray model restores a colour image channel by channel.
    np.testing.assert_allclose(R[:, 1], aekit.denoise(gray_model, big[:, 1], stride=4), atol=1e-6)
    assert aekit.denoise(gray_model, big[:, 0]).shape == (2, 20, 29)


def test_inpaint_keeps_known_pixels_and_iterations_change_only_masked_ones(gray_model: aekit.LinearAutoencoder) -> None:
    X = aekit.load_dataset("digits").X[:6].astype(np.float64)  # float64 known pixels must survive bit-exact
    M = aekit.make_mask("block:4x3", X.shape, random_state=3)
    assert M.shape == (6, 8, 8) and (M.sum(axis=(1, 2)) == 12).all()
    np.testing.assert_array_equal(M, aekit.make_mask("block:4x3", X.shape, random_state=3))
    known = ~np.broadcast_to(M[:, None], X.shape)
    one = aekit.inpaint(gray_model, X, M, iterations=1)
    three = aekit.inpaint(gray_model, X, M, iterations=3)
    assert one.dtype == X.dtype
    np.testing.assert_array_equal(one[known], X[known])
    np.testing.assert_array_equal(three[known], X[known])
    assert not np.array_equal(one[~known], three[~known])
    # One iteration is the reconstruction of the zero-filled image on the masked pixels.
    np.testing.assert_allclose(one[~known], gray_model.reconstruct(np.where(known, X, 0.0))[~known], atol=1e-5)
    # A spec and a mask shared by every image; a random mask on large images, patch-wise.
    spec = aekit.inpaint(gray_model, X, "block:4x3", random_state=3)
    np.testing.assert_array_equal(spec, one)
    big = np.random.default_rng(4).random((1, 1, 16, 20))
    R = aekit.inpaint(gray_model, big, "random:0.3", random_state=0, iterations=2)
    m = aekit.make_mask("random:0.3", big.shape, random_state=0)[:, None]
    np.testing.assert_array_equal(R[~m], big[~m])
    assert 0.2 < m.mean() < 0.4


def test_colorize(colour_model: aekit.LinearAutoencoder, gray_model: aekit.LinearAutoencoder) -> None:
    gray = np.random.default_rng(5).random((2, 12, 10)).astype(np.float32)
    C = aekit.colorize(colour_model, gray)
    assert C.shape == (2, 3, 12, 10)
    np.testing.assert_allclose(C, aekit.denoise(colour_model, np.repeat(gray[:, None], 3, axis=1)), atol=1e-6)
    with pytest.raises(ValueError, match=r"colour images \(3 channels\).*sample shape \(1, 8, 8\)"):
        aekit.colorize(gray_model, gray)
    with pytest.raises(ValueError, match=r"colorize takes gray images.*\(2, 3, 12, 10\)"):
        aekit.colorize(colour_model, C)
    with pytest.raises(ValueError, match="images have 1 channel.*trained on 3"):
        aekit.denoise(colour_model, gray)


def test_scores_match_scikit_image() -> None:
    rng = np.random.default_rng(6)
    clean = rng.random((3, 3, 16, 16))
    noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
    s = aekit.restoration_scores(clean, noisy)
    for i in range(3):
        assert s.psnr[i] == pytest.approx(peak_signal_noise_ratio(clean[i], noisy[i], data_range=1.0))
        assert s.ssim[i] == pytest.approx(structural_similarity(clean[i], noisy[i], data_range=1.0, channel_axis=0))
    assert s.mean_psnr == pytest.approx(np.mean(s.psnr))
    # On a mask: the PSNR of the masked pixels alone.
    M = np.zeros((3, 16, 16), bool)
    M[:, 4:10, 2:9] = True
    sm = aekit.restoration_scores(clean, noisy, mask=M)
    sel = np.broadcast_to(M[:, None], clean.shape)
    mse0 = np.mean((clean[0][sel[0]] - noisy[0][sel[0]]) ** 2)
    assert sm.psnr[0] == pytest.approx(10 * np.log10(1 / mse0))


def test_refusals(gray_model: aekit.LinearAutoencoder) -> None:
    X = aekit.load_dataset("digits").X[:4]
    with pytest.raises(ValueError, match=r"mask has shape \(5, 5\).*\(N, H, W\) = \(4, 8, 8\)"):
        aekit.inpaint(gray_model, X, np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match=r"X has shape \(4, 64\).*reshape them, e.g. to \(4, 1, H, W\) with H \* W = 64"):
        aekit.denoise(gray_model, X.reshape(4, -1))
    with pytest.raises(ValueError, match="mask must be binary"):
        aekit.inpaint(gray_model, X, np.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="unknown mask spec 'blob:3'.*block:HxW"):
        aekit.inpaint(gray_model, X, "blob:3")
    with pytest.raises(ValueError, match="block does not fit"):
        aekit.make_mask("block:9x2", X.shape)
    with pytest.raises(ValueError, match="iterations must be a positive integer"):
        aekit.inpaint(gray_model, X, "random:0.2", iterations=0)
    with pytest.raises(ValueError, match=r"6x6 pixels, smaller than the model's 8x8"):
        aekit.denoise(gray_model, np.zeros((1, 1, 6, 6), np.float32))
    with pytest.raises(ValueError, match="cannot restore images.*use a model of a family that can: .*autoencoder"):
        aekit.denoise(object(), X)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        aekit.denoise(gray_model, np.zeros((1, 1, 9, 9), np.float32), stride=0)
    with pytest.raises(ValueError, match="the images' own shape"):
        check_mask(np.zeros((4, 1, 8, 7)), (4, 1, 8, 8))


def _png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path)


def test_cli_folder_round_trip_scores_and_refusals(
    gray_model: aekit.LinearAutoencoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = gray_model.save(tmp_path / "run")
    rng = np.random.default_rng(7)
    src, clean = tmp_path / "in", tmp_path / "clean"
    src.mkdir()
    clean.mkdir()
    pics = {"a.png": rng.integers(0, 256, (10, 12), dtype=np.uint8),
            "b.png": rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)}
    for name, arr in pics.items():
        _png(src / name, arr)
        _png(clean / name, np.clip(arr.astype(int) + 9, 0, 255).astype(np.uint8))
    out = tmp_path / "out"
    assert main(["denoise", str(run), "--data", str(src), "--out", str(out), "--clean", str(clean), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    for name, arr in pics.items():
        with Image.open(out / name) as im:
            assert im.size == (arr.shape[1], arr.shape[0]) and im.mode == ("L" if arr.ndim == 2 else "RGB")
    # The scores are those of the restored pixels (before 8-bit rounding) against the clean images.
    ref = np.asarray(Image.open(clean / "a.png"), np.float64) / 255
    res = aekit.denoise(gray_model, (np.asarray(Image.open(src / "a.png"), np.float32) / 255)[None])[0]
    row = summary["images"][0]
    assert row["name"] == "a.png"
    assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(ref, res.astype(np.float64), data_range=1.0), rel=1e-5)
    assert summary["mean_ssim"] == pytest.approx(np.mean([r["ssim"] for r in summary["images"]]))

    # Never over existing files without --overwrite; a bad mask or spec writes nothing.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["denoise", str(run), "--data", str(src), "--out", str(out)]) == 2
    assert "already holds a.png" in capsys.readouterr().err
    fresh = tmp_path / "fresh"
    assert main(["inpaint", str(run), "--data", str(src), "--out", str(fresh), "--mask", "blob:2"]) == 2
    assert "unknown mask spec 'blob:2'" in capsys.readouterr().err
    _png(tmp_path / "mask.png", np.zeros((10, 12), np.uint8))
    assert main(["inpaint", str(run), "--data", str(src), "--out", str(fresh), "--mask", str(tmp_path / "mask.png")]) == 2
    assert "the mask is 10x12 but b.png is 9x11" in capsys.readouterr().err
    assert main(["colorize", str(run), "--data", str(src), "--out", str(fresh)]) == 2
    assert "colour image; colorize takes gray images" in capsys.readouterr().err
    assert not fresh.exists()
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    # Inpainting a folder with a spec, --overwrite: the known pixels come back (up to 8-bit rounding: exactly).
    assert main(["inpaint", str(run), "--data", str(src), "--out", str(out), "--mask", "block:4x4", "--overwrite",
                 "--iterations", "2"]) == 0
    filled = np.asarray(Image.open(out / "a.png"))
    m = aekit.make_mask("block:4x4", (1, 1, 10, 12), random_state=0)[0]
    np.testing.assert_array_equal(filled[~m], pics["a.png"][~m])


def test_cli_adds_figures_and_scores_to_a_trained_runs_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aekit.report.figures import restoration_figure
    from aekit.workflow.train import train_run

    params = {"hidden_dims": (8,), "latent_dim": 4, "max_epochs": 1, "random_state": 0, "device": "cpu", "verbose": 0}
    run = tmp_path / "run"
    train_run("denoising", {**params, "corruption": "gaussian:0.2"}, {"name": "digits", "limit": 60}, run, eval_limit=20)
    X = aekit.load_dataset("digits").X[:12]
    np.save(tmp_path / "clean.npy", X)
    np.save(tmp_path / "noisy.npy", np.clip(X + 0.2 * np.random.default_rng(8).standard_normal(X.shape), 0, 1))
    assert main(["denoise", str(run), "--data", str(tmp_path / "noisy.npy"), "--out", str(tmp_path / "d.npy"),
                 "--clean", str(tmp_path / "clean.npy"), "--json"]) == 0
    mean_psnr = json.loads(capsys.readouterr().out)["mean_psnr"]
    page = (run / "report.html").read_text()
    assert (run / "app-denoise.png").is_file() and "<h2>Denoising</h2>" in page and "noisy input, restored" in page
    assert "mean of 12" in page and f"<td>{round(mean_psnr, 2)}</td>" in page
    # Without references: the figure, no table; another command gets a section of its own.
    assert main(["inpaint", str(run), "--data", str(tmp_path / "clean.npy"), "--out", str(tmp_path / "i.npy"),
                 "--mask", "block:3x3"]) == 0
    page = (run / "report.html").read_text()
    assert "<h2>Inpainting</h2>" in page and "<h2>Denoising</h2>" in page and page.count("mean of") == 1
    # Colorization: a colour run, gray in; the figure shows gray / colorized / original.
    rng = np.random.default_rng(9)
    C = np.broadcast_to(rng.random((60, 3, 1, 1)), (60, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "colour.npy", C)
    crun = tmp_path / "crun"
    train_run("denoising", {**params, "corruption": "grayscale"}, {"name": str(tmp_path / "colour.npy")}, crun,
              eval_limit=20)
    np.save(tmp_path / "gray.npy", (np.array([0.299, 0.587, 0.114], np.float32)[:, None, None] * C[:5]).sum(1))
    assert main(["colorize", str(crun), "--data", str(tmp_path / "gray.npy"), "--out", str(tmp_path / "c.npy")]) == 0
    assert "<h2>Colorization</h2>" in (crun / "report.html").read_text() and (crun / "app-colorize.png").is_file()
    # The bad inputs, through the command line: one clear message each, nothing written.
    bad = tmp_path / "bad.npy"
    np.save(tmp_path / "half.npy", np.full((8, 8), 0.5))
    np.save(tmp_path / "small.npy", np.zeros((5, 5), bool))
    _png(tmp_path / "gray-mask.png", np.full((8, 8), 128, np.uint8))
    for args, message in [
        (["colorize", str(run), "--data", str(tmp_path / "gray.npy")], r"colour images \(3 channels\)"),
        (["colorize", str(crun), "--data", str(tmp_path / "colour.npy")], "colorize takes gray images"),
        (["denoise", str(crun), "--data", str(tmp_path / "gray.npy")], r"1 channel\(s\) but the model was trained on 3"),
        (["inpaint", str(run), "--data", str(tmp_path / "clean.npy"), "--mask", str(tmp_path / "half.npy")],
         "mask must be binary"),
        (["inpaint", str(run), "--data", str(tmp_path / "clean.npy"), "--mask", str(tmp_path / "gray-mask.png")],
         "is not binary"),
        (["inpaint", str(run), "--data", str(tmp_path / "clean.npy"), "--mask", str(tmp_path / "small.npy")],
         r"mask has shape \(5, 5\)"),
    ]:
        assert main([*args, "--out", str(bad)]) != 0
        err = capsys.readouterr().err
        assert re.search(message, err) and "Traceback" not in err, (args, err)
        assert not bad.exists()
    assert not (run / "app-colorize.png").exists() and not (crun / "app-denoise.png").exists()
    # The figure keeps the images of the first one's size (a folder may mix sizes).
    png = restoration_figure([("in", [np.zeros((1, 8, 8)), np.zeros((3, 9, 9)), np.ones((1, 8, 8))]),
                              ("out", [np.zeros((1, 8, 8)), np.zeros((3, 9, 9)), np.ones((1, 8, 8))])], title="t")
    assert png.startswith(b"\x89PNG")
