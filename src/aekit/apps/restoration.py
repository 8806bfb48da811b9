"""Image restoration with a trained autoencoder: denoising, inpainting and colorization, at any image size.

A denoising autoencoder learns ``E[x | x']`` for a corruption ``q(x' | x)`` (Vincent et al. 2008, 2010):
its reconstruction of a corrupted image is the restored image. :func:`denoise` reconstructs,
:func:`inpaint` keeps the known pixels exactly and takes only the missing ones from the reconstruction,
optionally iterating ``x_M <- g(f(x))_M`` with the known pixels fixed (what lets a model trained with
masking or block occlusion fill holes larger than those it was trained on), and :func:`colorize` maps a
gray image, replicated over the three channels as the ``grayscale`` corruption does, to colour.

Images larger than the model's input are restored patch by patch (:func:`restore_patches`): windows of
the model's size at a stride (half the window by default, the last window flush with the border), each
reconstructed, and the overlapping reconstructions averaged per pixel (uniformly, or weighted by a
smooth window that favours each window's centre). Patches are reconstructed ``batch_size`` at a time, so
memory is the images plus one batch, whatever the image size. A model of one channel restores a colour
image channel by channel.

Every family restores through ``reconstruct``; images need the ``"images"`` capability of the registry.

Example::

    import aekit
    dae = aekit.DenoisingAutoencoder(corruption="gaussian:0.5").fit(X)      # X: (N, 1, 28, 28)
    clean = aekit.denoise(dae, noisy)                                      # any (N, 1, H, W), H, W >= 28
    filled = aekit.inpaint(dae, X, "block:12x12", iterations=5, random_state=0)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from aekit.core.params import check_count, is_whole

__all__ = [
    "RestorationScores",
    "colorize",
    "denoise",
    "inpaint",
    "make_mask",
    "restoration_scores",
    "restore_patches",
]

WINDOWS = ("uniform", "hann")
_MASK_SPEC = re.compile(r"^(?:block:(?P<h>\d+)(?:x(?P<w>\d+))?|random:(?P<p>[0-9.eE+-]+))$")


# ------------------------------------------------------------------------------------- checks


def _capable(model: Any) -> None:
    """Refuse an object that cannot reconstruct images, naming the registered families that can."""
    from aekit.model.registry import declared_capabilities, families

    can = [n for n, f in families().items() if "images" in f.capabilities and hasattr(f.estimator, "reconstruct")]
    name = getattr(model, "_family_name", type(model).__name__)
    if not callable(getattr(model, "reconstruct", None)) or (
        hasattr(model, "_family_name") and "images" not in declared_capabilities(model)
    ):
        raise ValueError(f"{name!r} cannot restore images (it does not reconstruct images); use a model of a family "
                         f"that can: {', '.join(can)}")
    if callable(getattr(model, "_check_fitted", None)):
        model._check_fitted()
    if not hasattr(model, "sample_shape_"):
        raise ValueError(f"{name!r} is not fitted; fit it or load a trained run with aekit.load(path)")


def _patch_shape(model: Any, channels: int) -> tuple[int, int, int]:
    """The (C, h, w) window the model restores. A flat model (D,) restores square windows of D / C pixels."""
    shape = tuple(int(s) for s in model.sample_shape_)
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 1:
        for c in (channels, 1):
            side = math.isqrt(shape[0] // c) if shape[0] % c == 0 else 0
            if side > 0 and c * side * side == shape[0]:
                return c, side, side
    raise ValueError(f"the model was fitted on samples of shape {shape}, not images (C, H, W) or square images "
                     "flattened to (D,); restoration needs a model trained on images")


def _as_images(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a float array (N, C, H, W); (N, H, W) is read as single-channel images. Floats keep their dtype."""
    A = np.asarray(X)
    if not np.issubdtype(A.dtype, np.floating):
        A = A.astype(np.float32)
    if A.ndim == 3:
        A = A[:, None]
    if A.ndim != 4:
        hint = (f" (flat rows carry no image shape: reshape them, e.g. to ({A.shape[0]}, 1, H, W) with H * W = "
                f"{A.shape[1]} for gray images)" if A.ndim == 2 else "")
        raise ValueError(f"{name} has shape {A.shape}; pass images as (N, C, H, W) or (N, H, W){hint}")
    if A.shape[-1] in (1, 3) and A.shape[1] not in (1, 3):
        raise ValueError(f"{name} has shape {A.shape}, images with their channels last (N, H, W, C); pass them as "
                         f"(N, C, H, W): {name}.transpose(0, 3, 1, 2)")
    if A.shape[0] == 0 or min(A.shape[2:]) == 0:
        raise ValueError(f"{name} has shape {A.shape}; it holds no pixels")
    if not np.isfinite(A).all():
        raise ValueError(f"{name} holds NaN or infinite values; restoration needs finite pixel values")
    return A


