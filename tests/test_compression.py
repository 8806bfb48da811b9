"""Learned compression: the coded length against the closed-form entropy, round trips, the file checks, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import laplace

import aekit
from aekit.apps.compression import CodeModel, CompressedFileError
from aekit.cli.main import main


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return aekit.load_dataset("digits").X[:500]  # (500, 1, 8, 8) in [0, 1]


@pytest.fixture(scope="module")
def model(data: np.ndarray) -> aekit.LinearAutoencoder:
    return aekit.LinearAutoencoder(latent_dim=10, random_state=0).fit(data[:400])


@pytest.fixture(scope="module")
def cm(model: aekit.LinearAutoencoder, data: np.ndarray) -> CodeModel:
    return aekit.fit_code_model(model, data[:400])


def test_coded_length_is_the_laplace_entropy_and_decoding_is_the_quantized_code(
    model: aekit.LinearAutoencoder, cm: CodeModel, data: np.ndarray
) -> None:
    X = data[400:]
    # The steps follow the decoder's sensitivity: for a linear decoder w_k = ||g(e_k) - g(0)||^2 exactly,
    # and gain_k * sqrt(w_k) is the same for every unit (equal distortion per unit, high-rate theory).
    K = len(cm.gain)
    G = model.inverse_transform(np.vstack([np.zeros(K), np.eye(K)]).astype(np.float32)).reshape(K + 1, -1)
    w = ((G[1:] - G[0]) ** 2).sum(axis=1)
    ratio = np.asarray(cm.gain) * np.sqrt(w)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-3)
    step = 0.5
    blob = aekit.compress(model, X, code_model=cm, step=step)
    assert blob == aekit.compress(model, X, code_model=cm, step=step)  # deterministic
    # Reference: the quantized codes by hand, and their ideal length under the discretized Laplace (scipy).
    steps = step * np.asarray(cm.gain)
    Z = model.transform(X).astype(np.float64)
    q = np.rint((Z - np.asarray(cm.loc)) / steps)
    assert (np.abs(q) <= np.ceil(np.asarray(cm.bound) / steps)).all()  # nothing clipped on these data
    b = np.asarray(cm.scale) / steps
    ideal = -np.log2(laplace.cdf(q + 0.5, scale=b) - laplace.cdf(q - 0.5, scale=b)).sum()
    header = 3 + 2 + 4 + 5 + 4 + 2 + 4  # signature, version, flags, tag, shape, step, word count, CRC
    payload_bits = 8 * (len(blob) - header)
    assert ideal <= payload_bits <= ideal * 1.01 + 64
    expected = np.clip(model.inverse_transform((np.asarray(cm.loc) + q * steps).astype(np.float32)), cm.low, cm.high)
    R = aekit.decompress(model, blob, code_model=cm)
    assert R.shape == X.shape and R.dtype == np.float32
    np.testing.assert_allclose(R, expected, atol=1e-6)
    # A coarser step costs fewer bits and gives more distortion; flat input keeps its shape.
    coarse = aekit.compress(model, X.reshape(len(X), -1), code_model=cm, step=4.0)
    Rc = aekit.decompress(model, coarse, code_model=cm)
    assert Rc.shape == (len(X), 64) and len(coarse) < len(blob)
    assert np.mean((Rc - X.reshape(len(X), -1)) ** 2) > np.mean((R - X) ** 2)


def test_refinement_layer_bounds_every_error_and_one_image_costs_little(
    model: aekit.LinearAutoencoder, cm: CodeModel, data: np.ndarray
) -> None:
    X = data[400:]
    rates = []
    for rs in (0.2, 0.05):
        blob = aekit.compress(model, X, code_model=cm, step=1.0, residual_step=rs)
        R = aekit.decompress(model, blob, code_model=cm)
        assert np.abs(R - X).max() <= rs / 2 + 1e-6
        rates.append(len(blob))
    assert rates[0] < rates[1]
    one = aekit.compress(model, X[:1], code_model=cm, step=1.0, residual_step=0.1)
    assert len(one) < 8 * 30  # header, length and checksum: 30 bytes; the rest is the image
    # The code model's JSON round trip keeps it and its digest exactly.
    again = CodeModel.from_json(cm.to_json())
    assert again == cm and again.digest == cm.digest


def test_bad_files_and_bad_arguments_are_refused_by_name(
    model: aekit.LinearAutoencoder, cm: CodeModel, data: np.ndarray
) -> None:
    X = data[400:420]
    blob = aekit.compress(model, X, code_model=cm, step=1.0, residual_step=0.1)
    for cut in (2, 10, 30, len(blob) - 1):
        with pytest.raises(CompressedFileError, match="is truncated.*copy the whole file again"):
            aekit.decompress(model, blob[:cut], code_model=cm, name="x.aec")
    flipped = bytearray(blob)
    flipped[40] ^= 0x10
    with pytest.raises(CompressedFileError, match="x.aec is corrupt: its CRC-32 checksum"):
        aekit.decompress(model, bytes(flipped), code_model=cm, name="x.aec")
    with pytest.raises(CompressedFileError, match="1 byte.*follow its checksum"):
        aekit.decompress(model, blob + b"\0", code_model=cm)
    with pytest.raises(CompressedFileError, match="is not an aekit compressed file.*aekit compress"):
        aekit.decompress(model, b"\x89PNG\r\n\x1a\n" + blob, code_model=cm)
    newer = bytearray(blob)
    newer[3] = 9
    with pytest.raises(CompressedFileError, match="format version 9; this aekit reads version 1"):
        aekit.decompress(model, bytes(newer), code_model=cm)
    # Another model (another fit of the same settings on other data) and its own code model: refused.
    other = aekit.LinearAutoencoder(latent_dim=10, random_state=0).fit(data[100:500])
    other_cm = aekit.fit_code_model(other, data[100:500])
    with pytest.raises(CompressedFileError, match="compressed with another model or code model.*run that compressed"):
        aekit.decompress(other, blob, code_model=other_cm)
    with pytest.raises(ValueError, match="code model was fitted for another model.*fit_code_model"):
        aekit.decompress(other, blob, code_model=cm)
    with pytest.raises(ValueError, match="step must be a positive number"):
        aekit.compress(model, X, code_model=cm, step=0)
    with pytest.raises(ValueError, match="residual_step must be a positive number"):
        aekit.compress(model, X, code_model=cm, residual_step=float("nan"))
    with pytest.raises(ValueError, match=r"X has shape \(20, 1, 8, 7\).*\(N, 1, 8, 8\) or \(N, 64\)"):
        aekit.compress(model, X[..., :7], code_model=cm)
    with pytest.raises(TypeError, match="code_model must be a CodeModel"):
        aekit.compress(model, X, code_model={"loc": 0})  # type: ignore[arg-type]


def test_cli_compress_decompress_report_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, other = tmp_path / "run", tmp_path / "other"
    aekit.train_run("linear", {"latent_dim": 6, "random_state": 0}, {"name": "digits", "limit": 200}, run,
                    eval_limit=30)
    # Another model: same settings, other data, with its own code model beside it.
    X = aekit.load_dataset("digits").X[:300]
    fitted = aekit.LinearAutoencoder(latent_dim=6, random_state=0).fit(X)
    fitted.save(other)
    aekit.fit_code_model(fitted, X).save(other / "codec.json")
    bare = fitted.save(tmp_path / "bare")  # saved from Python: no codec.json, no record of its data
    capsys.readouterr()
    f = tmp_path / "test.aec"
    assert main(["compress", str(run), "--split", "test", "--limit", "40", "--out", str(f), "--step", "0.5",
                 "--residual-step", "0.1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["bytes"] == f.stat().st_size and summary["bits_per_sample"] == 8 * f.stat().st_size / 40
    assert (run / "codec.json").is_file() and (run / "app-compression.png").is_file()
    assert "Learned compression" in (run / "report.html").read_text()
    out = tmp_path / "dec.npy"
    assert main(["decompress", str(run), str(f), "--out", str(out)]) == 0
    est = aekit.load(run)
    cm = CodeModel.load(run / "codec.json")
    np.testing.assert_array_equal(np.load(out), aekit.decompress(est, f.read_bytes(), code_model=cm))
    test = aekit.load_dataset("digits", split="test", limit=40).X
    assert np.abs(np.load(out) - test).max() <= 0.05 + 1e-6
    assert summary["psnr"] == pytest.approx(10 * np.log10(1 / np.mean((np.load(out) - test) ** 2)), rel=1e-5)
    # Images given as flat rows (N, 64) are the same images: compressed, and drawn in the report as images.
    flat = tmp_path / "flat.npy"
    np.save(flat, test.reshape(len(test), -1))
    capsys.readouterr()
    assert main(["compress", str(run), "--data", str(flat), "--out", str(tmp_path / "flat.aec"), "--step", "0.5",
                 "--residual-step", "0.1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] == (tmp_path / "flat.aec").stat().st_size
    pngs = tmp_path / "pngs"
    assert main(["decompress", str(run), str(f), "--out", str(pngs)]) == 0
    assert len(list(pngs.glob("*.png"))) == 40
    capsys.readouterr()
    # Refusals: one clear line each, exit status not 0, nothing written.
    (tmp_path / "cut.aec").write_bytes(f.read_bytes()[:50])
    bad = tmp_path / "bad.npy"
    cases = [
        (["decompress", str(run), str(tmp_path / "cut.aec"), "--out", str(bad)], "cut.aec is truncated"),
        (["decompress", str(other), str(f), "--out", str(bad)], "compressed with another model"),
        (["decompress", str(run), str(tmp_path / "none.aec"), "--out", str(bad)], "does not exist"),
        (["decompress", str(bare), str(f), "--out", str(bad)], "keeps no codec.json and does not record its training"),
        (["decompress", str(run), str(f), "--out", str(out)], "already exists; pass --overwrite"),
        (["decompress", str(run), str(f), "--out", str(pngs)], "already holds 00000.png"),
        (["compress", str(run), "--out", str(f)], "already exists; pass --overwrite"),
        (["compress", str(run), "--out", str(run / "codec.json"), "--overwrite"], "a file of the run"),
        (["compress", str(run), "--out", str(tmp_path / "x.aec"), "--step", "-1"], "must be a positive number"),
    ]
    for argv, message in cases:
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, (argv, err)
    assert not bad.exists() and not (tmp_path / "x.aec").exists()


def test_refinement_layer_refuses_a_decoder_that_rounds_differently(
    model: aekit.LinearAutoencoder, cm: CodeModel, data: np.ndarray
) -> None:
    import copy

    X = data[400:440]
    blob = aekit.compress(model, X, code_model=cm, step=1.0, residual_step=0.05)
    # Another device's arithmetic, simulated: decodings off by a little, enough to move some values across the
    # edges of the residual contexts. Decoding must stop with a message, not return noise.
    other = copy.deepcopy(model)
    exact = other.inverse_transform
    other.inverse_transform = lambda Z: exact(Z) + np.float32(2e-3)  # type: ignore[method-assign]
    Xh = np.clip(model.inverse_transform(model.transform(X)).reshape(len(X), -1), cm.low, cm.high)
    edges = np.asarray(cm.edges)
    moved = np.searchsorted(edges, Xh.ravel(), side="right") != np.searchsorted(edges, Xh.ravel() + 2e-3, side="right")
    assert moved.any()  # the perturbation does change some contexts (of the unquantized decodings, a proxy)
    with pytest.raises(CompressedFileError, match="x.aec cannot be decoded here: its refinement layer was written "
                                                  "where the model's decodings round differently"):
        aekit.decompress(other, blob, code_model=cm, name="x.aec")
    # The codes alone decode with the same perturbation: only the refinement layer depends on it.
    plain = aekit.compress(model, X, code_model=cm, step=1.0)
    np.testing.assert_allclose(aekit.decompress(other, plain, code_model=cm),
                               aekit.decompress(model, plain, code_model=cm), atol=3e-3)
