"""Runs at their edges through the command line: a resume asked for fewer epochs than were trained, a run that has
not finished, a model file deleted, a single sample, a failing report, labels for an unconditional model, sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI_TINY, cli_call, interrupt_after_epoch

import aekit

TINY = CLI_TINY
call = cli_call


def _killed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *, after: int,
                of: int) -> Path:
    """A run of ``of`` epochs stopped by a Ctrl-C once epoch ``after`` is checkpointed."""
    run = tmp_path / "killed"
    with monkeypatch.context() as m:
        interrupt_after_epoch(m, after)
        assert call(capsys, "train", "--family", "autoencoder", "--epochs", str(of), *TINY, "--out", str(run))[0] == 130
    return run


def test_an_interrupted_run_refuses_fewer_epochs_untouched_and_says_it_is_unfinished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _killed_run(tmp_path, monkeypatch, capsys, after=3, of=6)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, _, err = call(capsys, "train", "--resume", str(run), "--epochs", "2")
    assert code == 2 and "has 3 epochs of training already, more than --epochs 2; pass --epochs 3 or more" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing written
    code, _, err = call(capsys, "evaluate", str(run))
    assert code == 1 and "has not finished training" in err and f"aekit train --resume {run}" in err
    assert "damaged" not in err
    code, out, err = call(capsys, "train", "--resume", str(run), "--json")
    assert code == 0 and json.loads(out)["epochs"] == 6, err


def test_a_deleted_model_file_is_rebuilt_from_the_checkpoint_and_the_epochs_stay_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    assert call(capsys, "train", "--family", "autoencoder", "--epochs", "2", *TINY, "--out", str(run))[0] == 0
    assert call(capsys, "train", "--resume", str(run), "--epochs", "3", "--quiet")[0] == 0
    code, _, err = call(capsys, "train", "--resume", str(run))
    assert code == 2 and "pass --epochs larger than 3" in err  # the current length, not the first
    assert json.loads((run / "config.json").read_text())["resolved"]["max_epochs"] == 3
    weights = aekit.load(run).module_.state_dict()
    (run / "model.safetensors").unlink()
    code, _, err = call(capsys, "evaluate", str(run))
    assert code == 1 and "rebuild it with `aekit train --resume" in err
    assert call(capsys, "train", "--resume", str(run), "--quiet")[0] == 0
    rebuilt = aekit.load(run)
    assert len(rebuilt.history_) == 3
    for k, v in rebuilt.module_.state_dict().items():
        assert np.array_equal(v.numpy(), weights[k].numpy()), k


def test_one_sample_trains_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "one.npy", np.random.default_rng(0).random((1, 64)).astype(np.float32))
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--data", str(tmp_path / "one.npy"), "--split",
                        "all", "--epochs", "1", "--latent-dim", "3", "--quiet", "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert (tmp_path / "o" / "report.html").is_file() and (tmp_path / "o" / "latent.png").is_file()


def test_a_failing_report_leaves_the_runs_files_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    assert call(capsys, "train", "--family", "autoencoder", "--epochs", "1", *TINY, "--out", str(run))[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.suffix in (".png", ".html")}
    import aekit.report.html

    def broken(*a: object, **k: object) -> None:
        raise ValueError("the samples figure failed")

    monkeypatch.setattr(aekit.report.html, "samples_comparison_figure", broken)
    code, _, err = call(capsys, "report", str(run))
    assert code == 1 and "the samples figure failed" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.suffix in (".png", ".html")} == before


def test_a_label_needs_a_conditional_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "fa"
    assert call(capsys, "train", "--family", "factor-analysis", "--latent-dim", "4", "--limit", "200", "--quiet",
                "--out", str(run))[0] == 0
    code, _, err = call(capsys, "generate", str(run), "--label", "3", "--out", str(tmp_path / "g.npy"))
    assert code == 2 and "was not trained conditional on labels" in err and not (tmp_path / "g.npy").exists()
    with pytest.raises(ValueError, match="not fitted conditional on labels"):
        aekit.generate(aekit.load(run), 2, label=3)


def test_a_sweep_checks_every_size_before_training_and_replaces_an_earlier_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sw"
    code, _, err = call(capsys, "sweep", "--family", "linear", "--latent-dims", "2,100", "--out", str(out))
    assert code == 2 and "code size 100: --latent-dim 100 must be at most" in err and not out.exists()
    code, _, err = call(capsys, "sweep", "--family", "factor-analysis", "--latent-dims", "2", "--epochs", "1",
                        "--out", str(out))
    assert code == 2 and "--epochs 1 does not apply to family 'factor-analysis'" in err and not out.exists()
    code, _, err = call(capsys, "sweep", "--family", "linear", "--latent-dims", "2,2", "--out", str(out))
    assert code == 2 and "--latent-dims 2,2 repeats a size" in err
    assert call(capsys, "sweep", "--family", "linear", "--latent-dims", "2,8", "--limit", "200", "--quiet",
                "--out", str(out))[0] == 0
    assert call(capsys, "sweep", "--family", "linear", "--latent-dims", "4", "--limit", "200", "--quiet",
                "--overwrite", "--out", str(out))[0] == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("latent-")) == ["latent-4"]


def test_contradictory_flags_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "r"
    assert call(capsys, "train", "--family", "autoencoder", "--epochs", "1", *TINY, "--out", str(run))[0] == 0
    code, _, err = call(capsys, "train", "--resume", str(run), "--out", str(tmp_path / "other"), "--epochs", "2")
    assert code == 2 and "names another directory; leave --out out" in err
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--allow-data-change", "--out", str(tmp_path / "x"))
    assert code == 2 and "applies with --resume only" in err and not (tmp_path / "x").exists()
    toml = tmp_path / "c.toml"
    toml.write_text("epochs = 2\nmax_epochs = 1\n")
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--config", str(toml), "--out", str(tmp_path / "y"))
    assert code == 2 and "'epochs' and 'max_epochs' set the same parameter (max_epochs); keep one" in err


def test_messages_name_flags_and_help_says_what_a_family_does_not_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "wide.npy", (np.random.default_rng(0).random((50, 6)) * 3 - 1).astype(np.float32))
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--data", str(tmp_path / "wide.npy"), "--loss",
                        "bce", "--quiet", "--out", str(tmp_path / "x"))
    assert code == 1 and "use --scaling minmax" in err and "--loss mse with --output linear" in err
    assert "scaling='" not in err and "loss='" not in err
    code, out, _ = call(capsys, "train", "--family", "factor-analysis", "--help")
    help_text = " ".join(out.split())
    assert code == 0
    assert "--lr X not used by family 'factor-analysis', which has no learning_rate" in help_text


def test_the_demo_never_replaces_a_run_of_another_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "fa"
    assert call(capsys, "train", "--family", "factor-analysis", "--latent-dim", "4", "--limit", "200", "--quiet",
                "--out", str(run))[0] == 0
    before = (run / "config.json").read_bytes()
    code, _, err = call(capsys, "demo", "--out", str(run), "--overwrite", "--epochs", "1", "--quiet")
    assert code == 2 and "holds a 'factor-analysis' run that is not a demo run" in err
    assert (run / "config.json").read_bytes() == before


def test_a_lost_checkpoint_is_not_silently_trained_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _killed_run(tmp_path, monkeypatch, capsys, after=2, of=4)
    (run / "checkpoint.safetensors").unlink()
    history = (run / "history.csv").read_bytes()
    code, _, err = call(capsys, "train", "--resume", str(run))
    assert code == 2 and "records 2 trained epochs in history.csv but holds no checkpoint" in err
    assert (run / "history.csv").read_bytes() == history


def test_data_files_that_are_not_arrays_or_have_moved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "garbage.npy").write_bytes(b"not a numpy file")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    data = tmp_path / "d.npy"
    np.save(data, aekit.load_dataset("digits").X[:100])
    run = tmp_path / "r"
    assert call(capsys, "train", "--family", "linear", "--data", str(data), "--split", "all", "--latent-dim", "4",
                "--quiet", "--out", str(run))[0] == 0
    code, _, err = call(capsys, "evaluate", str(run), "--data", str(tmp_path / "garbage.npy"))
    assert code == 1 and "not a .npy file (no NumPy header)" in err and "allow_pickle" not in err
    code, _, err = call(capsys, "evaluate", str(run), "--data", str(tmp_path / "obj.npy"))
    assert code == 1 and "holds Python objects, which aekit never loads" in err
    data.rename(tmp_path / "moved.npy")
    for args in (["evaluate", str(run)], ["generate", str(run), "--out", str(tmp_path / "g.npy")]):
        code, _, err = call(capsys, *args)
        assert code == 2 and f"was trained on {data}, which is not there any more; pass --data" in err
    assert call(capsys, "evaluate", str(run), "--data", str(tmp_path / "moved.npy"))[0] == 0


def test_flags_that_do_not_apply_to_the_output_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "r"
    assert call(capsys, "train", "--family", "linear", "--latent-dim", "4", "--limit", "200", "--quiet",
                "--out", str(run))[0] == 0
    code, _, err = call(capsys, "generate", str(run), "--components", "3", "--out", str(tmp_path / "g.npy"))
    assert code == 2 and "--components 3 sets the mixture of --density gmm, but the density is gaussian" in err
    assert call(capsys, "generate", str(run), "--density", "gmm", "--components", "3", "--n", "4",
                "--out", str(tmp_path / "g.npy"))[0] == 0
    code, _, err = call(capsys, "reconstruct", str(run), "--n", "5", "--out", str(tmp_path / "r.npy"))
    assert code == 2 and "--n 5 sets the pairs a .png shows" in err and not (tmp_path / "r.npy").exists()
    code, _, err = call(capsys, "interpolate", str(run), "--pair", "0", "1", "--steps", "3000", "--out",
                        str(tmp_path / "i.png"))
    assert code == 2 and "--steps 3000 is too many for one .png strip; use at most 100" in err


def test_config_files_and_flags_are_checked_alike(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def refused(text: str, *extra: str) -> str:
        cfg = tmp_path / "c.toml"
        cfg.write_text(text)
        code, _, err = call(capsys, "train", "--config", str(cfg), *extra, "--out", str(tmp_path / "r"))
        assert code == 2 and not (tmp_path / "r").exists(), err
        return err

    assert "download='false' must be true or false" in refused('family = "autoencoder"\ndownload = "false"\n')
    assert "--epochs does not apply: --solver svd" in refused('family = "linear"\nepochs = 1\n')
    assert "--split bogus must be train, test or all" in refused('family = "autoencoder"\nsplit = "bogus"\n')
    assert "unknown device 'bogus'" in refused('family = "autoencoder"\n', "--device", "bogus")
    assert "--seed 99999999999999999999 must be a whole number from 0 to 2**32 - 1" in refused(
        'family = "autoencoder"\n', "--seed", "99999999999999999999")


def test_tuple_flags_take_what_messages_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "r"
    assert call(capsys, "train", "--family", "autoencoder", "--hidden-dims", "(16, 8)", "--latent-dim", "2",
                "--epochs", "1", "--limit", "120", "--quiet", "--out", str(run))[0] == 0
    assert json.loads((run / "config.json").read_text())["params"]["hidden_dims"] == [16, 8]
    for bad in ("", "16,,8"):
        code, _, err = call(capsys, "train", "--family", "autoencoder", f"--hidden-dims={bad}", "--out",
                            str(tmp_path / "x"))
        assert code == 2 and "expected a tuple of integers" in err and not (tmp_path / "x").exists()
