"""The training loop: early stopping, the NaN guard, exact resume, history files, learning-rate schedule."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import digits_data, family_params, fit_args, make_tiny

import aekit
import aekit.model.base
from aekit.core.outputs import AEOutput, LossOutput
from aekit.engine.rundir import ModelFileError
from aekit.engine.state import TrainState
from aekit.engine.training import Callback, TrainConfig, fit_module, lr_at
from aekit.families.autoencoder import AutoencoderModule
from aekit.model.registry import get_family


def small_ae(**kw: Any) -> aekit.Autoencoder:
    params: dict[str, Any] = {
        "hidden_dims": (16,), "latent_dim": 4, "batch_size": 32, "verbose": 0, "random_state": 0, "device": "cpu",
        "init": "random",  # these tests watch the loop from a random start (test_defaults.py covers the PCA start)
    }
    params.update(kw)
    return aekit.Autoencoder(**params)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=lambda m, k=k: f"{k}: {m}")


class Recorder(Callback):
    """Keeps the weights, the optimizer's learning rate and the history row of every epoch."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []
        self.lrs: list[float] = []

    def on_epoch_end(self, state: TrainState) -> None:
        self.weights.append(weights(state.module))
        self.lrs.append(float(state.optimizer.param_groups[0]["lr"]))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Route every estimator fit through ``fit_module`` with a :class:`Recorder` attached."""
    rec = Recorder()

    def fit_with_recorder(*args: Any, **kwargs: Any) -> list[dict[str, float]]:
        kwargs["callbacks"] = (*kwargs.get("callbacks", ()), rec)
        return fit_module(*args, **kwargs)

    monkeypatch.setattr(aekit.model.base, "fit_module", fit_with_recorder)
    return rec


# -------------------------------------------------------------------------------- early stopping


def test_early_stopping_stops_and_restores_best(recorder: Recorder) -> None:
    # A wide net, a high learning rate and 108 training samples: the validation loss soon stalls.
    patience, max_epochs = 3, 300
    est = small_ae(hidden_dims=(64,), latent_dim=16, learning_rate=1e-2, max_epochs=max_epochs, patience=patience)
    est.fit(digits_data())
    val = [row["val_loss"] for row in est.history_]
    assert len(val) < max_epochs
    best = int(np.argmin(val))
    # Stopped after exactly `patience` epochs without improvement.
    assert best == len(val) - patience - 1
    assert all(v >= val[best] for v in val[best + 1 :])
    # The model holds the weights of the best epoch, not those of the last one.
    assert_same_weights(weights(est.module_), recorder.weights[best])
    assert not all(torch.equal(v, recorder.weights[-1][k]) for k, v in weights(est.module_).items())


def test_early_stopping_restores_best_val_loss() -> None:
    """Through fit_module directly: the loss on the validation rows at the end is the best one seen."""

    class Sabotage(Callback):
        # After epoch 3, scramble the weights: validation can only get worse from there.
        def on_epoch_end(self, state: TrainState) -> None:
            if state.epoch == 3:
                with torch.no_grad():
                    for p in state.module.parameters():
                        p.add_(torch.randn_like(p) * 5)

    X = digits_data()
    torch.manual_seed(0)
    est = small_ae()
    est._resolve_for(X)
    module = est._build_module((64,))
    config = TrainConfig(max_epochs=50, batch_size=32, patience=2, verbose=0, device="cpu")
    history = fit_module(module, X, config=config, callbacks=[Sabotage()], seed=0)
    val = [row["val_loss"] for row in history]
    assert len(history) == 5 and int(np.argmin(val)) == 2
    # Recompute the validation loss of the final weights on the rows the loop held out.
    from aekit.engine.training import evaluate_loss

    order = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(0))
    val_idx = order[: round(X.shape[0] * config.validation_fraction)]
    final = evaluate_loss(module, torch.from_numpy(X), val_idx)
    assert math.isclose(final, min(val), rel_tol=1e-6)


def test_no_validation_means_no_early_stopping() -> None:
    est = small_ae(max_epochs=3, validation_fraction=0.0, patience=1).fit(digits_data())
    assert len(est.history_) == 3
    assert all("val_loss" not in row for row in est.history_)


# ------------------------------------------------------------------------------------- NaN guard


def test_huge_learning_rate_raises_diverged() -> None:
    est = small_ae(learning_rate=1e30, max_epochs=3, loss="mse", output="linear")
    with pytest.raises(aekit.TrainingDivergedError, match=r"epoch 1: the loss became NaN or infinite") as info:
        est.fit(digits_data())
    msg = str(info.value)
    assert "learning rate" in msg and "learning_rate=1e+30" in msg and "try 1e+29" in msg
    # The model keeps finite weights (those from before the step that diverged).
    assert all(torch.isfinite(v).all() for v in est.module_.state_dict().values())
    assert np.isfinite(est.transform(digits_data())).all()


def test_divergence_in_a_later_epoch_keeps_last_good_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    X = digits_data()
    reference = small_ae(max_epochs=1).fit(X)  # the weights after one good epoch
    calls = {"n": 0}
    loss = AutoencoderModule.loss

    def blows_up_in_epoch_2(self: AutoencoderModule, x: torch.Tensor, out: AEOutput) -> LossOutput:
        lo = loss(self, x, out)
        if not self.training:
            return lo
        calls["n"] += 1
        if calls["n"] <= 4:  # 108 training rows in batches of 32: epoch 1 is 4 steps
            return lo
        nan = torch.tensor(float("nan"))
        return LossOutput(lo.total * nan, {k: v * nan for k, v in lo.terms.items()})

    monkeypatch.setattr(AutoencoderModule, "loss", blows_up_in_epoch_2)
    est = small_ae(max_epochs=5)
    with pytest.raises(aekit.TrainingDivergedError, match=r"epoch 2: .*reconstruction=nan.*learning rate"):
        est.fit(X)
    assert_same_weights(weights(est.module_), weights(reference.module_))


# ---------------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("name", family_params("gradient"))
def test_resume_equals_uninterrupted(name: str, tmp_path: Path) -> None:
    """2 epochs, then a fresh estimator resumed to 4, ends exactly where 4 uninterrupted epochs end."""
    info = get_family(name)
    X = digits_data()
    kw = fit_args(info, X)
    # A constant learning rate: a cosine schedule depends on max_epochs, which differs between the runs.
    common = {"lr_schedule": "constant", "patience": None}
    make_tiny(info, max_epochs=2, **common).fit(X, checkpoint_dir=tmp_path, **kw)
    # One file: the tensors and, in its header, the loop's state (no checkpoint.json beside it).
    assert (tmp_path / "checkpoint.safetensors").is_file() and not (tmp_path / "checkpoint.json").exists()
    resumed = make_tiny(info, max_epochs=4, **common).fit(X, checkpoint_dir=tmp_path, resume=True, **kw)
    straight = make_tiny(info, max_epochs=4, **common).fit(X, **kw)
    assert_same_weights(weights(resumed.module_), weights(straight.module_))
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3, 4]
    np.testing.assert_array_equal(
        [r["loss"] for r in resumed.history_], [r["loss"] for r in straight.history_]
    )
    np.testing.assert_array_equal(resumed.transform(X), straight.transform(X))


class Killed(Exception):
    pass


def test_resume_after_a_kill_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed after epoch 2 of 5 and resumed with the same settings (cosine schedule, early
    stopping on) ends exactly where the uninterrupted run ends."""

    class KillAfterEpoch2(Callback):
        # At the start of epoch 3: epoch 2's checkpoint and history are written.
        def on_epoch_begin(self, state: TrainState) -> None:
            if state.epoch == 2:
                raise Killed

    def fit_then_kill(*args: Any, **kwargs: Any) -> list[dict[str, float]]:
        return fit_module(*args, **{**kwargs, "callbacks": (KillAfterEpoch2(),)})

    X = digits_data()
    settings = {"max_epochs": 5, "lr_schedule": "cosine", "patience": 2}
    with monkeypatch.context() as m:
        m.setattr(aekit.model.base, "fit_module", fit_then_kill)
        with pytest.raises(Killed):
            small_ae(**settings).fit(X, checkpoint_dir=tmp_path)
    assert len(read_csv(tmp_path / "history.csv")) == 2
    resumed = small_ae(**settings).fit(X, checkpoint_dir=tmp_path, resume=True)
    straight = small_ae(**settings).fit(X)
    assert_same_weights(weights(resumed.module_), weights(straight.module_))
    assert [r["lr"] for r in resumed.history_] == [r["lr"] for r in straight.history_]
    assert [r["val_loss"] for r in resumed.history_] == [r["val_loss"] for r in straight.history_]


