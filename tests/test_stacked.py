"""The stacked autoencoder: greedy pretraining, the unrolled network, fine-tuning, the classifier head."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import digits_data, digits_labels
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit.engine.training import fit_module
from aekit.families import stacked
from aekit.families.contractive import ContractiveAutoencoderModule
from aekit.families.sparse import SparseAutoencoderModule
from aekit.families.stacked import StackedAutoencoder, StackedAutoencoderModule


def small(**kw: Any) -> StackedAutoencoder:
    params: dict[str, Any] = {
        "hidden_dims": (24,), "latent_dim": 8, "pretrain_epochs": 3, "max_epochs": 3, "batch_size": 16,
        "verbose": 0, "random_state": 0, "device": "cpu", "objective": "auto",
    }
    params.update(kw)
    return StackedAutoencoder(**params)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def reconstruction_loss(module: Any, X: np.ndarray) -> float:
    """The clean reconstruction term of a layer or of the unrolled stack on ``X``."""
    was = module.training
    module.eval()
    x = torch.from_numpy(X)
    out = module(x)
    # Without a classifier head the stack's loss is its reconstruction term.
    value = float(module.loss(x, out).total if isinstance(module, StackedAutoencoderModule) else module.reconstruction_loss(x, out))
    module.train(was)
    return value


@dataclass
class Spy:
    """What each call of the training loop saw: the module, its weights and loss before and after."""

    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    record = Spy()

    def spying_fit_module(module: torch.nn.Module, X: np.ndarray, *args: Any, **kwargs: Any) -> list[dict[str, float]]:
        call: dict[str, Any] = {"module": module, "X": X.copy(), "before": weights(module)}
        if not getattr(module, "uses_labels", False):
            call["loss_before"] = reconstruction_loss(module, X)
        history = fit_module(module, X, *args, **kwargs)
        call["after"] = weights(module)
        if not getattr(module, "uses_labels", False):
            call["loss_after"] = reconstruction_loss(module, X)
        record.calls.append(call)
        return history

    monkeypatch.setattr(stacked, "fit_module", spying_fit_module)
    return record


# ------------------------------------------------------------------------------------ pretraining


def test_pretraining_lowers_each_layers_loss_and_feeds_the_next(spy: Spy) -> None:
    X = digits_data()
    est = small(hidden_dims=(24, 16), pretrain_epochs=8, learning_rate=3e-3).fit(X)
    layers, finetune = spy.calls[:3], spy.calls[3]
    assert [c["module"] for c in layers] == list(est.module_.layers)
    assert finetune["module"] is est.module_
    for c in layers:
        assert c["loss_after"] < 0.9 * c["loss_before"], (c["loss_before"], c["loss_after"])
    # Layer l trains on the codes of the trained layer l - 1 (the first on the scaled data).
    np.testing.assert_allclose(layers[0]["X"], est.scaler_.transform(X), rtol=0, atol=0)
    for below, above in zip(layers[:-1], layers[1:]):
        layer = copy.deepcopy(below["module"])
        layer.load_state_dict(below["after"])  # as pretrained: fine-tuning has changed it since
        with torch.no_grad():
            codes = layer.encode(torch.from_numpy(below["X"])).numpy()
        np.testing.assert_allclose(above["X"], codes, rtol=1e-6, atol=1e-6)
    assert [c["X"].shape[1:] for c in layers] == [(64,), (24,), (16,)]


def test_unrolled_network_starts_from_the_pretrained_weights(spy: Spy) -> None:
    est = small(hidden_dims=(24, 16)).fit(digits_data())
    start = spy.calls[-1]["before"]  # the unrolled network as fine-tuning begins
    for i, c in enumerate(spy.calls[:-1]):
        assert c["after"].keys() == c["before"].keys()
        assert any(not torch.equal(c["after"][k], c["before"][k]) for k in c["after"]), "pretraining changed nothing"
        for k, v in c["after"].items():
            torch.testing.assert_close(start[f"layers.{i}.{k}"], v, rtol=0, atol=0)
    # Every parameter of the unrolled network belongs to a pretrained layer.
    assert {k.split(".")[1] for k in start} == {"0", "1", "2"}
    assert all(k.startswith("layers.") for k in start)
    assert est.history_[-1]["layer"] == 0


def test_fine_tuning_lowers_the_loss_further(spy: Spy) -> None:
    est = small(max_epochs=15).fit(digits_data())
    finetune = spy.calls[-1]
    assert finetune["module"] is est.module_
    assert finetune["loss_after"] < 0.9 * finetune["loss_before"], (finetune["loss_before"], finetune["loss_after"])
    # The fine-tuning rows of the history say the same.
    ft_rows = [r for r in est.history_ if r["layer"] == 0]
    assert ft_rows[-1]["loss"] < ft_rows[0]["loss"]


def test_no_pretraining_is_the_random_initialization(spy: Spy) -> None:
    est = small(pretrain_epochs=0).fit(digits_data())
    assert len(spy.calls) == 1 and spy.calls[0]["module"] is est.module_
    assert {r["layer"] for r in est.history_} == {0}
    # The same parameter names, pretrained or not: a saved model loads either way.
    assert weights(est.module_).keys() == weights(small().fit(digits_data()).module_).keys()


def test_history_marks_each_stage(tmp_path: Path) -> None:
    est = small(hidden_dims=(24, 16), layer_family="contractive", pretrain_epochs=2, max_epochs=3).fit(digits_data())
    assert [(r["layer"], r["epoch"]) for r in est.history_] == [
        (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (0, 1), (0, 2), (0, 3)
    ]
    pre = [r for r in est.history_ if r["layer"] > 0]
    assert all({"reconstruction", "contractive", "val_loss"} <= r.keys() for r in pre)
    assert all("contractive" not in r for r in est.history_ if r["layer"] == 0)
    loaded = aekit.load(est.save(tmp_path / "run"))
    assert [(r["layer"], r["epoch"]) for r in loaded.history_] == [(r["layer"], r["epoch"]) for r in est.history_]


def test_objective_none_keeps_the_pretrained_network(spy: Spy) -> None:
    X = digits_data()
    est = small(objective="none").fit(X, digits_labels())
    assert len(spy.calls) == 2  # two layers, no fine-tuning
    assert {r["layer"] for r in est.history_} == {1, 2}
    assert not hasattr(est, "predict") and not hasattr(est, "classes_")
    Xs = torch.from_numpy(est.scaler_.transform(X))
    with torch.no_grad():
        expected = est.module_.layers[1].encode(est.module_.layers[0].encode(Xs)).numpy()
    np.testing.assert_allclose(est.transform(X), expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------- layer families


@pytest.mark.parametrize(
    ("params", "module_type", "term"),
    [
        ({"layer_family": "autoencoder"}, None, None),
        ({"layer_family": "denoising", "layer_corruption": "gaussian:0.2"}, None, None),
        ({"layer_family": "sparse"}, SparseAutoencoderModule, "sparsity_kl"),
        ({"layer_family": "sparse", "activation": "relu", "layer_alpha": 0.05}, SparseAutoencoderModule, "sparsity_l1"),
        ({"layer_family": "sparse", "layer_penalty": "topk", "activation": "relu"}, SparseAutoencoderModule, None),
        ({"layer_family": "contractive", "layer_alpha": 0.3}, ContractiveAutoencoderModule, "contractive"),
        ({"layer_family": "contractive", "activation": "tanh"}, ContractiveAutoencoderModule, "contractive"),
    ],
    ids=["plain", "denoising", "sparse-kl", "sparse-l1", "sparse-topk", "contractive", "contractive-tanh"],
)
def test_each_layer_family(params: dict[str, Any], module_type: type | None, term: str | None) -> None:
    X = digits_data().reshape(-1, 1, 8, 8)
    est = small(**params).fit(X)
    for layer in est.module_.layers:
        assert module_type is None or isinstance(layer, module_type)
    pre = [r for r in est.history_ if r["layer"] > 0]
    if term is not None:
        assert all(r[term] > 0 for r in pre)
        assert all(np.isclose(r["loss"], r["reconstruction"] + r[term]) for r in pre)
    else:
        assert all(np.isclose(r["loss"], r["reconstruction"]) for r in pre)
    Z = est.transform(X)
    assert Z.shape == (X.shape[0], 8) and np.isfinite(Z).all()
    assert est.reconstruct(X).shape == X.shape
    if params.get("layer_penalty") == "topk":
        assert ((Z != 0).sum(axis=1) <= 2).all()  # a quarter of the 8 top units
    if module_type is ContractiveAutoencoderModule:
        expected = "exact" if params.get("activation", "sigmoid") == "sigmoid" else "autograd"
        assert all(layer.jacobian == expected for layer in est.module_.layers)


def test_denoising_layers_see_corrupted_inputs() -> None:
    """Same seed, same network: only the corruption differs, so the pretraining losses differ."""
    X = digits_data()
    plain = small(layer_family="autoencoder").fit(X)
    noisy = small(layer_family="denoising", layer_corruption="masking:0.5").fit(X)
    first = [r["loss"] for r in plain.history_ if r["layer"] == 1]
    assert [r["loss"] for r in noisy.history_ if r["layer"] == 1] != first
    again = small(layer_family="denoising", layer_corruption="masking:0").fit(X)
    assert [r["loss"] for r in again.history_ if r["layer"] == 1] == first  # zero noise is the plain layer


def test_tied_layers_share_their_weights() -> None:
    est = small(tied=True).fit(digits_data())
    names = set(weights(est.module_))
    assert "layers.0.decoder.0.biases.0" in names and not any(n.endswith("decoder.0.weight") for n in names)
    layer = est.module_.layers[0]
    assert layer.decoder[0]._linears[0] is layer.encoder[0]


# -------------------------------------------------------------------------------------- supervised


@cache
def classifier() -> tuple[StackedAutoencoder, Any, Any]:
    train = aekit.load_dataset("digits", split="train")
    test = aekit.load_dataset("digits", split="test")
    est = small(hidden_dims=(32,), latent_dim=16, activation="relu", max_epochs=15, batch_size=64, learning_rate=3e-3)
    est.fit(train.X, train.y)
    return est, train, test


def test_supervised_fine_tuning_beats_chance() -> None:
    est, _, test = classifier()
    assert est.fitted_info_["classes"] == list(range(10))
    acc = est.score(test.X, test.y)
    assert acc > 0.8, acc  # chance is 0.1
    P = est.predict_proba(test.X)
    assert P.shape == (360, 10) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    pred = est.predict(test.X)
    assert pred.shape == (360,) and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, est.classes_[P.argmax(axis=1)])
    assert acc == np.mean(pred == test.y)
    assert est.score(test.X) == pytest.approx(float(np.mean(est.score_samples(test.X))))
    rows = [r for r in est.history_ if r["layer"] == 0]
    assert all("cross_entropy" in r for r in rows) and rows[-1]["cross_entropy"] < rows[0]["cross_entropy"]


def test_supervised_fine_tuning_leaves_the_decoder_as_pretrained(spy: Spy) -> None:
    est = small().fit(digits_data(), digits_labels())
    before, after = spy.calls[-1]["before"], spy.calls[-1]["after"]
    decoder = [k for k in before if ".decoder." in k]
    encoder = [k for k in before if ".encoder." in k or k.startswith("head.")]
    assert decoder and all(torch.equal(before[k], after[k]) for k in decoder)
    assert all(not torch.equal(before[k], after[k]) for k in encoder)
    assert all(p.requires_grad for p in est.module_.parameters())  # unfrozen again after fine-tuning


def test_labels_other_than_0_to_9_and_unlabelled_samples() -> None:
    X, y = digits_data(), digits_labels()
    y = np.where(y % 2 == 0, 10, 20)
    y[::3] = -1
    est = small().fit(X, y.astype(np.float64))  # integral floats are labels too
    assert est.classes_.tolist() == [10, 20]
    assert set(np.unique(est.predict(X))) <= {10, 20}
    assert est.predict_proba(X).shape == (X.shape[0], 2)
    assert 0 <= est.score(X, y) <= 1  # the unlabelled samples are left out


def test_default_objective_ignores_labels() -> None:
    """A transformer in a scikit-learn pipeline receives the final classifier's y: by default it is ignored."""
    assert StackedAutoencoder().objective == "reconstruct"
    est = small(objective=StackedAutoencoder().objective).fit(digits_data(), digits_labels())
    assert est.module_.head is None and not hasattr(est, "predict")


