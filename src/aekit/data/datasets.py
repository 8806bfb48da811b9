"""Loading data sets into one uniform, validated form.

Every loader in this module returns a :class:`Dataset` whose ``X`` is a
``float32`` array with one sample per row of the first axis, so models never
have to care where the data came from:

* images are ``(N, C, H, W)`` with values in ``[0, 1]``,
* tabular data is ``(N, D)``, kept on its original scale (models scale it),
* 1-D signals are ``(N, C, L)``, kept on their original scale.

Sources understood by :func:`load_dataset`:

* ``"digits"`` -- scikit-learn's bundled 8x8 digits (no network needed),
* ``"mnist"`` and ``"fashion-mnist"`` -- the four original IDX ``.gz`` files,
  checked against their canonical md5 sums and optionally downloaded,
* a path to a ``.npy``, ``.npz`` or ``.csv`` file, or to a directory of
  images (PNG, JPEG, BMP, GIF, TIFF or WebP; optionally one subdirectory per
  class).

Errors caused by the data raise ``ValueError`` (or ``FileNotFoundError`` for
files that are not there) with a message that names the offending value and
says how to fix it, because these messages are what a command-line user sees.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import http.client
import io
import math
import os
import shutil
import sys
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aekit.core.params import is_whole
from aekit.data.preprocessing import INT64_RANGE, float32_overflow_message, layout_message, whole_int64

__all__ = [
    "CHECKSUMS",
    "DATASETS",
    "IDX_FILES",
    "MIRRORS",
    "SPLITS",
    "Dataset",
    "DownloadError",
    "default_data_dir",
    "load_dataset",
    "read_idx",
]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")
"""Names of the built-in data sets accepted by :func:`load_dataset`."""

SPLITS: tuple[str, ...] = ("train", "test", "all")
"""Valid values of the ``split`` argument of :func:`load_dataset`."""

IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
"""(images, labels) file names of each split of MNIST and Fashion-MNIST."""

CHECKSUMS: dict[str, dict[str, str]] = {
    # Canonical md5 sums of the distributed .gz files (checked against byte-exact
    # copies).  A module-level dict so tests can swap in sums of tiny fake files.
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
"""Expected md5 of each IDX file, by data set name then file name."""

MIRRORS: dict[str, tuple[str, ...]] = {
    # yann.lecun.com now refuses most automated downloads, so it is not listed.
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
"""Base URLs tried in order when ``download=True``; the file name is appended."""

_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "digits": tuple(str(i) for i in range(10)),
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}

_TEST_FRACTION = 0.2
_SPLIT_SEED = 0
_FILE_SUFFIXES = (".npy", ".npz", ".csv")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Largest image, in pixels, an image folder may hold (a 6000x5500 photograph). Pillow's own limit
#: (about 89 million pixels) only warns; a few kilobytes of PNG can declare billions of pixels.
MAX_IMAGE_PIXELS = 2**25
# Pillow modes holding a single intensity channel (LA: plus alpha, which is dropped).
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ACCEPTED = (
    "paths to .npy, .npz or .csv files, or to a directory of images (PNG, JPEG, BMP, GIF, TIFF or WebP; "
    "optionally one subdirectory per class), are also accepted"
)


class DownloadError(OSError):
    """A data set file could not be downloaded from any of its mirrors."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded data set in aekit's uniform layout.

    Parameters
    ----------
    X : numpy.ndarray
        ``float32`` inputs, one sample per entry of the first axis: images are
        ``(N, C, H, W)`` in ``[0, 1]``, tabular data ``(N, D)``, 1-D signals
        ``(N, C, L)``.
    y : numpy.ndarray or None
        ``int64`` class labels of shape ``(N,)``, or None when unlabelled.
    name : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or the path loaded.
    split : str
        ``"train"``, ``"test"`` or ``"all"``.
    kind : str
        ``"image"``, ``"tabular"`` or ``"signal"``.
    classes : tuple of str or None, optional
        Human-readable name of each label value (``classes[k]`` names label
        ``k``) when known: the built-in data sets and image folders with class
        subdirectories.

    Notes
    -----
    Equality is identity (``eq=False``) because element-wise array comparison
    has no single truth value.
    """

    X: np.ndarray
    y: np.ndarray | None
    name: str
    split: str
    kind: str
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Cheap invariant check so a Dataset built by hand cannot silently pair
        # samples with the wrong labels.
        if self.y is not None and (self.y.ndim != 1 or len(self.y) != len(self.X)):
            raise ValueError(
                f"{self.name}: X has {len(self.X)} samples but y has shape {self.y.shape}; "
                "y must be 1-D with one label per sample"
            )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``X.shape[1:]``."""
        return tuple(int(s) for s in self.X.shape[1:])

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __repr__(self) -> str:
        # The default repr would print whole arrays.
        y = "None" if self.y is None else f"{self.y.dtype}{tuple(self.y.shape)}"
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, kind={self.kind!r}, "
            f"X={self.X.dtype}{tuple(self.X.shape)}, y={y})"
        )


