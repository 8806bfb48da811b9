"""User files that the loaders once misread or refused with a misleading message: each is made in tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aekit.data.datasets import load_dataset
from aekit.data.preprocessing import check_labels


def _png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


# ------------------------------------------------------------------ image folders


def test_16_bit_image_in_a_colour_folder_is_scaled_not_clipped(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", np.full((4, 4), 30000, np.uint16))
    _png(tmp_path / "b.png", np.full((4, 4, 3), 100, np.uint8))
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode.startswith("I")
    ds = load_dataset(tmp_path, split="all")
    assert ds.X.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(ds.X[0], 30000 / 65535, rtol=1e-6)
    np.testing.assert_allclose(ds.X[1], 100 / 255, rtol=1e-6)
    # Alone, it stays one gray channel with the same scale.
    (tmp_path / "b.png").unlink()
    np.testing.assert_allclose(load_dataset(tmp_path, split="all").X, np.full((1, 1, 4, 4), 30000 / 65535), rtol=1e-6)


def test_images_in_folders_of_a_class_folder_belong_to_that_class(tmp_path: Path) -> None:
    _png(tmp_path / "cat" / "indoor" / "a.png", np.zeros((4, 4), np.uint8))
    _png(tmp_path / "cat" / "b.png", np.zeros((4, 4), np.uint8))
    _png(tmp_path / "dog" / "outdoor" / "deep" / "c.png", np.full((4, 4), 255, np.uint8))
    ds = load_dataset(tmp_path, split="all")
    assert ds.classes == ("cat", "dog")
    np.testing.assert_array_equal(ds.y, [0, 0, 1])
    np.testing.assert_array_equal(ds.X[:, 0, 0, 0], [0.0, 0.0, 1.0])


@pytest.mark.parametrize("suffix", [".bmp", ".tif", ".tiff", ".webp", ".gif"])
def test_other_readable_image_formats_are_read(tmp_path: Path, suffix: str) -> None:
    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    _png(tmp_path / f"a{suffix}", pixels)
    _png(tmp_path / "b.png", pixels)
    ds = load_dataset(tmp_path, split="all")
    assert len(ds) == 2
    # WebP is lossy and stored as RGB; the others keep the pixels exactly.
    if suffix != ".webp":
        np.testing.assert_allclose(ds.X[0, 0], pixels / 255.0, rtol=1e-6)


def test_a_folder_without_readable_images_names_the_files_it_skipped(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.heic").write_bytes(b"\x00")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(
        ValueError,
        match=r"empty of images: .*holds 2 other file\(s\), not read because of their suffix: cat/a\.heic, notes\.txt",
    ):
        load_dataset(tmp_path, split="all")


# ------------------------------------------------------------------ arrays


@pytest.mark.parametrize(
    "shape, dtype, keep",
    [((10, 32, 32, 4), np.uint8, r"X\[\.\.\., :3\]"), ((10, 32, 32, 4), np.float32, r"X\[\.\.\., :3\]"),
     ((10, 16, 16, 2), np.float32, r"X\[\.\.\., :1\]")],
    ids=["rgba-uint8", "rgba-float", "gray-alpha"],
)
def test_channels_last_with_alpha_is_refused(tmp_path: Path, shape: tuple[int, ...], dtype: type, keep: str) -> None:
    np.save(tmp_path / "x.npy", np.zeros(shape, dtype))
    with pytest.raises(
        ValueError,
        match=rf"x\.npy: X has shape {re.escape(str(shape))}, which looks like images with {shape[-1]} channels "
        rf"last \(N, H, W, C\).*Drop the alpha channel \({keep}.*or transpose to \(N, C, H, W\)",
    ):
        load_dataset(tmp_path / "x.npy", split="all")
    # Transposed as the message says, it loads with every channel.
    np.save(tmp_path / "x.npy", np.zeros(shape, dtype).transpose(0, 3, 1, 2))
    assert load_dataset(tmp_path / "x.npy", split="all").X.shape == (shape[0], shape[3], shape[1], shape[2])


def test_npz_labels_under_other_common_names(tmp_path: Path) -> None:
    X, y = np.random.default_rng(0).random((10, 3)), np.arange(10) % 3
    for key in ("label", "target", "Label"):
        np.savez(tmp_path / "a.npz", X=X, **{key: y})
        np.testing.assert_array_equal(load_dataset(tmp_path / "a.npz", split="all").y, y)
    for arrays, unread in [({"classes": y}, r"classes \(10,\)"), ({"y_train": y}, r"y_train \(10,\)")]:
        np.savez(tmp_path / "a.npz", X=X, **arrays)
        with pytest.raises(
            ValueError,
            match=rf"found no labels but arrays with one entry per sample that are not read: {unread}\. Labels are "
            r"read from y, labels, targets, label, target",
        ):
            load_dataset(tmp_path / "a.npz", split="all")
    # With x_train and x_test, a label array under another name is caught the same way.
    np.savez(tmp_path / "a.npz", x_train=X[:8], x_test=X[8:], classes_train=y[:8])
    with pytest.raises(ValueError, match=r"not read: classes_train \(8,\)"):
        load_dataset(tmp_path / "a.npz", split="train")
    # Arrays that cannot be labels (one entry per feature) are no reason to refuse the file.
    np.savez(tmp_path / "a.npz", X=X, mean=X.mean(axis=0))
    assert load_dataset(tmp_path / "a.npz", split="all").y is None


def test_empty_npz_archive_holds_no_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz")
    with pytest.raises(ValueError, match=r"e\.npz: the \.npz archive holds no arrays; save the data into it"):
        load_dataset(tmp_path / "e.npz", split="all")


# ------------------------------------------------------------------ labels


def test_labels_beyond_int64_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "big.npz", X=np.ones((40, 2)), y=np.full(40, 1e20))
    with pytest.raises(
        ValueError,
        match=r"big\.npz: labels must lie in the int64 range \(-2\*\*63 to 2\*\*63 - 1\), but y\[0\] is 1e\+20",
    ):
        load_dataset(tmp_path / "big.npz", split="all")
    np.savez(tmp_path / "big.npz", X=np.ones((2, 2)), y=np.array([1, 2**63], np.uint64))
    with pytest.raises(ValueError, match=r"but y\[1\] is 9\.22337e\+18"):
        load_dataset(tmp_path / "big.npz", split="all")
    (tmp_path / "big.csv").write_text("1,2,0\n3,4,1e20\n")
    with pytest.raises(
        ValueError,
        match=r"big\.csv: the label column \(column 2 \(0-based\)\) holds '1e20' at line 2, outside the int64",
    ):
        load_dataset(tmp_path / "big.csv", split="all", label_column=-1)
    with pytest.raises(ValueError, match=r"got 1 values outside the int64 range .*, such as \[1e\+20\]"):
        check_labels([1e20, 1, 2], 3)
    with pytest.raises(ValueError, match=r"got 1 values that are not integers, such as \[0\.5\]"):
        check_labels([1e20, 0.5, 2], 3)
    # The largest labels that fit are kept exactly.
    (tmp_path / "edge.csv").write_text(f"1,{2**63 - 1}\n2,{-(2**63)}\n")
    edge = load_dataset(tmp_path / "edge.csv", split="all", label_column=1)
    np.testing.assert_array_equal(edge.y, [2**63 - 1, -(2**63)])


# ------------------------------------------------------------------ .csv


def test_csv_with_the_numeric_header_pandas_writes(tmp_path: Path) -> None:
    A = np.array([[1.5, 2.0, 3.0], [4.0, 5.0, 6.0]])
    # DataFrame(A).to_csv(index=False), then the same with the row index (to_csv()).
    (tmp_path / "a.csv").write_text("0,1,2\n1.5,2.0,3.0\n4.0,5.0,6.0\n")
    (tmp_path / "b.csv").write_text(",0,1,2\n0,1.5,2.0,3.0\n1,4.0,5.0,6.0\n")
    for name in ("a.csv", "b.csv"):
        np.testing.assert_array_equal(load_dataset(tmp_path / name, split="all").X, A.astype(np.float32))
        # Names and indices agree: the index column is not counted.
        ds = load_dataset(tmp_path / name, split="all", label_column="2")
        np.testing.assert_array_equal(ds.y, [3, 6])
        np.testing.assert_array_equal(ds.X, A[:, :2].astype(np.float32))
    with pytest.raises(ValueError, match=r"has 3 columns after its index column, which is not counted"):
        load_dataset(tmp_path / "b.csv", split="all", label_column=3)
    # The row index pandas writes beside named columns is dropped as well.
    (tmp_path / "c.csv").write_text(",a,b\nr1,1,2\nr2,3,4\n")
    np.testing.assert_array_equal(load_dataset(tmp_path / "c.csv", split="all").X, [[1, 2], [3, 4]])
    # Any other first row of numbers is data.
    (tmp_path / "d.csv").write_text("0,1,3\n4,5,6\n")
    assert len(load_dataset(tmp_path / "d.csv", split="all")) == 2


@pytest.mark.parametrize(
    "data, match",
    [("café,b\n1,2\n".encode("latin-1"), r"not UTF-8 text: byte 0xe9 at line 1 is not valid UTF-8"),
     ("a,b\n1,2\n".encode("utf-16"), r"the file is UTF-16 \(or UTF-32\) text"),
     ("a,b\n1,2\n".encode("utf-16-le"), r"holds a NUL byte \(line 1\), so it is not UTF-8 text")],
    ids=["latin-1", "utf-16-bom", "utf-16-no-bom"],
)
def test_csv_not_in_utf8_is_named_and_refused(tmp_path: Path, data: bytes, match: str) -> None:
    (tmp_path / "t.csv").write_bytes(data)
    with pytest.raises(ValueError, match=r"t\.csv: .*" + match + r".*save it as UTF-8"):
        load_dataset(tmp_path / "t.csv", split="all")


def test_csv_with_utf8_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes("café,b\n1,2\n".encode("utf-8-sig"))
    ds = load_dataset(tmp_path / "t.csv", split="all", label_column="café")
    np.testing.assert_array_equal(ds.y, [1])


@pytest.mark.parametrize("sep", [";", "\t"], ids=["semicolon", "tab"])
def test_csv_separated_by_semicolons_or_tabs(tmp_path: Path, sep: str) -> None:
    (tmp_path / "t.csv").write_text(sep.join("abc") + "\n" + sep.join("123") + "\n" + sep.join("456") + "\n")
    ds = load_dataset(tmp_path / "t.csv", split="all", label_column="c")
    np.testing.assert_array_equal(ds.X, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(ds.y, [3, 6])


def test_csv_with_mixed_separators_or_decimal_commas_says_so(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1;2,3\n")
    with pytest.raises(ValueError, match=r"non-numeric value '1;2' at line 2.*holds a semicolon or tab: separate"):
        load_dataset(tmp_path / "t.csv", split="all")
    (tmp_path / "t.csv").write_text("a,b\n1;2\n")
    with pytest.raises(ValueError, match=r"line 2 has 1 columns but line 1 has 2; .*holds a semicolon or tab"):
        load_dataset(tmp_path / "t.csv", split="all")
    (tmp_path / "t.csv").write_text("a;b\n1,5;2\n")
    with pytest.raises(ValueError, match=r"non-numeric value '1,5' at line 2.*decimal point, not a decimal comma"):
        load_dataset(tmp_path / "t.csv", split="all")


# ------------------------------------------------------------------ names


def test_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match=r"the data set name is empty \(''\); name a built-in data set"):
        load_dataset("", split="all")


@pytest.mark.parametrize("name", ["data.npy", "data.npz", "data.csv"])
def test_directory_named_like_a_data_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(ValueError, match=rf"{re.escape(name)} is a directory, but a name ending in"):
        load_dataset(tmp_path / name, split="all")