def test_without_labels_there_is_no_classifier() -> None:
    X = digits_data()
    for est in (small().fit(X), small(objective="reconstruct").fit(X, digits_labels()), small().fit(X, -np.ones(120))):
        assert est.module_.head is None
        assert not hasattr(est, "predict") and not hasattr(est, "predict_proba") and not hasattr(est, "classes_")
        assert est.score(X, digits_labels()) == pytest.approx(float(np.mean(est.score_samples(X))))
    assert hasattr(small(), "predict") and not hasattr(small(objective="reconstruct"), "predict")


def test_save_load_keeps_the_classifier(tmp_path: Path) -> None:
    est, _, test = classifier()
    loaded = aekit.load(est.save(tmp_path / "run"))
    assert loaded.module_.head is not None
    np.testing.assert_array_equal(loaded.classes_, est.classes_)
    np.testing.assert_allclose(loaded.predict_proba(test.X), est.predict_proba(test.X), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(test.X), est.predict(test.X))
    np.testing.assert_allclose(loaded.transform(test.X), est.transform(test.X), rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.reconstruct(test.X), est.reconstruct(test.X), rtol=0, atol=1e-6)
    assert [r["layer"] for r in loaded.history_] == [r["layer"] for r in est.history_]


def test_save_load_of_a_pretrained_sparse_stack(tmp_path: Path) -> None:
    X = digits_data()
    est = small(layer_family="sparse", hidden_dims=(24, 16)).fit(X)
    loaded = aekit.load(est.save(tmp_path / "run"))
    assert loaded.module_.head is None
    np.testing.assert_allclose(loaded.transform(X), est.transform(X), rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.reconstruct(X), est.reconstruct(X), rtol=0, atol=1e-6)
    # The input means of the sparse layers are fitted state too.
    torch.testing.assert_close(loaded.module_.layers[1].input_mean, est.module_.layers[1].input_mean)


