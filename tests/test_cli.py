"""Tests of the ``aekit`` command line: every command, its JSON, its errors, and resume after a kill.

Most commands run in-process through ``main(argv)`` (importing torch once); a few go through a real
subprocess to check the module entry point, the exit status and that no traceback reaches stderr.
Models are tiny (a 16-unit hidden layer, 2 epochs, a 120-digit subset) so the file runs in seconds.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import interrupt_after_epoch

import aekit
import aekit.engine.checkpoint
import aekit.engine.training
from aekit.cli.main import COMMANDS, main
from aekit.model.registry import families

SRC = str(Path(__file__).resolve().parents[1] / "src")
# A random start: these runs check the files and metrics of a sigmoid network with cross-entropy (the default
# PCA start trains on the squared error; tests/test_defaults.py covers it).
TINY = ["--latent-dim", "2", "--hidden-dims", "16", "--batch-size", "32", "--seed", "0", "--limit", "120", "--quiet",
        "--init", "random"]
METRIC_KEYS = {"sq_err_per_image", "mse_per_pixel", "bce_per_pixel", "psnr_db", "n_samples"}


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "aekit.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("aekit: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def history_rows(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A finished run, trained through a real subprocess (the console entry point)."""
    run = tmp_path_factory.mktemp("runs") / "ae"
    proc = run_cli("train", "--family", "autoencoder", "--data", "digits", "--epochs", "2", *TINY, "--out", str(run),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return run, json.loads(proc.stdout)


# ----------------------------------------------------------------------------------- list, help


def test_list_json_has_every_family() -> None:
    proc = run_cli("list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {f["name"]: f for f in json.loads(proc.stdout)}
    assert set(listed) == set(families())
    assert listed["autoencoder"]["description"] == families()["autoencoder"].description
    assert "gradient" in listed["autoencoder"]["capabilities"]


def test_list_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "list")
    assert code == 0
    for name, info in families().items():
        assert any(line.startswith(name) and info.description in line for line in out.splitlines())


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, command, "--help")
    assert code == 0
    assert f"usage: aekit {command}" in out


def test_top_level_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert command in out


def test_train_help_lists_family_flags_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "train", "--family", "autoencoder", "--help")
    assert code == 0
    for flag in ("--latent-dim", "--hidden-dims INT,INT,...", "--tied, --no-tied", "--patience", "--epochs", "--resume"):
        assert flag in out
    assert "default: auto (max_epochs / 10, at least 10)" in " ".join(out.split())  # patience
    assert "--max-epochs" not in out  # covered by --epochs


@pytest.mark.parametrize("family", list(families()))
def test_train_help_for_every_family(family: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "train", "--family", family, "--help")
    assert code == 0
    assert f"{family} parameters" in out


# ---------------------------------------------------------------------------------------- train


def test_train_writes_a_complete_run(trained_run: tuple[Path, dict[str, Any]]) -> None:
    run, result = trained_run
    assert result["family"] == "autoencoder" and result["epochs"] == 2
    assert set(result["metrics"]) == {"train", "test"}
    assert METRIC_KEYS <= set(result["metrics"]["test"])
    for name in ("config.json", "model.safetensors", "history.csv", "metrics.json", "report.html", "latent.png"):
        assert (run / name).is_file(), name
    # The final checkpoint is kept, so that `--resume --epochs N` can train the run further.
    assert (run / "checkpoint.safetensors").exists() and not (run / "checkpoint.json").exists()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["status"] == "done"
    assert cfg["params"]["latent_dim"] == 2 and cfg["params"]["hidden_dims"] == [16]
    assert cfg["data"] == {"name": "digits", "data_dir": None, "split": "train", "limit": 120, "label_column": None}
    assert len(history_rows(run)) == 2


def test_toml_config_and_flags_override_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "ae.toml"
    toml.write_text('family = "autoencoder"\nlatent_dim = 3\nhidden_dims = [8]\nepochs = 1\ntied = true\nlimit = 60\n')
    run = tmp_path / "run"
    code, _, err = call(capsys, "train", "--config", str(toml), "--latent-dim", "2", "--seed", "1", "--quiet",
                        "--out", str(run))
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["params"]["latent_dim"] == 2  # the flag wins
    assert cfg["params"]["hidden_dims"] == [8] and cfg["params"]["tied"] is True
    assert cfg["params"]["max_epochs"] == 1 and cfg["data"]["limit"] == 60


def test_seed_is_recorded_when_not_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    code, _, err = call(capsys, "train", "--family", "linear", "--limit", "60", "--quiet", "--out", str(run))
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert isinstance(cfg["params"]["random_state"], int)  # so --resume rebuilds the same split
    assert "closed form" in (run / "report.html").read_text()


