"""The engine below the estimators: the atomic checkpoint and its checks, the typed loop state, the hooks a
family uses (callbacks that change a loss weight, optimizer parameter groups), the thread count, and the
CUDA-graph path (run where CUDA is present)."""

from __future__ import annotations

import ast
import csv
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import aekit.engine.rundir
import aekit.engine.training as training
from aekit.core.outputs import AEOutput, LossOutput
from aekit.engine.checkpoint import META_KEY, checkpoint_epoch
from aekit.engine.rundir import CHECKPOINT_FILE, ModelFileError
from aekit.engine.state import TrainState
from aekit.engine.training import Callback, TrainConfig, choose_threads, fit_module, lr_at

N, D, K = 96, 12, 3  # 86 training rows after a 10% validation split: 3 batches of 32 per epoch


def data(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


class TinyAE(nn.Module):
    """A linear autoencoder with a code penalty whose weight is a buffer a callback may change."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.enc = nn.Linear(D, K)
        self.dec = nn.Linear(K, D)
        # A loss weight changed during training: a tensor buffer, changed in place (see Callback).
        self.register_buffer("penalty_weight", torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> AEOutput:
        z = self.enc(x)
        return AEOutput(z=z, x_hat=self.dec(z))

    def loss(self, x: torch.Tensor, out: AEOutput) -> LossOutput:
        rec = ((out.x_hat - x) ** 2).sum(dim=1).mean()
        pen = self.penalty_weight * (out.z**2).sum(dim=1).mean()
        return LossOutput(rec + pen, {"reconstruction": rec, "penalty": pen})


def config(**kw: Any) -> TrainConfig:
    params: dict[str, Any] = {"max_epochs": 3, "batch_size": 32, "verbose": 0, "device": "cpu", "patience": None}
    params.update(kw)
    return TrainConfig(**params)


def weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class Killed(Exception):
    pass


# ------------------------------------------------------------------------------- one atomic checkpoint


def test_checkpoint_is_one_file_committed_by_one_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renamed: list[str] = []
    replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        renamed.append(Path(dst).name)
        replace(src, dst)

    monkeypatch.setattr(aekit.engine.rundir.os, "replace", spy)
    fit_module(TinyAE(), data(), config=config(max_epochs=2), checkpoint_dir=tmp_path)
    # Per epoch: the checkpoint (one rename), then history.csv; nothing else.
    assert renamed == [CHECKPOINT_FILE, "history.csv"] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE, "history.csv"]
    with safe_open(str(tmp_path / CHECKPOINT_FILE), framework="pt") as f:
        meta = json.loads(f.metadata()[META_KEY])
    assert meta["format_version"] == 1 and meta["epoch"] == 2 and meta["step"] == 6 and len(meta["history"]) == 2
    assert checkpoint_epoch(tmp_path) == 2 and checkpoint_epoch(tmp_path / "none") is None


def test_kill_at_the_checkpoint_rename_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed just before epoch 2's checkpoint is renamed into place: epoch 1's checkpoint is whole, and the
    resumed run ends where the uninterrupted one ends."""
    replace = os.replace
    commits = {"n": 0}

    def kill_at_second_checkpoint(src: Any, dst: Any) -> None:
        if Path(dst).name == CHECKPOINT_FILE:
            commits["n"] += 1
            if commits["n"] == 2:
                raise Killed
        replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(aekit.engine.rundir.os, "replace", kill_at_second_checkpoint)
        with pytest.raises(Killed):
            fit_module(TinyAE(), data(), config=config(), checkpoint_dir=tmp_path)
    assert checkpoint_epoch(tmp_path) == 1
    assert not list(tmp_path.glob(".*.tmp"))  # the half-written file is removed
    resumed = TinyAE()
    history = fit_module(resumed, data(), config=config(), checkpoint_dir=tmp_path, resume=True)
    straight = TinyAE()
    expected = fit_module(straight, data(), config=config())
    for k, v in weights(straight).items():
        torch.testing.assert_close(weights(resumed)[k], v, rtol=0, atol=0)
    assert [r["loss"] for r in history] == [r["loss"] for r in expected]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("commit", range(6))
def test_a_kill_at_any_commit_point_resumes_exactly(commit: int, when: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """3 epochs commit 6 files (checkpoint, history.csv, per epoch); killed just before or just after each
    rename, the run resumed (or started afresh when no checkpoint existed yet) ends with the weights,
    history and history.csv of the uninterrupted run."""
    replace = os.replace
    calls = {"n": 0}

    def kill_at_commit(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] - 1 == commit and when == "before":
            raise Killed
        replace(src, dst)
        if calls["n"] - 1 == commit:
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(aekit.engine.rundir.os, "replace", kill_at_commit)
        with pytest.raises(Killed):
            fit_module(TinyAE(), data(), config=config(), checkpoint_dir=tmp_path)
    resumed = TinyAE()
    has_checkpoint = (tmp_path / CHECKPOINT_FILE).is_file()
    history = fit_module(resumed, data(), config=config(), checkpoint_dir=tmp_path, resume=has_checkpoint)
    straight = TinyAE()
    expected = fit_module(straight, data(), config=config())
    for k, v in weights(straight).items():
        assert torch.equal(weights(resumed)[k], v), k
    assert [r["loss"] for r in history] == [r["loss"] for r in expected]
    assert [r["epoch"] for r in read_csv(tmp_path / "history.csv")] == ["1", "2", "3"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_rewrites_history_csv_from_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill between the checkpoint of epoch 2 and its history.csv leaves the file a row short; a resume
    that trains no further epoch still rewrites it from the checkpoint, and a stale row goes too."""
    replace = os.replace
    writes = {"n": 0}

    def kill_before_second_history(src: Any, dst: Any) -> None:
        if Path(dst).name == "history.csv":
            writes["n"] += 1
            if writes["n"] == 2:
                raise Killed
        replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(aekit.engine.rundir.os, "replace", kill_before_second_history)
        with pytest.raises(Killed):
            fit_module(TinyAE(), data(), config=config(max_epochs=2), checkpoint_dir=tmp_path)
    assert [r["epoch"] for r in read_csv(tmp_path / "history.csv")] == ["1"]
    history = fit_module(TinyAE(), data(), config=config(max_epochs=2), checkpoint_dir=tmp_path, resume=True)
    rows = read_csv(tmp_path / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert [float(r["loss"]) for r in rows] == pytest.approx([h["loss"] for h in history], rel=1e-7)

    # A history.csv holding a row the checkpoint does not (written by hand, or by another run).
    with (tmp_path / "history.csv").open("a") as f:
        f.write("3,0.001,9.9,9.9,0,9.9,0.1,100,1\n")
    fit_module(TinyAE(), data(), config=config(max_epochs=2), checkpoint_dir=tmp_path, resume=True)
    assert [r["epoch"] for r in read_csv(tmp_path / "history.csv")] == ["1", "2"]


# --------------------------------------------------------------------------- refusals of a bad checkpoint


def _rewrite(path: Path, edit: Callable[[dict[str, Any], dict[str, torch.Tensor]], dict[str, str] | None]) -> None:
    """Apply ``edit`` to the checkpoint's metadata and tensors (in place) and write the file again."""
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a Mapping)
    meta = json.loads(metadata[META_KEY])
    replaced = edit(meta, tensors)
    save_file(tensors, str(path), metadata=replaced if replaced is not None else {META_KEY: json.dumps(meta)})


def _set(key: str, value: Any) -> Callable[[dict[str, Any], dict[str, torch.Tensor]], None]:
    def edit(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        meta[key] = value

    return edit


def _tensor(name: str, value: torch.Tensor | None) -> Callable[[dict[str, Any], dict[str, torch.Tensor]], None]:
    def edit(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value

    return edit


def _history_epochs(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    meta["history"][0]["epoch"], meta["history"][1]["epoch"] = 2, 1


def _history_text(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    meta["history"][1]["loss"] = "low"


REFUSALS = [
    pytest.param(lambda m, t: {}, r"header metadata entry 'aekit_checkpoint' is missing", id="no-metadata"),
    pytest.param(lambda m, t: {META_KEY: "{epoch: 2"}, r"'aekit_checkpoint' is not valid JSON", id="bad-json"),
    pytest.param(lambda m, t: {META_KEY: "[2]"}, r"should be a JSON object, found list", id="json-list"),
    pytest.param(_set("format_version", 7), r"format_version is 7; this aekit reads version 1", id="version"),
    pytest.param(_set("epoch", 99), r"holds 99 trained epochs, more than max_epochs=3; resume with max_epochs=99 or more",
                 id="epoch-99"),
    pytest.param(_set("epoch", 1), r"epoch is 1 but the history holds 2 rows", id="epoch-vs-history"),
    pytest.param(_set("epoch", "2"), r"epoch must be an integer >= 0, found '2'", id="epoch-text"),
    pytest.param(_set("step", 5), r"step is 5, not the batches of its 2 epochs \(2 x 3 = 6\)", id="step"),
    pytest.param(_set("steps_per_epoch", [3]), r"steps_per_epoch must list one positive step count per epoch", id="steps"),
    pytest.param(_set("history", {"epoch": 1}), r"history must be a list of rows", id="history-dict"),
    pytest.param(_history_epochs, r"history row 1 has epoch 2; rows must count epochs 1, 2, 3", id="history-order"),
    pytest.param(_history_text, r"history row 2 column 'loss' must be a number, found 'low'", id="history-text"),
    pytest.param(_set("best_epoch", 5), r"best_epoch is 5; it must be -1 \(none yet\), 0 \(the starting weights\) or an epoch in 1..2", id="best"),
    pytest.param(_set("bad_epochs", 4), r"bad_epochs is 4, more than the 2 epochs trained", id="bad-epochs"),
    pytest.param(_set("stop", "no"), r"stop must be true or false", id="stop"),
    pytest.param(_set("path", "warp"), r"path is 'warp'; valid: eager, cuda-graph", id="path"),
    pytest.param(_set("threads", 0), r"threads must be an integer >= 1, found 0", id="threads"),
    pytest.param(_set("optimizer", {}), r"optimizer.param_groups must list the run's 1 parameter groups", id="groups"),
    pytest.param(_tensor("rng.generator", None), r"rng.generator is missing", id="rng-missing"),
    pytest.param(_tensor("rng.generator", torch.zeros(10, dtype=torch.uint8)),
                 r"rng.generator has shape \(10,\) and dtype torch.uint8; expected \(5056,\) torch.uint8", id="rng-size"),
    pytest.param(_tensor("rng.torch", torch.zeros(5056)), r"rng.torch has shape \(5056,\) and dtype torch.float32",
                 id="rng-dtype"),
    pytest.param(_tensor("optim.0.step", torch.tensor(99.0)), r"optim.0.step is 99.0, but the metadata's step is 6",
                 id="optimizer-step"),
    pytest.param(_tensor("optim.0.exp_avg", torch.zeros(2, 2)), r"optim.0.exp_avg has shape \(2, 2\)", id="moments"),
    pytest.param(_tensor("optim.9.exp_avg", torch.zeros(2)), r"optim.9.exp_avg names no parameter of this model",
                 id="optimizer-param"),
    pytest.param(_tensor("extra", torch.zeros(2)), r"tensor 'extra' is not part of an aekit checkpoint", id="unknown"),
    pytest.param(_tensor("model.enc.weight", None), r"missing tensors \['enc.weight'\]", id="model-tensor"),
]


@pytest.mark.parametrize(("edit", "match"), REFUSALS)
def test_inconsistent_checkpoint_is_refused(
    edit: Callable[[dict[str, Any], dict[str, torch.Tensor]], dict[str, str] | None], match: str, tmp_path: Path
) -> None:
    fit_module(TinyAE(), data(), config=config(max_epochs=2), checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_FILE
    _rewrite(path, edit)
    module = TinyAE(seed=1)
    before, rng = weights(module), torch.get_rng_state()
    with pytest.raises(ModelFileError, match=match) as info:
        fit_module(module, data(), config=config(), checkpoint_dir=tmp_path, resume=True)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    # Refused before anything was changed: the module and the global RNG are as they were.
    for k, v in before.items():
        assert torch.equal(weights(module)[k], v)
    assert torch.equal(torch.get_rng_state(), rng)


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    fit_module(TinyAE(), data(), config=config(max_epochs=1), checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match=r"is not a valid safetensors file .* truncated or corrupt"):
        fit_module(TinyAE(), data(), config=config(), checkpoint_dir=tmp_path, resume=True)


# ------------------------------------------------------------------------------------- typed loop state


def test_callbacks_receive_the_typed_state() -> None:
    seen: list[tuple[str, int, int]] = []

    class Spy(Callback):
        def on_train_begin(self, state: TrainState) -> None:
            assert isinstance(state, TrainState) and state.path == "eager"
            seen.append(("begin", state.epoch, state.step))

        def on_epoch_end(self, state: TrainState) -> None:
            seen.append(("epoch", state.epoch, state.step))

    fit_module(TinyAE(), data(), config=config(max_epochs=2), callbacks=[Spy()])
    assert seen == [("begin", 0, 0), ("epoch", 1, 3), ("epoch", 2, 6)]


def _runtime_imports(module: Any) -> set[str]:
    """The modules a module imports when it runs (imports under ``if TYPE_CHECKING:`` are for types only)."""
    tree = ast.parse(Path(module.__file__).read_text())
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def test_checkpoint_io_does_not_import_the_loop() -> None:
    import aekit.engine.checkpoint
    import aekit.engine.state

    assert "aekit.engine.state" in _runtime_imports(aekit.engine.checkpoint)
    for module in (aekit.engine.checkpoint, aekit.engine.state):
        assert not any(name.startswith("aekit.engine.training") for name in _runtime_imports(module))
    assert "aekit.engine.checkpoint" in _runtime_imports(training)


# -------------------------------------------------------------- hooks: a loss weight changed by a callback


class WarmUpByEpoch(Callback):
    """Raises the module's penalty weight from 0 to 1 over ``epochs`` epochs, and logs it."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_begin(self, state: TrainState) -> None:
        state.module.penalty_weight.fill_(min(1.0, state.epoch / self.epochs))  # type: ignore[operator]

    def on_epoch_end(self, state: TrainState) -> None:
        state.history[-1]["penalty_weight"] = float(state.module.penalty_weight)  # type: ignore[arg-type]


def test_a_callback_warms_up_a_loss_weight_by_epoch() -> None:
    history = fit_module(TinyAE(), data(), config=config(max_epochs=5), callbacks=[WarmUpByEpoch(3)])
    assert [r["penalty_weight"] for r in history] == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    assert history[0]["penalty"] == 0.0 and all(r["penalty"] > 0 for r in history[1:])
    for r in history:  # the weighted term is part of the total
        assert r["loss"] == pytest.approx(r["reconstruction"] + r["penalty"], rel=1e-5)


def test_a_callback_warms_up_a_loss_weight_by_step() -> None:
    steps: list[int] = []

    class WarmUpByStep(Callback):
        def on_step_end(self, state: TrainState) -> None:
            steps.append(state.step)
            state.module.penalty_weight.fill_(min(1.0, state.step / 4))  # type: ignore[operator]

    module = TinyAE()
    # No validation split: restoring the best epoch's weights would restore its buffer too.
    history = fit_module(module, data(), config=config(max_epochs=2, validation_fraction=0.0), callbacks=[WarmUpByStep()])
    assert steps == [1, 2, 3, 4, 5, 6]  # 96 rows in batches of 32, twice
    assert float(module.penalty_weight) == 1.0  # type: ignore[arg-type]
    # Epoch 1 trains with weights 0, 1/4, 2/4 and epoch 2 with 3/4, 1, 1: its penalty is the larger share.
    assert 0 < history[0]["penalty"] / history[0]["loss"] < history[1]["penalty"] / history[1]["loss"]


def test_a_loss_weight_schedule_resumes_exactly(tmp_path: Path) -> None:
    """The weight is a buffer, so the checkpoint carries it: a resumed warm-up continues where it stopped."""
    cfg = config(max_epochs=4)
    fit_module(TinyAE(), data(), config=config(max_epochs=2), callbacks=[WarmUpByEpoch(3)], checkpoint_dir=tmp_path)
    resumed = TinyAE()
    h1 = fit_module(resumed, data(), config=cfg, callbacks=[WarmUpByEpoch(3)], checkpoint_dir=tmp_path, resume=True)
    straight = TinyAE()
    h2 = fit_module(straight, data(), config=cfg, callbacks=[WarmUpByEpoch(3)])
    assert [r["penalty_weight"] for r in h1] == [r["penalty_weight"] for r in h2]
    for k, v in weights(straight).items():
        assert torch.equal(weights(resumed)[k], v), k


# ---------------------------------------------------------------------------- hooks: parameter groups


class GroupedAE(TinyAE):
    """The encoder frozen by a learning rate of 0, the decoder at ten times the loop's rate."""

    def param_groups(self) -> list[dict[str, Any]]:
        return [{"params": self.enc.parameters(), "lr": 0.0}, {"params": self.dec.parameters(), "lr": 0.01}]


def test_a_group_with_lr_zero_does_not_move_while_the_others_do() -> None:
    module = GroupedAE()
    before = weights(module)
    fit_module(module, data(), config=config(learning_rate=1e-3, weight_decay=0.1))
    after = weights(module)
    for k in ("enc.weight", "enc.bias"):
        assert torch.equal(after[k], before[k]), k
    for k in ("dec.weight", "dec.bias"):
        assert not torch.allclose(after[k], before[k]), k


def test_the_cosine_schedule_scales_each_group_s_own_lr() -> None:
    lrs: list[list[float]] = []

    class Lrs(Callback):
        def on_epoch_begin(self, state: TrainState) -> None:
            lrs.append([float(g["lr"]) for g in state.optimizer.param_groups])

    cfg = config(max_epochs=4, learning_rate=1e-3, lr_schedule="cosine")
    fit_module(GroupedAE(), data(), config=cfg, callbacks=[Lrs()])
    factors = [lr_at(cfg, e) / cfg.learning_rate for e in range(4)]
    assert [g[0] for g in lrs] == [0.0] * 4
    assert [g[1] for g in lrs] == pytest.approx([0.01 * f for f in factors], rel=1e-12)
    assert factors[0] == 1 and factors[-1] < 0.2


def test_grouped_run_resumes_exactly(tmp_path: Path) -> None:
    fit_module(GroupedAE(), data(), config=config(max_epochs=2), checkpoint_dir=tmp_path)
    resumed, straight = GroupedAE(), GroupedAE()
    fit_module(resumed, data(), config=config(max_epochs=3), checkpoint_dir=tmp_path, resume=True)
    fit_module(straight, data(), config=config(max_epochs=3))
    for k, v in weights(straight).items():
        assert torch.equal(weights(resumed)[k], v), k


def test_a_checkpoint_of_torch_s_adamw_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs checkpointed while the loop used torch.optim.AdamW (earlier versions) resume on the loop's own AdamW:
    same state layout, same fused update, so the resumed run equals one trained straight through."""
    own = training._make_optimizer

    def torch_adamw(groups: list[dict[str, Any]], config: TrainConfig, device: torch.device, capturable: bool) -> Any:
        for g in groups:
            g["lr"] = g["initial_lr"]
        return torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)

    monkeypatch.setattr(training, "_make_optimizer", torch_adamw)
    fit_module(GroupedAE(), data(), config=config(max_epochs=2), checkpoint_dir=tmp_path)
    monkeypatch.setattr(training, "_make_optimizer", own)
    resumed, straight = GroupedAE(), GroupedAE()
    fit_module(resumed, data(), config=config(max_epochs=3), checkpoint_dir=tmp_path, resume=True)
    fit_module(straight, data(), config=config(max_epochs=3))
    for k, v in weights(straight).items():
        assert torch.equal(weights(resumed)[k], v), k


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        pytest.param(lambda m: [{"params": m.parameters()}, {"lr": 0.1}], r"\[1\] is \{'lr': 0.1\}; "
                     "each group is a dict with 'params'", id="no-params"),
        pytest.param(lambda m: [{"params": m.enc.parameters()}], r"leaves 2 trainable parameter tensor\(s\) out",
                     id="left-out"),
        pytest.param(lambda m: [{"params": m.parameters(), "lr": -1.0}], r"has lr -1.0; a group's lr must be a number "
                     ">= 0", id="negative-lr"),
    ],
)
def test_bad_param_groups_are_refused(groups: Callable[[nn.Module], list[dict[str, Any]]], match: str) -> None:
    module = TinyAE()
    module.param_groups = lambda: groups(module)  # type: ignore[method-assign,assignment]
    with pytest.raises(ValueError, match=r"TinyAE\.param_groups\(\)" + ".*" + match):
        fit_module(module, data(), config=config(max_epochs=1))


# ----------------------------------------------------------------------------------------------- threads


def test_threads_are_set_for_the_fit_and_restored() -> None:
    during: list[int] = []

    class Threads(Callback):
        def on_epoch_end(self, state: TrainState) -> None:
            during.append(torch.get_num_threads())

    before = torch.get_num_threads()
    history = fit_module(TinyAE(), data(), config=config(max_epochs=2, threads=2), callbacks=[Threads()])
    assert during == [2, 2] and [r["threads"] for r in history] == [2, 2]
    assert torch.get_num_threads() == before


def test_threads_are_restored_when_training_fails() -> None:
    before = torch.get_num_threads()
    with pytest.raises(training.TrainingDivergedError):
        fit_module(TinyAE(), data() * 1e30, config=config(threads=2))
    assert torch.get_num_threads() == before


def test_threads_chosen_from_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    # The small model: one thread, recorded in every row.
    history = fit_module(TinyAE(), data(), config=config(max_epochs=1))
    assert history[0]["threads"] == 1
    big = nn.Sequential(nn.Linear(1500, 1500), nn.ReLU(), nn.Linear(1500, 1500))  # 2 * 128 * 4.5e6 = 1.2e9 FLOPs
    cpu = torch.device("cpu")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for cores, busy, expected in [(8, 0, 4), (2, 0, 2), (1, 0, 1), (8, 5, 3), (2, 1, 1), (2, 4, 1)]:
        monkeypatch.setattr(training, "_available_cores", lambda cores=cores: cores)
        monkeypatch.setattr(training, "_busy_elsewhere", lambda busy=busy: busy)
        assert choose_threads(TrainConfig(), big, 128, cpu) == expected, (cores, busy)
    # OMP_NUM_THREADS, when set to a count, caps the choice; anything else is ignored.
    monkeypatch.setattr(training, "_available_cores", lambda: 8)
    monkeypatch.setattr(training, "_busy_elsewhere", lambda: 0)
    for env, expected in [("1", 1), ("3", 3), ("16", 4), ("0", 4), ("many", 4), ("", 4)]:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
        assert choose_threads(TrainConfig(), big, 128, cpu) == expected, env
    assert choose_threads(TrainConfig(), big, 4, cpu) == 1  # the same model on small batches
    assert choose_threads(TrainConfig(threads=3), big, 4, cpu) == 3  # taken as given
    assert choose_threads(TrainConfig(), big, 128, torch.device("meta")) == 1  # not on the CPU: the host only launches


def test_a_resumed_run_keeps_its_recorded_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fit_module(TinyAE(), data(), config=config(max_epochs=1, threads=2), checkpoint_dir=tmp_path)
    # threads=0 would choose 1 for this model: the count the run recorded wins, so the sums are the same.
    history = fit_module(TinyAE(), data(), config=config(max_epochs=2), checkpoint_dir=tmp_path, resume=True)
    assert [r["threads"] for r in history] == [2, 2]
    # A count given explicitly wins over the recorded one.
    history = fit_module(TinyAE(), data(), config=config(max_epochs=3, threads=1), checkpoint_dir=tmp_path, resume=True)
    assert [r["threads"] for r in history] == [2, 2, 1]


def test_threads_must_be_a_count() -> None:
    with pytest.raises(ValueError, match=r"threads must be an integer >= 0, got -1"):
        config(threads=-1).validate()


def test_cli_threads_flag_is_saved_with_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aekit.cli.main import main

    run = tmp_path / "run"
    code = main(["train", "--family", "autoencoder", "--epochs", "1", "--threads", "2", "--limit", "60",
                 "--hidden-dims", "8", "--latent-dim", "2", "--quiet", "--out", str(run)])
    capsys.readouterr()
    assert code == 0
    assert json.loads((run / "config.json").read_text())["params"]["threads"] == 2
    assert [r["threads"] for r in read_csv(run / "history.csv")] == ["2"]


# ------------------------------------------------------------------------------------------ dead code


def test_removed_names_are_gone() -> None:
    assert not hasattr(training, "config_dict")
    with pytest.raises(TypeError):
        training.EarlyStopping(3, min_delta=0.1)  # type: ignore[call-arg]


# ------------------------------------------------------------------------------------- CUDA-graph path

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the CUDA-graph path runs only there")


def _path_of(module: nn.Module, cfg: TrainConfig, **kw: Any) -> tuple[list[dict[str, float]], str]:
    paths: list[str] = []

    class Path_(Callback):
        def on_train_begin(self, state: TrainState) -> None:
            paths.append(state.path)

    history = fit_module(module, data(256), config=cfg, callbacks=[Path_()], **kw)
    return history, paths[0]


def test_cpu_runs_record_the_eager_path() -> None:
    history, path = _path_of(TinyAE(), config(max_epochs=1, cuda_graph=True))
    assert path == "eager"
    assert "cuda_graph" not in history[0]  # the column is written on CUDA only


class UnitDecoderAE(TinyAE):
    """TinyAE whose decoder columns are projected back to unit norm after every step (as sparse coding's atoms)."""

    def after_step(self) -> None:
        w = self.dec.weight
        w.copy_(w / w.norm(dim=0, keepdim=True))


def _graph_against_eager(graph: nn.Module, eager: nn.Module) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Train ``graph`` on the CUDA-graph path and ``eager`` eagerly, 3 epochs; check the paths and that the weights agree.

    256 rows, no validation, batches of 64: four full batches, so both paths take the same steps.
    """
    # Full fp32: these tests are about the path, and TF32's rounding would blur the comparison.
    cfg = {"max_epochs": 3, "batch_size": 64, "validation_fraction": 0.0, "device": "cuda", "tf32": False}
    h_graph, p_graph = _path_of(graph, config(cuda_graph=True, **cfg))
    h_eager, p_eager = _path_of(eager, config(cuda_graph=False, **cfg))
    assert (p_graph, p_eager) == ("cuda-graph", "eager")
    for k, v in weights(eager).items():
        torch.testing.assert_close(weights(graph)[k], v, rtol=1e-5, atol=1e-6, msg=k)
    return h_graph, h_eager


@cuda
def test_cuda_graph_captures_after_step() -> None:
    """A module with an after_step hook trains on the graph path (no silent eager fallback), like the eager one."""
    graph = UnitDecoderAE()
    h_graph, h_eager = _graph_against_eager(graph, UnitDecoderAE())
    assert [r["cuda_graph"] for r in h_graph] == [1.0] * 3 and [r["cuda_graph"] for r in h_eager] == [0.0] * 3
    torch.testing.assert_close(graph.dec.weight.norm(dim=0), torch.ones(K, device="cuda"))


@cuda
def test_cuda_graph_steps_equal_eager_steps() -> None:
    h_graph, h_eager = _graph_against_eager(TinyAE(), TinyAE())
    assert [r["loss"] for r in h_graph] == pytest.approx([r["loss"] for r in h_eager], rel=1e-5)


@cuda
def test_cuda_graph_resume_keeps_the_optimizer_state(tmp_path: Path) -> None:
    """Capture runs warm-up steps; a resumed run must get its loaded Adam moments back after them."""
    cfg = {"batch_size": 64, "validation_fraction": 0.0, "device": "cuda", "cuda_graph": True, "tf32": False}
    fit_module(TinyAE(), data(256), config=config(max_epochs=2, **cfg), checkpoint_dir=tmp_path)
    resumed, straight = TinyAE(), TinyAE()
    _, path = _path_of(resumed, config(max_epochs=4, **cfg), checkpoint_dir=tmp_path, resume=True)
    _path_of(straight, config(max_epochs=4, **cfg))
    assert path == "cuda-graph"
    for k, v in weights(straight).items():
        torch.testing.assert_close(weights(resumed)[k], v, rtol=1e-5, atol=1e-6, msg=k)


@cuda
def test_cuda_graph_reads_a_loss_weight_changed_in_place() -> None:
    """A weight changed in place between replays is read by the captured graph as by the eager path."""
    cfg = {"max_epochs": 4, "batch_size": 64, "validation_fraction": 0.0, "device": "cuda", "tf32": False}
    graph = fit_module(TinyAE(), data(256), config=config(cuda_graph=True, **cfg), callbacks=[WarmUpByEpoch(2)])
    eager = fit_module(TinyAE(), data(256), config=config(cuda_graph=False, **cfg), callbacks=[WarmUpByEpoch(2)])
    assert graph[0]["penalty"] == 0.0 and graph[1]["penalty"] > 0
    assert [r["penalty_weight"] for r in graph] == [0.0, 0.5, 1.0, 1.0]
    assert [r["penalty"] for r in graph] == pytest.approx([r["penalty"] for r in eager], rel=1e-4)


# ------------------------------------------------------------------------------------- TensorFloat-32


def _tf32_flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize("on", [True, False])
def test_tf32_is_set_for_cuda_blocks_and_restored(on: bool) -> None:
    before = _tf32_flags()
    cfg = config(tf32=on)
    try:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = (not on), (not on)
        with training._reduced_precision(torch.device("cuda"), cfg) as bf16:
            assert _tf32_flags() == (on, on) and bf16 is False
        assert _tf32_flags() == (not on, not on)
        with pytest.raises(RuntimeError, match="boom"), training._reduced_precision(torch.device("cuda"), cfg):
            raise RuntimeError("boom")
        assert _tf32_flags() == (not on, not on)
        with training._reduced_precision(torch.device("cpu"), cfg):  # the CPU has no TF32: nothing changes
            assert _tf32_flags() == (not on, not on)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@cuda
@pytest.mark.parametrize("on", [True, False])
def test_cuda_training_runs_with_the_configured_tf32(on: bool) -> None:
    seen: list[tuple[bool, bool]] = []

    class Flags(Callback):
        def on_epoch_end(self, state: TrainState) -> None:
            seen.append(_tf32_flags())

    before = _tf32_flags()
    cfg = config(max_epochs=2, batch_size=64, validation_fraction=0.0, device="cuda", tf32=on)
    fit_module(TinyAE(), data(256), config=cfg, callbacks=[Flags()])
    assert seen == [(on, on)] * 2 and _tf32_flags() == before


# ------------------------------------------------------------------------------------- bf16 products on the CPU

bf16_cpu = pytest.mark.skipif(
    not training.cpu_bf16_available(), reason="this CPU has no bf16 units (AMX or AVX512-BF16) torch can use"
)


def _mkldnn_precisions() -> tuple[str, str]:
    return torch.backends.mkldnn.matmul.fp32_precision, torch.backends.mkldnn.conv.fp32_precision


@pytest.mark.parametrize("available", [True, False])
def test_cpu_bf16_is_recorded_and_the_settings_come_back(monkeypatch: pytest.MonkeyPatch, available: bool) -> None:
    """The history says whether the products took bf16 inputs; off, the column is absent; torch's settings are
    the caller's again after fitting, also when the option applied."""
    seen: list[tuple[str, str]] = []

    class Precision(Callback):
        def on_epoch_end(self, state: TrainState) -> None:
            seen.append(_mkldnn_precisions())

    before = _mkldnn_precisions()
    monkeypatch.setattr(training, "cpu_bf16_available", lambda: available)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        on = fit_module(TinyAE(), data(64), config=config(max_epochs=2, cpu_bf16=True), callbacks=[Precision()])
    said = [str(w.message) for w in caught if "cpu_bf16=True has no effect" in str(w.message)]
    assert len(said) == (0 if available else 1)
    assert [r["bf16"] for r in on] == [float(available)] * 2
    assert seen == [("bf16", "bf16") if available else before] * 2 and _mkldnn_precisions() == before
    off = fit_module(TinyAE(), data(64), config=config(max_epochs=2))
    assert all("bf16" not in r for r in off) and _mkldnn_precisions() == before


def test_cpu_bf16_is_restored_after_a_failing_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _mkldnn_precisions()
    monkeypatch.setattr(training, "cpu_bf16_available", lambda: True)

    class Boom(Callback):
        def on_epoch_end(self, state: TrainState) -> None:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fit_module(TinyAE(), data(64), config=config(cpu_bf16=True), callbacks=[Boom()])
    assert _mkldnn_precisions() == before


@bf16_cpu
def test_cpu_bf16_rounds_the_products_and_trains_alike() -> None:
    """On a CPU with bf16 units the steps differ from full fp32 in the low bits (the option does something) while
    the training curve stays within bf16's rounding of the fp32 one."""
    class WideAE(TinyAE):  # products large enough for oneDNN (TinyAE's go to the plain fp32 kernels)
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.enc, self.dec = nn.Linear(128, 64), nn.Linear(64, 128)

    X = np.random.default_rng(0).standard_normal((512, 128)).astype(np.float32)
    cfg = {"max_epochs": 3, "batch_size": 64, "validation_fraction": 0.0}
    fp32, bf16 = WideAE(), WideAE()
    h32 = fit_module(fp32, X, config=config(**cfg))
    h16 = fit_module(bf16, X, config=config(cpu_bf16=True, **cfg))
    assert [r["bf16"] for r in h16] == [1.0] * 3
    assert any(not torch.equal(a, b) for a, b in zip(weights(fp32).values(), weights(bf16).values()))
    assert [r["loss"] for r in h16] == pytest.approx([r["loss"] for r in h32], rel=2e-2)
