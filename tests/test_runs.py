"""Run directories: aekit touches only its own files, claims a directory once, resumes only what it started.

Through the command line in-process (``main(argv)``), with tiny networks on a 120-digit subset, and
through the Python API (:func:`aekit.workflow.train.train_run`, ``est.save``).
"""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import interrupt_after_epoch

import aekit
import aekit.engine.training
from aekit.cli.main import main
from aekit.engine.rundir import LOCK_FILE, DataChangedError, RunExistsError, RunPathError
from aekit.workflow.train import check_eval_limit, evaluation_sample, resume_run, train_run

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = ["--latent-dim", "2", "--hidden-dims", "16", "--batch-size", "32", "--seed", "0", "--limit", "120", "--quiet",
        "--threads", "1"]
TRAIN = ["train", "--family", "autoencoder", "--epochs", "2", "--patience", "None", *TINY]
PARAMS: dict[str, Any] = {"latent_dim": 2, "hidden_dims": (16,), "batch_size": 32, "random_state": 0, "max_epochs": 2,
                          "verbose": 0}


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aekit: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open(newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------ never touch a user's file


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "report.html").write_text("my report")
    (folder / "notes.txt").write_text("my notes")
    for extra in ([], ["--overwrite"]):
        code, _, err = call(capsys, *TRAIN, "--out", str(folder), *extra)
        assert code == 2
        one_line(err, "is not empty and is not an aekit run", "notes.txt, report.html", "choose another --out")
        assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "report.html"]
        assert (folder / "report.html").read_text() == "my report"


def test_bad_out_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, *TRAIN, "--out", "")
    assert code == 2
    one_line(err, "path is empty", "--out")
    (tmp_path / "file").write_text("x")
    code, _, err = call(capsys, *TRAIN, "--out", str(tmp_path / "file" / "sub"))
    assert code == 2
    one_line(err, "is a file, so no directory can be made below it")
    with pytest.raises(RunPathError, match=r"path is empty; give a directory such as runs/ae as path"):
        train_run("autoencoder", PARAMS, {"name": "digits", "limit": 120}, "")


def test_overwrite_removes_only_the_files_the_run_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert call(capsys, *TRAIN, "--out", str(run))[0] == 0
    (run / "notes.txt").write_text("mine")
    code, _, err = call(capsys, *TRAIN, "--out", str(run))
    assert code == 2
    one_line(err, "already holds an aekit run", "--overwrite", "--resume")
    code, _, err = call(capsys, "train", "--family", "autoencoder", "--epochs", "1", *TINY, "--out", str(run), "--overwrite")
    assert code == 0, err
    assert (run / "notes.txt").read_text() == "mine"
    assert len(rows(run)) == 1 and json.loads((run / "config.json").read_text())["status"] == "done"


