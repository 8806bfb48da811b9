"""The application commands at their inputs: image folders of mixed kinds, colorize's run, label files, masks,
--neighbors and the write targets. Each refusal is one line naming the flag, and nothing is written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aekit
from aekit.cli.main import main
from aekit.data.datasets import read_image
from aekit.report.figures import restoration_figure

TINY = {"hidden_dims": (8,), "latent_dim": 4, "max_epochs": 1, "random_state": 0, "device": "cpu", "verbose": 0}
N_TEST = len(aekit.load_dataset("digits", split="test"))  # what `anomaly` scores by default


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A denoising and a plain run on digits, and two colour runs that were not trained to colorize."""
    root = tmp_path_factory.mktemp("app-inputs")
    colour = root / "colour.npy"
    rng = np.random.default_rng(0)
    np.save(colour, np.broadcast_to(rng.random((40, 3, 1, 1)), (40, 3, 8, 8)).astype(np.float32))
    specs = {
        "dae": ("denoising", {"corruption": "masking:0.25"}, {"name": "digits", "limit": 60}),
        "ae": ("autoencoder", {}, {"name": "digits", "limit": 60}),
        "colour-ae": ("autoencoder", {}, {"name": str(colour)}),
        "colour-gaussian": ("denoising", {"corruption": "gaussian:0.1"}, {"name": str(colour)}),
    }
    for name, (family, params, data) in specs.items():
        aekit.train_run(family, {**TINY, **params}, data, root / name, eval_limit=20)
    return {name: root / name for name in specs}


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(arr, mode).save(path)
    return path


def _gray_folder(folder: Path, n: int = 3) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        _png(folder / f"img{i}.png", (rng.random((8, 8)) * 255).astype(np.uint8))
    return folder


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], *patterns: str) -> str:
    """Run a command that must be refused (exit 2) with one line matching every pattern and no warning."""
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aekit: error: "), err
    for pattern in patterns:
        assert re.search(pattern, lines[0]), (pattern, lines[0])
    assert "Warning" not in err and "Traceback" not in err
    return lines[0]


# ------------------------------------------------------------------------ 1. a folder of mixed images


