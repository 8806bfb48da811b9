"""Sparse, denoising and contractive autoencoders, and the corruption processes q(x'|x).

Each family is checked against what its objective promises: codes that are measurably sparse (and
sparser for a larger weight), a KL penalty equal to its closed form, corruptions with the right
statistics drawn afresh at every training step while the loss compares with the clean x, a denoiser
that denoises, a contractive penalty equal to an autograd Jacobian, and the lecture's point that an
unconstrained overcomplete autoencoder learns the identity while each of these regularizers stops it.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from conftest import digits_data
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import aekit
from aekit.data.corruption import (
    LUMA_WEIGHTS,
    BlockOcclusion,
    Compose,
    GaussianNoise,
    Grayscale,
    MaskingNoise,
    SaltAndPepper,
    Translation,
    corruption_from_params,
    make_corruption,
    random_translate,
)
from aekit.families.autoencoder import AutoencoderModule
from aekit.families.sparse import keep_top_k

SEEDED: dict[str, Any] = {"verbose": 0, "random_state": 0, "device": "cpu"}
OVERCOMPLETE = 100  # code units for 64 input pixels
K = 8  # units kept by top-k


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    """The corruptions draw from the global torch RNG: seed it so every test sees the same draws."""
    torch.manual_seed(0)


def held_out_digits() -> np.ndarray:
    """Digits outside the training subset of conftest (its first 120 rows), (200, 64) in [0, 1]."""
    from sklearn.datasets import load_digits

    return (load_digits().data[1500:1700] / 16.0).astype(np.float32)


def colour_digits() -> np.ndarray:
    """The digits tinted with one random colour each, (120, 3, 8, 8) in [0, 1]."""
    rng = np.random.default_rng(0)
    tint = rng.uniform(0.2, 1.0, (120, 3, 1, 1)).astype(np.float32)
    return digits_data().reshape(-1, 1, 8, 8) * tint


def rows(A: np.ndarray | torch.Tensor) -> set[bytes]:
    """The rows of a batch as hashable bytes, to tell which samples a batch holds."""
    arr = A.numpy() if isinstance(A, torch.Tensor) else A
    return {r.tobytes() for r in np.ascontiguousarray(arr, dtype=np.float32).reshape(arr.shape[0], -1)}


def code_jacobian_norms(module: Any, X: np.ndarray) -> np.ndarray:
    """||df(x)/dx||_F^2 per sample from torch's full Jacobian of the encoder, (N,).

    The encoder acts on each sample alone, so the Jacobian of sum_n f(x_n) with respect to the batch
    holds every sample's Jacobian.
    """
    x = torch.from_numpy(X)
    jac = torch.autograd.functional.jacobian(lambda v: module.encode(v).sum(dim=0), x)  # (K, N, D)
    return jac.pow(2).sum(dim=(0, 2)).numpy()


def psnr(estimate: np.ndarray, clean: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for data in [0, 1]."""
    return float(10 * np.log10(1.0 / np.mean((estimate - clean) ** 2)))


# ============================================================================================ sparse


@cache
def sparse_fit(penalty: str, alpha: float | str = "auto") -> aekit.SparseAutoencoder:
    """A sparse autoencoder with an overcomplete code (100 units for 64 pixels) on the digits."""
    est = aekit.SparseAutoencoder(
        penalty=penalty, alpha=alpha, k=K, latent_dim=OVERCOMPLETE, max_epochs=60, batch_size=32, learning_rate=1e-2,
        **SEEDED,
    )
    return est.fit(digits_data())


@pytest.mark.parametrize(("penalty", "term"), [("l1", "sparsity_l1"), ("kl", "sparsity_kl"), ("topk", None)])
def test_each_penalty_trains_an_overcomplete_code(penalty: str, term: str | None) -> None:
    est = sparse_fit(penalty)
    X, Xh = digits_data(), held_out_digits()
    assert est.transform(X).shape == (120, OVERCOMPLETE) and OVERCOMPLETE > X.shape[1]
    hist = est.history_
    assert all(math.isfinite(row["loss"]) for row in hist)
    assert hist[-1]["loss"] < 0.7 * hist[0]["loss"]
    # The penalty is logged by name and the terms add up to the loss (topk has no penalty term).
    names = {"reconstruction"} | ({term} if term else set())
    assert names == {k for k in hist[-1] if k == "reconstruction" or k.startswith("sparsity")}
    assert hist[-1]["loss"] == pytest.approx(sum(hist[-1][k] for k in names), rel=1e-5)
    # It learned the digits: held-out errors well below those of predicting the mean digit.
    baseline = ((Xh - X.mean(axis=0)) ** 2).sum(axis=1).mean()
    assert est.reconstruction_error(Xh).mean() < 0.6 * baseline