# ---------------------------------------------------------------------------------------- resume


class Killed(Exception):
    pass


def test_resume_after_a_kill_during_pretraining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aekit.engine.training import Callback

    X, y = digits_data(), digits_labels()
    settings = {"hidden_dims": (24, 16), "pretrain_epochs": 3, "max_epochs": 3, "lr_schedule": "cosine"}
    calls = []

    class KillInLayer2(Callback):
        def on_epoch_end(self, state: Any) -> None:
            if len(calls) == 2 and state.epoch == 2:
                raise Killed

    def fit_then_kill(*args: Any, **kwargs: Any) -> list[dict[str, float]]:
        calls.append(1)
        return fit_module(*args, **{**kwargs, "callbacks": (KillInLayer2(),)})

    with monkeypatch.context() as m:
        m.setattr(stacked, "fit_module", fit_then_kill)
        with pytest.raises(Killed):
            small(**settings).fit(X, y, checkpoint_dir=tmp_path)
    assert (tmp_path / "pretrain-layer-2" / "checkpoint.safetensors").is_file()
    resumed = small(**settings).fit(X, y, checkpoint_dir=tmp_path, resume=True)
    straight = small(**settings).fit(X, y)
    for k, v in weights(straight.module_).items():
        torch.testing.assert_close(weights(resumed.module_)[k], v, rtol=0, atol=0, msg=k)
    assert [(r["layer"], r["epoch"], r["loss"]) for r in resumed.history_] == [
        (r["layer"], r["epoch"], r["loss"]) for r in straight.history_
    ]
    assert not any(p.name.startswith("pretrain-layer") for p in tmp_path.iterdir())  # removed once fitted


