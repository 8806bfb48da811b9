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
    encoder_linear = next(m for m in layer.encoder.modules() if isinstance(m, torch.nn.Linear))
    assert layer.decoder[0]._linears[0] is encoder_linear


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
    assert est.data_info_.classes == tuple(range(10))  # known when the head was built
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


def test_fine_tuning_forward_reconstructs_only_in_evaluation_mode() -> None:
    """The training step reads only the class logits, so it skips the decoder; evaluation still reconstructs."""
    est, _, test = classifier()
    module, x = est.module_, torch.from_numpy(test.X[:5])
    module.train()
    out = module(x)
    assert out.x_hat.shape == (5, 0) and out.extras["class_logits"].shape == (5, 10)
    module.eval()
    out_eval = module(x)
    assert out_eval.x_hat.shape == x.shape and not out_eval.x_hat.requires_grad
    torch.testing.assert_close(out_eval.x_hat, module.decode(module.encode(x)))
    torch.testing.assert_close(out_eval.extras["class_logits"], out.extras["class_logits"])


def test_fine_tuning_dropout_acts_only_while_the_classifier_trains() -> None:
    est, _, test = classifier()
    module, x = est.module_, torch.from_numpy(test.X[:50])
    module.eval()
    clean = module(x).extras["class_logits"]
    module.dropout, module.input_dropout = 0.5, 0.2
    module.train()
    dropped = module(x).extras["class_logits"]
    assert not torch.allclose(dropped, clean) and not torch.allclose(dropped, module(x).extras["class_logits"])
    # Dropout of the input alone changes the logits too.
    module.dropout = 0.0
    assert not torch.allclose(module(x).extras["class_logits"], clean)
    module.eval()
    torch.testing.assert_close(module(x).extras["class_logits"], clean)  # never in evaluation
    # Fitted with dropout: it reaches the module, and predictions are deterministic.
    fitted = small(objective="classify", finetune_dropout=0.5, finetune_input_dropout=0.2, max_epochs=2)
    fitted.fit(digits_data(), digits_labels())
    assert (fitted.module_.dropout, fitted.module_.input_dropout) == (0.5, 0.2)
    X = digits_data()[:50]
    np.testing.assert_array_equal(fitted.predict_proba(X), fitted.predict_proba(X))


def encoder_row_norms(est: StackedAutoencoder) -> list[torch.Tensor]:
    return [m.weight.detach().norm(dim=1) for layer in est.module_.stack for m in layer.encoder.modules()
            if isinstance(m, torch.nn.Linear)]  # the layers' first linear maps, as built


def test_fine_tuning_max_norm_bounds_every_encoder_unit() -> None:
    X, y = digits_data(), digits_labels()
    fast = {"objective": "classify", "activation": "relu", "learning_rate": 1e-2, "max_epochs": 10, "patience": None}
    free = small(**fast).fit(X, y)
    longest = max(float(n.max()) for n in encoder_row_norms(free))
    bound = longest / 2  # half the longest row of the same fit without the constraint: it must bind
    held = small(**fast, finetune_max_norm=bound).fit(X, y)
    norms = encoder_row_norms(held)
    assert len(norms) == 2 and all(float(n.max()) <= bound * (1 + 1e-5) for n in norms)
    assert any(float(n.max()) >= bound * (1 - 1e-3) for n in norms)  # rows were scaled to the bound, not below
    assert held.score(X, y) > 0.2  # still learns (chance: 0.1)
    # Only the classifier's fine-tuning is constrained: a reconstruction fine-tuning leaves the rows as trained.
    rec = small(max_epochs=3, finetune_max_norm=1e-3, objective="reconstruct").fit(X)
    assert max(float(n.max()) for n in encoder_row_norms(rec)) > 1e-2


