"""What a new user meets first: a fast start, suggestions for typos, honest names and messages.

``--help``, ``list`` and ``--version`` must not import PyTorch or scikit-learn (checked in a fresh
interpreter); the family catalog read from the source equals the registry; misspelled flags, commands
and choices get a suggestion; metrics are named for the data; messages say which data were used; the
report knows no family and draws every stage of training.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import aekit
from aekit.cli.main import main
from aekit.model.catalog import catalog
from aekit.model.registry import families
from aekit.report.figures import _loss_chart, reconstruction_pairs
from aekit.report.metrics import METRIC_ORDER, ordered_metrics, reconstruction_metrics

ROOT = Path(__file__).resolve().parents[1]
# A random start: these runs check the files and metrics of a sigmoid network with cross-entropy (the default
# PCA start trains on the squared error; tests/test_defaults.py covers it).
TINY = ["--latent-dim", "2", "--hidden-dims", "16", "--batch-size", "32", "--seed", "0", "--limit", "120", "--quiet",
        "--init", "random"]


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------------- fast start

_PROBE = (
    "import json, sys\n"
    "from aekit.cli import main\n"
    "code = main(json.loads(sys.argv[1]))\n"
    "print(json.dumps([code, 'torch' in sys.modules, 'sklearn' in sys.modules]))\n"
)


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["list", "--json"], ["--version"], ["evaluate", "--help"]])
def test_quick_commands_import_neither_torch_nor_sklearn(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    code, torch_loaded, sklearn_loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert code == 0
    assert not torch_loaded, f"aekit {' '.join(argv)} imported torch"
    assert not sklearn_loaded, f"aekit {' '.join(argv)} imported sklearn"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "--version")
    assert code == 0 and out.strip() == f"aekit {aekit.__version__}"


def test_package_attributes_are_lazy_but_complete() -> None:
    for name in aekit.__all__:
        assert getattr(aekit, name) is not None, name
        assert name in dir(aekit)
    assert aekit.list_families is families
    with pytest.raises(AttributeError, match="module 'aekit' has no attribute 'Nope'"):
        aekit.Nope  # noqa: B018


def test_catalog_equals_the_registry() -> None:
    read = catalog()
    registered = families()
    assert list(read) == list(registered)
    for name, info in registered.items():
        entry = read[name]
        assert entry.description == info.description, name
        assert entry.capabilities == info.capabilities, name
        assert entry.estimator == info.estimator.__name__, name
        assert entry.module == info.estimator.__module__, name


def test_catalog_refuses_a_computed_register_call(tmp_path: Path) -> None:
    (tmp_path / "fam.py").write_text("@register(NAME, 'a family')\nclass Fam:\n    pass\n")
    with pytest.raises(ValueError, match=r"fam.py:1: the register\(\.\.\.\) call of Fam must use literal arguments"):
        catalog(tmp_path)


def test_list_json_comes_from_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [f["name"] for f in listed] == list(families())
    for f in listed:
        info = families()[f["name"]]
        assert f["estimator"] == info.estimator.__name__ and set(f["capabilities"]) == info.capabilities


# ---------------------------------------------------------------------------------- suggestions


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["list", "--jsn"], "unrecognized arguments: --jsn; did you mean --json?"),
        (["evalute", "run"], "invalid choice: 'evalute'"),
        (["evaluate", "run", "--split", "tset"], "did you mean test?"),
        (["encode", "run", "--out", "c.npy", "--lmit", "3"], "unrecognized arguments: --lmit 3; did you mean --limit?"),
        (["--verison"], "unrecognized arguments: --verison; did you mean --version?"),
        (["train", "--family", "autoencoder", "--latnet-dim", "3", "--out", "r"],
         "unrecognized arguments: --latnet-dim 3; did you mean --latent-dim?"),
        (["train", "--family", "autoencoder", "--latnet-dim=3", "--epoch", "2", "--out", "r"],
         "did you mean --latent-dim for --latnet-dim, --epochs for --epoch?"),
    ],
)
def test_misspellings_get_a_suggestion(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("aekit: error: "), err
    assert message in err
    if argv[0] == "evalute":
        assert "did you mean evaluate?" in err


def test_no_suggestion_for_a_flag_unlike_any(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "list", "--zzzzzz")
    assert code == 2 and "did you mean" not in err


# ------------------------------------------------------------------------------ metric names


def test_metrics_are_named_for_the_data() -> None:
    rng = np.random.default_rng(0)
    table = rng.random((6, 5))
    m = reconstruction_metrics(table, table * 0.9)
    assert list(m) == ["sq_err_per_sample", "mse_per_feature", "bce_per_feature", "n_samples"]
    signal = rng.standard_normal((6, 2, 7))
    assert list(reconstruction_metrics(signal, signal + 0.1)) == ["sq_err_per_sample", "mse_per_feature", "n_samples"]
    images = rng.random((6, 1, 4, 4))
    m = reconstruction_metrics(images, images * 0.9)
    assert list(m) == ["sq_err_per_image", "mse_per_pixel", "bce_per_pixel", "psnr_db", "n_samples"]
    flat = reconstruction_metrics(images.reshape(6, -1), images.reshape(6, -1) * 0.9, images=True)
    assert flat["sq_err_per_image"] == pytest.approx(m["sq_err_per_image"])


def test_ordered_metrics_undo_a_key_sort() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((5, 1, 3, 3))
    m = reconstruction_metrics(X, X * 0.5)
    record = {"train": m, "test": m}
    resorted = json.loads(json.dumps(record, sort_keys=True))  # what a key-sorted metrics.json reads back as
    assert list(resorted) == ["test", "train"]
    back = ordered_metrics(resorted)
    assert list(back) == ["train", "test"]
    assert list(back["test"]) == list(m)
    assert [k for k in METRIC_ORDER if k in m] == list(m)


# ------------------------------------------------------------------------- tabular run, messages


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tab")
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((60, 2)) @ rng.standard_normal((2, 6)) + 0.1 * rng.standard_normal((60, 6)))
    np.save(root / "table.npy", X.astype(np.float32))
    run = root / "lin"
    assert main(["train", "--family", "linear", "--latent-dim", "2", "--data", str(root / "table.npy"), "--quiet",
                 "--out", str(run)]) == 0
    return run


def test_tabular_run_reports_per_sample_metrics(tabular_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    metrics = json.loads((tabular_run / "metrics.json").read_text())
    for section in metrics.values():
        assert "sq_err_per_sample" in section and "mse_per_feature" in section
        assert "sq_err_per_image" not in section and "psnr_db" not in section
    code, out, _ = call(capsys, "evaluate", str(tabular_run), "--json")
    assert code == 0 and "sq_err_per_sample" in json.loads(out)
    html = (tabular_run / "report.html").read_text()
    assert "<td>sq_err_per_sample</td>" in html and "psnr_db" not in html


def test_reconstruct_message_agrees_with_the_figure(
    tabular_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "rec.png"
    code, out, _ = call(capsys, "reconstruct", str(tabular_run), "--out", str(png))
    assert code == 0
    assert "wrote a figure of 4 originals beside their reconstructions" in out
    assert "all 60 samples" in out
    with Image.open(png) as im:
        # One panel per pair shown: the figure is (1.6 * 4 + 0.8) inches tall at 110 dpi.
        assert im.size == (8 * 110, round((1.6 * 4 + 0.8) * 110))
    assert reconstruction_pairs(np.zeros((60, 6)), 10) == 4
    assert reconstruction_pairs(np.zeros((60, 1, 8, 8)), 10) == 10
    code, out, _ = call(capsys, "reconstruct", str(tabular_run), "--out", str(png), "--n", "2", "--json", "--overwrite")
    assert json.loads(out)["pairs_shown"] == 2


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("dig") / "ae"
    assert main(["train", "--family", "autoencoder", "--data", "digits", "--epochs", "2", *TINY, "--out", str(run)]) == 0
    return run


def test_messages_name_the_data_naturally(digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code, out, _ = call(capsys, "encode", str(digits_run), "--out", str(tmp_path / "z.npy"))
    assert code == 0 and "(digits, all 1797 samples)" in out
    code, out, _ = call(capsys, "evaluate", str(digits_run))
    assert code == 0 and out.splitlines()[0] == "digits, 360 samples of the test split"
    code, out, _ = call(capsys, "encode", str(digits_run), "--split", "train", "--limit", "5", "--out",
                        str(tmp_path / "z2.npy"))
    assert code == 0 and "(digits, the first 5 samples of the train split)" in out


def test_every_data_command_states_its_default_split(capsys: pytest.CaptureFixture[str]) -> None:
    expected = {
        "evaluate": "default: test: the test split", "report": "default: test: the test split",
        "encode": "default: all: every sample", "reconstruct": "default: all: every sample",
        "generate": "default: the split the run was trained on",
    }
    for command, text in expected.items():
        code, out, _ = call(capsys, command, "--help")
        assert code == 0
        assert text in " ".join(out.split()), command


def test_report_keeps_the_order_training_printed(digits_run: Path) -> None:
    html = (digits_run / "report.html").read_text()
    table = html[html.index("<h2>Metrics</h2>"):]
    positions = [table.index(f"<td>{k}</td>") for k in ("sq_err_per_image", "mse_per_pixel", "psnr_db", "n_samples")]
    assert positions == sorted(positions)
    assert table.index("<th>train</th>") < table.index("<th>test</th>")


# ------------------------------------------------------------------------------- generation


def test_factor_analysis_samples_its_model_covariance() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 2)) @ rng.standard_normal((2, 5)) * 3.0 + 0.3 * rng.standard_normal((400, 5)) + 7.0
    fa = aekit.FactorAnalysisAutoencoder(latent_dim=2).fit(X.astype(np.float32))
    state = np.random.get_state()
    S = fa.sample(100_000, random_state=0).astype(np.float64)
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # the global RNG is not touched
    assert S.shape == (100_000, 5)
    # The model covariance in the units of the data: the scaling x = s * x_s + shift applied to W W^T + Psi.
    s = fa.scaler_.scale.astype(np.float64)
    W = fa.components_.T.astype(np.float64)
    C = (W @ W.T + np.diag(fa.noise_variance_)) * np.outer(s, s)
    mu = fa.mean_ * s + fa.scaler_.shift
    np.testing.assert_allclose(S.mean(axis=0), mu, atol=0.03 * math.sqrt(C.diagonal().max()))
    np.testing.assert_allclose(np.cov(S, rowvar=False), C, atol=0.03 * C.diagonal().max())
    np.testing.assert_array_equal(fa.sample(3, random_state=1), fa.sample(3, random_state=1))
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1, got 0"):
        fa.sample(0)


def test_generate_uses_the_prior_of_factor_analysis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "fa"
    assert main(["train", "--family", "factor-analysis", "--latent-dim", "3", "--data", "digits", "--limit", "200",
                 "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    code, out, _ = call(capsys, "generate", str(run), "--n", "4", "--out", str(tmp_path / "s.npy"), "--json")
    assert code == 0
    res = json.loads(out)
    assert res["shape"] == [4, 1, 8, 8] and "prior" in res["method"] and "Gaussian" not in res["method"]
    code, _, err = call(capsys, "generate", str(run), "--data", "digits", "--out", str(tmp_path / "t.npy"))
    assert code == 2 and "samples from its own prior" in err
    code, out, _ = call(capsys, "generate", "--help")
    assert "(factor-analysis, vae)" in out and "sample method" not in out


# ----------------------------------------------------------------------------------- report


def test_report_names_no_family() -> None:
    names = set(catalog()) | {e.estimator for e in catalog().values()}
    for module in ("html.py", "figures.py", "metrics.py"):
        tree = ast.parse((ROOT / "src" / "aekit" / "report" / module).read_text())
        literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        identifiers = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert not (literals | identifiers) & names, module
        assert "FIGURE_FILES" not in identifiers


def _axes_of(history: list[dict[str, float]]) -> Any:
    fig = _loss_chart(history, "epoch")
    assert fig is not None
    fig.canvas.draw()
    return fig.axes[0]


def test_loss_chart_shows_one_epoch_and_integer_ticks() -> None:
    ax = _axes_of([{"epoch": 1.0, "loss": 2.0, "val_loss": 2.5}])
    assert all(line.get_marker() == "o" for line in ax.lines if line.get_label() and "loss" in line.get_label())
    ax = _axes_of([{"epoch": 1.0, "loss": 2.0}, {"epoch": 2.0, "loss": 1.5}])
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_loss_chart_labels_each_training_stage() -> None:
    rows = [{"layer": 1.0, "epoch": e, "loss": 3.0 - e / 10} for e in (1.0, 2.0)]
    rows += [{"layer": 2.0, "epoch": e, "loss": 2.0 - e / 10} for e in (1.0, 2.0)]
    rows += [{"layer": 0.0, "epoch": e, "loss": 1.0 - e / 10, "val_loss": 1.1} for e in (1.0, 2.0, 3.0)]
    ax = _axes_of(rows)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["train loss (pretraining, layer 1)", "train loss (pretraining, layer 2)",
                      "train loss (fine-tuning)", "validation loss (fine-tuning)"]
    # One running epoch axis: the fine-tuning stage starts after the four pretraining epochs.
    assert list(ax.lines[2].get_xdata()) == [5.0, 6.0, 7.0]


def test_stacked_report_shows_pretraining(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "sda"
    assert main(["train", "--family", "stacked", "--data", "digits", "--limit", "120", "--hidden-dims", "16",
                 "--latent-dim", "4", "--pretrain-epochs", "1", "--epochs", "1", "--quiet", "--out", str(run)]) == 0
    html = (run / "report.html").read_text()
    assert "layer-wise pretraining of each layer" in html
    with Image.open(run / "loss.png") as im:
        assert im.size[0] > 0 and im.size[1] > 0


# ------------------------------------------------------------------------------- packaging


def test_description_names_only_families_that_exist() -> None:
    description = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["description"].lower()
    # A word of the description and the family it promises.
    for word, family in (("variational", "vae"), ("semi-supervised", "semi-supervised"), ("vae", "vae")):
        if family not in catalog():
            assert word not in description, word
    assert "autoencoder" in description


def test_json_and_text_keep_the_computed_order(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code, out, _ = call(capsys, "evaluate", str(digits_run), "--json")
    assert code == 0
    assert list(json.loads(out))[:5] == ["sq_err_per_image", "mse_per_pixel", "bce_per_pixel", "psnr_db", "n_samples"]
    code, out, _ = call(capsys, "evaluate", str(digits_run))
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert rows == ["sq_err_per_image", "mse_per_pixel", "bce_per_pixel", "psnr_db", "n_samples"]


def test_metrics_file_keeps_the_computed_order(digits_run: Path) -> None:
    from aekit.report.metrics import METRIC_ORDER

    saved = json.loads((digits_run / "metrics.json").read_text())
    assert list(saved) == ["train", "test"]
    for section in saved.values():
        names = [k for k in section if k in METRIC_ORDER]
        assert names == sorted(names, key=METRIC_ORDER.index) and names != sorted(names)
