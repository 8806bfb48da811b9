"""The data a run is trained on: its recorded description and its fingerprint."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aekit.data.datasets import DATASETS, Dataset, load_dataset
from aekit.data.preprocessing import data_checksum
from aekit.engine.rundir import DataChangedError


@dataclass(frozen=True)
class DataSpec:
    """Where a run's training data comes from; saved as ``data`` in ``config.json``.

    Parameters
    ----------
    name : str
        A built-in data set (``digits``, ``mnist``, ``fashion-mnist``) or a path to a ``.npy``,
        ``.npz`` or ``.csv`` file or a folder of images (made absolute by :meth:`of`).
    data_dir : str, optional
        Directory of the MNIST/Fashion-MNIST IDX files.
    split : {"train", "test", "all"}
        The split trained on.
    limit : int, optional
        Only the first ``limit`` samples.
    label_column : int or str, optional
        Label column of a CSV file.
    """

    name: str = "digits"
    data_dir: str | None = None
    split: str = "train"
    limit: int | None = None
    label_column: int | str | None = None

    @classmethod
    def of(cls, data: str | os.PathLike[str] | DataSpec | Mapping[str, Any]) -> DataSpec:
        """A spec from a name, a path, a spec or the ``data`` mapping of a ``config.json``; paths made absolute."""
        if isinstance(data, DataSpec):
            spec = data
        elif isinstance(data, Mapping):
            unknown = sorted(set(data) - {f for f in cls.__dataclass_fields__})
            if unknown or "name" not in data:
                raise ValueError(
                    f"a data description needs a 'name' and may have data_dir, split, limit and label_column; got "
                    f"keys {sorted(data)}"
                )
            spec = cls(**dict(data))
        elif isinstance(data, str | os.PathLike):
            spec = cls(name=os.fspath(data))
        else:
            raise TypeError(f"data must be a data set name, a path or a DataSpec, got {type(data).__name__}")
        name = spec.name
        key = name.strip().lower().replace("_", "-")
        if key not in DATASETS and key != "fashionmnist":
            p = Path(name).expanduser()
            if p.exists():
                name = str(p.resolve())
        data_dir = str(Path(spec.data_dir).expanduser().resolve()) if spec.data_dir is not None else None
        return cls(name, data_dir, spec.split, spec.limit, spec.label_column)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load(self, *, split: str | None = None, download: bool = False) -> Dataset:
        """Load the data (``split`` overrides the recorded split; the limit applies to every split)."""
        return load_dataset(
            self.name, split=split or self.split, data_dir=self.data_dir, download=download,
            label_column=self.label_column, limit=self.limit,
        )

    @property
    def path(self) -> Path | None:
        """The file or folder the data comes from, or None for a built-in data set."""
        key = self.name.strip().lower().replace("_", "-")
        return None if key in DATASETS or key == "fashionmnist" else Path(self.name)


def fingerprint(spec: DataSpec, ds: Dataset) -> dict[str, Any]:
    """Size, shape, dtype and a BLAKE2 checksum of the loaded samples and labels; for a file its size and mtime.

    The checksum is of the arrays training sees (after the limit), so it covers the files of a named
    data set and the bytes of a user's file alike; hashing runs at about 1 GB/s.
    """
    X = ds.X
    fp: dict[str, Any] = {
        "n_samples": int(X.shape[0]), "sample_shape": [int(s) for s in X.shape[1:]], "dtype": str(X.dtype),
        "checksum": data_checksum(X, ds.y),
    }
    path = spec.path
    if path is not None and path.is_file():
        st = path.stat()
        fp.update(file=str(path), size=int(st.st_size), mtime=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)))
    return fp


def check_fingerprint(recorded: Any, current: dict[str, Any], spec: DataSpec, run: Path) -> None:
    """Refuse to resume ``run`` on data whose fingerprint differs from the one it started with."""
    if not isinstance(recorded, dict) or "checksum" not in recorded:
        return  # a run started before fingerprints were recorded
    if recorded.get("checksum") == current["checksum"]:
        return

    def describe(fp: dict[str, Any]) -> str:
        shape = "x".join(str(s) for s in fp.get("sample_shape", []))
        text = f"{fp.get('n_samples')} samples of shape {shape} {fp.get('dtype')}, checksum {str(fp.get('checksum'))[:12]}"
        if "size" in fp:
            text += f", {fp['size']} bytes modified {fp.get('mtime')}"
        return text

    where = str(spec.path) if spec.path is not None else f"the data set {spec.name}"
    raise DataChangedError(
        "the training data of {run} changed since the run started: {where} now holds {now} (the run started on "
        "{then}); resume on the same data, or pass {allow_data_change} to continue on the new data",
        run=run, where=where, now=describe(current), then=describe(recorded),
    )