def test_labels_other_than_0_to_9_and_unlabelled_samples() -> None:
    X, digits = digits_data(), digits_labels()
    truth = np.where(digits % 2 == 0, 10, 20)  # even against odd digits
    y = truth.copy()
    y[::3] = -1
    fast = {"activation": "relu", "learning_rate": 1e-2, "max_epochs": 10, "patience": None}
    est = small(**fast).fit(X, y.astype(np.float64))  # integral floats are labels too
    assert est.classes_.tolist() == [10, 20]
    pred = est.predict(X)
    assert set(np.unique(pred)) <= {10, 20}
    assert est.predict_proba(X).shape == (X.shape[0], 2)
    labelled = y != -1
    assert est.score(X, y) == np.mean(pred[labelled] == y[labelled])  # the unlabelled samples are left out
    # The samples it never saw a label for: chance, and the majority class, are about 0.5.
    assert est.score(X[~labelled], truth[~labelled]) > 0.8
    untrained = small(**{**fast, "max_epochs": 1, "learning_rate": 1e-7}).fit(X, y)
    assert untrained.score(X[~labelled], truth[~labelled]) < 0.65


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
        ({"layer_family": "rbm"}, r"unknown layer_family 'rbm'; valid: autoencoder, contractive, denoising, sparse "),
        ({"layer_family": "linear"}, r"unknown layer_family 'linear'; valid: autoencoder, contractive, denoising, sparse "),
        ({"pretrain_epochs": -1}, r"pretrain_epochs must be an integer >= 0 .* got -1; use 0 to skip the pretraining"),
        ({"pretrain_epochs": 1.5}, r"pretrain_epochs must be an integer >= 0 .* got 1.5"),
        ({"pretrain_epochs": True}, r"pretrain_epochs must be an integer >= 0 .* got True"),
        ({"objective": "regress"}, r"unknown objective 'regress'; valid: auto, reconstruct, classify, none"),
        ({"objective": "none", "pretrain_epochs": 0}, r"objective='none' .* would train nothing; set pretrain_epochs"),
        ({"layer_penalty": "l2", "layer_family": "sparse"},
         r"layer_family='sparse' cannot build a layer of 8 'sigmoid' units from layer_penalty='l2', layer_alpha='auto': "
         r"unknown penalty 'l2'.*; valid: l1, kl, topk"),
        ({"layer_alpha": -0.1}, r"layer_alpha must be a finite number >= 0 .* got -0.1; use 'auto' for the layer family"),
        ({"layer_alpha": float("inf")}, r"layer_alpha must be a finite number >= 0 .* got inf"),
        ({"layer_family": "sparse", "layer_penalty": "kl", "activation": "relu"},
         r"cannot build a layer of 8 'relu' units from layer_penalty='kl', .*: penalty='kl' needs sigmoid units .* "
         r"use sigmoid units or penalty='l1'"),
        ({"layer_corruption": "fog:3"}, r"invalid layer_corruption='fog:3': "),
        ({"architecture": "conv"}, r"unknown architecture 'conv' \(each layer of the stack is fully connected\); "
                                   r"valid: mlp; use Autoencoder for a convolutional network"),
        ({"architecture": "lecture-conv", "latent_dim": 32}, r"unknown architecture 'lecture-conv'"),
        ({"latent_dim": 0}, r"latent_dim must be an integer >= 1, got 0"),
        ({"max_epochs": 0}, r"max_epochs must be an integer >= 1, got 0"),
        ({"finetune_dropout": 1.0}, r"finetune_dropout must be .*got 1\.0"),
        ({"finetune_input_dropout": -0.1}, r"finetune_input_dropout must be .*got -0\.1"),
        ({"finetune_max_norm": -1.0}, r"finetune_max_norm must be .*got -1\.0; use 0 to turn it off"),
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
        (np.linspace(0, 1, 120), {}, r"y must hold integer class labels \(-1 marks an unlabelled sample\), got 118 "
         r"values that are not integers, such as \[0.0084"),
        (np.array(["a", "b"] * 60), {}, r"y must hold integer class labels .* got dtype <U1; encode the classes .*LabelEncoder"),
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


# ---------------------------------------------------------------------- declared and resolved parameters


def test_real_defaults_and_presets() -> None:
    est = StackedAutoencoder()
    assert est.activation == "sigmoid" and est.architecture == "mlp"  # no None patched in later
    assert est.layer_penalty == "auto" and est.layer_alpha == "auto" and est.objective == "reconstruct"
    hinton = StackedAutoencoder.from_preset("hinton", max_epochs=3)
    assert (hinton.hidden_dims, hinton.latent_dim, hinton.activation) == ((1000, 500, 250), 30, "sigmoid")
    with pytest.raises(ValueError, match=r"unknown preset 'lecture-conv' for StackedAutoencoder; valid: hinton"):
        StackedAutoencoder.from_preset("lecture-conv")


@pytest.mark.parametrize(
    ("params", "penalty", "alpha"),
    [
        ({"layer_family": "sparse"}, "kl", 3.0),  # sigmoid units: Ng's KL and its weight
        ({"layer_family": "sparse", "activation": "relu"}, "l1", 0.1),
        ({"layer_family": "sparse", "layer_alpha": 0.5}, "kl", 0.5),
        ({"layer_family": "contractive"}, None, 0.1),
        ({"layer_family": "denoising"}, None, None),
    ],
    ids=["sparse-sigmoid", "sparse-relu", "sparse-alpha", "contractive", "denoising"],
)
def test_resolve_decides_the_layer_settings(params: dict[str, Any], penalty: str | None, alpha: float | None) -> None:
    est = small(pretrain_epochs=1, max_epochs=1, **params).fit(digits_data())
    r = est.resolved_
    assert (r.layer_penalty, r.layer_alpha) == (penalty, alpha)
    assert r.objective == "reconstruct" and r.output == "sigmoid" and r.loss == "bce"
    if params["layer_family"] == "sparse":
        assert all(layer.penalty == penalty and layer.alpha == alpha for layer in est.module_.layers)
    # The fitted model is the resolved one, whatever is set afterwards.
    Z = est.transform(digits_data())
    est.set_params(layer_alpha=9.0, activation="tanh", objective="classify")
    np.testing.assert_array_equal(est.transform(digits_data()), Z)
    assert est.resolved_.layer_alpha == alpha


