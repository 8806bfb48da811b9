"""A SIGKILL at every file commit of ``aekit train``, then ``aekit train --resume``: the run ends exact.

Each kill point is a call of ``os.replace`` (every file aekit writes is committed by one): the
process kills itself with SIGKILL just before or just after the N-th rename. The run is then
resumed with ``aekit train --resume RUN`` and must end complete (``report.html`` present, status
done, no temporary file or lock left) with ``model.safetensors`` tensors and ``history.csv``
(timing columns apart) bitwise equal to those of an uninterrupted run; a kill before the run's
``config.json`` existed must give a clean refusal to resume and a clean fresh start.

Speed: one driver subprocess imports torch and aekit once, with one thread, then forks a child per
command; each child runs the same ``aekit.cli.main.main`` as ``python -m aekit.cli`` (one test below
runs the real module entry point too). The figures are replaced by a constant PNG in the children:
their content is not under test, the writes that commit them are. The networks are tiny (16 units,
``--limit 200``, 2 epochs). Every commit point of the autoencoder is tested, before and after the
rename; for denoising and for stacked (two layers, each pretrained for 2 epochs, then fine-tuned) a
spread of points covering every stage (first config, pretraining of each layer, fine-tuning, saving,
metrics, figures, report, final config) keeps the file near a minute on two busy cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from aekit.engine.rundir import TIMING_COLUMNS

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = ["--data", "digits", "--limit", "200", "--epochs", "2", "--latent-dim", "2", "--hidden-dims", "16",
        "--batch-size", "64", "--seed", "0", "--quiet", "--threads", "1", "--patience", "None"]
FAMILIES = {
    "autoencoder": ["--family", "autoencoder"],
    "denoising": ["--family", "denoising"],
    "stacked": ["--family", "stacked", "--hidden-dims", "16,8", "--pretrain-epochs", "2"],
}

DRIVER = r"""
import json, os, signal, sys

plan = json.loads(sys.argv[1])
import torch

torch.set_num_threads(1)
import aekit.report.html as H

PNG = b"\x89PNG\r\n\x1a\n constant figure"
H.reconstruction_figure = lambda *a, **k: PNG
H.loss_figure = lambda *a, **k: PNG
H.latent_map = lambda *a, **k: H.LatentMap(PNG, "constant", (0, 0, 1, 1), (1, 1), (0, 1), (0, 1), None, None)
H.samples_comparison_figure = lambda *a, **k: PNG
H.manifold_figure = lambda *a, **k: PNG
H._latent_explorer = lambda *a, **k: None
from aekit.cli.main import main
import functools
import sklearn.datasets

# Not under test, and slow on a busy machine: parsing the bundled digits (once here, shared by every
# child) and fsync (a SIGKILL, unlike a power cut, loses no written data).
sklearn.datasets.load_digits = functools.cache(sklearn.datasets.load_digits)
os.fsync = lambda fd: None

real_replace = os.replace
work = plan["work"]


def run(argv, log, kill_at=0, when=""):
    pid = os.fork()
    if pid == 0:
        count = [0]

        def replace(src, dst):
            count[0] += 1
            if count[0] == kill_at and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            real_replace(src, dst)
            if count[0] == kill_at and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


results = {}
ref = os.path.join(work, "ref")
# The reference run goes in this process: it imports and warms up what every forked child then shares.
commits = [0]


def counting(src, dst):
    commits[0] += 1
    real_replace(src, dst)


os.replace = counting
code = main(plan["argv"] + ["--out", ref])
os.replace = real_replace
total = commits[0]
results["reference"] = {"code": code, "commits": total}
if plan["spread"]:
    # The first two and last two commits, and others spread evenly between.
    k = plan["spread"]
    points = sorted({1, 2, total - 1, total, *(round(1 + i * (total - 1) / (k - 1)) for i in range(k))})
else:
    points = list(range(1, total + 1))
results["points"] = []
for n in points:
    for when in ("before", "after"):
        out = os.path.join(work, f"k{n}{when}")
        r = {"n": n, "when": when, "kill": run(plan["argv"] + ["--out", out], out + ".kill.log", n, when)}
        r["resume"] = run(["train", "--resume", out, "--quiet"], out + ".resume.log")
        if r["resume"] != 0 and not os.path.exists(os.path.join(out, "config.json")):
            r["fresh"] = run(plan["argv"] + ["--out", out], out + ".fresh.log")
        results["points"].append(r)
