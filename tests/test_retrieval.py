"""Semantic hashing and retrieval: binary codes, the code index against a brute-force NumPy search, the index file
(round trip, wrong queries, files from another model, edited or garbage files) and the ``index``/``search`` CLI."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import aekit
from aekit.apps.retrieval import CodeIndex
from aekit.cli.main import main
from aekit.families.autoencoder import itq_rotation, straight_through_bits

torch.set_num_threads(1)

TINY = ["--hidden-dims", "16", "--batch-size", "32", "--seed", "0", "--limit", "120", "--quiet", "--epochs", "2"]


@pytest.fixture(scope="module")
def digits() -> Any:
    return aekit.load_dataset("digits", split="train", limit=300)


@pytest.fixture(scope="module")
def binary_ae(digits: Any) -> Any:
    return aekit.Autoencoder(latent_dim=12, hidden_dims=(16,), binary_codes=True, max_epochs=2, batch_size=32,
                             random_state=0, verbose=0).fit(digits.X)


@pytest.fixture(scope="module")
def float_ae(digits: Any) -> Any:
    return aekit.Autoencoder(latent_dim=5, hidden_dims=(16,), max_epochs=2, batch_size=32, random_state=0,
                             verbose=0).fit(digits.X)


def brute_force(Q: np.ndarray, X: np.ndarray, metric: str) -> np.ndarray:
    """All distances (M, N), by NumPy/SciPy alone."""
    if metric == "hamming":
        return (Q[:, None, :] != X[None, :, :]).sum(axis=2).astype(np.float64)
    return cdist(Q.astype(np.float64), X.astype(np.float64), metric=metric)


def assert_exact_knn(ind: np.ndarray, dist: np.ndarray, D: np.ndarray, k: int, atol: float = 0.0) -> None:
    """The neighbours are a true k nearest set: their distances are the k smallest, in order, and each reported
    distance is the brute-force distance of its index (ties at the k-th place may pick either sample)."""
    assert ind.shape == dist.shape == (D.shape[0], k) and ind.dtype == np.int64
    np.testing.assert_allclose(dist, np.sort(D, axis=1)[:, :k], atol=atol, rtol=0)
    np.testing.assert_allclose(np.take_along_axis(D, ind, axis=1), dist, atol=atol, rtol=0)
    assert (np.diff(dist, axis=1) >= 0).all()


# ------------------------------------------------------------------------------- binary codes


def test_binary_codes_are_bits_and_the_hamming_search_equals_brute_force(binary_ae: Any, digits: Any) -> None:
    Z = binary_ae.transform(digits.X)
    assert Z.shape == (300, 12) and set(np.unique(Z).tolist()) == {0.0, 1.0}
    assert 0.1 < Z.mean() < 0.9 and (Z.std(axis=0) > 0).all()  # every bit splits the data, none is constant
    assert binary_ae.resolved_.init == "pca" and binary_ae.resolved_.binarization == "itq"
    index = CodeIndex.build(binary_ae, digits.X[:250])
    assert index.metric == "hamming" and index.binary
    ind, dist = index.search(digits.X[250:], k=7)
    assert_exact_knn(ind, dist, brute_force(Z[250:], Z[:250], "hamming"), 7)
    assert np.array_equal(dist, np.rint(dist))  # bit counts
    # The straight-through estimator: bits forward, the sigmoid's gradient backward.
    a = torch.tensor([[-2.0, 0.5, 3.0]], requires_grad=True)
    h = straight_through_bits(a)
    h.sum().backward()
    assert h.tolist() == [[0.0, 1.0, 1.0]]
    s = torch.sigmoid(a.detach())
    torch.testing.assert_close(a.grad, s * (1 - s))


def test_itq_rotation_against_numpy_and_the_bits_start_at_pca_itq(digits: Any) -> None:
    from sklearn.decomposition import PCA

    X = digits.X.reshape(300, -1).astype(np.float64)
    V = PCA(8, svd_solver="full").fit_transform(X)  # centred PCA codes (300, 8)
    # One step from the same start, by NumPy: B = sign(V R0), then orthogonal Procrustes R = U W^T.
    gen = torch.Generator().manual_seed(3)
    R0 = torch.linalg.qr(torch.randn(8, 8, generator=gen, dtype=torch.float64))[0].numpy()
    U, _, Wt = np.linalg.svd(V.T @ np.where(V @ R0 >= 0, 1.0, -1.0))
    np.testing.assert_allclose(itq_rotation(torch.from_numpy(V), n_iter=1, seed=3).numpy(), U @ Wt, atol=1e-10)
    R = itq_rotation(torch.from_numpy(V), seed=3).numpy()
    np.testing.assert_allclose(R.T @ R, np.eye(8), atol=1e-10)

    def quantization_loss(R: np.ndarray) -> float:
        return float(((np.sign(V @ R) - V @ R) ** 2).sum())

    assert quantization_loss(R) < min(quantization_loss(R0), quantization_loss(np.eye(8)))
    # The autoencoder starts at PCA (a negligible learning rate keeps it there): its bits are PCA-ITQ's, of the
    # samples as given by default, of the samples scaled to unit norm with sample_norm="l2".
    Xu = X / np.linalg.norm(X, axis=1, keepdims=True)
    for norm, data in ((None, X), ("l2", Xu)):
        kw = {} if norm is None else {"sample_norm": norm}
        ae = aekit.Autoencoder(latent_dim=8, binary_codes=True, hidden_dims=(16,), max_epochs=1, learning_rate=1e-12,
                               random_state=3, verbose=0, **kw).fit(digits.X)
        assert ae.resolved_.sample_norm == (norm or "none")
        Vc = PCA(8, svd_solver="full").fit_transform(data)
        itq_bits = (Vc @ itq_rotation(torch.from_numpy(Vc), seed=3).numpy() > 0).astype(np.float32)
        np.testing.assert_array_equal(ae.transform(digits.X), itq_bits)
        # Bits decode through the centre of their cell: inverse_transform(transform(X)) is reconstruct(X), of the
        # unit-norm sample with "l2" (reconstruct scales it back by the input's norm).
        norms = np.linalg.norm(X[:5], axis=1)[:, None, None, None] if norm else 1.0
        np.testing.assert_allclose(ae.inverse_transform(ae.transform(digits.X[:5])) * norms,
                                   ae.reconstruct(digits.X[:5]), rtol=1e-5, atol=1e-6)


def test_sample_norm_makes_codes_blind_to_each_sample_s_scale(digits: Any) -> None:
    X = digits.X[:200]
    scales = np.linspace(0.5, 3.0, len(X)).astype(np.float32).reshape(-1, 1, 1, 1)
    ae = aekit.Autoencoder(latent_dim=4, hidden_dims=(16,), sample_norm="l2", max_epochs=2, batch_size=32,
                           random_state=0, verbose=0).fit(X)
    assert ae.resolved_.sample_norm == "l2" and not ae.resolved_.binary_codes  # real-valued codes, too
    np.testing.assert_allclose(ae.transform(X * scales), ae.transform(X), rtol=1e-4, atol=1e-5)
    # The reconstruction is in the input's units: scaling a sample scales its reconstruction alike.
    np.testing.assert_allclose(ae.reconstruct(X * scales), ae.reconstruct(X) * scales, rtol=1e-4, atol=1e-5)
    assert ae.reconstruction_error(X).mean() < (X ** 2).reshape(len(X), -1).sum(1).mean()  # better than zero
    # A sample of norm zero stays zero (no division by zero), as in scikit-learn's normalize.
    assert np.isfinite(ae.transform(np.zeros_like(X[:2]))).all()
    with pytest.raises(ValueError, match=r"sample_norm 'unit'; valid: none, l2"):
        aekit.Autoencoder(sample_norm="unit").fit(X)
    # A random start models unit-norm samples with a linear output and the squared error unless told otherwise.
    conv = dict(architecture="conv", hidden_dims=(4,), latent_dim=4, max_epochs=1, verbose=0)
    assert (aekit.Autoencoder(sample_norm="l2", **conv).fit(X[:40]).resolved_.output,
            aekit.Autoencoder(**conv).fit(X[:40]).resolved_.output) == ("linear", "sigmoid")
    told = aekit.Autoencoder(sample_norm="l2", output="sigmoid", **conv).fit(X[:40]).resolved_
    assert (told.output, told.loss) == ("sigmoid", "bce")


def test_binary_codes_refuse_a_pca_start_and_hamming_needs_bits(float_ae: Any, digits: Any) -> None:
    with pytest.raises(ValueError, match=r"binarization='straight-through' needs a random start, but got init='pca'"):
        aekit.Autoencoder(binary_codes=True, binarization="straight-through", init="pca").fit(digits.X)
    with pytest.raises(ValueError, match=r"metric='hamming' needs binary codes.*binary_codes=True.*'euclidean'"):
        CodeIndex.build(float_ae, digits.X, metric="hamming")
    with pytest.raises(ValueError, match=r"metric='manhattan' is not one of auto, hamming, euclidean, cosine"):
        CodeIndex.build(float_ae, digits.X, metric="manhattan")


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_float_search_equals_brute_force(float_ae: Any, digits: Any, metric: str) -> None:
    index = CodeIndex.build(float_ae, digits.X[:250], metric=metric)
    ind, dist = index.search(digits.X[250:], k=5)
    Z = float_ae.transform(digits.X)
    assert_exact_knn(ind, dist, brute_force(Z[250:], Z[:250], metric), 5, atol=1e-4)


# ------------------------------------------------------------------------------- the index file


def test_index_file_round_trip_and_refusals(binary_ae: Any, float_ae: Any, digits: Any, tmp_path: Path) -> None:
    index = CodeIndex.build(binary_ae, digits.X[:250])
    path = index.save(tmp_path / "idx.npz")
    assert path.stat().st_size < 250 * 12 // 8 + 2000  # bits packed eight to a byte
    with pytest.raises(ValueError, match=r"already exists; pass overwrite=True"):
        index.save(path)
    loaded = CodeIndex.load(path, model=binary_ae)
    assert np.array_equal(loaded.codes, index.codes) and loaded.metric == "hamming"
    for a, b in zip(loaded.search(digits.X[250:], 4), index.search(digits.X[250:], 4), strict=True):
        assert np.array_equal(a, b)
    # Without its model an index searches codes, not samples.
    bare = CodeIndex.load(path)
    with pytest.raises(ValueError, match=r"loaded without its model.*pass model="):
        bare.search(digits.X[:2], 3)
    assert np.array_equal(bare.search_codes(binary_ae.transform(digits.X[250:]), 4)[0], index.search(digits.X[250:], 4)[0])
    # Queries of another shape, k out of range, another model.
    with pytest.raises(ValueError, match=r"Q has samples of shape \(10,\), but the model was fitted on samples of shape "
                                         r"\(1, 8, 8\) \(64 features\)"):
        loaded.search(np.zeros((3, 10), np.float32), 2)
    with pytest.raises(ValueError, match=r"Q has samples of shape \(1, 28, 28\)"):
        loaded.search(np.zeros((3, 1, 28, 28), np.float32), 2)
    with pytest.raises(ValueError, match=r"k=251 is larger than the index, which holds 250 codes; use k <= 250"):
        loaded.search(digits.X[:2], 251)
    with pytest.raises(ValueError, match=r"query codes have shape \(2, 5\), but the index holds codes of 12 values"):
        bare.search_codes(np.zeros((2, 5)), 3)
    with pytest.raises(ValueError, match=r"built from another model .*family 'autoencoder'.*rebuild the index"):
        CodeIndex.load(path, model=float_ae)
    # Edited, truncated and garbage files.
    with zipfile.ZipFile(path) as zf:
        head = json.loads(np.load(zf.open("header.npy"), allow_pickle=False).tobytes())
        codes = np.load(zf.open("codes.npy"), allow_pickle=False)
    codes[0, 0] ^= 1
    np.savez(tmp_path / "edited.npz", header=np.frombuffer(json.dumps(head).encode(), np.uint8), codes=codes)
    with pytest.raises(ValueError, match=r"edited.npz is not a valid aekit index file: its codes do not match the checksum"):
        CodeIndex.load(tmp_path / "edited.npz")
    head["n_codes"] = 7
    np.savez(tmp_path / "short.npz", header=np.frombuffer(json.dumps(head).encode(), np.uint8), codes=codes)
    with pytest.raises(ValueError, match=r"packed codes of dtype uint8 and shape \(250, 2\), expected uint8 \(7, 2\)"):
        CodeIndex.load(tmp_path / "short.npz")
    (tmp_path / "trunc.npz").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (tmp_path / "junk.npz").write_bytes(b"not an index")
    for name in ("trunc.npz", "junk.npz"):
        with pytest.raises(ValueError, match=rf"{name} is not a readable aekit index file .*rebuild it"):
            CodeIndex.load(tmp_path / name)


# ------------------------------------------------------------------------------- the CLI


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_index_and_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--family", "autoencoder", "--data", "digits", "--latent-dim", "8", "--binary-codes",
                 *TINY, "--out", str(run)]) == 0
    capsys.readouterr()
    idx = tmp_path / "codes.npz"
    code, out, err = call(capsys, "index", str(run), "--out", str(idx), "--limit", "120", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["metric"] == "hamming" and summary["n_codes"] == 120 and summary["code_size"] == 8
    # The run's report gains the nearest-neighbour figure.
    assert (run / "app-index.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Retrieval by codes" in (run / "report.html").read_text()
    queries = aekit.load_dataset("digits", split="test", limit=6).X
    np.save(tmp_path / "q.npy", queries)
    code, out, err = call(capsys, "search", str(idx), "--query", str(tmp_path / "q.npy"), "-k", "3", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert np.array(res["indices"]).shape == np.array(res["distances"]).shape == (6, 3)
    model = aekit.load(run)
    ind, dist = CodeIndex.load(idx, model=model).search(queries, 3)
    assert res["indices"] == ind.tolist() and res["distances"] == dist.astype(int).tolist()  # in the query file's order
    # Refusals: one line each, nothing written.
    before = idx.read_bytes()
    code, _, err = call(capsys, "index", str(run), "--out", str(idx), "--limit", "120")
    assert code == 2 and "already exists; pass --overwrite" in err and err.count("\n") == 1
    assert idx.read_bytes() == before
    code, _, err = call(capsys, "search", str(idx), "--query", str(tmp_path / "q.npy"), "-k", "121")
    assert code == 2 and "-k 121 is larger than the index, which holds 120 codes" in err
    np.save(tmp_path / "bad.npy", np.zeros((4, 10), np.float32))
    code, _, err = call(capsys, "search", str(idx), "--query", str(tmp_path / "bad.npy"))
    assert code == 1 and "Q has samples of shape (10,)" in err and err.count("\n") == 1
    other = aekit.LinearAutoencoder(latent_dim=4, verbose=0).fit(aekit.load_dataset("digits", limit=50).X).save(
        tmp_path / "other")
    code, _, err = call(capsys, "search", str(idx), "--query", str(tmp_path / "q.npy"), "--run", str(other))
    assert code == 1 and "this index was built from another model" in err and err.count("\n") == 1
    (tmp_path / "junk.npz").write_bytes(b"junk")
    code, _, err = call(capsys, "search", str(tmp_path / "junk.npz"), "--query", str(tmp_path / "q.npy"))
    assert code == 1 and "is not a readable aekit index file" in err and "Traceback" not in err
    code, _, err = call(capsys, "index", str(run), "--out", str(tmp_path / "x.npy"))
    assert code == 2 and "a .npz file" in err and not (tmp_path / "x.npy").exists()