def test_python_save_names_python_arguments(tmp_path: Path) -> None:
    X = aekit.load_dataset("digits", limit=60).X
    est = aekit.Autoencoder(**PARAMS).fit(X)
    est.save(tmp_path / "run")
    with pytest.raises(FileExistsError, match=r"already holds an aekit run; choose another path, pass overwrite=True"):
        est.save(tmp_path / "run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.safetensors").write_bytes(b"someone else's")
    with pytest.raises(RunExistsError, match=r"not empty and is not an aekit run \(it holds model\.safetensors\)"):
        est.save(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "model.safetensors").read_bytes() == b"someone else's"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_respect_the_umask(umask: int, tmp_path: Path) -> None:
    X = aekit.load_dataset("digits", limit=60).X
    est = aekit.Autoencoder(**PARAMS).fit(X)
    before = os.umask(umask)
    try:
        est.save(tmp_path / "run")
    finally:
        os.umask(before)
    for name in ("config.json", "model.safetensors", "history.csv"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o666 & ~umask, name


def test_output_files_are_never_written_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.npy"
    np.save(data, aekit.load_dataset("digits", limit=120).X.reshape(120, -1))
    run = tmp_path / "run"
    assert call(capsys, "train", "--family", "autoencoder", "--data", str(data), "--epochs", "1", *TINY, "--out", str(run))[0] == 0
    before = data.read_bytes()
    for extra in ([], ["--overwrite"]):
        code, _, err = call(capsys, "encode", str(run), "--data", str(data), "--out", str(data), *extra)
        assert code == 2
        one_line(err, "is this command's input data")
    assert data.read_bytes() == before
    code, _, err = call(capsys, "reconstruct", str(run), "--out", str(run / "model.safetensors.npy"))
    assert code == 0, err  # a new file beside the run's own is fine
    code, _, err = call(capsys, "encode", str(run), "--out", str(tmp_path / "codes.npy"))
    assert code == 0, err
    code, _, err = call(capsys, "encode", str(run), "--out", str(tmp_path / "codes.npy"))
    assert code == 2
    one_line(err, "already exists", "--overwrite")
    assert call(capsys, "encode", str(run), "--out", str(tmp_path / "codes.npy"), "--overwrite")[0] == 0


# ---------------------------------------------------------------------------------- claiming


def test_a_live_lock_refuses_and_a_stale_one_is_taken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        code, _, err = call(capsys, *TRAIN, "--out", str(run))
        assert code == 2
        one_line(err, f"is being written by process {holder.pid}", LOCK_FILE)
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()
    code, _, err = call(capsys, *TRAIN, "--out", str(run))  # its process is gone: the lock is stale
    assert code == 0, err
    assert not (run / LOCK_FILE).exists()


def test_two_processes_on_one_out_do_not_both_succeed(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "aekit.cli", *TRAIN, "--out", str(run)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "is being written by process" in loser or "already holds an aekit run" in loser, loser
    assert len(rows(run)) == 2 and not (run / LOCK_FILE).exists()


# ------------------------------------------------------------------------------------- resume


def test_a_refused_run_leaves_nothing_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "wide.npy"
    np.save(data, (np.random.default_rng(0).normal(size=(120, 6)) * 3).astype(np.float32))
    run = tmp_path / "run"
    base = ["train", "--family", "autoencoder", "--data", str(data), "--epochs", "1", *TINY, "--out", str(run)]
    code, _, err = call(capsys, *base, "--scaling", "none", "--loss", "bce", "--output", "sigmoid")
    assert code == 1 and "bce" in err
    assert not run.exists()
    code, _, err = call(capsys, *base, "--scaling", "none", "--loss", "mse", "--output", "linear")
    assert code == 0, err


def test_resume_refuses_changed_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.npy"
    X = aekit.load_dataset("digits", limit=120).X.reshape(120, -1)
    np.save(data, X)
    run = tmp_path / "run"
    args = ["train", "--family", "autoencoder", "--data", str(data), "--epochs", "3", *TINY, "--out", str(run)]
    with monkeypatch.context() as m:
        interrupt_after_epoch(m, 1)
        assert call(capsys, *args)[0] == 130
    np.save(data, X[::-1].copy())
    code, _, err = call(capsys, "train", "--resume", str(run))
    assert code == 2
    one_line(err, "training data of", str(data), "changed since the run started", "--allow-data-change")
    with pytest.raises(DataChangedError, match=r"pass allow_data_change=True to continue on the new data"):
        resume_run(run)
    code, _, err = call(capsys, "train", "--resume", str(run), "--allow-data-change")
    assert code == 0, err
    assert len(rows(run)) == 3


def test_a_finished_run_is_extended_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, straight = tmp_path / "run", tmp_path / "straight"
    assert call(capsys, *TRAIN, "--out", str(run))[0] == 0
    header = (run / "history.csv").read_text().splitlines()[0]
    code, _, err = call(capsys, "train", "--resume", str(run))
    assert code == 2
    one_line(err, "is complete (status done): nothing to resume", "--epochs larger than 2")
    code, out, err = call(capsys, "train", "--resume", str(run), "--epochs", "4", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 4
    assert (run / "history.csv").read_text().splitlines()[0] == header  # same column order after resume
    args = ["train", "--family", "autoencoder", "--epochs", "4", "--patience", "None", *TINY, "--out", str(straight)]
    assert call(capsys, *args)[0] == 0
    drop = ("seconds", "samples_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows(run)] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows(straight)]
    a, b = aekit.load(run), aekit.load(straight)
    for (ka, va), (kb, vb) in zip(a.module_.state_dict().items(), b.module_.state_dict().items()):
        assert ka == kb and bool((va == vb).all()), ka


def test_python_train_run_records_its_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = train_run("autoencoder", PARAMS, {"name": "digits", "limit": 120}, tmp_path / "run", eval_limit=50)
    assert result.epochs == 2 and set(result.metrics) == {"train", "test"} and result.report.is_file()
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["status"] == "done" and cfg["data"]["name"] == "digits" and cfg["data_fingerprint"]["n_samples"] == 120
    # Each split is measured on at most eval_limit samples, and the record says of how many.
    assert cfg["eval_limit"] == 50
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["train"]["n_samples"] == 50 and saved["train"]["n_split"] == 120
    assert saved["test"]["n_samples"] == 50 and saved["test"]["n_split"] > 50
    code, out, err = call(capsys, "evaluate", str(tmp_path / "run"), "--json")
    assert code == 0, err
    assert json.loads(out)["data"] == "digits"
    # resume=True on a complete run with the same settings is the finished run.
    again = train_run("autoencoder", PARAMS, {"name": "digits", "limit": 120}, tmp_path / "run", resume=True)
    assert again.resumed and again.epochs == 2
    with pytest.raises(RunExistsError, match=r"was started with other values of latent_dim"):
        train_run("autoencoder", {**PARAMS, "latent_dim": 3}, {"name": "digits", "limit": 120}, tmp_path / "run",
                  resume=True)


def test_evaluation_sample_is_a_fixed_random_subset_and_the_limit_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = aekit.load_dataset("digits", limit=300)
    sub = evaluation_sample(ds, 100)
    assert len(sub) == 100 and sub.y is not None and ds.y is not None
    # Drawn at random over the whole split (not its first samples), the same every time, labels kept with them.
    rows_of = [int(np.flatnonzero((ds.X == x).all(axis=(1, 2, 3)))[0]) for x in sub.X]
    assert rows_of == sorted(rows_of) and rows_of[-1] > 150 and rows_of != list(range(100))
    assert (ds.y[rows_of] == sub.y).all() and (evaluation_sample(ds, 100).X == sub.X).all()
    assert evaluation_sample(ds, 300) is ds and evaluation_sample(ds, None) is ds
    assert check_eval_limit("all") == "all" and check_eval_limit(7) == 7
    for bad in (0, -1, 2.5, True, "most"):
        with pytest.raises(ValueError, match=f"eval_limit must be a positive number of samples or 'all', got {bad!r}"):
            check_eval_limit(bad)
    code, _, err = call(capsys, *TRAIN, "--eval-limit", "0", "--out", str(tmp_path / "r"))
    assert code == 2
    one_line(err, "--eval-limit", "expected a positive number of samples or 'all', got '0'")
    assert not (tmp_path / "r").exists()