def _check_stride(stride: Any, patch: tuple[int, int]) -> tuple[int, int]:
    if stride is None:
        return max(1, patch[0] // 2), max(1, patch[1] // 2)
    pair = (stride, stride) if not isinstance(stride, tuple | list) else tuple(stride)
    if len(pair) != 2 or not all(is_whole(s, 1) for s in pair):
        raise ValueError(f"stride must be a positive integer or a pair of them, e.g. 14; got {stride!r}")
    if pair[0] > patch[0] or pair[1] > patch[1]:
        # Windows further apart than their size would leave pixels between them that no window covers.
        raise ValueError(f"stride {stride!r} is larger than the model's {patch[0]}x{patch[1]} window, so some pixels "
                         f"would be covered by no window; use a stride of at most {min(patch)}, e.g. "
                         f"{max(1, min(patch) // 2)}")
    return int(pair[0]), int(pair[1])


# ------------------------------------------------------------------------------------- patches


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Window origins covering [0, size): every ``stride``, plus one flush with the far border."""
    last = size - window
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def _window(kind: str, h: int, w: int) -> np.ndarray:
    """Per-pixel weight of a window, (h, w), strictly positive so every pixel is covered."""
    if kind == "uniform":
        return np.ones((h, w), np.float64)
    # A Hann window lifted off zero: borders count a little, centres most.
    wy = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(h) + 0.5) / h)
    wx = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(w) + 0.5) / w)
    return np.outer(wy, wx) + 1e-3


def restore_patches(
    fn: Any,
    X: np.ndarray,
    patch: tuple[int, int],
    *,
    stride: int | tuple[int, int] | None = None,
    window: str = "uniform",
    batch_size: int = 256,
) -> np.ndarray:
    """Apply a patch map ``fn`` over overlapping windows of each image and average the results.

    Parameters
    ----------
    fn : callable
        Maps a batch of patches (B, C, h, w) to an array of the same shape.
    X : ndarray, (N, C, H, W) with H >= h and W >= w
    patch : (h, w)
    stride : int or (int, int), optional
        Step between window origins; default half the window. The last window of each row and column is
        flush with the border, so every pixel is covered.
    window : {"uniform", "hann"}
        Weight of each window's pixels in the average.
    batch_size : int
        Patches per call of ``fn``: memory is the images plus one batch.

    Returns
    -------
    ndarray, (N, C, H, W), float32
        ``sum_w weight * fn(patch)`` / ``sum_w weight`` per pixel: ``fn`` = identity gives ``X`` back.
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}; got {window!r}")
    check_count("batch_size", batch_size)
    N, C, H, W = X.shape
    h, w = patch
    if H < h or W < w:
        raise ValueError(f"the images are {H}x{W} pixels, smaller than the model's {h}x{w} input; pad or resize them "
                         f"to at least {h}x{w}")
    sy, sx = _check_stride(stride, patch)
    weight = _window(window, h, w)
    acc = np.zeros((N, C, H, W), np.float64)
    norm = np.zeros((H, W), np.float64)
    ys, xs = _starts(H, h, sy), _starts(W, w, sx)
    for y in ys:
        for x in xs:
            norm[y : y + h, x : x + w] += weight

    def origins() -> Iterator[tuple[int, int, int]]:
        for n in range(N):
            for y in ys:
                for x in xs:
                    yield n, y, x

    batch: list[tuple[int, int, int]] = []

    def flush() -> None:
        P = np.stack([X[n, :, y : y + h, x : x + w] for n, y, x in batch])  # (B, C, h, w)
        R = np.asarray(fn(P), dtype=np.float64).reshape(P.shape)
        for (n, y, x), r in zip(batch, R, strict=True):
            acc[n, :, y : y + h, x : x + w] += r * weight
        batch.clear()

    for o in origins():
        batch.append(o)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return (acc / norm).astype(np.float32)