def default_data_dir() -> Path:
    """Return the directory that holds downloaded data sets.

    Returns
    -------
    pathlib.Path
        ``$AEKIT_DATA_DIR`` when set and non-empty, else ``~/.cache/aekit``.
        The directory is not created. MNIST lives in ``<dir>/mnist`` and
        Fashion-MNIST in ``<dir>/fashion-mnist``.
    """
    env = os.environ.get("AEKIT_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "aekit"


# --------------------------------------------------------------------------- IDX

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or raw.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Compression is detected from the content, not the name.

    Returns
    -------
    numpy.ndarray
        The array with the shape and dtype recorded in the header, in native
        byte order.

    Raises
    ------
    ValueError
        If the file is not valid gzip, is too short, has a bad magic number
        or type code, or holds fewer or more data bytes than its header says.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    redownload = "delete it and download it again"
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc}); {redownload}") from exc
    elif path.suffix == ".gz":
        # Typically an HTML error page saved under the data file's name.
        raise ValueError(
            f"{path}: the name ends in .gz but the content is not gzip data "
            f"(it starts with {raw[:16]!r}); {redownload}"
        )
    if len(raw) < 4:
        raise ValueError(
            f"{path}: truncated IDX file ({len(raw)} bytes, shorter than the 4-byte magic number)"
        )
    if raw[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()} should start with 0x0000)")
    code, ndim = raw[2], raw[3]
    dtype = _IDX_DTYPES.get(code)
    if dtype is None:
        raise ValueError(
            f"{path}: unknown IDX data type code 0x{code:02x} "
            f"(known: {', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)})"
        )
    if ndim == 0:
        raise ValueError(f"{path}: corrupt IDX header (zero dimensions)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: truncated IDX file (the header needs {header} bytes, the file has {len(raw)})"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = math.prod(dims)
    expected = count * dtype.itemsize
    actual = len(raw) - header
    if actual < expected:
        raise ValueError(
            f"{path}: truncated IDX file: the header promises shape {dims} ({expected} data bytes) "
            f"but only {actual} bytes follow; {redownload}"
        )
    if actual > expected:
        raise ValueError(
            f"{path}: corrupt IDX file: {actual - expected} unexpected bytes after the "
            f"{expected} data bytes of shape {dims}; {redownload}"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    # astype copies, so the result is writeable (torch.from_numpy warns on
    # read-only arrays) and in native byte order.
    return arr.astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------- checksums / download

# md5 of files already hashed in this process, keyed by (path, size, mtime):
# hashing 26 MB on every load of Fashion-MNIST is avoidable, and any rewrite
# of the file changes the key and forces a fresh check.
_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def _file_md5(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _cached_md5(path: Path) -> str:
    key = _stat_key(path)
    digest = _MD5_CACHE.get(key)
    if digest is None:
        digest = _file_md5(path)
        _MD5_CACHE[key] = digest
    return digest


def _verify_md5(path: Path, expected: str, dataset: str) -> None:
    actual = _cached_md5(path)
    if actual != expected:
        raise ValueError(
            f"{dataset}: checksum mismatch for {path}: expected md5 {expected}, got {actual}. "
            "The file is corrupt, incomplete or not the original; delete it and download it "
            "again (download=True / --download)."
        )


def _fetch(url: str, dest: Path) -> None:
    """Write the body of ``url`` to ``dest`` (a separate function so tests can replace it)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def _download(dataset: str, filename: str, directory: Path) -> None:
    expected = CHECKSUMS[dataset][filename]
    target = directory / filename
    failures: list[str] = []
    for mirror in MIRRORS[dataset]:
        url = mirror + filename
        print(f"aekit: downloading {dataset} {filename} from {url}", file=sys.stderr, flush=True)
        # A temporary file in the same directory makes os.replace atomic, so an
        # interrupted download never leaves a partial file under the real name.
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                _fetch(url, tmp)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                failures.append(f"{url} ({type(exc).__name__}: {exc})")
                continue
            actual = _file_md5(tmp)
            if actual != expected:
                failures.append(f"{url} (checksum mismatch: expected md5 {expected}, got {actual})")
                continue
            # mkstemp creates 0600 files; a shared data cache should be readable.
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            _MD5_CACHE[_stat_key(target)] = actual
            return
        finally:
            tmp.unlink(missing_ok=True)
    tried = "\n".join(f"  {f}" for f in failures)
    raise DownloadError(
        f"could not download {dataset} file {filename}; tried:\n{tried}\n"
        f"Check the network connection, or fetch the original files by hand into {directory} "
        "(or another directory passed as data_dir / --data-dir)."
    )


def _idx_directory(dataset: str, data_dir: str | os.PathLike[str] | None) -> tuple[Path, list[Path]]:
    """Pick the directory holding a data set's IDX files, and every place looked in."""
    if data_dir is None:
        directory = default_data_dir() / dataset
        return directory, [directory]
    base = Path(data_dir).expanduser()
    # Accept both data_dir=.../mnist and data_dir=... holding mnist/ and
    # fashion-mnist/, so one --data-dir serves both data sets.
    candidates = [base, base / dataset]
    names = [f for pair in IDX_FILES.values() for f in pair]
    for candidate in candidates:
        if any((candidate / f).is_file() for f in names):
            return candidate, candidates
    return base, candidates


def _load_idx_dataset(
    dataset: str, split: str, data_dir: str | os.PathLike[str] | None, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    parts = ("train", "test") if split == "all" else (split,)
    needed = [f for part in parts for f in IDX_FILES[part]]
    directory, looked_in = _idx_directory(dataset, data_dir)
    missing = [f for f in needed if not (directory / f).is_file()]
    if missing and not download:
        where = " and ".join(str(p) for p in looked_in)
        raise FileNotFoundError(
            f"{dataset}: missing file(s) {', '.join(missing)} (looked in {where}). To get them, either\n"
            f"  - pass download=True (CLI: --download) to fetch them from {MIRRORS[dataset][0]}, or\n"
            "  - point data_dir (CLI: --data-dir) at a directory holding the original IDX .gz files, "
            f"or set $AEKIT_DATA_DIR so that they are in $AEKIT_DATA_DIR/{dataset}/ "
            "(keep the .gz files as distributed: do not decompress them)."
        )
    if missing:
        directory.mkdir(parents=True, exist_ok=True)
        for filename in missing:
            _download(dataset, filename, directory)
    for filename in needed:
        _verify_md5(directory / filename, CHECKSUMS[dataset][filename], dataset)

    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for part in parts:
        image_file, label_file = (directory / f for f in IDX_FILES[part])
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(
                f"{dataset}: expected images of shape (N, H, W) in {image_file} and labels of shape (N,) "
                f"in {label_file}, got {images.shape} and {labels.shape}"
            )
        if len(images) != len(labels):
            raise ValueError(
                f"{dataset}: {image_file} holds {len(images)} images but {label_file} holds "
                f"{len(labels)} labels; delete both and download them again"
            )
        xs.append(images)
        ys.append(labels)
    if len(xs) == 1:
        return xs[0], ys[0]
    return np.concatenate(xs), np.concatenate(ys)


# ------------------------------------------------------------------------ user files


def _read_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        # Without this, np.load guesses "pickle" and suggests allow_pickle, which aekit never uses.
        raise ValueError(f"{path}: not a .npy file (no NumPy header); save plain numeric arrays with numpy.save")
    try:
        # allow_pickle=False: a data file must never be able to run code.
        return np.asarray(np.load(path, allow_pickle=False))
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(f"{path} holds Python objects, which aekit never loads (unpickling can run code); save a "
                             "plain numeric array with numpy.save") from None
        raise ValueError(
            f"{path}: could not read as a .npy array ({exc}); save plain numeric arrays with numpy.save"
        ) from exc
    except (OSError, EOFError) as exc:
        raise ValueError(
            f"{path}: could not read as a .npy array ({exc}); save plain numeric arrays with numpy.save"
        ) from exc


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x05\x06":
        # A zip archive's end record with no entry before it: what numpy.savez writes when given no arrays.
        raise ValueError(
            f"{path}: the .npz archive holds no arrays; save the data into it, e.g. numpy.savez(path, X=X, y=y)"
        )
    if magic != b"PK\x03\x04":
        # Without this, np.load guesses "pickle" and gives a misleading message.
        raise ValueError(
            f"{path}: not a .npz archive (no zip header); save arrays with numpy.savez or numpy.savez_compressed"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: np.asarray(npz[key]) for key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{path}: could not read as a .npz archive ({exc}); save plain numeric arrays with numpy.savez"
        ) from exc


# Names, lower-cased, that .npz inputs and labels are read from (the first present wins).
_NPZ_X = ("x", "data", "images")
_NPZ_Y = ("y", "labels", "targets", "label", "target")


def _check_no_lost_labels(path: Path, arrays: dict[str, np.ndarray], used: set[str], n_samples: set[int]) -> None:
    """Refuse an archive without labels under a known name that holds another array of one entry per sample.

    Such an array is most likely the labels under a name the loader does not know (``classes``, or ``y_train``
    beside ``X``); dropping it would train without them and never say so.
    """
    lost = [
        key for key, a in arrays.items()
        if key not in used and a.ndim in (1, 2) and len(a) in n_samples and (a.ndim == 1 or a.shape[1] == 1)
    ]
    if lost:
        shapes = ", ".join(f"{key} {arrays[key].shape}" for key in lost)
        raise ValueError(
            f"{path}: found no labels but arrays with one entry per sample that are not read: {shapes}. Labels are "
            f"read from {', '.join(_NPZ_Y)} (with x_train/x_test: y_train/y_test); rename the label array to y, "
            "or remove it from the archive to load the data unlabelled"
        )


def _load_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Return (X, y, presplit) from an .npz archive."""
    arrays = _read_npz(path)
    by_lower: dict[str, list[str]] = {}
    for key in arrays:
        by_lower.setdefault(key.lower(), []).append(key)

    def find(*names: str) -> str | None:
        for name in names:
            keys = by_lower.get(name, [])
            if len(keys) > 1:
                raise ValueError(f"{path}: ambiguous arrays {' and '.join(keys)}; keep only one of them")
            if keys:
                return keys[0]
        return None

    listing = ", ".join(arrays) or "none"
    if find("x_train") is not None or find("x_test") is not None:
        parts = ("train", "test") if split == "all" else (split,)
        xs: list[np.ndarray] = []
        ys: list[np.ndarray | None] = []
        used = {k for part in ("train", "test") for k in (find(f"x_{part}"), find(f"y_{part}")) if k is not None}
        if find("y_train") is None and find("y_test") is None:
            sizes = {len(arrays[k]) for k in used if arrays[k].ndim > 0}
            _check_no_lost_labels(path, arrays, used, sizes)
        for part in parts:
            x_key, y_key = find(f"x_{part}"), find(f"y_{part}")
            if x_key is None:
                raise ValueError(
                    f"{path}: split {split!r} needs an array named x_{part}, but the file holds: {listing}"
                )
            x_part = arrays[x_key]
            y_part = None if y_key is None else arrays[y_key]
            if y_part is not None and x_part.ndim > 0 and y_part.ndim > 0 and len(y_part) != len(x_part):
                # Checked per split: equal totals could hide a misalignment under split='all'.
                raise ValueError(
                    f"{path}: {x_key} has {len(x_part)} samples but {y_key} has {len(y_part)} labels; "
                    "they must have the same length"
                )
            xs.append(x_part)
            ys.append(y_part)
        if len(xs) == 1:
            return xs[0], ys[0], True
        if (ys[0] is None) != (ys[1] is None):
            raise ValueError(
                f"{path}: only one of y_train and y_test is present; add the other or remove both"
            )
        for a in xs + [y for y in ys if y is not None]:
            if a.ndim == 0:
                raise ValueError(f"{path}: arrays must have one entry per sample, found a scalar")
        if xs[0].shape[1:] != xs[1].shape[1:]:
            raise ValueError(
                f"{path}: x_train samples have shape {xs[0].shape[1:]} but x_test samples have "
                f"shape {xs[1].shape[1:]}; they must match for split='all'"
            )
        y_all = None
        if ys[0] is not None and ys[1] is not None:
            y_all = np.concatenate([ys[0].reshape(len(ys[0]), -1), ys[1].reshape(len(ys[1]), -1)])
        return np.concatenate(xs), y_all, True

    x_key = find(*_NPZ_X)
    if x_key is None and len(arrays) == 1:
        # np.savez(path, array) stores the array as "arr_0".
        x_key = next(iter(arrays))
    if x_key is None:
        raise ValueError(
            f"{path}: no input array found; name it X, x, data or images (labels: {', '.join(_NPZ_Y)}), "
            f"or use x_train/y_train/x_test/y_test. The file holds: {listing}"
        )
    y_key = find(*_NPZ_Y)
    if y_key is None and arrays[x_key].ndim > 0:
        _check_no_lost_labels(path, arrays, {x_key}, {len(arrays[x_key])})
    return arrays[x_key], None if y_key is None else arrays[y_key], False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_SAVE_UTF8 = "save it as UTF-8 (in a spreadsheet: Save As, 'CSV UTF-8')"


def _read_text(path: Path) -> str:
    """The text of a UTF-8 file, with a leading byte-order mark dropped; any other encoding is refused."""
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(
            f"{path}: the file is UTF-16 (or UTF-32) text, as its byte-order mark {raw[:2]!r} says, but aekit reads "
            f"UTF-8 only; {_SAVE_UTF8}"
        )
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise ValueError(
            f"{path}: the file holds a NUL byte (line {line}), so it is not UTF-8 text: it may be UTF-16 without "
            f"a byte-order mark, or not text at all; {_SAVE_UTF8}"
        )
    try:
        # utf-8-sig: spreadsheets often prepend a byte-order mark that would otherwise glue itself onto the
        # first header name.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(
            f"{path}: the file is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line} is not valid UTF-8 "
            f"(the file is probably in a legacy encoding such as Latin-1 or Windows-1252); {_SAVE_UTF8}"
        ) from None


def _delimiter(first_line: str) -> str:
    """Comma, or the semicolon or tab that separates the values of a first line without a comma.

    Spreadsheets in locales with a decimal comma write semicolons, and .tsv files saved as .csv use tabs.
    """
    if "," not in first_line:
        for d in (";", "\t"):
            if d in first_line:
                return d
    return ","


def _pandas_names(cells: list[str]) -> bool:
    """Whether ``cells`` are exactly 0, 1, ..., len - 1: the column names pandas writes for unnamed columns."""
    return cells == [str(i) for i in range(len(cells))]


def _cell_hint(cell: str, delimiter: str) -> str:
    if delimiter == "," and (";" in cell or "\t" in cell):
        return (
            "; it holds a semicolon or tab: separate values with commas on every line (semicolons or "
            "tabs are read only when the first line holds no comma)"
        )
    if delimiter != "," and "," in cell and _is_number(cell.replace(",", ".", 1)):
        return "; numbers must use a decimal point, not a decimal comma"
    return ""


def _load_csv(path: Path, label_column: int | str | None) -> tuple[np.ndarray, np.ndarray | None]:
    text = _read_text(path)
    first_line = next((line for line in io.StringIO(text) if line.strip()), "")
    delimiter = _delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = [(reader.line_num, [cell.strip() for cell in row]) for row in reader if row]
    if not rows:
        raise ValueError(f"{path}: the file is empty; it needs at least one row of numbers")

    # A header is a first row with no number in it, or exactly 0, 1, ..., D-1 with D >= 2 (pandas' names for
    # unnamed columns, as DataFrame(A).to_csv(index=False) writes them). Any other header made of numbers
    # cannot be told apart from data, and a typo in a data row should be reported as an error rather than
    # silently eaten as a header.
    first = rows[0][1]
    n_cols = len(first)
    index_column = n_cols >= 2 and first[0] == "" and (_pandas_names(first[1:]) or not any(map(_is_number, first)))
    # An unnamed first column under a header is the row index pandas writes by default (to_csv() without
    # index=False): it numbers the rows and is no feature, so it is dropped.
    index_column = index_column and all(first[1:])
    numeric_header = n_cols >= 2 and _pandas_names(first)
    header = first if index_column or numeric_header or not any(_is_number(c) for c in first) else None
    data = rows[1:] if header is not None else rows
    for lineno, row in data:
        if len(row) != n_cols:
            raise ValueError(
                f"{path}: line {lineno} has {len(row)} columns but line {rows[0][0]} has {n_cols}; "
                f"every row needs the same number of columns{_cell_hint(' '.join(row), delimiter)}"
            )
    if not data:
        raise ValueError(f"{path}: the file is empty: it has a header row but no data rows")
    if index_column:
        assert header is not None
        header = header[1:]
        data = [(lineno, row[1:]) for lineno, row in data]
        n_cols -= 1

    label_idx = _resolve_label_column(path, label_column, header, n_cols, index_column)
    features = [i for i in range(n_cols) if i != label_idx]
    if not features:
        raise ValueError(f"{path}: the file is empty of features: its only column is the label column")

    def column_name(i: int) -> str:
        return f"column {i} (0-based)" + (f" {header[i]!r}" if header is not None else "")

    cells = [[row[i] for i in features] for _, row in data]
    try:
        X = np.array(cells, dtype=np.float64)
    except ValueError:
        # numpy's message lacks the position; rescan with float() to name the
        # exact cell (and to accept anything float() accepts).
        X = np.empty((len(data), len(features)), dtype=np.float64)
        for r, (lineno, row) in enumerate(data):
            for c, i in enumerate(features):
                try:
                    X[r, c] = float(row[i])
                except ValueError:
                    hint = _cell_hint(row[i], delimiter)
                    if not hint and label_column is None:
                        hint = "; if this column holds class labels, pass label_column (CLI: --label-column)"
                    raise ValueError(
                        f"{path}: non-numeric value {row[i]!r} at line {lineno}, {column_name(i)}; "
                        f"every feature must be a number, so fix or remove that value{hint}"
                    ) from None

    if label_idx is None:
        return X, None
    y = np.empty(len(data), dtype=np.int64)
    for r, (lineno, row) in enumerate(data):
        cell = row[label_idx]
        try:
            # int() first: float() would round labels beyond 2**53.
            label = int(cell)
        except ValueError:
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not value.is_integer():
                raise ValueError(
                    f"{path}: the label column ({column_name(label_idx)}) holds {cell!r} at line {lineno}; "
                    "labels must be integers, so convert them first (e.g. map each class name to 0, 1, 2, ...)"
                ) from None
            label = int(value)
        if not -(2**63) <= label < 2**63:
            raise ValueError(
                f"{path}: the label column ({column_name(label_idx)}) holds {cell!r} at line {lineno}, outside "
                f"the int64 range ({INT64_RANGE}) that labels are stored in; encode the classes as 0, 1, 2, ..."
            )
        y[r] = label
    return X, y


def _resolve_label_column(
    path: Path, label_column: int | str | None, header: list[str] | None, n_cols: int, index_column: bool = False
) -> int | None:
    if label_column is None:
        return None
    if isinstance(label_column, str):
        if header is not None and label_column in header:
            return header.index(label_column)
        try:
            # A CLI flag arrives as a string; let "3" or "-1" mean an index.
            label_column = int(label_column)
        except ValueError:
            if header is None:
                raise ValueError(
                    f"label_column={label_column!r} names a column, but {path} has no header row "
                    "(its first row holds numbers); pass the column's 0-based index instead"
                ) from None
            raise ValueError(
                f"label_column={label_column!r} is not a column of {path}; its header has: "
                f"{', '.join(header)}"
            ) from None
    if not is_whole(label_column):
        raise ValueError(f"label_column must be a column index or header name, got {label_column!r}")
    if not -n_cols <= label_column < n_cols:
        after = " after its index column, which is not counted" if index_column else ""
        raise ValueError(
            f"label_column={label_column} is out of range: {path} has {n_cols} columns{after} "
            f"(indices 0 to {n_cols - 1}, or -1 for the last)"
        )
    return int(label_column) % n_cols


def _load_image_dir(root: Path) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...] | None]:
    from PIL import Image, UnidentifiedImageError

    # Files that are not read, for the message when no image is found at all.
    others: list[Path] = []

    def images_in(directory: Path, recursive: bool) -> list[Path]:
        found: list[Path] = []
        for p in directory.iterdir():
            if p.name.startswith("."):
                continue
            if p.is_file():
                (found if p.suffix.lower() in _IMAGE_SUFFIXES else others).append(p)
            elif recursive and p.is_dir():
                # As torchvision's ImageFolder: a class subdirectory may sort its images into folders of its own.
                found.extend(images_in(p, recursive))
        return sorted(found)

    top = images_in(root, recursive=False)
    # Class subdirectories without images are skipped: they are as likely to
    # be unrelated folders as empty classes.
    class_dirs = [
        (d.name, imgs)
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if (imgs := images_in(d, recursive=True))
    ]
    if top and class_dirs:
        raise ValueError(
            f"{root}: holds images both directly ({top[0].name}, ...) and in subdirectories "
            f"({class_dirs[0][0]}/, ...); put all images directly in it (unlabelled) or all in one "
            "subdirectory per class"
        )
    if not top and not class_dirs:
        hint = ""
        if any(p.name.endswith(("-ubyte.gz", "-ubyte")) for p in root.iterdir()):
            hint = "; it looks like MNIST IDX files: use load_dataset('mnist', data_dir=...) instead"
        elif others:
            names = ", ".join(str(p.relative_to(root)) for p in sorted(others)[:5])
            more = f" and {len(others) - 5} more" if len(others) > 5 else ""
            hint = (
                f"; it holds {len(others)} other file(s), not read because of their suffix: {names}{more}. "
                "Convert images to PNG to load them"
            )
        raise ValueError(
            f"{root}: the directory is empty of images: no {'/'.join(_IMAGE_SUFFIXES)} files directly "
            f"in it or in its class subdirectories{hint}"
        )

    files: list[Path]
    labels: np.ndarray | None
    classes: tuple[str, ...] | None
    if top:
        files, labels, classes = top, None, None
    else:
        files = [f for _, imgs in class_dirs for f in imgs]
        labels = np.concatenate(
            [np.full(len(imgs), k, dtype=np.int64) for k, (_, imgs) in enumerate(class_dirs)]
        )
        classes = tuple(name for name, _ in class_dirs)

    # First pass reads only headers, so size problems surface before any
    # decoding and the colour mode of the whole set is known up front.
    sizes: list[tuple[int, int]] = []
    modes: list[str] = []
    for f in files:
        try:
            with warnings.catch_warnings():
                # Pillow warns, then raises, on images past its own pixel limit; both are refusals here.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(f) as im:
                    sizes.append(im.size)
                    modes.append(im.mode)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(_bomb_message(f, str(exc))) from None
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"{f}: not a readable image ({exc})") from exc
        if sizes[-1][0] * sizes[-1][1] > MAX_IMAGE_PIXELS:
            w, h = sizes[-1]
            raise ValueError(_bomb_message(f, f"{w}x{h} = {w * h} pixels"))
    for f, size in zip(files, sizes):
        if size != sizes[0]:
            raise ValueError(
                f"images must all have the same size, but {files[0]} is {sizes[0][0]}x{sizes[0][1]} and "
                f"{f} is {size[0]}x{size[1]} (width x height); resize them to one size first"
            )
    gray = all(m in _GRAY_MODES for m in modes)
    width, height = sizes[0]
    X = np.empty((len(files), 1 if gray else 3, height, width), dtype=np.float32)
    for n, f in enumerate(files):
        try:
            with Image.open(f) as im:
                X[n] = _image_to_chw(im, gray)
        except OSError as exc:
            raise ValueError(f"{f}: could not decode image ({exc})") from exc
    return X, labels, classes


def _bomb_message(f: Path, size: str) -> str:
    return (
        f"{f}: image too large ({size}; the limit is {MAX_IMAGE_PIXELS} pixels per image), possibly a "
        "decompression bomb; remove it from the folder, or resize it (aekit trains on small images or patches)"
    )


def read_image(path: Path) -> np.ndarray:
    """One image file as (C, H, W) float32 in [0, 1]: one channel for a grayscale mode, else RGB.

    Raises ValueError for an unreadable file or one past ``MAX_IMAGE_PIXELS`` (a decompression bomb).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise ValueError(_bomb_message(path, f"{w}x{h} = {w * h} pixels"))
                return _image_to_chw(im, im.mode in _GRAY_MODES)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(_bomb_message(path, str(exc))) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def _image_to_chw(im: Any, gray: bool) -> np.ndarray:
    """``im`` as (C, H, W) float32 in [0, 1]: C is 1 when ``gray``, else 3 (RGB)."""
    if im.mode.startswith("I") or im.mode == "F":
        # 16-bit grayscale PNGs: convert("L") or convert("RGB") would clip to 255 rather than rescale, so
        # they are scaled first and, in a colour set, repeated into three equal channels.
        one = np.asarray(im, dtype=np.float32)[None]  # (1, H, W)
        if im.mode != "F":
            one /= 65535.0
        return one if gray else np.repeat(one, 3, axis=0)  # (C, H, W)
    if not gray:
        return np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
    return np.asarray(im.convert("L"), dtype=np.float32)[None] / 255.0


# ------------------------------------------------------------------ shared checks


def _check_structure(X: np.ndarray, name: str) -> np.ndarray:
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"{name}: X has dtype {X.dtype}; it must hold numbers (integers or floats), so convert it first"
        )
    if X.ndim == 0:
        raise ValueError(f"{name}: X is a single scalar; it needs one row per sample")
    if X.ndim == 1:
        raise ValueError(
            f"{name}: X is 1-D with shape {X.shape}, but aekit needs one row per sample: "
            "reshape to (n_samples, 1) if each value is a sample, or (1, n_features) if it is one sample"
        )
    if X.ndim > 4:
        # The same rule and message as check_array; (N, H, W) uint8 and (N, H, W, C) images are converted.
        raise ValueError(f"{name}: " + layout_message("X", X.shape))
    if X.size == 0:
        raise ValueError(f"{name}: X is empty (shape {X.shape}); the data must hold at least one sample")
    if X.ndim == 4 and X.shape[-1] in (2, 4) and X.shape[1] not in (1, 2, 3, 4):
        # Gray + alpha or RGBA with channels last: read as (N, C, H, W), a (N, 32, 32, 4) batch would train on
        # 32 "channels" of 32x4 pixels without a word.
        c = X.shape[-1]
        drop = "X[..., :1] keeps the gray channel" if c == 2 else "X[..., :3] keeps the RGB channels"
        raise ValueError(
            f"{name}: X has shape {X.shape}, which looks like images with {c} channels last (N, H, W, C); aekit "
            "moves only 1 (gray) or 3 (RGB) channels to the front. Drop the alpha channel "
            f"({drop}) or convert the images to gray or RGB, or transpose to (N, C, H, W) "
            f"(X.transpose(0, 3, 1, 2)) to keep all {c} channels"
        )
    return X


def _check_finite(X: np.ndarray, name: str) -> None:
    if X.dtype.kind != "f":
        return
    finite = np.isfinite(X)
    if finite.all():
        return
    bad = int(X.size - np.count_nonzero(finite))
    first = tuple(int(i) for i in np.unravel_index(int(np.argmin(finite)), X.shape))
    raise ValueError(
        f"{name}: X contains {bad} NaN or infinite value(s); the first is at index {first} "
        f"(sample {first[0]}). Remove or impute them before loading."
    )


def _check_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{name}: labels must be a 1-D array with one integer per sample, got shape {y.shape}"
        )
    if len(y) != n:
        raise ValueError(
            f"{name}: X has {n} samples but y has {len(y)} labels; they must have the same length"
        )
    if y.dtype.kind in "biuf":
        ok = whole_int64(y)
        if not ok.all():
            i = int(np.argmin(ok))
            if y.dtype.kind == "f" and not (np.isfinite(y[i]) and y[i] == np.round(y[i])):
                raise ValueError(
                    f"{name}: labels must be integers, but y[{i}] is {y[i]}; convert them to integer "
                    "class codes first"
                )
            raise ValueError(
                f"{name}: labels must lie in the int64 range ({INT64_RANGE}), but y[{i}] is {y[i]:g} "
                f"({int((~ok).sum())} label(s) outside it); encode the classes as 0, 1, 2, ... first "
                "(e.g. numpy.unique(y, return_inverse=True)[1])"
            )
        return y.astype(np.int64)
    raise ValueError(
        f"{name}: labels must be integers, got dtype {y.dtype}; convert them to integer class codes "
        "first (e.g. numpy.unique(y, return_inverse=True)[1])"
    )


def _split_indices(n: int, y: np.ndarray | None, split: str, name: str) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    if n < 2:
        raise ValueError(f"{name}: cannot split {n} sample into train and test parts; use split='all'")
    index = np.arange(n)
    try:
        train, test = train_test_split(index, test_size=_TEST_FRACTION, random_state=_SPLIT_SEED, stratify=y)
    except ValueError:
        # Too few samples in some class to stratify: a plain shuffled split is
        # still deterministic, and better than refusing small data.
        train, test = train_test_split(index, test_size=_TEST_FRACTION, random_state=_SPLIT_SEED)
    return np.asarray(train if split == "train" else test)


def _finalize(
    X: np.ndarray,
    y: np.ndarray | None,
    *,
    name: str,
    split: str,
    presplit: bool,
    limit: int | None,
    classes: tuple[str, ...] | None = None,
) -> Dataset:
    X = _check_structure(np.asarray(X), name)
    labels = None if y is None else _check_labels(np.asarray(y), len(X), name)
    # Checked before splitting so the reported index is the one in the file.
    _check_finite(X, name)
    if not presplit and split != "all":
        idx = _split_indices(len(X), labels, split, name)
        X = X[idx]
        labels = None if labels is None else labels[idx]
    if limit is not None:
        X = X[:limit]
        labels = None if labels is None else labels[:limit]

    source_dtype = X.dtype
    if X.ndim == 4:
        kind = "image"
        # NHWC (PIL/TensorFlow/CIFAR layout) -> NCHW (torch layout).
        if X.shape[-1] in (1, 3) and X.shape[1] not in (1, 3):
            X = X.transpose(0, 3, 1, 2)
    elif X.ndim == 3 and X.dtype == np.uint8:
        kind = "image"
        X = X[:, None]
    elif X.ndim == 3:
        kind = "signal"
    else:
        kind = "tabular"
    if kind == "image" and source_dtype == np.uint8:
        # Divided in place: a second array of the data's size, freshly allocated, cost 8x the division
        # (0.42 s against 0.05 s for MNIST's training images, most of it the new memory's page faults).
        X = X.astype(np.float32)
        np.divide(X, np.float32(255.0), out=X)
    else:
        # Overflow to inf is reported by the check below with a clear message,
        # rather than as a RuntimeWarning (an error under -W error).
        source = X
        with np.errstate(over="ignore"):
            X = X.astype(np.float32)
        # The source was checked finite above, so anything infinite now overflowed float32.
        if source_dtype.kind == "f" and source_dtype.itemsize > 4 and not np.isfinite(X).all():
            raise ValueError(f"{name}: " + float32_overflow_message("X", source, ~np.isfinite(X)))
    if kind == "image" and source_dtype != np.uint8:
        lo, hi = float(X.min()), float(X.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name}: image values must lie in [0, 1] but range from {lo:g} to {hi:g}; divide by 255 "
                "if they are 0-255 pixel values, store them as uint8 (rescaled automatically), or "
                "reshape to (N, D) to load them as unscaled tabular data"
            )
    return Dataset(
        X=np.ascontiguousarray(X),
        y=labels,
        name=name,
        split=split,
        kind=kind,
        classes=classes,
    )


# ----------------------------------------------------------------------- entry point


def _builtin_name(name_or_path: str | os.PathLike[str]) -> str | None:
    if not isinstance(name_or_path, str):
        return None
    key = name_or_path.strip().lower().replace("_", "-")
    if key == "fashionmnist":
        key = "fashion-mnist"
    return key if key in DATASETS else None


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    label_column: int | str | None = None,
    limit: int | None = None,
) -> Dataset:
    """Load a built-in data set or a user file into a :class:`Dataset`.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A name from :data:`DATASETS` (case-insensitive; ``fashion_mnist`` is
        accepted too), or a path to a ``.npy``, ``.npz`` or ``.csv`` file or
        to a directory of images. A ``str`` equal to a built-in name
        is the built-in set; pass a ``pathlib.Path`` to load a file of that
        name instead.
    split : {"train", "test", "all"}, default "train"
        Which part to return. MNIST, Fashion-MNIST and ``.npz`` files with
        ``x_train``/``x_test`` arrays use their own splits ("all" joins train
        then test). Other sources (digits, ``.npy``, ``.csv``, other ``.npz``,
        image folders) are split deterministically 80/20, stratified by label
        when possible (scikit-learn ``train_test_split``, ``random_state=0``);
        "all" returns every sample in file order.
    data_dir : str or os.PathLike, optional
        For MNIST/Fashion-MNIST: the directory holding the four original IDX
        ``.gz`` files, or a parent holding them in ``mnist/`` or
        ``fashion-mnist/``. Defaults to ``default_data_dir() / name``.
        Ignored for other sources.
    download : bool, default False
        For MNIST/Fashion-MNIST: fetch missing files from :data:`MIRRORS`.
        Files that exist but fail the md5 check are never overwritten.
    label_column : int or str, optional
        For ``.csv`` files only: the 0-based index (negative counts from the
        end, a dropped index column is not counted) or header name of the
        integer label column.
    limit : int, optional
        Keep only the first ``limit`` samples of the split, for quick runs.

    Returns
    -------
    Dataset
        ``X`` as ``float32`` (images in ``[0, 1]``; uint8 images are divided
        by 255, other data keeps its scale), ``y`` as ``int64`` or None.

    Raises
    ------
    ValueError
        For an unknown name or split, an unsupported file type, or invalid
        data (empty, 1-D, non-numeric, NaN/inf, mismatched labels, md5
        mismatch, corrupt IDX file, ...); the message says how to fix it.
    FileNotFoundError
        If a path, or an MNIST file with ``download=False``, does not exist.
    DownloadError
        If a download fails on every mirror.

    Notes
    -----
    Array layouts: 4-D arrays are images, transposed from NHWC when the last
    axis is 1 or 3 and the second is not; a last axis of 2 or 4 (gray + alpha,
    RGBA) with a second axis that is no channel count (1 to 4) is refused, as
    it cannot be told apart from ``(N, C, H, W)`` with a narrow width; 3-D
    uint8 arrays are single-channel images ``(N, H, W)``; other 3-D arrays are
    signals ``(N, C, L)``; 2-D arrays are tabular. Labels must be integers in
    the int64 range.

    ``.npz`` inputs are read from ``X``/``x``/``data``/``images`` (or the
    only array) and labels from ``y``/``labels``/``targets``/``label``/
    ``target`` (case-insensitive). An archive without labels under these
    names that holds another array with one entry per sample (``classes``,
    or ``y_train`` beside ``X``) is refused, since those are most likely the
    labels under a name not read.

    ``.csv`` files must be UTF-8 (a byte-order mark is accepted). Values are
    separated by commas, or by semicolons or tabs when the first line holds
    no comma. The first row is a header when it holds no number, or when it
    is exactly ``0,1,...,D-1`` with ``D >= 2`` (the names pandas gives
    unnamed columns); a data file whose first row really is those numbers
    must write one of them differently (``0.0``). A header whose first name
    alone is empty (``,0,1,2`` or ``,a,b``, as ``DataFrame.to_csv()`` writes
    the row index) marks an index column, which is dropped.

    In an image folder (PNG, JPEG, BMP, GIF, TIFF or WebP files), each
    subdirectory is a class, numbered in name order, and holds its images
    directly or in folders of its own (as torchvision's ``ImageFolder``);
    images are grayscale if all are single-channel, else RGB. 16-bit images
    are divided by 65535.

    Examples
    --------
    >>> ds = load_dataset("digits", split="all")
    >>> ds.X.shape, ds.kind
    ((1797, 1, 8, 8), 'image')
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(repr(s) for s in SPLITS)}")
    if limit is not None and not is_whole(limit, 1):
        raise ValueError(f"limit must be a positive integer (or None for all samples), got {limit!r}")
    limit = None if limit is None else int(limit)

    builtin = _builtin_name(name_or_path)
    path = None if builtin is not None else Path(name_or_path).expanduser()
    if label_column is not None and (path is None or path.suffix.lower() != ".csv"):
        raise ValueError(
            f"label_column={label_column!r} only applies to .csv files; other sources carry their own labels"
        )

    if builtin == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        # Pixel intensities in load_digits are counts 0..16.
        X = (digits.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
        return _finalize(
            X,
            digits.target,
            name="digits",
            split=split,
            presplit=False,
            limit=limit,
            classes=_CLASS_NAMES["digits"],
        )
    if builtin is not None:
        images, targets = _load_idx_dataset(builtin, split, data_dir, download)
        return _finalize(
            images,
            targets,
            name=builtin,
            split=split,
            presplit=True,
            limit=limit,
            classes=_CLASS_NAMES[builtin],
        )

    assert path is not None
    name = str(path)
    if isinstance(name_or_path, str) and not name_or_path.strip():
        # Path("") is the current directory, which would be loaded as an image folder.
        raise ValueError(
            f"the data set name is empty ({name_or_path!r}); name a built-in data set ({', '.join(DATASETS)}); "
            + _ACCEPTED
        )
    if not path.exists():
        text = str(name_or_path)
        looks_like_path = (
            not isinstance(name_or_path, str)
            or path.suffix.lower() in _FILE_SUFFIXES + _IMAGE_SUFFIXES
            or "/" in text
            or os.sep in text
        )
        if looks_like_path:
            raise FileNotFoundError(
                f"no such file or directory: {path} (built-in data sets: {', '.join(DATASETS)})"
            )
        raise ValueError(
            f"unknown dataset {text!r}: it is not a built-in data set ({', '.join(DATASETS)}) and no "
            f"file or directory of that name exists; {_ACCEPTED}"
        )

    classes: tuple[str, ...] | None = None
    presplit = False
    y: np.ndarray | None
    if path.is_dir() and path.suffix.lower() in _FILE_SUFFIXES:
        raise ValueError(
            f"{path} is a directory, but a name ending in {path.suffix} names a {path.suffix} file; pass the "
            "file itself (or rename the directory to load the images in it)"
        )
    if path.is_dir():
        X, y, classes = _load_image_dir(path)
    else:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            X, y = _read_npy(path), None
        elif suffix == ".npz":
            X, y, presplit = _load_npz(path, split)
        elif suffix == ".csv":
            X, y = _load_csv(path, label_column)
        else:
            raise ValueError(
                f"{path}: unsupported file type {suffix or '(no extension)'!r}; use a .npy, .npz or .csv "
                "file or a directory of PNG/JPEG images (convert other formats with numpy.save)"
            )
    return _finalize(X, y, name=name, split=split, presplit=presplit, limit=limit, classes=classes)
