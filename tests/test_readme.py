"""The README's examples run as written, and its family table lists every registered family."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import aekit

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("code", _blocks("python"))
def test_python_examples_run(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})


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