def _check_range(model: Any, A: np.ndarray, name: str = "X") -> None:
    """Refuse pixel values far outside those the model was trained on (0-255 values for a model of [0, 1] images)."""
    info = getattr(model, "data_info_", None)
    lo, hi = getattr(info, "min", None), getattr(info, "max", None)
    if lo is None or hi is None:
        return
    span = max(float(hi) - float(lo), 1e-12)
    a_lo, a_hi = float(A.min()), float(A.max())
    if a_lo < lo - 2 * span or a_hi > hi + 2 * span:  # room for noise on the input, none for another scale
        hint = ("; pixel values 0-255 need dividing by 255" if a_hi > 1.5 and 0 <= lo and hi <= 1 else
                "; bring them to the scale of the training data")
        raise ValueError(f"{name} holds values from {a_lo:.4g} to {a_hi:.4g}, far outside the range [{lo:.4g}, "
                         f"{hi:.4g}] of the images the model was trained on{hint}")


def _reconstruct(model: Any, X: np.ndarray, *, stride: Any, window: str, batch_size: int) -> np.ndarray:
    """The model's reconstruction of images ``X`` (N, C, H, W) of any size >= its input, patch-wise."""
    _capable(model)
    check_count("batch_size", batch_size)
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}; got {window!r}")
    N, C, H, W = X.shape
    pc, h, w = _patch_shape(model, C)
    _check_stride(stride, (h, w))
    flat = len(model.sample_shape_) == 1
    if C != pc:
        if pc == 1:  # a gray model restores each colour channel as a gray image
            R = _reconstruct(model, X.reshape(N * C, 1, H, W), stride=stride, window=window, batch_size=batch_size)
            return R.reshape(N, C, H, W)
        raise ValueError(f"the images have {C} channel(s) but the model was trained on {pc}; pass images with {pc} "
                         "channel(s), or train a model on data like these")

    def fn(P: np.ndarray) -> np.ndarray:
        P32 = P.astype(np.float32, copy=False)
        out = model.reconstruct(P32.reshape(P.shape[0], -1) if flat else P32)
        return np.asarray(out).reshape(P.shape)

    if (H, W) == (h, w):
        return np.concatenate([fn(X[i : i + batch_size]) for i in range(0, N, batch_size)]).astype(np.float32)
    return restore_patches(fn, X, (h, w), stride=stride, window=window, batch_size=batch_size)


# ------------------------------------------------------------------------------------- public


def denoise(
    model: Any, X: Any, *, stride: int | tuple[int, int] | None = None, window: str = "uniform", batch_size: int = 256
) -> np.ndarray:
    """Restore corrupted images by reconstructing them: ``g(f(x'))``, patch-wise when larger than the model's input.

    Parameters
    ----------
    model : a fitted estimator of a family with the ``"images"`` capability (best a denoising autoencoder
        trained on the corruption to undo)
    X : array-like, (N, C, H, W) or (N, H, W), H and W at least the model's input size
    stride, window, batch_size : see :func:`restore_patches`

    Returns
    -------
    ndarray, the shape of ``X`` ((N, 1, H, W) for (N, H, W) input), float32
    """
    A = _as_images(X)
    _check_range(model, A)
    R = _reconstruct(model, A, stride=stride, window=window, batch_size=batch_size)
    return R.reshape(np.shape(X)) if np.ndim(X) == 3 else R