def test_topk_keeps_at_most_k_units_per_code() -> None:
    est = sparse_fit("topk")
    noise = np.random.default_rng(0).uniform(0, 1, (50, 64)).astype(np.float32)
    for A in (digits_data(), held_out_digits(), noise):
        l0 = (est.transform(A) != 0).sum(axis=1)
        assert l0.max() <= K
        assert np.median(l0) == K  # the constraint binds: k units are kept, not fewer
    assert est.sparsity_report(held_out_digits())["mean_l0"] <= K
    # The operator itself: exactly the k largest entries survive, where they were.
    h = torch.tensor([[0.5, 3.0, -1.0, 2.0, 0.1], [4.0, 0.0, 1.0, 5.0, 6.0]])
    expected = torch.tensor([[0.0, 3.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 5.0, 6.0]])
    torch.testing.assert_close(keep_top_k(h, 2), expected)


@pytest.mark.parametrize("penalty", ["l1", "kl", "topk"])
def test_sparsity_report_is_consistent_with_the_codes(penalty: str) -> None:
    est = sparse_fit(penalty)
    Xh = held_out_digits()
    rep = est.sparsity_report(Xh)
    H = est.transform(Xh)
    assert rep["threshold"] == (0.05 if penalty == "kl" else 1e-3)  # sigmoid codes never reach 0
    active = np.abs(H) > rep["threshold"]
    assert rep["fraction_zero"] == pytest.approx(1 - active.mean())
    assert rep["mean_l0"] == pytest.approx(active.sum(axis=1).mean())
    assert rep["fraction_zero"] == pytest.approx(1 - rep["mean_l0"] / OVERCOMPLETE)
    np.testing.assert_allclose(rep["activation_frequency"], active.mean(axis=0))
    np.testing.assert_allclose(rep["mean_activation"], H.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert rep["n_dead"] == int((~active.any(axis=0)).sum()) == len(est.dead_units(Xh))
    assert rep["dead_fraction"] == pytest.approx(rep["n_dead"] / OVERCOMPLETE)
    # Reported beside the sparsity: the reconstruction error it costs.
    assert rep["reconstruction_error"] == pytest.approx(est.reconstruction_error(Xh).mean(), rel=1e-6)
    # ReLU codes are exactly zero where off: threshold 0 counts the exact zeros.
    if penalty != "kl":
        assert est.sparsity_report(Xh, threshold=0.0)["fraction_zero"] == pytest.approx((H == 0).mean())


def test_stronger_l1_weight_gives_sparser_codes() -> None:
    Xh = held_out_digits()
    weak, strong = sparse_fit("l1", 0.01).sparsity_report(Xh), sparse_fit("l1", 1.0).sparsity_report(Xh)
    assert strong["fraction_zero"] > weak["fraction_zero"] + 0.15
    assert strong["mean_l0"] < 0.7 * weak["mean_l0"]
    # ... and pays for it in reconstruction, the trade-off alpha sets.
    assert strong["reconstruction_error"] > weak["reconstruction_error"]


def kl_sparsity_numpy(H: np.ndarray, rho: float) -> float:
    """sum_j KL(rho || rho_hat_j), rho_hat_j the mean of column j: the closed form of Ng's notes."""
    r = H.mean(axis=0)
    return float(np.sum(rho * np.log(rho / r) + (1 - rho) * np.log((1 - rho) / (1 - r))))


def test_kl_penalty_equals_the_closed_form() -> None:
    module = sparse_fit("kl").module_
    assert (module.alpha, module.rho) == (3.0, 0.05)  # Ng's beta and rho, the defaults
    H = np.random.default_rng(0).uniform(0.01, 0.6, (40, 7))  # a known activation matrix
    got = float(module.sparsity_loss(torch.from_numpy(H)))
    assert got == pytest.approx(3.0 * kl_sparsity_numpy(H, 0.05), rel=1e-10)
    # Zero when every unit's mean activation is exactly rho.
    at_target = np.tile([[0.0], [0.1]], (20, 7))  # every column averages 0.05
    assert float(module.sparsity_loss(torch.from_numpy(at_target))) == pytest.approx(0.0, abs=1e-12)
    # In the model's loss, the term is the closed form on the batch's own codes.
    with torch.no_grad():
        x = torch.from_numpy(held_out_digits())
        out = module(x)
        term = float(module.loss(x, out).terms["sparsity_kl"])
    assert term == pytest.approx(3.0 * kl_sparsity_numpy(out.z.double().numpy(), 0.05), rel=1e-4)
    # The L1 term likewise: alpha times the mean over the batch of ||h||_1.
    l1 = sparse_fit("l1", 1.0).module_
    with torch.no_grad():
        out = l1(x)
        term = float(l1.loss(x, out).terms["sparsity_l1"])
    assert term == pytest.approx(1.0 * np.abs(out.z.numpy()).sum(axis=1).mean(), rel=1e-5)


# ========================================================================================= corruption

RANDOM_SPECS = [
    "gaussian:0.3", "masking:0.4", "salt-and-pepper:0.2", "block:3", "block:2:3", "masking:0.5+gaussian:0.1", "translate:1",
]


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ("gaussian:0.3", (7, 20)),
        ("masking:0.4", (5, 2, 9)),
        ("salt-and-pepper:0.2", (4, 1, 8, 8)),
        ("block:3", (4, 2, 8, 6)),
        ("block:2:3", (3, 1, 5, 5)),
        ("grayscale", (4, 3, 8, 8)),
        ("grayscale", (4, 3, 11)),
        ("masking:0.5+gaussian:0.1", (6, 3, 4, 4)),
        ("translate:2", (4, 2, 8, 6)),
    ],
)
def test_corruptions_keep_the_shape_and_never_write_into_the_input(spec: str, shape: tuple[int, ...]) -> None:
    c = make_corruption(spec)
    x = torch.rand(shape) + 0.1
    before = x.clone()
    out = c(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(x, before)
    assert not torch.equal(out, x)
    assert make_corruption(c.spec) == c  # the spec string gives the same corruption back
    c.check_shape(shape[1:])


def test_masking_zeroes_a_fraction_nu_and_keeps_the_rest() -> None:
    x = torch.rand(2000, 64) + 0.5  # no zeros of its own
    out = MaskingNoise(0.3)(x)
    zeroed = out == 0
    assert zeroed.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(out[~zeroed], x[~zeroed])


def test_gaussian_noise_has_standard_deviation_sigma() -> None:
    x = torch.rand(2000, 64)
    noise = GaussianNoise(0.25)(x) - x
    assert noise.std().item() == pytest.approx(0.25, rel=0.01)
    assert abs(noise.mean().item()) < 0.005


@pytest.mark.parametrize(("spec", "low", "high"), [("salt-and-pepper:0.2", 0.0, 1.0), ("salt-and-pepper:0.2:-1:2", -1.0, 2.0)])
def test_salt_and_pepper_replaces_a_fraction_p_by_low_or_high(spec: str, low: float, high: float) -> None:
    x = torch.full((2000, 64), 0.5)
    out = make_corruption(spec)(x)
    pepper, salt = (out == low).float().mean().item(), (out == high).float().mean().item()
    assert pepper + salt == pytest.approx(0.2, abs=0.01)
    assert pepper == pytest.approx(0.1, abs=0.01) and salt == pytest.approx(0.1, abs=0.01)  # a fair coin
    assert bool(((out == low) | (out == high) | (out == 0.5)).all())


def test_block_occlusion_zeroes_a_square_of_the_given_size() -> None:
    x = torch.ones(64, 3, 10, 12)
    out = BlockOcclusion(4)(x, torch.Generator().manual_seed(0))
    corners = set()
    for img in out:
        zero = img == 0  # (C, H, W)
        assert torch.equal(zero, zero[:1].expand_as(zero))  # the block covers every channel
        r, c = torch.nonzero(zero[0], as_tuple=True)
        assert r.numel() == 16
        top, left = int(r.min()), int(c.min())
        assert (int(r.max()) - top, int(c.max()) - left) == (3, 3)  # one 4x4 square
        corners.add((top, left))
    tops, lefts = {t for t, _ in corners}, {left for _, left in corners}
    assert len(corners) > 20 and tops == set(range(7)) and lefts == set(range(9))  # anywhere it fits
    # Several blocks: their union, between one and n_blocks squares' worth of pixels.
    counts = (BlockOcclusion(3, n_blocks=2)(x) == 0)[:, 0].sum(dim=(1, 2))
    assert bool(((counts >= 9) & (counts <= 18)).all()) and int(counts.max()) == 18


def test_grayscale_gives_equal_channels_equal_to_the_luminance() -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 3, 6, 7)).astype(np.float32) / 255
    out = Grayscale()(torch.from_numpy(rgb)).numpy()
    luma = np.tensordot(np.array(LUMA_WEIGHTS), rgb, axes=([0], [1]))  # (B, H, W)
    for ch in range(3):
        np.testing.assert_allclose(out[:, ch], luma, rtol=1e-6, atol=1e-6)
    # The same as PIL's RGB -> "L" conversion (which rounds to 8 bits).
    for img, gray in zip(rgb, out):
        pil = Image.fromarray(np.round(img.transpose(1, 2, 0) * 255).astype(np.uint8), "RGB").convert("L")
        assert np.abs(np.asarray(pil, np.float32) / 255 - gray[0]).max() <= 1.01 / 255