def test_resume_of_a_finished_run_trains_no_more(tmp_path: Path) -> None:
    X = digits_data()
    first = small_ae(max_epochs=2).fit(X, checkpoint_dir=tmp_path)
    again = small_ae(max_epochs=2).fit(X, checkpoint_dir=tmp_path, resume=True)
    assert len(again.history_) == 2
    assert_same_weights(weights(again.module_), weights(first.module_))


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no checkpoint to resume from"):
        small_ae(max_epochs=2).fit(digits_data(), checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        small_ae(max_epochs=2).fit(digits_data(), resume=True)


# -------------------------------------------------------------------------------------- history


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_history_csv_written(tmp_path: Path) -> None:
    est = small_ae(max_epochs=3).fit(digits_data(), checkpoint_dir=tmp_path / "ckpt")
    rows = read_csv(tmp_path / "ckpt" / "history.csv")
    assert len(rows) == 3 == len(est.history_)
    assert {"epoch", "lr", "loss", "reconstruction", "val_loss", "seconds", "samples_per_s"} <= rows[0].keys()
    for row, h in zip(rows, est.history_):
        assert int(row["epoch"]) == h["epoch"]
        assert math.isclose(float(row["loss"]), h["loss"], rel_tol=1e-6)
        assert math.isclose(float(row["val_loss"]), h["val_loss"], rel_tol=1e-6)
    # The term named in the history is the whole loss here (no penalty).
    assert all(math.isclose(h["loss"], h["reconstruction"], rel_tol=1e-9) for h in est.history_)
    # A saved run carries its history, and loading reads it back.
    est.save(tmp_path / "run")
    assert len(read_csv(tmp_path / "run" / "history.csv")) == 3
    loaded = aekit.load(tmp_path / "run")
    assert [r["epoch"] for r in loaded.history_] == [1, 2, 3]
    assert math.isclose(loaded.history_[-1]["loss"], est.history_[-1]["loss"], rel_tol=1e-6)


# -------------------------------------------------------------------------------- learning rate


def test_lr_cosine_schedule_values() -> None:
    cfg = TrainConfig(max_epochs=4, learning_rate=0.1, lr_schedule="cosine")
    expected = [0.1, 0.05 * (1 + math.cos(math.pi / 4)), 0.05, 0.05 * (1 + math.cos(3 * math.pi / 4))]
    assert [lr_at(cfg, e) for e in range(4)] == pytest.approx(expected, rel=1e-12)
    assert lr_at(TrainConfig(max_epochs=4, learning_rate=0.1), 3) == 0.1  # constant


def test_lr_schedule_is_applied_to_the_optimizer(recorder: Recorder) -> None:
    est = small_ae(max_epochs=4, learning_rate=0.01, lr_schedule="cosine", patience=None).fit(digits_data())
    cfg = TrainConfig(max_epochs=4, learning_rate=0.01, lr_schedule="cosine")
    expected = [lr_at(cfg, e) for e in range(4)]
    assert [r["lr"] for r in est.history_] == pytest.approx(expected, rel=1e-12)
    assert recorder.lrs == pytest.approx(expected, rel=1e-6)
    assert expected[0] == 0.01 and expected[-1] < expected[0] / 5


# ------------------------------------------------------------------------------------ it learns


@pytest.mark.parametrize(
    ("shape", "params"),
    [
        pytest.param((64,), {}, id="mlp-tabular"),
        pytest.param((64,), {"tied": True}, id="mlp-tied"),
        pytest.param((1, 8, 8), {"architecture": "conv", "hidden_dims": (4, 8)}, id="conv-images"),
        pytest.param((4, 16), {"architecture": "conv", "hidden_dims": (4,)}, id="conv-signals"),
    ],
)
def test_training_lowers_the_loss(shape: tuple[int, ...], params: dict[str, Any]) -> None:
    X = digits_data().reshape(-1, *shape)
    est = small_ae(max_epochs=8, learning_rate=1e-2, patience=None, **params).fit(X)
    losses = [row["loss"] for row in est.history_]
    assert losses[-1] < 0.9 * losses[0]
    assert est.reconstruct(X).shape == X.shape
    assert est.transform(X).shape == (X.shape[0], 4)


def test_validation_leaves_samples_to_train_on() -> None:
    X = digits_data()[:20]
    est = small_ae(max_epochs=2, validation_fraction=0.99).fit(X)
    assert len(est.history_) == 2 and all(np.isfinite(r["loss"]) for r in est.history_)
    # Below 20 samples there is no validation split at all.
    est = small_ae(max_epochs=2, validation_fraction=0.5).fit(X[:19])
    assert all("val_loss" not in r for r in est.history_)
