"""The README's examples run as written, and its family table lists every registered family.

Every ``aekit`` command of the README's bash blocks runs here, in order, in one scratch directory, on
the bundled digits with at most two epochs. A command that the README resumes (``--resume RUN``) is
first killed, as the README says happens, between its last checkpoint and the saving of the model.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import aekit
from aekit.cli.main import main
from aekit.model.base import BaseAutoencoder

README = Path(__file__).resolve().parents[1] / "README.md"
# The README's commands train for up to 50 epochs; the test keeps each fit to this many.
TEST_EPOCHS = "2"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _commands() -> list[list[str]]:
    """Every ``aekit ...`` command of the bash blocks, in order, as argument lists (comments dropped)."""
    found = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            for part in line.split("&&"):
                argv = shlex.split(part, comments=True)
                if argv and argv[0] == "aekit":
                    found.append(argv[1:])
    return found


def _small(argv: list[str]) -> list[str]:
    """The same command with at most TEST_EPOCHS epochs (one more where it extends a finished run)."""
    out = list(argv)
    if "--epochs" in out:
        # Extending a finished run (--resume with --epochs) must ask for more epochs than it has.
        out[out.index("--epochs") + 1] = str(int(TEST_EPOCHS) + 1) if "--resume" in out else TEST_EPOCHS
    elif out[0] == "demo":
        out += ["--epochs", TEST_EPOCHS]
    return out


@pytest.mark.parametrize("code", _blocks("python"))
def test_python_examples_run(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})


def test_readme_commands_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    commands = _commands()
    assert len(commands) >= 10 and commands[0] == ["demo"]
    resumed = {argv[argv.index("--resume") + 1] for argv in commands if "--resume" in argv}
    assert resumed, "the README shows --resume"
    fit = BaseAutoencoder.fit

    def killed_after_training(self: Any, *args: Any, **kwargs: Any) -> Any:
        fit(self, *args, **kwargs)
        raise KeyboardInterrupt  # as a Ctrl-C after the last checkpoint, before the model is saved

    for argv in commands:
        small = _small(argv)
        if small[0] == "train" and "--out" in small and small[small.index("--out") + 1] in resumed:
            with monkeypatch.context() as m:
                m.setattr(BaseAutoencoder, "fit", killed_after_training)
                assert main(small) == 130, small
            _, err = capsys.readouterr()
            assert "aekit train --resume" in err  # the message says how to continue
            continue
        code = main(small)
        _, err = capsys.readouterr()
        assert code == 0, f"aekit {shlex.join(argv)} failed: {err}"

    # What the commands promise in their comments.
    for run in ("aekit-demo", "runs/ae", "runs/pca8", "runs/dae", "runs/fa", "runs/hinton"):
        assert (tmp_path / run / "report.html").is_file(), run
    import numpy as np

    assert np.load(tmp_path / "codes.npy").shape == (1797, 8)
    for png in ("recon.png", "samples.png", "ae-samples.png"):
        with Image.open(tmp_path / png) as im:
            assert im.format == "PNG" and min(im.size) > 100, png


def test_family_table_lists_every_family() -> None:
    text = README.read_text()
    for name, info in aekit.list_families().items():
        assert f"| `{name}` | `{info.estimator.__name__}` |" in text, name
        assert getattr(aekit, info.estimator.__name__) is info.estimator, f"aekit.{info.estimator.__name__} is not exported"


def test_two_commands_match_ci() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    bash = _blocks("bash")
    assert "aekit demo" in bash[0]
    assert bash[1].strip() in ci