print(json.dumps(results))
"""


def drive(argv: list[str], work: Path, spread: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    plan = json.dumps({"argv": argv, "work": str(work), "spread": spread})
    proc = subprocess.run([sys.executable, "-c", DRIVER, plan], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def history(run: Path) -> list[dict[str, str]]:
    import csv

    with (run / "history.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def header(run: Path) -> list[str]:
    return (run / "history.csv").read_text().splitlines()[0].split(",")


def assert_same_run(run: Path, ref: Path, what: str) -> None:
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["status"] == "done", what
    assert (run / "report.html").is_file() and (run / "metrics.json").is_file(), what
    left = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.name.endswith(".tmp") or p.name == ".aekit.lock")
    assert left == [], f"{what}: {left}"
    assert not list(run.glob("pretrain-layer-*")), what
    a, b = load_file(str(run / "model.safetensors")), load_file(str(ref / "model.safetensors"))
    assert sorted(a) == sorted(b), what
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: tensor {k}")
    assert header(run) == header(ref), what
    assert history(run) == history(ref), what


@pytest.mark.parametrize("family", list(FAMILIES))
def test_kill_at_every_commit_then_resume(family: str, tmp_path: Path) -> None:
    argv = ["train", *FAMILIES[family], *TINY]
    if family == "stacked":
        # --hidden-dims above is the one that counts (argparse keeps the last).
        argv = ["train", *TINY, *FAMILIES[family]]
    # Every commit of the autoencoder; for the others the first two, the last two and a spread between.
    spread = {"autoencoder": 0, "denoising": 4, "stacked": 6}[family]
    result = drive(argv, tmp_path, spread)
    ref = tmp_path / "ref"
    assert result["reference"]["code"] == 0
    total = result["reference"]["commits"]
    assert total >= 12  # config, checkpoints and histories of 2 epochs, the final files
    tested = result["points"]
    assert len(tested) >= 2 * (total if not spread else spread)
    for r in tested:
        run = tmp_path / f"k{r['n']}{r['when']}"
        what = f"{family}: kill {r['when']} commit {r['n']} of {total}"
        assert r["kill"] == -signal.SIGKILL, f"{what}: the process was not killed ({r['kill']})"
        if "fresh" in r:
            # Killed before the run existed: --resume refuses in one line, a fresh start works.
            log = Path(str(run) + ".resume.log").read_text()
            assert r["resume"] == 2 and "not an aekit run directory" in log and "Traceback" not in log, f"{what}: {log}"
            assert r["fresh"] == 0, f"{what}: " + Path(str(run) + ".fresh.log").read_text()
        else:
            log = Path(str(run) + ".resume.log").read_text()
            # Killed after its last commit, the run is complete: resuming it has nothing left to do.
            finished = r["n"] == total and r["when"] == "after"
            assert r["resume"] == (2 if finished else 0), f"{what}: {log}"
            if finished:
                assert "is complete (status done): nothing to resume" in log, log
        assert_same_run(run, ref, what)


    if family == "autoencoder":
        _kill_through_the_module_entry_point(argv, tmp_path)


def _kill_through_the_module_entry_point(argv: list[str], tmp_path: Path) -> None:
    """The real ``python -m aekit.cli``: killed after its second commit, resumed, equal to the straight run."""
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    wrapper = (
        "import os, signal, runpy, sys\n"
        "real = os.replace\n"
        "n = [0]\n"
        "def replace(a, b):\n"
        "    real(a, b)\n"
        "    n[0] += 1\n"
        "    if n[0] == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.replace = replace\n"
        "sys.argv = ['aekit', *sys.argv[1:]]\n"
        "runpy.run_module('aekit.cli', run_name='__main__')\n"
    )
    run = tmp_path / "module-run"
    killed = subprocess.run([sys.executable, "-c", wrapper, *argv, "--out", str(run)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads((run / "config.json").read_text())["status"] == "training"
    resumed = subprocess.run([sys.executable, "-m", "aekit.cli", "train", "--resume", str(run), "--quiet"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run, tmp_path / "ref", "module entry point")