def test_composition_applies_left_to_right() -> None:
    c = make_corruption("masking:0.5+gaussian:0.1")
    assert c == Compose([MaskingNoise(0.5), GaussianNoise(0.1)]) and c.spec == "masking:0.5+gaussian:0.1"
    x = torch.rand(50, 64) + 0.5
    composed = c(x, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    by_hand = GaussianNoise(0.1)(MaskingNoise(0.5)(x, gen), gen)
    torch.testing.assert_close(composed, by_hand, rtol=0, atol=0)
    # About half the entries were masked first: they hold the noise alone, near 0.
    masked = (composed.abs() < 0.45) & (x > 0.5)
    assert 0.4 < masked.float().mean().item() < 0.6


@pytest.mark.parametrize("spec", RANDOM_SPECS)
def test_noise_is_fresh_every_call_and_a_seeded_generator_repeats_it(spec: str) -> None:
    c = make_corruption(spec)
    x = torch.rand(6, 1, 8, 8) + 0.1
    assert not torch.equal(c(x), c(x))
    first = c(x, torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, c(x, torch.Generator().manual_seed(7)), rtol=0, atol=0)
    assert not torch.equal(first, c(x, torch.Generator().manual_seed(8)))


ZERO_SPECS = ["gaussian:0", "masking:0", "salt-and-pepper:0", "gaussian:0+masking:0.0+salt-and-pepper:0", "none"]


@settings(max_examples=40, deadline=None)
@given(
    spec=st.sampled_from(ZERO_SPECS),
    x=arrays(np.float32, array_shapes(min_dims=2, max_dims=4, max_side=5), elements=st.floats(-1e3, 1e3, width=32)),
)
def test_zero_corruption_leaves_the_input_unchanged(spec: str, x: np.ndarray) -> None:
    c = make_corruption(spec)
    assert c.is_identity
    t = torch.from_numpy(x)
    torch.testing.assert_close(c(t), t, rtol=0, atol=0)
    torch.testing.assert_close(c(t, torch.Generator().manual_seed(0)), t, rtol=0, atol=0)


def test_corruption_from_params_builds_one_level() -> None:
    assert corruption_from_params("masking", 0.25) == MaskingNoise(0.25)
    assert corruption_from_params("salt_and_pepper", 0.1) == SaltAndPepper(0.1)
    assert corruption_from_params("block", 4.0) == BlockOcclusion(4)
    assert corruption_from_params("grayscale") == Grayscale()
    assert corruption_from_params("translate", 2.0) == Translation(2) and Translation(0).is_identity


def test_translation_is_random_translate_from_the_same_generator() -> None:
    x = torch.rand(32, 2, 9, 7)
    out = Translation(2)(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, random_translate(x, 2, torch.Generator().manual_seed(5)), rtol=0, atol=0)
    torch.testing.assert_close(Translation(0)(x), x, rtol=0, atol=0)


# ========================================================================================= denoising


def spy_on_training(monkeypatch: pytest.MonkeyPatch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Record what the model is fed and what its loss compares with, step by step."""
    fed: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    forward, loss = AutoencoderModule.forward, AutoencoderModule.loss

    def spy_forward(self: AutoencoderModule, x: torch.Tensor) -> Any:
        fed.append(x.detach().clone())
        return forward(self, x)

    def spy_loss(self: AutoencoderModule, x: torch.Tensor, out: Any) -> Any:
        targets.append(x.detach().clone())
        return loss(self, x, out)

    monkeypatch.setattr(AutoencoderModule, "forward", spy_forward)
    monkeypatch.setattr(AutoencoderModule, "loss", spy_loss)
    return fed, targets


def test_training_draws_fresh_masking_every_step_against_the_clean_x(monkeypatch: pytest.MonkeyPatch) -> None:
    fed, targets = spy_on_training(monkeypatch)
    X = digits_data()
    dae = aekit.DenoisingAutoencoder(
        corruption="masking:0.5", hidden_dims=(), latent_dim=8, max_epochs=3, batch_size=40, validation_fraction=0,
        **SEEDED,
    ).fit(X)
    assert len(fed) == len(targets) == 9  # 3 epochs of 3 batches, one forward per step
    clean = rows(X)
    masks: dict[bytes, list[bytes]] = {}
    for inp, target in zip(fed, targets):
        assert rows(target) <= clean  # the loss compares with clean training rows ...
        assert bool(((inp == target) | (inp == 0)).all())  # ... the model sees them masked
        on = target != 0
        assert (inp[on] == 0).float().mean().item() == pytest.approx(0.5, abs=0.1)
        for t_row, i_row in zip(target.numpy(), inp.numpy()):
            masks.setdefault(t_row.tobytes(), []).append((i_row == 0).tobytes())
    # Every sample was seen once per epoch, with a new mask each time.
    assert sum(len(m) for m in masks.values()) == 3 * 120
    assert all(len(set(m)) == len(m) for m in masks.values())
    assert np.isfinite(dae.history_[-1]["loss"])


def test_autoencoder_shift_corruption_feeds_shifted_images_and_targets_the_originals(monkeypatch: pytest.MonkeyPatch) -> None:
    fed, targets = spy_on_training(monkeypatch)
    X = digits_data().reshape(-1, 1, 8, 8)
    ae = aekit.Autoencoder(shift_corruption=1, init="random", hidden_dims=(), latent_dim=8, max_epochs=2, batch_size=40,
                           validation_fraction=0, **SEEDED).fit(X)
    assert ae.resolved_.shift_corruption == 1 and len(fed) == len(targets) == 6
    padded = torch.nn.functional.pad(torch.from_numpy(X), (1, 1, 1, 1), mode="replicate")
    originals = {x.tobytes(): i for i, x in enumerate(X)}
    shifted = 0
    for inp, target in zip(fed, targets):
        for a, t in zip(inp, target):
            i = originals[t.numpy().tobytes()]  # the loss compares with a training image as it is ...
            crops = [(dy, dx) for dy in range(3) for dx in range(3) if torch.equal(a, padded[i, :, dy:dy + 8, dx:dx + 8])]
            assert crops  # ... the model sees it shifted by at most one pixel
            shifted += (1, 1) not in crops
    assert shifted > 100  # most of the 240 samples moved
    # The plain autoencoder feeds the images as they are; binary codes take the shift too.
    assert aekit.Autoencoder(latent_dim=4, max_epochs=1, verbose=0)._corruption() is None
    bits = aekit.Autoencoder(shift_corruption=2, binary_codes=True, latent_dim=8, max_epochs=1, **SEEDED).fit(X).transform(X)
    assert set(np.unique(bits)) <= {0.0, 1.0}


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros((20, 64), np.float32), r"shift_corruption=1 shifts images \(C, H, W\) .* samples have shape \(64,\); use shift_corruption=0"),
        (np.zeros((20, 1, 8, 4), np.float32), r"shift_corruption=2 shifts .* shape \(1, 8, 4\); use a shift below 2, or 0"),
    ],
)
def test_autoencoder_shift_corruption_needs_images_larger_than_the_shift(X: np.ndarray, message: str) -> None:
    shift = 1 if X.ndim == 2 else 2
    with pytest.raises(ValueError, match=message):
        aekit.Autoencoder(shift_corruption=shift, max_epochs=1, verbose=0).fit(X)


def test_grayscale_training_feeds_gray_and_targets_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    fed, targets = spy_on_training(monkeypatch)
    X = colour_digits()
    dae = aekit.DenoisingAutoencoder(
        corruption="grayscale", hidden_dims=(), latent_dim=8, max_epochs=1, batch_size=60, validation_fraction=0,
        **SEEDED,
    ).fit(X)
    assert len(fed) == 2
    w = torch.tensor(LUMA_WEIGHTS).reshape(1, 3, 1, 1)
    for inp, target in zip(fed, targets):
        assert rows(target) <= rows(X)
        assert not torch.allclose(target[:, 0], target[:, 1])  # the target is in colour
        torch.testing.assert_close(inp, (target * w).sum(dim=1, keepdim=True).expand_as(target))
    gray = dae.corrupt(X)
    assert gray.shape == X.shape and np.array_equal(gray[:, 0], gray[:, 2])
    assert dae.denoise(gray).shape == X.shape


def test_corrupt_is_reproducible_with_a_random_state() -> None:
    dae = aekit.DenoisingAutoencoder(corruption="gaussian:0.3", hidden_dims=(), latent_dim=4, max_epochs=1, **SEEDED)
    dae.fit(digits_data())
    Xh = held_out_digits()
    a, b = dae.corrupt(Xh, random_state=0), dae.corrupt(Xh, random_state=0)
    assert a.shape == Xh.shape and np.array_equal(a, b)
    assert not np.array_equal(a, dae.corrupt(Xh, random_state=1))
    assert not np.array_equal(dae.corrupt(Xh), dae.corrupt(Xh))  # unseeded: fresh noise
    assert np.std(a - Xh) == pytest.approx(0.3, rel=0.05)


def test_denoising_autoencoder_denoises_held_out_digits() -> None:
    dae = aekit.DenoisingAutoencoder(
        corruption="gaussian:0.3", hidden_dims=(64,), latent_dim=32, max_epochs=60, batch_size=32,
        learning_rate=3e-3, **SEEDED,
    ).fit(digits_data())
    clean = held_out_digits()
    noisy = dae.corrupt(clean, random_state=1)
    before, after = psnr(noisy, clean), psnr(dae.denoise(noisy), clean)
    assert after > before + 2.0, (before, after)  # about 10.4 dB -> 14 dB


# ======================================================================================= contractive


@cache
def contractive_fit(jacobian: str, **kw: Any) -> aekit.ContractiveAutoencoder:
    params: dict[str, Any] = {"latent_dim": 16, "max_epochs": 10, "batch_size": 32, **SEEDED}
    if jacobian != "exact":
        params["hidden_dims"] = (16,)
    params.update(kw)
    return aekit.ContractiveAutoencoder(jacobian=jacobian, **params).fit(digits_data())


@pytest.mark.parametrize("jacobian", ["exact", "autograd", "projection"])
def test_each_jacobian_method_trains(jacobian: str) -> None:
    est = contractive_fit(jacobian)
    assert est.jacobian_ == jacobian
    hist = est.history_
    assert all(math.isfinite(row["loss"]) and row["contractive"] > 0 for row in hist)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["loss"] == pytest.approx(hist[-1]["reconstruction"] + hist[-1]["contractive"], rel=1e-5)
    if jacobian == "projection":
        return  # a one-projection estimate; checked against the Jacobian below with many projections
    # The trained model's penalty term is lambda * mean ||J||_F^2 on the batch, by torch's own Jacobian.
    Xh = held_out_digits()[:50]
    x = torch.from_numpy(Xh)
    term = est.module_.loss(x, est.module_(x)).terms["contractive"].item()
    assert term == pytest.approx(est.alpha * code_jacobian_norms(est.module_, Xh).mean(), rel=1e-4)


def test_auto_picks_the_exact_form_for_one_sigmoid_layer() -> None:
    X = digits_data()
    tiny: dict[str, Any] = {"max_epochs": 1, **SEEDED}
    assert aekit.ContractiveAutoencoder(latent_dim=8, **tiny).fit(X).jacobian_ == "exact"
    assert aekit.ContractiveAutoencoder(hidden_dims=(8,), latent_dim=8, **tiny).fit(X).jacobian_ == "autograd"
    assert aekit.ContractiveAutoencoder(hidden_dims=(8,), latent_dim=40, **tiny).fit(X).jacobian_ == "projection"


@pytest.mark.parametrize(("jacobian", "rel"), [("exact", 1e-4), ("autograd", 1e-4), ("projection", 0.1)])
def test_penalty_in_history_is_lambda_times_the_mean_squared_jacobian_norm(jacobian: str, rel: float) -> None:
    # One full-batch step with a negligible learning rate: the logged penalty is that of the weights
    # the model still holds, on all the training data.
    X = digits_data()
    est = contractive_fit(
        jacobian, alpha=0.5, max_epochs=1, batch_size=120, validation_fraction=0, learning_rate=1e-12, n_projections=50
    )
    logged = est.history_[0]["contractive"]
    assert logged == pytest.approx(0.5 * code_jacobian_norms(est.module_, X).mean(), rel=rel)


def test_larger_lambda_gives_a_smaller_jacobian() -> None:
    Xh = held_out_digits()
    fits = {a: contractive_fit("exact", alpha=a, latent_dim=32, max_epochs=30, learning_rate=1e-2) for a in (0.01, 1.0)}
    norms = {a: code_jacobian_norms(est.module_, Xh).mean() for a, est in fits.items()}
    assert norms[1.0] < 0.3 * norms[0.01], norms  # about 1.1 against 6.3
    # ... at some cost in reconstruction, the trade-off lambda sets.
    assert fits[1.0].history_[-1]["reconstruction"] > fits[0.01].history_[-1]["reconstruction"]


# ================================================================ overcomplete: identity or structure


def relative_error(est: Any, A: np.ndarray) -> float:
    """Squared reconstruction error relative to A's own variance: 0 is a perfect copy, 1 is A's mean."""
    return float(est.reconstruction_error(A).sum() / ((A - A.mean(axis=0)) ** 2).sum())


def test_plain_overcomplete_autoencoder_learns_the_identity_and_regularizers_prevent_it() -> None:
    X = digits_data()
    # Random points of the digits' own principal subspace (top 30 directions, where a plain model gets
    # the signal to learn), spread like uniform noise: nothing like a digit, and never seen in training.
    mean = X.mean(axis=0)
    V = np.linalg.svd(X - mean, full_matrices=False)[2][:30].T  # (64, 30)
    U = np.random.default_rng(0).uniform(0, 1, X.shape)
    noise = (mean + (U - U.mean(axis=0)) @ V @ V.T).astype(np.float32)
    # One linear layer each way, 128 code units for 64 pixels, squared error: the identity is a minimum.
    net: dict[str, Any] = {
        "hidden_dims": (), "latent_dim": 128, "output": "linear", "loss": "mse", "max_epochs": 100,
        "batch_size": 32, "learning_rate": 0.01, "validation_fraction": 0, **SEEDED,
    }
    models = {
        "plain": aekit.Autoencoder(**net),
        "sparse-l1": aekit.SparseAutoencoder(penalty="l1", alpha=0.3, **net),
        "sparse-topk": aekit.SparseAutoencoder(penalty="topk", k=8, **net),
        "denoising": aekit.DenoisingAutoencoder(corruption="gaussian:0.5", **net),
        "contractive": aekit.ContractiveAutoencoder(alpha=1.0, **net),
    }
    errors = {name: (relative_error(m.fit(X), X), relative_error(m, noise)) for name, m in models.items()}
    # Every model reconstructs the digits ...
    assert all(on_digits < 0.5 for on_digits, _ in errors.values()), errors
    # ... the plain one copies the noise too (about 0.003): it learned the identity ...
    assert errors["plain"][1] < 0.05, errors
    # ... the regularized ones do not (0.65 to 1.1): they learned the digits.
    assert all(on_noise > 0.5 for name, (_, on_noise) in errors.items() if name != "plain"), errors


# ========================================================================================= bad input

IMAGES = "images"


@pytest.mark.parametrize(
    ("cls", "params", "data", "message"),
    [
        # sparse
        ("sparse", {"alpha": -1.0}, None, r"alpha must be a finite number >= 0 \(the weight of the sparsity penalty\), got -1\.0; use alpha=0"),
        ("sparse", {"alpha": math.inf}, None, r"alpha must be a finite number >= 0 .*got inf"),
        ("sparse", {"penalty": "kl", "rho": 0.0}, None, r"rho must be a number in \(0, 1\) \(the target mean activation of a sigmoid code unit\), got 0\.0; Ng's notes use rho=0\.05"),
        ("sparse", {"penalty": "kl", "rho": 1.5}, None, r"rho must be a number in \(0, 1\) .*got 1\.5"),
        ("sparse", {"penalty": "topk", "k": 9}, None, r"k must be an integer in \[1, latent_dim=8\] \(code units kept per sample\), got 9; lower k or raise latent_dim"),
        ("sparse", {"penalty": "topk", "k": 0}, None, r"k must be an integer >= 1 \(code units kept per sample\), got 0"),
        ("sparse", {"penalty": "l2"}, None, r"unknown penalty 'l2'; valid: l1, kl, topk"),
        ("sparse", {"code_activation": "softplus"}, None, r"unknown code_activation 'softplus'; valid: relu, sigmoid, linear"),
        ("sparse", {"penalty": "kl", "code_activation": "relu"}, None, r"penalty='kl' needs sigmoid code units .*got code_activation='relu'; leave code_activation='auto'"),
        # denoising: the corruption string
        ("denoising", {"corruption": "masking:1.5"}, None, r"invalid corruption='masking:1\.5': nu must be in \[0, 1\] \(the probability of zeroing each input\), got 1\.5"),
        ("denoising", {"corruption": "gaussian:-0.5"}, None, r"sigma must be in \[0, inf\) \(the standard deviation of the noise; 0 adds none\), got -0\.5"),
        ("denoising", {"corruption": "gaussian:inf"}, None, r"sigma must be in \[0, inf\) .*got inf"),
        ("denoising", {"corruption": "salt-and-pepper:2"}, None, r"p must be in \[0, 1\] \(the probability that a value is replaced by 0 or 1\), got 2\.0"),
        ("denoising", {"corruption": "salt-and-pepper:0.1:1:0"}, None, r"salt-and-pepper needs finite values low < high .*got low=1\.0, high=0\.0"),
        ("denoising", {"corruption": "blur:3"}, None, r"unknown corruption 'blur' in 'blur:3'; valid corruptions are: gaussian, masking, salt-and-pepper, block, grayscale, translate, none"),
        ("denoising", {"corruption": "gaussian"}, None, r"corruption 'gaussian' takes 1 value \(sigma\), got 0 in 'gaussian'; write e\.g\. 'gaussian:0\.5'"),
        ("denoising", {"corruption": "masking:0.1:0.2"}, None, r"corruption 'masking' takes 1 value \(nu\), got 2"),
        ("denoising", {"corruption": "masking:abc"}, None, r"could not read 'abc' in corruption 'masking:abc' as a number \(nu\)"),
        ("denoising", {"corruption": "masking:0.1+"}, None, r"empty corruption term in 'masking:0\.1\+'; write terms such as 'masking:0\.25' joined by '\+'"),
        ("denoising", {"corruption": 0.5}, None, r"corruption must be a string \(the corruption process q\(x'\|x\)\), got 0\.5; give it as a string such as 'masking:0\.25'"),
        ("denoising", {"corruption": "block:2.5"}, IMAGES, r"size must be an integer >= 1 \(the side of the occluded square in pixels\), got 2\.5"),
        # denoising: a corruption that does not fit the data
        ("denoising", {"corruption": "grayscale"}, IMAGES, r"corruption='grayscale' cannot be applied to this data: grayscale corruption needs RGB samples with 3 channels.*got sample shape \(1, 8, 8\)"),
        ("denoising", {"corruption": "grayscale"}, None, r"grayscale corruption needs RGB samples .*got sample shape \(64,\)"),
        ("denoising", {"corruption": "block:9"}, IMAGES, r"block size 9 does not fit in images of sample shape \(1, 8, 8\) \(8x8\); use a block size of at most 8"),
        ("denoising", {"corruption": "masking:0.1+block:3"}, None, r"block occlusion needs images of shape \(C, H, W\), got sample shape \(64,\); use 'masking' or 'gaussian'"),
        # contractive
        ("contractive", {"alpha": -0.1}, None, r"alpha must be a finite number >= 0 \(the weight of the contractive penalty\), got -0\.1; use alpha=0"),
        ("contractive", {"jacobian": "finite-difference"}, None, r"unknown jacobian 'finite-difference'; valid: auto, exact, autograd, projection"),
        ("contractive", {"n_projections": 0}, None, r"n_projections must be an integer >= 1 \(random projections per step\), got 0"),
        ("contractive", {"code_activation": "softplus"}, None, r"unknown code_activation 'softplus'; valid: sigmoid, relu, tanh, linear"),
        ("contractive", {"jacobian": "exact", "hidden_dims": (16,)}, None, r"jacobian='exact' \(the closed form\) needs one sigmoid encoder layer.*hidden_dims=\(16,\).*use jacobian='autograd'"),
        ("contractive", {"jacobian": "exact", "code_activation": "tanh"}, None, r"jacobian='exact' .*code_activation='tanh'"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_bad_hyperparameters_name_the_value_and_the_range(
    cls: str, params: dict[str, Any], data: str | None, message: str
) -> None:
    est = aekit.get_family(cls).estimator(**{"hidden_dims": (), "latent_dim": 8, "max_epochs": 1, **SEEDED, **params})
    X = digits_data()
    with pytest.raises(ValueError, match=message):
        est.fit(X.reshape(-1, 1, 8, 8) if data == IMAGES else X)
    assert not hasattr(est, "module_")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: GaussianNoise(-1.0), r"sigma must be in \[0, inf\) \(the standard deviation of the noise; 0 adds none\), got -1\.0"),
        (lambda: GaussianNoise(math.nan), r"sigma must be in \[0, inf\) .*got nan"),
        (lambda: GaussianNoise(True), r"sigma must be a number in \[0, inf\) .*got True"),
        (lambda: MaskingNoise(1.01), r"nu must be in \[0, 1\] \(the probability of zeroing each input\), got 1\.01"),
        (lambda: SaltAndPepper(-0.1), r"p must be in \[0, 1\] .*got -0\.1"),
        (lambda: SaltAndPepper(0.1, low=math.nan), r"salt-and-pepper needs finite values low < high .*got low=nan, high=1\.0"),
        (lambda: BlockOcclusion(0), r"size must be an integer >= 1 \(the side of the occluded square in pixels\), got 0"),
        (lambda: BlockOcclusion(3, n_blocks=0), r"n_blocks must be an integer >= 1 \(the number of occluded squares per image\), got 0"),
        (lambda: Compose([1]), r"Compose needs callables Tensor -> Tensor, got 1"),
        (lambda: corruption_from_params("masking", 2.0), r"nu must be in \[0, 1\] .*got 2\.0"),
        (lambda: corruption_from_params("speckle", 0.1), r"unknown corruption 'speckle' in 'speckle:0\.1'; valid corruptions are"),
        (lambda: Grayscale()(torch.zeros(2, 1, 8, 8)), r"grayscale corruption needs an RGB batch of shape \(B, 3, H, W\), got shape \(2, 1, 8, 8\)"),
        (lambda: BlockOcclusion(3)(torch.zeros(2, 64)), r"block occlusion needs an image batch of shape \(B, C, H, W\), got shape \(2, 64\)"),
        (lambda: BlockOcclusion(5)(torch.zeros(2, 1, 4, 8)), r"block size 5 does not fit in images of sample shape \(1, 4, 8\) \(4x8\)"),
        (lambda: Translation(-1), r"shift must be an integer >= 0 \(the largest offset in pixels\), got -1"),
        (lambda: make_corruption("translate:1.5"), r"shift must be an integer >= 0 .*got 1\.5"),
        (lambda: Translation(1)(torch.zeros(2, 64)), r"translation needs an image batch of shape \(B, C, H, W\), got shape \(2, 64\)"),
        (lambda: Translation(2).check_shape((1, 4, 8)), r"a shift of up to 2 pixels does not fit images of sample shape \(1, 4, 8\); use a shift below 2"),
    ],
)
def test_bad_corruption_arguments(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_sparsity_report_threshold() -> None:
    est = sparse_fit("topk")
    for bad in (-0.1, math.nan):
        with pytest.raises(ValueError, match=rf"threshold must be a finite number >= 0 \(\|h\| above it counts as active\), got {bad}"):
            est.sparsity_report(digits_data(), threshold=bad)



def test_apply_corrupts_numpy_arrays_reproducibly() -> None:
    X = digits_data()
    c = make_corruption("masking:0.5")
    a, b = c.apply(X, random_state=3), c.apply(X, random_state=3)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == X.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c.apply(X, random_state=4))
    assert 0.4 < float(np.mean((a == 0) & (X != 0)) / np.mean(X != 0)) < 0.6
    np.testing.assert_array_equal(X, digits_data())  # the input is left alone
    with pytest.raises(ValueError, match=r"shape \(n_samples, \.\.\.\), got shape \(64,\)"):
        c.apply(X[0])