def make_mask(spec: str, shape: tuple[int, ...], random_state: int | None = 0) -> np.ndarray:
    """A boolean mask of the pixels to fill (True = missing) from a spec, shape (N, H, W).

    ``"block:12x12"`` (or ``"block:12"``): one 12x12 block per image at a uniformly drawn position where it
    fits; ``"random:0.3"``: each pixel missing with probability 0.3. ``shape`` is (N, C, H, W) or (N, H, W);
    the same draw for a given ``random_state``.
    """
    m = _MASK_SPEC.match(str(spec).strip())
    if m is None:
        raise ValueError(f"unknown mask spec {spec!r}; use block:HxW (e.g. block:12x12), block:S or random:P (e.g. "
                         "random:0.3), or pass a mask array")
    N, H, W = shape[0], shape[-2], shape[-1]
    rng = np.random.default_rng(random_state)
    if m.group("p") is not None:
        try:
            p = float(m.group("p"))
        except ValueError:
            p = math.nan
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mask spec {spec!r}: the fraction must be in [0, 1], e.g. random:0.3")
        return rng.random((N, H, W)) < p
    bh = int(m.group("h"))
    bw = int(m.group("w") or bh)
    if bh < 1 or bw < 1:
        raise ValueError(f"mask spec {spec!r}: a {bh}x{bw} block masks no pixel; the block's height and width must "
                         "be at least 1, e.g. block:3x3")
    if not (bh <= H and bw <= W):
        raise ValueError(f"mask spec {spec!r}: a {bh}x{bw} block does not fit in {H}x{W} images; give a block of at "
                         f"most {H}x{W}")
    mask = np.zeros((N, H, W), bool)
    ys = rng.integers(0, H - bh + 1, size=N)
    xs = rng.integers(0, W - bw + 1, size=N)
    for n in range(N):
        mask[n, ys[n] : ys[n] + bh, xs[n] : xs[n] + bw] = True
    return mask


def check_mask(mask: Any, shape: tuple[int, int, int, int]) -> np.ndarray:
    """``mask`` (True or 1 = missing) broadcast to images of ``shape`` (N, C, H, W); a ValueError names what is wrong.

    Accepted shapes: (N, C, H, W), (N, H, W) or (N, 1, H, W) (all channels), (C, H, W), (1, H, W) or (H, W)
    (every image).
    """
    M = np.asarray(mask)
    N, C, H, W = shape
    if M.dtype != bool:
        if not np.issubdtype(M.dtype, np.number) or not np.isin(M, (0, 1)).all():
            bad = np.unique(M)[:5] if np.issubdtype(M.dtype, np.number) else M.dtype
            raise ValueError(f"the mask must be binary (0/1 or False/True, True = missing), got values {bad}; "
                             "threshold it, e.g. mask > 0.5")
        M = M.astype(bool)
    if M.shape == (N, C, H, W):
        return M
    if M.shape == (N, H, W):
        return np.broadcast_to(M[:, None], shape)
    if M.shape in ((N, 1, H, W), (C, H, W), (1, H, W), (H, W)):
        return np.broadcast_to(M, shape)
    raise ValueError(f"the mask has shape {M.shape} but the images are {shape} (N, C, H, W); give a mask of shape "
                     f"(N, H, W) = {(N, H, W)}, (H, W) = {(H, W)} or the images' own shape")


def inpaint(
    model: Any,
    X: Any,
    mask: Any,
    *,
    iterations: int = 1,
    fill_value: float = 0.0,
    random_state: int | None = 0,
    stride: int | tuple[int, int] | None = None,
    window: str = "uniform",
    batch_size: int = 256,
) -> np.ndarray:
    """Fill the masked pixels of images from the model's reconstruction; the known pixels are kept exactly.

    With ``x^0_M = fill_value`` (what block occlusion and masking noise write) and ``x_K`` the known pixels::

        x^{t+1}_M = g(f(x^t))_M,    x^{t+1}_K = x_K,    t = 0 .. iterations - 1

    Parameters
    ----------
    model : fitted estimator (see :func:`denoise`)
    X : array-like, (N, C, H, W) or (N, H, W)
    mask : array-like of bool / {0, 1} (True = missing; see :func:`check_mask` for its shapes), or a spec
        ``"block:12x12"``, ``"block:12"`` or ``"random:0.3"`` drawn with ``random_state``
    iterations : int >= 1
        Reconstructions of the masked pixels; each later one starts from the previous fill.
    fill_value : float
        The masked pixels' value before the first reconstruction.

    Returns
    -------
    ndarray, the shape of ``X``: ``X`` where the mask is False, the fill where it is True
    """
    if not is_whole(iterations, 1):
        raise ValueError(f"iterations must be a positive integer, e.g. 5; got {iterations!r}")
    if isinstance(fill_value, bool) or not isinstance(fill_value, int | float | np.number) \
            or not math.isfinite(float(fill_value)):
        raise ValueError(f"fill_value must be a finite number, the masked pixels' value before the first "
                         f"reconstruction, e.g. 0.0; got {fill_value!r}")
    A = _as_images(X)
    _check_range(model, A)
    M = make_mask(mask, A.shape, random_state) if isinstance(mask, str) else mask
    M = check_mask(M, A.shape)  # (N, C, H, W)
    x = np.where(M, np.asarray(fill_value, A.dtype), A)
    for _ in range(int(iterations)):
        R = _reconstruct(model, x, stride=stride, window=window, batch_size=batch_size)
        x = np.where(M, R.astype(A.dtype, copy=False), A)
    return x.reshape(np.shape(X)) if np.ndim(X) == 3 else x