def test_objective_auto_is_decided_by_the_labels() -> None:
    X, y = digits_data(), digits_labels()
    with_labels = small(pretrain_epochs=0, max_epochs=1).fit(X, y)
    assert with_labels.resolved_.objective == "classify" and with_labels.module_.head.out_features == 10
    assert small(pretrain_epochs=0, max_epochs=1).fit(X).resolved_.objective == "reconstruct"


def test_epochs_by_stage_and_the_cli_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    est = small(hidden_dims=(24, 16), pretrain_epochs=2, max_epochs=3, patience=None).fit(digits_data())
    assert est.epochs_by_stage() == [
        ("pretraining of layer 1", 2), ("pretraining of layer 2", 2), ("pretraining of layer 3", 2), ("fine-tuning", 3)
    ]
    assert small(pretrain_epochs=0, max_epochs=2).fit(digits_data()).epochs_by_stage() == [("fine-tuning", 2)]
    from aekit.cli.main import main

    assert main(["train", "--family", "stacked", "--data", "digits", "--limit", "120", "--hidden-dims", "16",
                 "--latent-dim", "4", "--pretrain-epochs", "3", "--epochs", "2", "--patience", "None",
                 "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert ("aekit: trained 3 epochs of pretraining of layer 1, 3 epochs of pretraining of layer 2, 2 epochs of "
            "fine-tuning in") in err


# --------------------------------------------------------------------------------- layers from the registry


def test_any_stackable_family_of_the_registry_can_be_the_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stacked knows its layer families only through the registry's "stackable" capability."""
    from aekit.families.autoencoder import Autoencoder
    from aekit.model.registry import FAMILIES, FamilyInfo

    built: list[tuple[Any, ...]] = []

    class Recorded(Autoencoder):
        @classmethod
        def layer_module(cls, in_shape: tuple[int, ...], out_dim: int, act: str, *args: Any) -> Any:
            built.append((in_shape, out_dim, act))
            return super().layer_module(in_shape, out_dim, act, *args)

    monkeypatch.setitem(FAMILIES, "recorded", FamilyInfo("recorded", Recorded, "test", frozenset({"stackable"})))
    assert "recorded" in stacked.stackable_families() and "linear" not in stacked.stackable_families()
    est = small(layer_family="recorded", hidden_dims=(24, 16), pretrain_epochs=1, max_epochs=1).fit(digits_data())
    assert built == [((64,), 24, "sigmoid"), ((24,), 16, "sigmoid"), ((16,), 8, "sigmoid")]
    assert est.resolved_.layer_penalty is None and est.resolved_.layer_alpha is None


def test_stacked_names_no_other_family() -> None:
    """No second name-keyed table, no isinstance checks on other families' modules, no private imports."""
    source = Path(stacked.__file__).read_text()
    for name in ("sparse", "contractive", "denoising"):
        assert f"aekit.families.{name}" not in source
    assert "isinstance(" not in source and "LAYER_FAMILIES" not in source


@pytest.mark.parametrize("name", stacked.stackable_families())
def test_every_stackable_family_builds_a_layer(name: str) -> None:
    family = stacked.layer_family(name)
    for in_shape in ((1, 8, 8), (12,)):
        layer = family.layer_module(in_shape, 5, "sigmoid", False, "sigmoid", "bce", {})
        x = torch.rand(3, *in_shape)
        prepare = getattr(layer, "prepare", None)
        if prepare is not None:
            prepare(x.numpy())
        with torch.no_grad():
            z = layer.encode(x)
            out = layer(x)
        assert z.shape == (3, 5) and layer.decode(z).shape == (3, *in_shape)
        assert torch.isfinite(layer.loss(x, out).total)
    # Options are the family's own parameters, checked against their declarations; others are not its business.
    declared = family().get_params()
    if "alpha" in declared:
        assert family.layer_options({"alpha": 0.25}, 5, "sigmoid")["alpha"] == 0.25
        with pytest.raises(ValueError, match=r"alpha must be a finite number >= 0 .*, got -1"):
            family.layer_options({"alpha": -1}, 5, "sigmoid")
    assert family.layer_options({"no_such_parameter": 1}, 5, "sigmoid") == family.layer_options({}, 5, "sigmoid")