def test_resume_of_a_finished_run_with_more_epochs(tmp_path: Path) -> None:
    X = digits_data()
    common = {"pretrain_epochs": 2, "lr_schedule": "constant", "patience": None}
    small(max_epochs=2, **common).fit(X, checkpoint_dir=tmp_path)
    resumed = small(max_epochs=4, **common).fit(X, checkpoint_dir=tmp_path, resume=True)
    straight = small(max_epochs=4, **common).fit(X)
    np.testing.assert_array_equal(resumed.transform(X), straight.transform(X))
    assert [(r["layer"], r["epoch"]) for r in resumed.history_] == [(1, 1), (1, 2), (2, 1), (2, 2)] + [
        (0, e) for e in (1, 2, 3, 4)
    ]


def test_resume_without_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(aekit.ModelFileError, match="no checkpoint to resume from"):
        small().fit(digits_data(), checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        small().fit(digits_data(), resume=True)


# ------------------------------------------------------------------------------------ bad params


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"layer_family": "rbm"}, r"unknown layer_family 'rbm'; valid: autoencoder, denoising, sparse, contractive"),
        ({"pretrain_epochs": -1}, r"pretrain_epochs must be an integer >= 0 .* got -1; use 0 to skip the pretraining"),
        ({"pretrain_epochs": 1.5}, r"pretrain_epochs must be an integer >= 0 .* got 1.5"),
        ({"pretrain_epochs": True}, r"pretrain_epochs must be an integer >= 0 .* got True"),
        ({"objective": "regress"}, r"unknown objective 'regress'; valid: auto, reconstruct, classify, none"),
        ({"objective": "none", "pretrain_epochs": 0}, r"objective='none' .* would train nothing; set pretrain_epochs"),
        ({"layer_penalty": "l2", "layer_family": "sparse"}, r"unknown layer_penalty 'l2'; valid: None, l1, kl, topk"),
        ({"layer_alpha": -0.1}, r"layer_alpha must be a finite number >= 0 .* got -0.1; use None"),
        ({"layer_alpha": float("inf")}, r"layer_alpha must be a finite number >= 0 .* got inf"),
        ({"layer_family": "sparse", "layer_penalty": "kl", "activation": "relu"},
         r"layer_penalty='kl' needs sigmoid units .* got activation='relu'; use activation='sigmoid' or layer_penalty='l1'"),
        ({"layer_corruption": "fog:3"}, r"invalid layer_corruption='fog:3': "),
        ({"architecture": "conv"}, r"architecture must be 'mlp', got 'conv'; use Autoencoder for a convolutional"),
        ({"architecture": "lecture-conv", "latent_dim": 32}, r"architecture must be 'mlp', got 'lecture-conv'"),
        ({"latent_dim": 0}, r"latent_dim must be an integer >= 1, got 0"),
        ({"max_epochs": 0}, r"max_epochs must be an integer >= 1, got 0"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_bad_params(params: dict[str, Any], message: str) -> None:
    est = small(**params)
    with pytest.raises(ValueError, match=message):
        est.fit(digits_data())
    assert not hasattr(est, "module_")


def test_corruption_that_cannot_act_on_codes() -> None:
    X = digits_data().reshape(-1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"layer_corruption='block:3' cannot be applied to the codes of layer 1 \(shape \(24,\)\)"):
        small(layer_corruption="block:3").fit(X)
    small(layer_corruption="block:3", layer_family="autoencoder").fit(X)  # unused outside denoising layers


@pytest.mark.parametrize(
    ("y", "params", "message"),
    [
        (None, {"objective": "classify"}, r"objective='classify' needs class labels: call fit\(X, y\)"),
        (-np.ones(120), {"objective": "classify"}, r"needs at least one labelled sample, but every label is -1"),
        (np.linspace(0, 1, 120), {}, r"y must hold integer class labels \(-1 marks an unlabelled sample\), got \[0.0, "),
        (np.array(["a", "b"] * 60), {}, r"y must hold integer class labels .* got <U1; encode the classes .*LabelEncoder"),
        (np.arange(7), {}, r"y has shape \(7,\), expected \(120,\) to match X"),
    ],
    ids=["classify-without-y", "all-unlabelled", "floats", "strings", "wrong-length"],
)
def test_bad_labels(y: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small(**params).fit(digits_data(), y)


# -------------------------------------------------------------------------------- scikit-learn

# ReLU units here: CPU kernels compute the sigmoid of the last few values of a tensor by a scalar path
# that rounds differently from the vectorized one, so a row's code can move by one float32 ulp with its
# position in the batch, more than the sample-order check's rtol of 1e-7 allows.
SKLEARN = [
    StackedAutoencoder(hidden_dims=(8,), latent_dim=2, activation="relu", pretrain_epochs=1, max_epochs=2,
                       batch_size=16, verbose=0),
    StackedAutoencoder(hidden_dims=(8,), latent_dim=2, activation="relu", layer_family="contractive", tied=True,
                       objective="reconstruct", pretrain_epochs=1, max_epochs=2, batch_size=16, verbose=0),
]


@parametrize_with_checks(SKLEARN)
def test_sklearn_compatible(estimator: Any, check: Any) -> None:
    check(estimator)
