"""The semi-supervised autoencoder: its loss terms against references, the gain from unlabelled data,
the classifier face, persistence and the messages for bad labels."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

import aekit
from aekit.core.losses import categorical_entropy, categorical_kl, virtual_adversarial_kl
from aekit.data.corruption import random_translate
from aekit.families.semi_supervised import SemiSupervisedModule, rampup

TERMS = ("classification", "reconstruction", "consistency", "entropy", "balance")


@cache
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tr, te = aekit.load_dataset("digits"), aekit.load_dataset("digits", split="test")
    assert tr.y is not None and te.y is not None
    return tr.X, tr.y, te.X, te.y


def few_labels(y: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """``y`` with all but ``per_class`` labels of each class replaced by -1."""
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)])
    out = np.full(y.shape, -1, dtype=np.int64)
    out[keep] = y[keep]
    return out


def small(**kw: Any) -> aekit.SemiSupervisedAutoencoder:
    params: dict[str, Any] = {
        "hidden_dims": (64,), "latent_dim": 16, "labelled_batch_size": 16, "batch_size": 64, "learning_rate": 3e-3,
        "validation_fraction": 0.0, "verbose": 0, "random_state": 0, "device": "cpu",
    }
    params.update(kw)
    return aekit.SemiSupervisedAutoencoder(**params)


# ----------------------------------------------------------------------------------- the loss terms


def test_categorical_terms_match_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    P, Q = torch.distributions.Categorical(logits=a), torch.distributions.Categorical(logits=b)
    torch.testing.assert_close(categorical_entropy(a), P.entropy())
    torch.testing.assert_close(categorical_kl(a, b), torch.distributions.kl_divergence(P, Q))
    torch.testing.assert_close(categorical_kl(a, a), torch.zeros(5, dtype=torch.float64))


def test_virtual_adversarial_kl_reaches_the_top_eigenvalue() -> None:
    """For a linear softmax classifier and a small radius, KL(p(x) || p(x + r)) ~ r^T H r / 2 with
    H = W^T (diag p - p p^T) W: the virtual adversarial perturbation finds the top eigenvalue of H."""
    torch.manual_seed(0)
    W = torch.randn(3, 6, dtype=torch.float64)
    x = torch.randn(4, 6, dtype=torch.float64)
    eps = 1e-3
    kl = virtual_adversarial_kl(lambda v: v @ W.T, x, x @ W.T, eps, xi=1e-4, n_power=20)
    for i in range(4):
        p = torch.softmax(W @ x[i], dim=0)
        H = W.T @ (torch.diag(p) - torch.outer(p, p)) @ W
        top = float(torch.linalg.eigvalsh(H)[-1])
        assert float(kl[i]) == pytest.approx(eps**2 / 2 * top, rel=1e-2)
        # A random direction of the same radius changes the prediction less.
        r = torch.randn(6, dtype=torch.float64)
        assert float(categorical_kl((W @ x[i])[None], (W @ (x[i] + eps * r / r.norm()))[None])) < float(kl[i])


def test_random_translate_shifts_each_image_within_the_bound() -> None:
    torch.manual_seed(0)
    x = torch.rand(16, 2, 6, 7)
    torch.testing.assert_close(random_translate(x, 0), x)
    out = random_translate(x, 2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    offsets = set()
    for i in range(len(x)):
        # Each image is the edge-padded original cropped at one offset in [-2, 2]^2, both channels alike.
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 7])]
        assert len(found) == 1, i
        offsets.add(found[0])
    assert len(offsets) > 4  # drawn per image


def _module(threshold: float) -> SemiSupervisedModule:
    torch.manual_seed(0)
    enc, head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), torch.nn.Identity()
    weights = {"classification": 1.0, "reconstruction": 0.0, "consistency": 1.0, "entropy": 0.0, "balance": 1.0}
    return SemiSupervisedModule(enc, torch.nn.Linear(3, 4), head, "linear", "mse", weights, "pseudo-label", 1.0, 4,
                                threshold=threshold)


@torch.no_grad()
def test_pseudo_labels_and_the_balance_term_against_closed_forms() -> None:
    x = torch.randn(6, 4)
    # Pseudo-labels: cross-entropy to the argmax of a second pass, counted where the confidence reaches the threshold.
    low, high = _module(1e-6), _module(1.0)
    logits = low.classify(x)
    expected = torch.nn.functional.cross_entropy(logits, logits.argmax(1))
    torch.testing.assert_close(low._consistency(x, logits), expected)
    assert float(high._consistency(x, logits)) == 0.0  # no sample is certain: none gets a label
    # The class-balance term is KL(mean prediction || prior): log 3 for a collapse onto one class
    # under a uniform prior, 0 for a batch that predicts the prior on average.
    low.set_labelled(np.zeros((3, 4), np.float32), np.array([0, 1, 2]), 3)
    collapsed = torch.tensor([[30.0, 0.0, 0.0]] * 4)
    assert float(low._balance(collapsed)) == pytest.approx(np.log(3), rel=1e-4)
    assert float(low._balance(torch.eye(3) * 30)) == pytest.approx(0.0, abs=1e-6)
    low.set_labelled(np.zeros((4, 4), np.float32), np.array([0, 0, 1, 2]), 3)
    torch.testing.assert_close(low.prior, torch.tensor([0.5, 0.25, 0.25]))
    mean = torch.softmax(collapsed, 1).mean(0)
    torch.testing.assert_close(low._balance(collapsed), (mean * (mean / low.prior).log()).sum(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------- unlabelled data helps


def test_unlabelled_data_beat_the_labels_alone() -> None:
    """Two labels per digit: the same network does better with the unlabelled digits beside them (virtual
    adversarial consistency: with 20 labels of 8x8 digits and an MLP, pseudo-labels do not help in 5 epochs)."""
    X, y, X_test, y_test = digits()
    y_few = few_labels(y, 2)
    labelled = y_few != -1
    alone = small(max_epochs=100, consistency="none", entropy_weight=0.0, reconstruction_weight=0.0,
                  balance_weight=0.0)
    alone.fit(X[labelled], y_few[labelled])
    semi = small(max_epochs=5, consistency="vat", epsilon=0.5, entropy_weight=0.0).fit(X, y_few)
    acc_alone, acc_semi = alone.score(X_test, y_test), semi.score(X_test, y_test)
    assert acc_semi > acc_alone + 0.03, (acc_semi, acc_alone)


# ----------------------------------------------------------------- the classifier face and the terms


def test_predict_proba_score_terms_and_round_trip(tmp_path: Path) -> None:
    X, y, X_test, y_test = digits()
    y_half = y.copy()
    y_half[1::2] = -1
    est = small(max_epochs=4, hidden_dims=(16,), latent_dim=4, entropy_weight=1.0, consistency="vat",
                consistency_rampup=0.5).fit(X, y_half)
    assert list(est.classes_) == list(range(10))

    proba = est.predict_proba(X_test)
    pred = est.predict(X_test)
    assert proba.shape == (len(X_test), 10) and pred.shape == (len(X_test),)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(pred, est.classes_[proba.argmax(axis=1)])
    assert est.score(X_test, y_test) == pytest.approx(accuracy_score(y_test, pred))
    # Unlabelled samples are left out of the score.
    y_part = y_test.copy()
    y_part[::3] = -1
    kept = y_part != -1
    assert est.score(X_test, y_part) == pytest.approx(accuracy_score(y_test[kept], pred[kept]))
    assert est.transform(X_test).shape == (len(X_test), 4)

    # Every term is logged by name, already weighted, and they add up to the loss.
    for row in est.history_:
        assert set(TERMS) <= set(row)
        assert row["loss"] == pytest.approx(sum(row[t] for t in TERMS), rel=1e-5)
    assert est.resolved_.reconstruction_weight == pytest.approx(1 / 64)
    # The consistency weight ramps up over half of the 4 epochs, then stays at its value.
    ramp = [row["consistency_ramp"] for row in est.history_]
    assert ramp == pytest.approx([rampup(0.0), rampup(0.5), 1.0, 1.0])
    assert ramp[0] < 0.01 < ramp[1] < 0.5
    # Digits are 8x8 images: shifts of 1 pixel; the hidden layer is batch-normalized.
    assert est.resolved_.translation == 1
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in est.module_.encoder.modules())
    # The labelled pool is training data, not part of the fitted model.
    assert est.module_.pool_x.numel() == 0

    loaded = aekit.load(est.save(tmp_path / "run"))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), proba)
    assert list(loaded.classes_) == list(est.classes_)


def test_weights_of_zero_leave_their_terms_out() -> None:
    X, y, _, _ = digits()
    est = small(max_epochs=1, hidden_dims=(8,), latent_dim=4, consistency="none", entropy_weight=0.0,
                reconstruction_weight=0.0, balance_weight=0.0, batch_norm=False).fit(X[:200], y[:200])
    assert "classification" in est.history_[0]
    assert not {"reconstruction", "consistency", "entropy", "balance"} & set(est.history_[0])
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in est.module_.encoder.modules())


# -------------------------------------------------------------------------------------- bad input


def _labels(kind: str, y: np.ndarray) -> Any:
    n = y.shape[0]
    if kind == "short":
        return y[:-3]
    if kind == "unlabelled":
        return np.full(n, -1)
    if kind == "one class":
        return np.where(np.arange(n) < 5, 3, -1)
    if kind == "fractional":
        return y + 0.5
    if kind == "strings":
        return y.astype(str)
    return y


BAD_LABELS = [
    ("short", {}, r"y has shape \(197,\), expected \(200,\)"),
    ("unlabelled", {}, r"y has no labelled sample: all 200 labels are -1.*label at least one sample"),
    ("one class", {}, r"hold 1 class \(3, 5 labelled sample\(s\)\).*label at least one sample of another class"),
    ("fractional", {}, r"y must hold integer class labels.*not integers, such as \[.*LabelEncoder"),
    ("strings", {}, r"y must hold integer class labels.*dtype <U.*LabelEncoder"),
    ("none", {}, r"learns from labels: call fit\(X, y\).*aekit.Autoencoder"),
    ("ok", {"classes": tuple(range(11))}, r"classes \[10\] of classes=.*have no labelled sample in y; label at least one"),
    ("ok", {"classes": tuple(range(9))}, r"y holds labels \[9\] that are not among classes=.*add them to classes"),
    ("ok", {"classes": (-1, 0, 1)}, r"classes=\(-1, 0, 1\) holds -1, which marks an unlabelled sample"),
    ("ok", {"classes": (1, 1, 2)}, r"classes=\(1, 1, 2\) names a class twice"),
]


@pytest.mark.parametrize(("kind", "params", "message"), BAD_LABELS, ids=[f"{k}-{p}" for k, p, _ in BAD_LABELS])
def test_bad_labels_are_refused_and_nothing_is_written(kind: str, params: dict[str, Any], message: str,
                                                       tmp_path: Path) -> None:
    X, y, _, _ = digits()
    X, y = X[:200], y[:200]
    labels = None if kind == "none" else _labels(kind, y)
    est = small(max_epochs=1, **params)
    with pytest.raises(ValueError, match=message):
        est.fit(X, labels, checkpoint_dir=tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
    assert not hasattr(est, "module_")


def test_few_labels_preset_is_the_benchmark_recipe() -> None:
    X, y, _, _ = digits()
    est = aekit.SemiSupervisedAutoencoder.from_preset("few-labels", max_epochs=1, batch_size=64, verbose=0,
                                                      random_state=0, device="cpu")
    assert (est.architecture, est.hidden_dims, est.latent_dim, est.consistency) == ("conv", (32, 64), 64, "pseudo-label")
    est.fit(X[:200], few_labels(y[:200], 2))
    assert est.transform(X[:5]).shape == (5, 64) and set(est.predict(X[:20])) <= set(range(10))
    with pytest.raises(ValueError, match="hinton"):
        aekit.SemiSupervisedAutoencoder.from_preset("hinton")  # the plain autoencoder's presets are not inherited
