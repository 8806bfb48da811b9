"""The application commands at their edges: steps too fine for the range coder, strides that would leave pixels
uncovered, outputs that are the command's own input, an index searched with retrained weights, 0-255 references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_call as call

import aekit


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edges") / "run"
    aekit.train_run("linear", {"latent_dim": 6, "random_state": 0}, {"name": "digits", "limit": 200}, path,
                    eval_limit=30)
    return path


def test_compress_names_a_step_too_fine_for_the_coder(run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.aec"
    for flag, value in (("--step", "1e-9"), ("--residual-step", "1e-12")):
        code, _, err = call(capsys, "compress", str(run), "--out", str(out), "--limit", "3", flag, value)
        assert code == 2 and f"{flag} {float(value):g} is too small" in err
        assert "is too small for the range coder" in err and "use " + flag + " >= " in err
        assert err.count("\n") == 1 and not out.exists()
    from aekit.apps.compression import compress, fit_code_model

    model = aekit.load(run)
    X = aekit.load_dataset("digits").X[:100]
    with pytest.raises(ValueError, match="step=1e-09 is too small: it would take .* use step >= "):
        compress(model, X, code_model=fit_code_model(model, X), step=1e-9)
    # A code model fitted to fewer samples than its finite-difference subsample (8) still works.
    from aekit.apps.compression import decompress

    cm = fit_code_model(model, X[:3])
    assert np.abs(decompress(model, compress(model, X[:3], code_model=cm, residual_step=0.1), code_model=cm)
                  - X[:3]).max() <= 0.05 + 1e-6


def test_restoration_refuses_a_stride_past_the_window_and_its_own_input(run: Path, tmp_path: Path, capsys) -> None:
    big = tmp_path / "big.npy"
    np.save(big, np.random.default_rng(0).random((2, 1, 20, 18)).astype(np.float32))
    code, _, err = call(capsys, "denoise", str(run), "--data", str(big), "--split", "all", "--out",
                        str(tmp_path / "d.npy"), "--stride", "9")
    assert code in (1, 2) and "stride 9 is larger than the model's 8x8 window" in err and "at most 8" in err
    assert not (tmp_path / "d.npy").exists()
    assert call(capsys, "denoise", str(run), "--data", str(big), "--split", "all", "--out",
                str(tmp_path / "d.npy"), "--stride", "8")[0] == 0
    assert np.isfinite(np.load(tmp_path / "d.npy")).all()
    # --out the input itself, even with --overwrite: refused, the input untouched.
    victim = tmp_path / "victim.npy"
    np.save(victim, aekit.load_dataset("digits").X[:10])
    before = victim.read_bytes()
    code, _, err = call(capsys, "denoise", str(run), "--data", str(victim), "--split", "all", "--out", str(victim),
                        "--overwrite")
    assert code == 2 and "is this command's input data" in err and victim.read_bytes() == before


def test_clean_references_are_read_as_data_are(run: Path, tmp_path: Path, capsys) -> None:
    X = aekit.load_dataset("digits").X[:10]
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "c8.npy", np.rint(X * 255).astype(np.uint8))  # 0-255 pixel values, rescaled as --data is
    np.save(tmp_path / "cbad.npy", X * 255)  # floats outside [0, 1]: refused
    code, out, err = call(capsys, "denoise", str(run), "--data", str(tmp_path / "x.npy"), "--split", "all", "--out",
                          str(tmp_path / "a.npy"), "--clean", str(tmp_path / "c8.npy"), "--json")
    assert code == 0, err
    assert json.loads(out)["mean_psnr"] > 10
    code, _, err = call(capsys, "denoise", str(run), "--data", str(tmp_path / "x.npy"), "--split", "all", "--out",
                        str(tmp_path / "b.npy"), "--clean", str(tmp_path / "cbad.npy"))
    assert code == 2 and "--clean:" in err and "must lie in [0, 1]" in err and not (tmp_path / "b.npy").exists()


def test_decompress_never_writes_over_the_compressed_file(run: Path, tmp_path: Path, capsys) -> None:
    f = tmp_path / "d.npy"  # a compressed file that happens to end in .npy
    assert call(capsys, "compress", str(run), "--out", str(f), "--limit", "5")[0] == 0
    before = f.read_bytes()
    code, _, err = call(capsys, "decompress", str(run), str(f), "--out", str(f), "--overwrite")
    assert code == 2 and "is the compressed file itself" in err and f.read_bytes() == before


def test_an_index_refuses_a_model_retrained_with_the_same_settings(tmp_path: Path) -> None:
    X = aekit.load_dataset("digits").X[:150]
    a = aekit.Autoencoder(hidden_dims=(8,), latent_dim=4, max_epochs=1, verbose=0, random_state=0).fit(X)
    b = aekit.Autoencoder(hidden_dims=(8,), latent_dim=4, max_epochs=1, verbose=0, random_state=0).fit(X[::-1].copy())
    index = aekit.CodeIndex.build(a, X)
    index.save(tmp_path / "i.npz")
    assert aekit.CodeIndex.load(tmp_path / "i.npz", model=a).search(X[:2], 1)[0][:, 0].tolist() == [0, 1]
    with pytest.raises(ValueError, match="same settings but other weights"):
        aekit.CodeIndex.load(tmp_path / "i.npz", model=b)
