"""One rule for input arrays in the Python API and the data loaders, and image folders that cannot be bombs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import aekit
from aekit.data.datasets import MAX_IMAGE_PIXELS
from aekit.data.preprocessing import check_array

OVERFLOW = (
    r"X has 1 value\(s\) in 1 sample\(s\) \(first at sample 2\) that overflow float32: the largest is 1e\+39 in "
    r"magnitude, beyond the largest finite float32, about 3\.4e38, .* Rescale the data before passing it"
)
LAYOUT = (
    r"X has 5 dimensions \(shape \(3, 1, 2, 2, 2\)\); aekit takes 2-D tabular data \(N, D\), 3-D signals "
    r"\(N, C, L\) or 4-D images \(N, C, H, W\)\. Reshape it"
)


def test_float32_overflow_has_one_message(tmp_path: Path) -> None:
    X = np.ones((4, 3))
    X[2, 1] = 1e39
    with pytest.raises(ValueError, match="^" + OVERFLOW):
        check_array(X)
    with pytest.raises(ValueError, match="^" + OVERFLOW):
        aekit.Autoencoder(hidden_dims=(4,), latent_dim=2, max_epochs=1, verbose=0).fit(X)
    np.save(tmp_path / "big.npy", X)
    with pytest.raises(ValueError, match=r"big\.npy: " + OVERFLOW):
        aekit.load_dataset(tmp_path / "big.npy", split="all")
    # NaN and infinity that were there before the conversion keep their own message.
    X[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"X contains NaN or infinity: 1 values in 1 samples"):
        check_array(X)


def test_more_than_four_dimensions_refused_everywhere(tmp_path: Path) -> None:
    X = np.zeros((3, 1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="^" + LAYOUT):
        check_array(X)
    with pytest.raises(ValueError, match="^" + LAYOUT):
        aekit.Autoencoder(hidden_dims=(4,), latent_dim=2, max_epochs=1, verbose=0).fit(X)
    np.save(tmp_path / "five.npy", X)
    with pytest.raises(ValueError, match=r"five\.npy: " + LAYOUT):
        aekit.load_dataset(tmp_path / "five.npy")
    for shape in [(3, 4), (3, 2, 4), (3, 1, 2, 2)]:  # the three layouts pass
        assert check_array(np.zeros(shape)).shape == shape


def _png_header(width: int, height: int) -> bytes:
    """A grayscale PNG declaring width x height pixels in a few dozen bytes (its data is never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("width", "height"),
    [(6000, 6000), (10000, 10000), (30000, 30000)],
    ids=["past-aekit-limit", "pillow-warns", "pillow-raises"],
)
def test_decompression_bomb_refused(tmp_path: Path, width: int, height: int) -> None:
    from PIL import Image

    (tmp_path / "a.png").write_bytes(_png_header(8, 8))
    (tmp_path / "bomb.png").write_bytes(_png_header(width, height))
    assert width * height > MAX_IMAGE_PIXELS
    assert (width * height > Image.MAX_IMAGE_PIXELS) == (width > 6000)
    with pytest.raises(ValueError, match=r"bomb\.png: image too large \(.*limit is 33554432 pixels per image\), possibly a decompression bomb"):
        aekit.load_dataset(tmp_path)