# ---------------------------------------------------------------------- evaluate, encode, ...


def test_evaluate_json(trained_run: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    run, result = trained_run
    code, out, _ = call(capsys, "evaluate", str(run), "--json")
    assert code == 0
    m = json.loads(out)
    assert METRIC_KEYS <= set(m)
    assert m["split"] == "test" and m["n_samples"] == 360  # the whole test split of digits
    code, out, _ = call(capsys, "evaluate", str(run), "--split", "train", "--limit", "120")
    assert code == 0
    assert "sq_err_per_image" in out and "120" in out
    # Same data as the training run's own train metrics.
    code, out, _ = call(capsys, "evaluate", str(run), "--split", "train", "--limit", "120", "--json")
    assert json.loads(out)["sq_err_per_image"] == pytest.approx(result["metrics"]["train"]["sq_err_per_image"], rel=1e-5)


def test_encode(trained_run: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = trained_run
    out_file = tmp_path / "codes.npy"
    code, out, _ = call(capsys, "encode", str(run), "--data", "digits", "--limit", "50", "--out", str(out_file), "--json")
    assert code == 0
    assert json.loads(out)["shape"] == [50, 2]
    Z = np.load(out_file)
    assert Z.shape == (50, 2) and Z.dtype == np.float32


@pytest.mark.parametrize("suffix", [".png", ".npy"])
def test_reconstruct(
    suffix: str, trained_run: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained_run
    out_file = tmp_path / f"rec{suffix}"
    code, out, _ = call(capsys, "reconstruct", str(run), "--limit", "12", "--out", str(out_file), "--json")
    assert code == 0
    res = json.loads(out)
    assert METRIC_KEYS <= set(res["metrics"])
    if suffix == ".png":
        from PIL import Image

        with Image.open(out_file) as im:
            # 10 pairs (the default --n) of 8x8 digits: (1.1 * 10 + 0.9) x 2.7 inches at 110 dpi.
            assert im.format == "PNG" and im.size == (round((1.1 * 10 + 0.9) * 110), round(2.7 * 110))
    else:
        assert np.load(out_file).shape == (12, 1, 8, 8)


@pytest.mark.parametrize("suffix", [".png", ".npy"])
def test_generate(
    suffix: str, trained_run: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained_run
    out_file = tmp_path / f"samples{suffix}"
    code, out, _ = call(capsys, "generate", str(run), "--n", "6", "--out", str(out_file), "--json")
    assert code == 0
    res = json.loads(out)
    assert res["shape"] == [6, 1, 8, 8] and "Gaussian" in res["method"]
    if suffix == ".npy":
        assert np.load(out_file).shape == (6, 1, 8, 8)


def test_generate_without_recorded_data_asks_for_data(
    trained_run: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "copy"
    shutil.copytree(trained_run[0], run)
    cfg = json.loads((run / "config.json").read_text())
    del cfg["data"]
    (run / "config.json").write_text(json.dumps(cfg))
    code, _, err = call(capsys, "generate", str(run), "--out", str(tmp_path / "s.npy"))
    assert code == 2
    assert_one_line_error(err, "has no prior to sample from", "--data")
    code, _, err = call(capsys, "generate", str(run), "--data", "digits", "--limit", "40", "--n", "3",
                        "--out", str(tmp_path / "s.npy"))
    assert code == 0, err


def test_report_command(trained_run: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "copy"
    shutil.copytree(trained_run[0], run)
    (run / "report.html").unlink()
    code, out, _ = call(capsys, "report", str(run), "--json")
    assert code == 0
    html = (run / "report.html").read_text()
    assert json.loads(out)["report"] == str((run / "report.html").resolve())
    # reconstructions, loss, latent map, samples, and the manifold figure of its 2-D code
    assert html.count("data:image/png;base64,") == 5
    for key in METRIC_KEYS:
        assert key in html


def test_demo(tmp_path: Path) -> None:
    proc = run_cli("demo", "--epochs", "2", "--quiet", "--out", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    report = tmp_path / "demo" / "report.html"
    assert f"report: {report.resolve()}" in proc.stdout
    assert report.is_file()
    cfg = json.loads((tmp_path / "demo" / "config.json").read_text())
    assert cfg["params"]["latent_dim"] == 2 and cfg["params"]["max_epochs"] == 2
    assert set(json.loads((tmp_path / "demo" / "metrics.json").read_text())) == {"train", "test"}


# -------------------------------------------------------------------------------------- errors


def test_unknown_family_lists_the_valid_ones(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = call(capsys, "train", "--family", "nope", "--out", str(tmp_path / "r"))
    assert code == 2
    assert_one_line_error(err, "unknown family 'nope'", "autoencoder", "factor-analysis")
    assert not (tmp_path / "r").exists()


def test_unknown_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--bogus", "1", "--out", str(tmp_path / "r"))
    assert code == 2
    assert_one_line_error(err, "unrecognized arguments: --bogus")
    code, _, err = call(capsys, "list", "--bogus")
    assert code == 2
    assert_one_line_error(err, "unrecognized arguments: --bogus")


def test_bad_flag_values(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = str(tmp_path / "r")
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--latent-dim", "abc", "--out", out)
    assert code == 2
    assert_one_line_error(err, "--latent-dim", "expected an integer >= 1, got 'abc'")
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--latent-dim", "0", "--out", out)
    assert code == 2
    assert_one_line_error(err, "latent_dim must be an integer >= 1, got 0")
    code, _, err = call(capsys, "train", "--family", "factor-analysis", "--epochs", "3", "--out", out)
    assert code == 2
    assert_one_line_error(err, "--epochs does not apply", "'factor-analysis' is not trained by epochs", "max_iter")
    code, _, err = call(capsys, "train", "--family", "autoencoder")
    assert code == 2
    assert_one_line_error(err, "--out DIR is required")
    assert not Path(out).exists()


def test_unknown_toml_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("latent_dims = 2\n")
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--config", str(toml), "--out", str(tmp_path / "r"))
    assert code == 2
    assert_one_line_error(err, "unknown key 'latent_dims'", "valid keys are:", "latent_dim,")


def test_out_pointing_at_an_existing_run(
    trained_run: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = trained_run
    before = (run / "model.safetensors").read_bytes()
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--epochs", "1", *TINY, "--out", str(run))
    assert code == 2
    assert_one_line_error(err, "already holds an aekit run", "--overwrite", "--resume")
    assert (run / "model.safetensors").read_bytes() == before
    assert json.loads((run / "config.json").read_text())["status"] == "done"


def test_missing_data_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "x.npy"
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--data", str(missing), "--out", str(tmp_path / "r"))
    assert code == 1
    assert_one_line_error(err, "no such file", "x.npy")
    assert not (tmp_path / "r").exists()


def test_corrupt_model_file_is_a_clean_error(trained_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    run = tmp_path / "copy"
    shutil.copytree(trained_run[0], run)
    model = run / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    truncated = model.read_bytes()
    proc = run_cli("evaluate", str(run))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert_one_line_error(proc.stderr, "truncated or corrupt")
    assert model.read_bytes() == truncated  # nothing rewrote it


def test_wrong_output_suffix(trained_run: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "reconstruct", str(trained_run[0]), "--out", "rec.txt")
    assert code == 2
    assert_one_line_error(err, ".npy or .png")


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(aekit.ModelFileError, match="does not exist"):
        main(["--debug", "evaluate", str(tmp_path / "none")])


# -------------------------------------------------------------------------------------- resume


def test_resume_after_a_kill_completes_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "killed"
    args = ["train", "--family", "autoencoder", "--epochs", "4", "--patience", "None", *TINY]
    with monkeypatch.context() as m:
        interrupt_after_epoch(m, 2)
        code, _, err = call(capsys, *args, "--out", str(run))
    assert code == 130
    assert f"aekit train --resume {run}" in err and "Traceback" not in err
    assert (run / "checkpoint.safetensors").is_file() and not (run / "model.safetensors").exists()
    assert json.loads((run / "config.json").read_text())["status"] == "training"
    assert len(history_rows(run)) == 2
    assert aekit.engine.checkpoint.checkpoint_epoch(run) == 2

    # Only the training length may change on resume.
    code, _, err = call(capsys, "train", "--resume", str(run), "--latent-dim", "3")
    assert code == 2
    assert_one_line_error(err, "only --epochs")

    code, out, err = call(capsys, "train", "--resume", str(run), "--epochs", "4", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 4
    rows = history_rows(run)
    assert [int(float(r["epoch"])) for r in rows] == [1, 2, 3, 4]
    assert json.loads((run / "config.json").read_text())["status"] == "done"

    # The resumed run is the run that was never interrupted.
    straight = tmp_path / "straight"
    code, _, err = call(capsys, *args, "--out", str(straight))
    assert code == 0, err
    for a, b in zip(rows, history_rows(straight)):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)

    # A finished run has nothing left to resume.
    code, _, err = call(capsys, "train", "--resume", "--out", str(run))
    assert code == 2
    assert_one_line_error(err, "nothing to resume")