def colorize(
    model: Any, X: Any, *, stride: int | tuple[int, int] | None = None, window: str = "uniform", batch_size: int = 256
) -> np.ndarray:
    """Colour for gray images: the gray replicated over R, G and B (as the ``grayscale`` corruption writes it),
    then reconstructed by a model trained with that corruption on colour images.

    Parameters
    ----------
    model : fitted estimator on 3-channel images (a denoising autoencoder with ``corruption="grayscale"``)
    X : array-like, (N, H, W) or (N, 1, H, W): gray images (luma)

    Returns
    -------
    ndarray, (N, 3, H, W), float32
    """
    _capable(model)
    A = _as_images(X)
    pc = _patch_shape(model, 3)[0]
    if pc != 3:
        raise ValueError(f"colorize needs a model trained on colour images (3 channels) with the grayscale "
                         f"corruption; this one was trained on sample shape {tuple(model.sample_shape_)}")
    if A.shape[1] != 1:
        raise ValueError(f"colorize takes gray images (N, H, W) or (N, 1, H, W), got shape {A.shape}; convert colour "
                         "images to gray first (0.299 R + 0.587 G + 0.114 B), or use denoise")
    _check_range(model, A)
    gray3 = np.repeat(A, 3, axis=1)  # (N, 3, H, W)
    return _reconstruct(model, gray3, stride=stride, window=window, batch_size=batch_size)


# ------------------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class RestorationScores:
    """PSNR (dB) and SSIM of each restored image against its clean reference, and their means."""

    psnr: tuple[float, ...]
    ssim: tuple[float, ...]

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim))


def restoration_scores(
    clean: Any, restored: Any, *, mask: Any = None, data_range: float = 1.0
) -> RestorationScores:
    """PSNR and SSIM (scikit-image) per image, over all pixels or only the masked ones.

    PSNR = 10 log10(data_range^2 / MSE); SSIM is scikit-image's ``structural_similarity`` (7x7 window, or
    the largest odd window an image allows), over the channels for colour; with ``mask`` (True = scored;
    shapes as in :func:`check_mask`) the MSE and the mean of the SSIM map run over the masked pixels only.
    """
    from skimage.metrics import structural_similarity

    Cl, Re = _as_images(clean, "clean"), _as_images(restored, "restored")
    if Cl.shape != Re.shape:
        raise ValueError(f"the clean references have shape {Cl.shape} but the restored images {Re.shape}; give "
                         "references of the same images")
    M = None if mask is None else check_mask(mask, Cl.shape)
    psnr, ssim = [], []
    for i in range(Cl.shape[0]):
        c, r = Cl[i].astype(np.float64), Re[i].astype(np.float64)  # (C, H, W)
        sel = np.ones(c.shape, bool) if M is None else M[i]
        mse = float(np.mean((c[sel] - r[sel]) ** 2)) if sel.any() else math.nan
        psnr.append(math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse))
        win = min(7, *c.shape[1:])
        win -= 1 - win % 2
        if win < 3:
            ssim.append(math.nan)
            continue
        mssim, smap = structural_similarity(c, r, data_range=data_range, channel_axis=0, win_size=win, full=True)
        # Without a mask, scikit-image's own mean (which leaves out a border of half a window).
        ssim.append(float(mssim) if M is None else float(smap[sel].mean()) if sel.any() else math.nan)
    return RestorationScores(tuple(psnr), tuple(ssim))
