"""Tests for aekit.data: every source is generated in tmp_path, nothing touches the network."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.error
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aekit.data import datasets as data
from aekit.data.datasets import DATASETS, Dataset, default_data_dir, load_dataset, read_idx

TRAIN_IMAGES, TRAIN_LABELS = data.IDX_FILES["train"]
TEST_IMAGES, TEST_LABELS = data.IDX_FILES["test"]


# ------------------------------------------------------------------ helpers


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format (magic 0x0000, type 0x08, ndim)."""
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def md5(blob: bytes) -> str:
    return hashlib.md5(blob).hexdigest()


def fake_idx_files(n_train: int = 20, n_test: int = 5, seed: int = 0) -> dict[str, tuple[bytes, np.ndarray]]:
    """Gzipped IDX bytes of a tiny MNIST-like set, and the array each file holds."""
    rng = np.random.default_rng(seed)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    return {name: (gzip.compress(idx_bytes(a), mtime=0), a) for name, a in arrays.items()}


@pytest.fixture
def fake_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A directory with four tiny IDX files, and CHECKSUMS patched to match them."""
    files = fake_idx_files()
    directory = tmp_path / "mnist"
    directory.mkdir()
    for name, (blob, _) in files.items():
        (directory / name).write_bytes(blob)
    sums = {name: md5(blob) for name, (blob, _) in files.items()}
    monkeypatch.setitem(data.CHECKSUMS, "mnist", sums)
    monkeypatch.setitem(data.CHECKSUMS, "fashion-mnist", dict(sums))
    return directory, {name: a for name, (_, a) in files.items()}


def save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


# ------------------------------------------------------------------ Dataset


def test_dataset_properties_and_repr():
    ds = Dataset(
        X=np.zeros((4, 3, 5), np.float32),
        y=np.arange(4, dtype=np.int64),
        name="t",
        split="all",
        kind="signal",
    )
    assert len(ds) == 4
    assert ds.sample_shape == (3, 5)
    assert repr(ds) == "Dataset(name='t', split='all', kind='signal', X=float32(4, 3, 5), y=int64(4,))"
    with pytest.raises(ValueError, match=r"X has 4 samples but y has shape \(3,\)"):
        Dataset(X=np.zeros((4, 2), np.float32), y=np.arange(3), name="t", split="all", kind="tabular")


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("AEKIT_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("AEKIT_DATA_DIR")
    assert default_data_dir() == Path.home() / ".cache" / "aekit"


# ------------------------------------------------------------------ digits


def test_digits_all():
    ds = load_dataset("digits", split="all")
    assert DATASETS == ("digits", "mnist", "fashion-mnist")
    assert ds.X.shape == (1797, 1, 8, 8) and ds.X.dtype == np.float32
    assert ds.y is not None and ds.y.dtype == np.int64 and ds.y.shape == (1797,)
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    assert (ds.name, ds.split, ds.kind, ds.sample_shape) == ("digits", "all", "image", (1, 8, 8))
    assert ds.classes == tuple("0123456789")


def test_digits_splits_are_deterministic_stratified_and_partition_all():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    train, test, full = (load_dataset("digits", split=s) for s in ("train", "test", "all"))
    assert (len(train), len(test)) == (1437, 360)
    again = load_dataset("digits", split="train")
    np.testing.assert_array_equal(train.X, again.X)
    np.testing.assert_array_equal(train.y, again.y)
    # The documented recipe: train_test_split(..., test_size=0.2, random_state=0, stratify=y).
    d = load_digits()
    X_tr, X_te, y_tr, y_te = train_test_split(
        d.data, d.target, test_size=0.2, random_state=0, stratify=d.target
    )
    np.testing.assert_allclose(train.X.reshape(-1, 64), X_tr / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(test.y, y_te)

    # Disjoint and complete: train + test is exactly the multiset of all samples.
    def rows(ds: Dataset) -> Counter:
        return Counter(x.tobytes() + bytes([int(t)]) for x, t in zip(ds.X, ds.y))

    assert rows(train) + rows(test) == rows(full)
    assert np.bincount(test.y).min() >= 35  # stratified: every class is represented


def test_limit():
    ds = load_dataset("digits", split="all", limit=10)
    assert len(ds) == 10
    np.testing.assert_array_equal(ds.y, load_dataset("digits", split="all").y[:10])
    with pytest.raises(ValueError, match=r"limit must be a positive integer.*got 0"):
        load_dataset("digits", limit=0)


# ------------------------------------------------------------------ MNIST-style IDX


def test_mnist_from_tiny_idx(fake_mnist):
    directory, arrays = fake_mnist
    train = load_dataset("mnist", split="train", data_dir=directory)
    assert train.X.shape == (20, 1, 28, 28) and train.X.dtype == np.float32
    assert train.y is not None and train.y.dtype == np.int64
    np.testing.assert_allclose(train.X[:, 0], arrays[TRAIN_IMAGES] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(train.y, arrays[TRAIN_LABELS])
    assert (train.name, train.kind, train.split) == ("mnist", "image", "train")

    test = load_dataset("mnist", split="test", data_dir=directory)
    np.testing.assert_array_equal(test.y, arrays[TEST_LABELS])
    full = load_dataset("MNIST", split="all", data_dir=directory, limit=22)
    assert len(full) == 22
    np.testing.assert_array_equal(full.y, np.concatenate([arrays[TRAIN_LABELS], arrays[TEST_LABELS][:2]]))


def test_mnist_data_dir_parent_and_env_default(fake_mnist, monkeypatch):
    directory, arrays = fake_mnist
    # A parent directory holding mnist/ works, as does $AEKIT_DATA_DIR.
    ds = load_dataset("mnist", split="test", data_dir=directory.parent)
    np.testing.assert_array_equal(ds.y, arrays[TEST_LABELS])
    monkeypatch.setenv("AEKIT_DATA_DIR", str(directory.parent))
    ds = load_dataset("mnist", split="test")
    np.testing.assert_array_equal(ds.y, arrays[TEST_LABELS])
    os.rename(directory, directory.parent / "fashion-mnist")
    ds = load_dataset("fashion_mnist", split="test")
    assert ds.name == "fashion-mnist" and ds.classes is not None and ds.classes[9] == "Ankle boot"


def test_mnist_md5_mismatch(fake_mnist, monkeypatch):
    directory, _ = fake_mnist
    monkeypatch.setitem(data.CHECKSUMS["mnist"], TRAIN_IMAGES, "0" * 32)
    with pytest.raises(
        ValueError,
        match=r"checksum mismatch for .*train-images-idx3-ubyte\.gz: expected md5 0{32}, got [0-9a-f]{32}.*delete it and download it again",
    ) as info:
        load_dataset("mnist", data_dir=directory)
    assert "--download" in str(info.value)


def test_md5_is_cached_per_path_size_and_mtime(fake_mnist, monkeypatch):
    directory, _ = fake_mnist
    calls: list[Path] = []
    real = data._file_md5

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(data, "_file_md5", counting)
    load_dataset("mnist", split="test", data_dir=directory)
    assert len(calls) == 2
    load_dataset("mnist", split="test", data_dir=directory)
    assert len(calls) == 2  # served from the cache
    labels = directory / TEST_LABELS
    os.utime(labels, ns=(0, labels.stat().st_mtime_ns + 10**9))
    load_dataset("mnist", split="test", data_dir=directory)
    assert len(calls) == 3  # a touched file is hashed again


def test_mnist_missing_files_message(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist", split="all", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    for name in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS):
        assert name in message
    for needle in (
        str(tmp_path / "nowhere"),
        "download=True",
        "--download",
        "data_dir",
        "--data-dir",
        "AEKIT_DATA_DIR",
    ):
        assert needle in message
    with pytest.raises(FileNotFoundError, match=r"missing file\(s\) t10k-images-idx3-ubyte\.gz, t10k-labels"):
        load_dataset("mnist", split="test", data_dir=tmp_path)


def test_download_is_atomic_and_verified(tmp_path, monkeypatch, capsys):
    files = fake_idx_files()
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {name: md5(blob) for name, (blob, _) in files.items()})
    directory = tmp_path / "cache" / "mnist"
    urls: list[str] = []

    def fake_fetch(url: str, dest: Path) -> None:
        urls.append(url)
        name = url.rsplit("/", 1)[1]
        # Written next to the target under a temporary name, never in place.
        assert dest.parent == directory and dest.name.startswith(f".{name}.") and dest.name.endswith(".part")
        assert not (directory / name).exists()
        if url.startswith(data.MIRRORS["mnist"][0]) and name == TRAIN_IMAGES:
            raise urllib.error.URLError("mirror down")  # the next mirror is tried
        dest.write_bytes(files[name][0])

    monkeypatch.setattr(data, "_fetch", fake_fetch)
    ds = load_dataset("mnist", split="train", data_dir=directory, download=True)
    assert len(ds) == 20
    assert sorted(p.name for p in directory.iterdir()) == sorted([TRAIN_IMAGES, TRAIN_LABELS])
    assert urls[1] == data.MIRRORS["mnist"][1] + TRAIN_IMAGES
    err = capsys.readouterr().err
    assert f"downloading mnist {TRAIN_IMAGES} from https://" in err and TRAIN_LABELS in err

    # Existing files are not fetched again.
    urls.clear()
    load_dataset("mnist", split="train", data_dir=directory, download=True)
    assert urls == []


def test_download_checksum_failure_leaves_nothing(tmp_path, monkeypatch):
    files = fake_idx_files()
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {name: md5(blob) for name, (blob, _) in files.items()})
    monkeypatch.setattr(data, "_fetch", lambda url, dest: dest.write_bytes(b"<html>not found</html>"))
    with pytest.raises(
        data.DownloadError,
        match=r"(?s)could not download mnist file train-images.*ossci-datasets.*checksum mismatch.*cvdf-datasets.*checksum mismatch",
    ):
        load_dataset("mnist", data_dir=tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []  # no temp file, no unverified file


# ------------------------------------------------------------------ read_idx


def test_read_idx_raw_and_gz(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(arr))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    for name in ("a.idx", "a.idx.gz"):
        out = read_idx(tmp_path / name)
        np.testing.assert_array_equal(out, arr)
        assert out.dtype == np.uint8 and out.flags.writeable
    big = np.array([1, -2, 300], dtype=">i4")
    (tmp_path / "b.idx").write_bytes(struct.pack(">HBBI", 0, 0x0C, 1, 3) + big.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx"), [1, -2, 300])


def test_read_idx_corrupt_files(tmp_path):
    good = idx_bytes(np.zeros((20, 28, 28), np.uint8))
    cases = {
        "short.idx": (good[:-100], r"truncated IDX file: the header promises shape \(20, 28, 28\)"),
        "long.idx": (good + b"xx", r"2 unexpected bytes after"),
        "magic.idx": (b"\x01\x02" + good[2:], r"not an IDX file \(magic number 0x0102"),
        "type.idx": (good[:2] + b"\x07" + good[3:], r"unknown IDX data type code 0x07"),
        "tiny.idx": (b"\x00", r"truncated IDX file \(1 bytes"),
        "cut.gz": (gzip.compress(good)[:-50], r"corrupt or truncated gzip data"),
        "html.gz": (b"<html>oops</html>", r"not gzip data .*delete it and download it again"),
    }
    for name, (blob, pattern) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ValueError, match=pattern):
            read_idx(tmp_path / name)


def test_mnist_with_truncated_idx_that_passes_md5(tmp_path, monkeypatch):
    blob = gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-10])
    labels = gzip.compress(idx_bytes(np.zeros(3, np.uint8)))
    (tmp_path / TEST_IMAGES).write_bytes(blob)
    (tmp_path / TEST_LABELS).write_bytes(labels)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", {TEST_IMAGES: md5(blob), TEST_LABELS: md5(labels)})
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: truncated IDX file"):
        load_dataset("mnist", split="test", data_dir=tmp_path)


# ------------------------------------------------------------------ .npy / .npz


def test_npy_layouts(tmp_path):
    rng = np.random.default_rng(0)
    tab = rng.normal(size=(10, 3)) * 100
    np.save(tmp_path / "tab.npy", tab)
    ds = load_dataset(tmp_path / "tab.npy", split="all")
    assert ds.kind == "tabular" and ds.X.dtype == np.float32 and ds.y is None
    np.testing.assert_allclose(ds.X, tab, rtol=1e-6)  # not rescaled
    assert ds.name == str(tmp_path / "tab.npy")

    nhwc = rng.integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "nhwc.npy", nhwc)
    ds = load_dataset(str(tmp_path / "nhwc.npy"), split="all")
    assert ds.kind == "image" and ds.X.shape == (6, 3, 5, 4) and ds.X.flags.c_contiguous
    np.testing.assert_allclose(ds.X, nhwc.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)

    gray = rng.integers(0, 256, (6, 7, 5), dtype=np.uint8)
    np.save(tmp_path / "gray.npy", gray)
    assert load_dataset(tmp_path / "gray.npy", split="all").X.shape == (6, 1, 7, 5)

    sig = rng.normal(size=(6, 2, 9)).astype(np.float32) * 5
    np.save(tmp_path / "sig.npy", sig)
    ds = load_dataset(tmp_path / "sig.npy", split="all")
    assert ds.kind == "signal" and ds.sample_shape == (2, 9)
    np.testing.assert_array_equal(ds.X, sig)

    np.save(tmp_path / "nchw.npy", rng.random((6, 1, 4, 4)).astype(np.float32))
    ds = load_dataset(tmp_path / "nchw.npy", split="all")
    assert ds.kind == "image" and ds.X.shape == (6, 1, 4, 4)

    np.save(tmp_path / "big.npy", rng.random((6, 1, 4, 4)) * 255)
    with pytest.raises(ValueError, match=r"image values must lie in \[0, 1\].*divide by 255"):
        load_dataset(tmp_path / "big.npy")


def test_user_file_splits(tmp_path):
    X = np.arange(40, dtype=np.float64).reshape(20, 2)
    np.save(tmp_path / "x.npy", X)
    train, test = (load_dataset(tmp_path / "x.npy", split=s) for s in ("train", "test"))
    assert (len(train), len(test)) == (16, 4)
    merged = np.sort(np.concatenate([train.X[:, 0], test.X[:, 0]]))
    np.testing.assert_array_equal(merged, X[:, 0])
    np.save(tmp_path / "one.npy", X[:1])
    with pytest.raises(ValueError, match=r"cannot split 1 sample.*split='all'"):
        load_dataset(tmp_path / "one.npy")


def test_npz_keys_and_splits(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.random((10, 4)), rng.integers(0, 3, 10)
    np.savez(tmp_path / "xy.npz", data=X, labels=y)
    ds = load_dataset(tmp_path / "xy.npz", split="all")
    np.testing.assert_array_equal(ds.y, y)
    assert ds.y is not None and ds.y.dtype == np.int64

    x_tr, x_te = rng.integers(0, 256, (8, 6, 6, 3), np.uint8), rng.integers(0, 256, (3, 6, 6, 3), np.uint8)
    y_tr, y_te = rng.integers(0, 10, 8, np.uint8), rng.integers(0, 10, 3, np.uint8)
    np.savez(tmp_path / "split.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    test = load_dataset(tmp_path / "split.npz", split="test")
    assert test.X.shape == (3, 3, 6, 6)
    np.testing.assert_array_equal(test.y, y_te)
    full = load_dataset(tmp_path / "split.npz", split="all")
    assert len(full) == 11
    np.testing.assert_array_equal(full.y, np.concatenate([y_tr, y_te]))

    np.savez(tmp_path / "bad_len.npz", X=X, y=y[:7])
    with pytest.raises(ValueError, match=r"X has 10 samples but y has 7 labels"):
        load_dataset(tmp_path / "bad_len.npz", split="all")

    np.savez(tmp_path / "unknown.npz", foo=X, bar=y)
    with pytest.raises(
        ValueError, match=r"no input array found; name it X, x, data or images.*holds: foo, bar"
    ):
        load_dataset(tmp_path / "unknown.npz")

    np.savez(tmp_path / "strlab.npz", X=X, y=np.array(list("abcabcabca")))
    with pytest.raises(ValueError, match=r"labels must be integers, got dtype <U1"):
        load_dataset(tmp_path / "strlab.npz")


# ------------------------------------------------------------------ .csv


def test_csv_with_header_and_label_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label,b\n1.5,0,2\n-3,1,4e2\n5,2,6\n")
    ds = load_dataset(path, split="all", label_column="label")
    np.testing.assert_array_equal(ds.X, np.array([[1.5, 2], [-3, 400], [5, 6]], np.float32))
    np.testing.assert_array_equal(ds.y, [0, 1, 2])
    assert ds.kind == "tabular"
    # An integer string (as a CLI flag delivers it) is an index.
    np.testing.assert_array_equal(load_dataset(path, split="all", label_column="1").y, [0, 1, 2])
    with pytest.raises(
        ValueError, match=r"label_column='lbl' is not a column of .*its header has: a, label, b"
    ):
        load_dataset(path, label_column="lbl")


def test_csv_without_header_label_by_index(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2,7\n3,4,8\n\n5,6,9\n")
    ds = load_dataset(path, split="all")
    assert ds.X.shape == (3, 3) and ds.y is None
    ds = load_dataset(path, split="all", label_column=-1)
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(ds.y, [7, 8, 9])
    np.testing.assert_array_equal(load_dataset(path, split="all", label_column=0).y, [1, 3, 5])
    with pytest.raises(ValueError, match=r"label_column='y' names a column, but .* has no header row"):
        load_dataset(path, label_column="y")
    with pytest.raises(ValueError, match=r"label_column=3 is out of range: .* has 3 columns"):
        load_dataset(path, label_column=3)


def test_csv_non_numeric_value(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,y\n1,2\n3,abc\n")
    with pytest.raises(ValueError, match=r"non-numeric value 'abc' at line 3, column 1 \(0-based\) 'y'"):
        load_dataset(path)
    path.write_text("1,2\n3,\n")
    with pytest.raises(ValueError, match=r"non-numeric value '' at line 2, column 1"):
        load_dataset(path)
    path.write_text("1,2\n3\n")
    with pytest.raises(ValueError, match=r"line 2 has 1 columns but line 1 has 2"):
        load_dataset(path)


def test_csv_non_numeric_label(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("f1,f2,species\n1,2,cat\n3,4,dog\n")
    with pytest.raises(
        ValueError, match=r"'species'\) holds 'cat' at line 2; labels must be integers, so convert them"
    ):
        load_dataset(path, label_column="species")
    path.write_text("1,2,0.5\n")
    with pytest.raises(ValueError, match=r"holds '0.5' at line 1; labels must be integers"):
        load_dataset(path, label_column=2)


def test_label_column_only_for_csv():
    with pytest.raises(ValueError, match=r"label_column='y' only applies to \.csv files"):
        load_dataset("digits", label_column="y")


# ------------------------------------------------------------------ image folders


def test_image_folder_with_classes(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "imgs"
    pixels = {}
    for cls in ("dog", "cat"):
        for i in range(3):
            arr = rng.integers(0, 256, (6, 5), dtype=np.uint8)
            pixels[(cls, i)] = arr
            save_png(root / cls / f"{i}.png", arr)
    (root / "notes").mkdir()  # a subdirectory without images is ignored
    (root / "cat" / "readme.txt").write_text("not an image")
    ds = load_dataset(root, split="all")
    assert ds.X.shape == (6, 1, 6, 5) and ds.kind == "image"
    assert ds.classes == ("cat", "dog")
    np.testing.assert_array_equal(ds.y, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(ds.X[3, 0], pixels[("dog", 0)] / 255.0, rtol=1e-6)

    # One colour image makes the whole set RGB.
    save_png(root / "dog" / "3.png", rng.integers(0, 256, (6, 5, 3), dtype=np.uint8))
    ds = load_dataset(root, split="all")
    assert ds.X.shape == (7, 3, 6, 5)
    np.testing.assert_allclose(ds.X[0, 1], pixels[("cat", 0)] / 255.0, rtol=1e-6)


def test_flat_image_folder_is_unlabelled(tmp_path):
    for i in range(3):
        save_png(tmp_path / f"{i}.png", np.full((4, 4), 255 * (i % 2), np.uint8))
    ds = load_dataset(tmp_path, split="all")
    assert ds.y is None and ds.X.shape == (3, 1, 4, 4) and ds.X.max() == 1.0


def test_image_folder_size_mismatch(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    save_png(tmp_path / "b.png", np.zeros((8, 10), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png is 8x8 and .*b\.png is 10x8 \(width x height\); resize"):
        load_dataset(tmp_path)


def test_empty_image_folder(tmp_path):
    with pytest.raises(ValueError, match=r"empty of images"):
        load_dataset(tmp_path)


# ------------------------------------------------------------------ validation


def test_nan_values(tmp_path):
    X = np.ones((5, 3))
    X[2, 1] = np.nan
    X[4, 0] = np.inf
    np.save(tmp_path / "nan.npy", X)
    with pytest.raises(
        ValueError, match=r"2 NaN or infinite value\(s\); the first is at index \(2, 1\) \(sample 2\)"
    ):
        load_dataset(tmp_path / "nan.npy")


def test_one_dimensional_array(tmp_path):
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    with pytest.raises(
        ValueError, match=r"1-D with shape \(5,\).*reshape to \(n_samples, 1\).*\(1, n_features\)"
    ):
        load_dataset(tmp_path / "flat.npy")


def test_empty_data(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"X is empty \(shape \(0, 4\)\)"):
        load_dataset(tmp_path / "empty.npy")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match=r"the file is empty"):
        load_dataset(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"header row but no data rows"):
        load_dataset(tmp_path / "header.csv")


def test_unknown_name_split_and_extension(tmp_path):
    with pytest.raises(
        ValueError, match=r"unknown dataset 'mnsit'.*digits, mnist, fashion-mnist.*\.npy, \.npz or \.csv"
    ):
        load_dataset("mnsit")
    with pytest.raises(FileNotFoundError, match=r"no such file or directory: .*missing\.npy"):
        load_dataset(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match=r"unknown split 'val'; valid splits: 'train', 'test', 'all'"):
        load_dataset("digits", split="val")
    (tmp_path / "data.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match=r"unsupported file type '\.txt'.*\.npy, \.npz or \.csv"):
        load_dataset(tmp_path / "data.txt")


def test_float64_overflow_and_corrupt_npz(tmp_path):
    np.save(tmp_path / "big.npy", np.array([[1.0, 1e300]]))
    with pytest.raises(ValueError, match=r"big\.npy: X has 1 value\(s\) in 1 sample\(s\) .* overflow float32: the largest is 1e\+300"):
        load_dataset(tmp_path / "big.npy", split="all")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"bad\.npz: not a \.npz archive"):
        load_dataset(tmp_path / "bad.npz")


def test_non_numeric_array_and_float_labels(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match=r"X has dtype <U1; it must hold numbers"):
        load_dataset(tmp_path / "s.npy")
    np.savez(tmp_path / "f.npz", X=np.ones((3, 2)), y=np.array([0.0, 1.0, 1.5]))
    with pytest.raises(ValueError, match=r"labels must be integers, but y\[2\] is 1\.5"):
        load_dataset(tmp_path / "f.npz", split="all")


def test_scaler_statistics_by_blocks_match_numpy() -> None:
    from aekit.data.preprocessing import mean_std

    rng = np.random.default_rng(0)
    X = (rng.normal(3.0, 2.0, (50, 3, 4)) ** 2).astype(np.float32)
    for rows in (7, 50, 8192):  # several blocks with a short last one, one block, one larger than the data
        mean, std = mean_std(X, rows=rows)
        np.testing.assert_allclose(mean, X.mean(axis=0, dtype=np.float64), rtol=1e-13)
        np.testing.assert_allclose(std, X.std(axis=0, dtype=np.float64), rtol=1e-12)
    mean, std = mean_std(X[:1])
    assert (std == 0).all() and (mean == X[0]).all()


def test_all_finite_agrees_with_numpy_and_allocates_no_mask() -> None:
    import tracemalloc

    from aekit.data.preprocessing import all_finite

    big = np.float32(3.0e38)
    cases = [np.zeros((3, 4), np.float32), np.full((5, 7), big, np.float32), np.full((5, 7), -big, np.float32)]
    for value in (np.nan, np.inf, -np.inf):
        a = np.ones((4, 6), np.float32)
        a[2, 3] = value
        cases.append(a)
    both = np.ones((4, 6), np.float32)
    both[0, 0], both[3, 5] = np.inf, -np.inf  # their sum is NaN, not a finite number
    cases.append(both)
    for a in cases:
        assert all_finite(a) == bool(np.isfinite(a).all())
    X = np.ones((2000, 1000), np.float32)  # 8 MB; np.isfinite(X) would allocate a 2 MB mask
    tracemalloc.start()
    try:
        assert all_finite(X)
        assert tracemalloc.get_traced_memory()[1] < 256 * 1024
    finally:
        tracemalloc.stop()


def test_unit_norm_samples_equals_scikit_learn_normalize() -> None:
    from sklearn.preprocessing import normalize

    from aekit.data.preprocessing import unit_norm_samples

    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 2, 3, 4)).astype(np.float32)
    X[2] = 0.0  # a zero sample stays zero, as in scikit-learn
    U, norms = unit_norm_samples(X)
    assert U.shape == X.shape and U.dtype == np.float32 and norms.dtype == np.float64
    flat = X.reshape(6, -1).astype(np.float64)
    np.testing.assert_allclose(U.reshape(6, -1), normalize(flat), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(norms, np.linalg.norm(flat, axis=1), rtol=1e-12)