def test_denoise_a_folder_mixing_gray_colour_rgba_16bit_and_palette_images(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "mix"
    src.mkdir()
    rng = np.random.default_rng(2)
    _png(src / "a-gray.png", (rng.random((8, 8)) * 255).astype(np.uint8))
    _png(src / "b-rgb.png", (rng.random((8, 8, 3)) * 255).astype(np.uint8))
    _png(src / "c-rgba.png", (rng.random((8, 8, 4)) * 255).astype(np.uint8), "RGBA")
    _png(src / "d-16bit.png", (rng.random((8, 8)) * 65535).astype(np.uint16))
    palette = Image.fromarray((rng.random((8, 8)) * 3).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    palette.save(src / "e-palette.png")
    out = tmp_path / "out"
    figure = runs["dae"] / "app-denoise.png"
    figure.unlink(missing_ok=True)
    assert main(["denoise", str(runs["dae"]), "--data", str(src), "--out", str(out)]) == 0
    assert "Warning" not in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in src.iterdir())
    for p in out.iterdir():
        assert read_image(p).shape == read_image(src / p.name).shape
    assert figure.is_file()
    # The figure itself: a row of gray and colour images shows them all, in colour.
    png = restoration_figure([("in", [np.zeros((1, 8, 8)), np.ones((3, 8, 8))]),
                              ("out", [np.zeros((1, 8, 8)), np.ones((3, 8, 8))])], title="t")
    assert png.startswith(b"\x89PNG")


# ------------------------------------------------------------------------ 2. colorize's run


@pytest.mark.parametrize(("name", "why"), [("colour-ae", "'autoencoder' run trained without a corruption"),
                                           ("colour-gaussian", "'denoising' run trained with the corruption "
                                                               "'gaussian:0.1'")])
def test_colorize_refuses_a_colour_run_not_trained_with_the_grayscale_corruption(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, why: str
) -> None:
    gray = tmp_path / "gray.npy"
    np.save(gray, np.random.default_rng(3).random((4, 8, 8)).astype(np.float32))
    out = tmp_path / "c.npy"
    _refused(capsys, ["colorize", str(runs[name]), "--data", str(gray), "--out", str(out)],
             f"RUN {re.escape(str(runs[name]))}", re.escape(why), "--family denoising --corruption grayscale")
    assert not out.exists() and not (runs[name] / "app-colorize.png").exists()


# ------------------------------------------------------------------------ 3. label files


def _label_file(folder: Path, content: object) -> Path:
    """A labels file in ``folder``: text as given (a .txt), anything else as a .npy array."""
    labels = folder / ("labels.txt" if isinstance(content, str) else "labels.npy")
    if isinstance(content, str):
        labels.write_text(content)
    else:
        np.save(labels, content)
    return labels


@pytest.mark.parametrize(("content", "message"), [
    (np.array(["a"] * N_TEST), r"holds the label 'a', not a number"),
    ("a\n" * N_TEST, r"holds the label 'a', not a number"),
    (np.arange(N_TEST) + 0.5, r"holds the label 0\.5, not a whole number"),
    (np.array([1e30] + [0] * (N_TEST - 1)), r"holds the label 1e\+30, too large for a class label"),
    (np.array([np.nan] + [0] * (N_TEST - 1)), r"holds the label nan, not a finite number"),
    ("", r"holds no labels"),
    (np.zeros((N_TEST, 2)), r"shape \(\d+, 2\); give one label per sample"),
], ids=["words-npy", "words-txt", "floats", "huge", "nan", "empty-txt", "two-columns"])
def test_anomaly_label_files_give_one_clear_message(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: object, message: str
) -> None:
    labels = _label_file(tmp_path, content)
    _refused(capsys, ["anomaly", str(runs["ae"]), "--labels", str(labels), "--normal-label", "0"],
             f"^aekit: error: --labels {re.escape(str(labels))} ", message)


@pytest.mark.parametrize(("content", "message"), [
    (np.arange(1797) + 0.5, r"holds the label 0\.5, not a whole number"),
    (np.array([1e30] + [0] * 1796), r"holds the label 1e\+30, too large"),
    (np.array(["a"] * 1797), r"holds the label 'a', not a number"),
    (np.array([-1] + [0] * 1796), r"holds the negative label -1; a classifier needs a class label"),
    ("", r"holds no labels"),
], ids=["floats", "huge", "words", "negative", "empty-txt"])
def test_features_label_files_give_one_clear_message(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: object, message: str
) -> None:
    labels = _label_file(tmp_path, content)
    line = _refused(capsys, ["features", str(runs["ae"]), "--labels", str(labels)],
                    f"^aekit: error: --labels {re.escape(str(labels))} ", message)
    assert "-1 marks" not in line


def test_features_reads_a_text_label_file(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train, test = aekit.load_dataset("digits", limit=50), aekit.load_dataset("digits", split="test", limit=50)
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{int(v)}\n" for v in np.concatenate([train.y, test.y])))
    assert main(["features", str(runs["ae"]), "--labels", str(labels), "--limit", "50", "--no-raw", "--json"]) == 0
    assert '"accuracy"' in capsys.readouterr().out


# ------------------------------------------------------------------------ 4. an empty mask, a 0x0 block


def test_inpaint_refuses_a_mask_that_marks_no_pixel(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d.npy"
    np.save(data, aekit.load_dataset("digits").X[:20])
    out = tmp_path / "o.npy"
    report = runs["dae"] / "app-inpaint.png"
    report.unlink(missing_ok=True)
    _refused(capsys, ["inpaint", str(runs["dae"]), "--data", str(data), "--split", "all", "--mask", "random:0",
                      "--out", str(out), "--clean", str(data)], "--mask random:0 marks no pixel", "nothing to inpaint")
    np.save(tmp_path / "none.npy", np.zeros((20, 8, 8), bool))
    _refused(capsys, ["inpaint", str(runs["dae"]), "--data", str(data), "--mask", str(tmp_path / "none.npy"),
                      "--out", str(out)], "marks no pixel", "nothing to inpaint")
    folder = _gray_folder(tmp_path / "imgs")
    _refused(capsys, ["inpaint", str(runs["dae"]), "--data", str(folder), "--mask", "random:0",
                      "--out", str(tmp_path / "filled")], "nothing to inpaint")
    _refused(capsys, ["inpaint", str(runs["dae"]), "--data", str(data), "--mask", "block:0", "--out", str(out)],
             "block:0", "must be at least 1")
    assert not out.exists() and not (tmp_path / "filled").exists() and not report.exists()


def test_inpaint_scores_an_image_without_masked_pixels_as_undefined_without_warnings(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One image of two has masked pixels: its scores are the mean, the other's are undefined.
    data = tmp_path / "d.npy"
    np.save(data, aekit.load_dataset("digits").X[:2])
    mask = np.zeros((2, 8, 8), bool)
    mask[0, 2:5, 2:5] = True
    np.save(tmp_path / "m.npy", mask)
    assert main(["inpaint", str(runs["dae"]), "--data", str(data), "--mask", str(tmp_path / "m.npy"),
                 "--out", str(tmp_path / "o.npy"), "--clean", str(data), "--json"]) == 0
    import json

    summary = json.loads(capsys.readouterr().out)
    assert summary["images"][1]["psnr"] is None and summary["mean_psnr"] == summary["images"][0]["psnr"]


# ------------------------------------------------------------------------ 5. --neighbors


def test_features_knn_names_neighbors_and_the_largest_valid_value(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _refused(capsys, ["features", str(runs["ae"]), "--classifier", "knn", "--neighbors", "5000"],
             "--neighbors 5000 is more than the 1437 training samples", "--neighbors 1437 or less")
    _refused(capsys, ["features", str(runs["ae"]), "--classifier", "knn", "--neighbors", "51", "--limit", "50"],
             "--neighbors 50 or less")


# ------------------------------------------------------------------------ 6. a (1, H, W) mask for a folder


def test_inpaint_folder_takes_a_npy_mask_with_a_leading_axis(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _gray_folder(tmp_path / "imgs")
    mask = np.zeros((1, 8, 8), bool)
    mask[0, 2:5, 3:6] = True
    np.save(tmp_path / "m.npy", mask)
    out = tmp_path / "filled"
    assert main(["inpaint", str(runs["dae"]), "--data", str(folder), "--mask", str(tmp_path / "m.npy"),
                 "--out", str(out)]) == 0
    capsys.readouterr()
    for p in folder.iterdir():
        before, after = np.asarray(Image.open(p)), np.asarray(Image.open(out / p.name))
        np.testing.assert_array_equal(after[~mask[0]], before[~mask[0]])
    np.save(tmp_path / "big.npy", np.ones((1, 9, 9), bool))
    _refused(capsys, ["inpaint", str(runs["dae"]), "--data", str(folder), "--mask", str(tmp_path / "big.npy"),
                      "--out", str(tmp_path / "other")], r"the mask is 9x9 but img0\.png is 8x8")
    np.save(tmp_path / "three.npy", np.ones((3, 8, 8), bool))
    _refused(capsys, ["inpaint", str(runs["dae"]), "--data", str(folder), "--mask", str(tmp_path / "three.npy"),
                      "--out", str(tmp_path / "other")], r"has shape \(3, 8, 8\); a \.npy mask for a folder")
    assert not (tmp_path / "other").exists()


# ------------------------------------------------------------------------ 7. JPEG inputs


def test_inpaint_writes_a_jpeg_as_png_so_the_known_pixels_stay_exact(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(4)
    Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(folder / "photo.jpg", quality=80)
    out = tmp_path / "filled"
    assert main(["inpaint", str(runs["dae"]), "--data", str(folder), "--mask", "block:3x3", "--out", str(out)]) == 0
    assert "photo.jpg -> photo.png" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["photo.png"]
    before = np.asarray(Image.open(folder / "photo.jpg").convert("RGB"))
    after = np.asarray(Image.open(out / "photo.png"))
    changed = (before != after).any(axis=-1)
    assert 0 < changed.sum() <= 9  # only the 3x3 block was filled
    # Two inputs that would be written to the same file are refused before anything is written.
    Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(folder / "photo.png")
    _refused(capsys, ["inpaint", str(runs["dae"]), "--data", str(folder), "--mask", "block:3x3",
                      "--out", str(tmp_path / "again")], "photo.jpg and photo.png would both be written to photo.png")
    assert not (tmp_path / "again").exists()


# ------------------------------------------------------------------------ 8. write targets


def test_write_targets_are_checked_before_anything_is_written(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _gray_folder(tmp_path / "imgs")
    out = tmp_path / "out"
    (out / "img2.png").mkdir(parents=True)
    _refused(capsys, ["denoise", str(runs["dae"]), "--data", str(folder), "--out", str(out), "--overwrite"],
             f"--out {re.escape(str(out))}: .*img2.png is a folder")
    assert sorted(p.name for p in out.iterdir()) == ["img2.png"]
    afile = tmp_path / "afile"
    afile.write_text("mine")
    _refused(capsys, ["anomaly", str(runs["ae"]), "--out", str(afile / "x.csv")],
             f"--out {re.escape(str(afile / 'x.csv'))}: {re.escape(str(afile))} is a file, not a folder")
    (tmp_path / "s-histogram.png").mkdir()  # where the histogram beside --out goes
    _refused(capsys, ["anomaly", str(runs["ae"]), "--normal-label", "0", "--out", str(tmp_path / "s.csv")],
             "s-histogram.png is a folder, not a file")
    assert not (tmp_path / "s.csv").exists()
    data = tmp_path / "d.npy"
    np.save(data, aekit.load_dataset("digits").X[:5])
    for args in (["--data", str(data), "--out", str(afile / "x.npy")],
                 ["--data", str(folder), "--out", str(afile / "sub" / "restored")]):
        _refused(capsys, ["denoise", str(runs["dae"]), *args], f"{re.escape(str(afile))} is a file, not a folder")
    assert afile.read_text() == "mine"
