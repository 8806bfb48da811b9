"""The restoration commands: ``denoise``, ``inpaint`` and ``colorize`` (see :mod:`aekit.apps.restoration`).

Two kinds of input. A folder of PNG/JPEG images (any sizes, gray or colour) gives a folder of restored images,
same names, same sizes, same formats. A data set (digits, mnist, a .npy/.npz file; by default the run's own)
gives a .npy array. Inpainting writes a JPEG input as PNG (``photo.jpg`` -> ``photo.png``): JPEG's lossy
encoding would change the known pixels the command keeps exactly. ``--clean`` (a folder with the same names, or a
.npy array) adds PSNR and SSIM per image and on average. Everything is read and checked, and the report's figure
drawn, before anything is written. When RUN is a run directory written by training, a figure of the first images
(input / restored / reference) and, with ``--clean``, their scores and the mean are added to the run's report
(:func:`aekit.report.html.add_report_section`).
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aekit.cli.common import (
    _TRANSFORM_SPLIT,
    AddParser,
    UsageError,
    _add_data_args,
    _check_parent,
    _info,
    _load,
    _out,
    _positive_int,
    _print_json,
    _run_data,
    _write_npy,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Formats whose encoding changes pixels: inpainting writes these inputs as PNG, to keep the known pixels exact.
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".gif")  # JPEG compression; GIF keeps 256 colours


def add_parsers(add: AddParser) -> None:
    """Add ``denoise``, ``inpaint`` and ``colorize`` to the main parser (``add`` is its sub-parser factory)."""
    sp = add("denoise", "restore noisy images with a trained model: a folder of images or a .npy array",
             "Reconstruct noisy images with a trained run (best a denoising autoencoder trained on that noise). "
             "Images larger than the model's input are restored in overlapping windows of its size, averaged. "
             "A folder of PNG/JPEG images gives a folder (same names, sizes and formats); a data set gives a .npy.")
    _common(sp)
    sp = add("inpaint", "fill the masked pixels of images; the known pixels are kept exactly",
             "Fill the pixels a mask marks as missing from a trained run's reconstruction, keeping every other pixel "
             "exactly; --iterations repeats the reconstruction on the filled pixels. --mask is a spec (block:12x12, "
             "block:12 or random:0.3, drawn with --seed), a mask image (white = missing) for every image, a folder "
             "of masks with the images' names, or a .npy array ((H, W) or (1, H, W) for a folder of images). "
             "A JPEG image is written as PNG under its name with .png (photo.jpg -> photo.png), since JPEG's lossy "
             "encoding would change the known pixels.")
    _common(sp)
    sp.add_argument("--mask", required=True, metavar="MASK", help="block:HxW, random:P, a mask image, folder or .npy")
    sp.add_argument("--iterations", type=_positive_int, default=1, metavar="N",
                    help="reconstructions of the masked pixels (default: 1)")
    sp.add_argument("--seed", type=int, default=0, metavar="N", help="seed of a mask spec's draw (default: 0)")
    sp = add("colorize", "colour gray images with a model trained with the grayscale corruption on colour images",
             "Replicate gray images over R, G and B and reconstruct them with a run trained on colour images with "
             "--family denoising --corruption grayscale (a run trained otherwise has not learned colour, and is "
             "refused). A folder of gray images gives a folder of colour ones; a data set a .npy.")
    _common(sp)


def _common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default=_TRANSFORM_SPLIT, split_help="split to restore")
    sp.add_argument("--out", required=True, metavar="DIR_OR_NPY",
                    help="a folder (for a folder of images) or a .npy file (for a data set)")
    sp.add_argument("--clean", metavar="PATH", help="clean references: a folder with the same names or a .npy array; PSNR and SSIM are printed "
                    "and, for a trained run, added to its report with the figure")
    sp.add_argument("--stride", type=_positive_int, metavar="N", help="step of the windows (default: half the window)")
    sp.add_argument("--window", choices=("uniform", "hann"), default="uniform",
                    help="weight of a window's pixels in the average (default: uniform)")
    sp.add_argument("--batch-size", type=_positive_int, default=256, metavar="N",
                    help="windows reconstructed at a time (default: 256)")
    sp.add_argument("--overwrite", action="store_true", help="replace existing output files")
    sp.add_argument("--json", action="store_true", help="print the result (and scores) as JSON")


# ------------------------------------------------------------------------------------ images


@dataclass
class _Image:
    name: str
    pixels: Any  # (C, H, W) float32 in [0, 1]


def _image_files(folder: Path, what: str) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"{what} {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); give a folder of images")
    return files


def _read_image(path: Path) -> Any:
    from aekit.data.datasets import read_image

    try:
        return read_image(path)  # (C, H, W)
    except ValueError as exc:
        raise UsageError(f"{exc}; give PNG, JPEG, BMP, GIF, TIFF or WebP files") from None


def _read_folder(folder: Path, what: str) -> list[_Image]:
    return [_Image(p.name, _read_image(p)) for p in _image_files(folder, what)]


def _encode_image(pixels: Any, suffix: str) -> bytes:
    import numpy as np
    from PIL import Image

    u8 = np.clip(np.rint(np.asarray(pixels, np.float64) * 255.0), 0, 255).astype(np.uint8)  # (C, H, W)
    im = Image.fromarray(u8[0]) if u8.shape[0] == 1 else Image.fromarray(u8.transpose(1, 2, 0))
    buf = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".tif": "TIFF", ".tiff": "TIFF",
           ".webp": "WEBP"}.get(suffix.lower(), "PNG")
    options: dict[str, Any] = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def _read_mask_image(path: Path) -> Any:
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"))
    except OSError as exc:
        raise UsageError(f"--mask {path} is not a readable image ({exc}); give a PNG mask") from None
    values = np.unique(arr)
    if not set(values.tolist()) <= {0, 1, 255}:
        raise UsageError(f"--mask {path} is not binary (values {values[:5].tolist()}...); save it as a black (known) "
                         "and white (missing) PNG, not a JPEG")
    return arr > 0  # (H, W), True = missing


# ------------------------------------------------------------------------------------ command

_NOTHING_MISSING = ("--mask {mask} marks no pixel {what} as missing, so there is nothing to inpaint; mark the missing "
                    "pixels (white in a mask image, 1 or True in a .npy array), or give a spec that masks some, e.g. "
                    "random:0.3 or block:3x3")


def _restore_one(ns: argparse.Namespace, est: Any, X: Any, mask: Any = None) -> Any:
    from aekit.apps.restoration import colorize, denoise, inpaint

    kw = {"stride": ns.stride, "window": ns.window, "batch_size": ns.batch_size}
    if ns.command == "denoise":
        return denoise(est, X, **kw)
    if ns.command == "colorize":
        return colorize(est, X, **kw)
    return inpaint(est, X, mask, iterations=ns.iterations, **kw)


def _cmd_restore(ns: argparse.Namespace) -> int:
    from aekit.cli.commands import _load_run

    est = _load_run(ns.run)
    if ns.command == "colorize":
        _check_colorizer(ns.run, est)
    data = Path(ns.data).expanduser() if ns.data is not None else None
    if data is not None and data.is_dir() and not any(p.is_dir() for p in data.iterdir()):
        return _folder(ns, est, data)
    return _array(ns, est)


def _check_colorizer(run: str, est: Any) -> None:
    """Refuse a colour model that was not trained to colour gray images (the grayscale corruption).

    A model of other than 3 channels is left to :func:`aekit.apps.restoration.colorize`, which names its channels.
    """
    shape = tuple(getattr(est, "sample_shape_", ()))
    if len(shape) == 3 and shape[0] != 3:
        return
    corruption = dict(getattr(est, "resolved_", None) or {}).get("corruption")
    terms = [t.split(":")[0].strip().lower() for t in str(corruption or "").split("+")]
    if "grayscale" in terms:
        return
    family = getattr(est, "_family_name", type(est).__name__)
    how = f"with the corruption {corruption!r}" if corruption else "without a corruption"
    raise UsageError(f"RUN {run} is a {family!r} run trained {how}, not the grayscale one, so it has not learned to "
                     "colour gray images; colorize with a run trained on colour images with `aekit train --family "
                     "denoising --corruption grayscale`")


def _out_names(ns: argparse.Namespace, data: Path, names: list[str]) -> list[str]:
    """The file each image is written to: its own name, but a JPEG one inpainted as PNG (see LOSSY_SUFFIXES)."""
    if ns.command != "inpaint":
        return names
    outs = [str(Path(n).with_suffix(".png")) if Path(n).suffix.lower() in LOSSY_SUFFIXES else n for n in names]
    first: dict[str, str] = {}
    for name, o in zip(names, outs, strict=True):
        if o in first:
            raise UsageError(f"--data {data}: {first[o]} and {name} would both be written to {o} (a JPEG image is "
                             "inpainted as PNG, to keep its known pixels exact); rename one of them")
        first[o] = name
    return outs


def _check_out_dir(ns: argparse.Namespace, out: Path, names: list[str], data: Path) -> None:
    from aekit.engine.rundir import is_run_dir

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; a folder of images is restored into a folder: give a directory")
    _check_parent(out)
    inputs = [("the input folder", data)] + [(f"the {flag} folder", Path(v)) for flag, v in
                                               (("--clean", ns.clean), ("--mask", getattr(ns, "mask", None)))
                                               if v is not None and Path(v).is_dir()]
    for what, folder in inputs:
        if out.exists() and out.resolve() == folder.resolve():
            raise UsageError(f"--out {out} is {what}; write the restored images to another folder")
    if out.exists() and is_run_dir(out):
        raise UsageError(f"--out {out} is an aekit run; write the restored images to another folder")
    folders = [n for n in names if (out / n).exists() and not (out / n).is_file()]
    if folders:
        raise UsageError(f"--out {out}: {out / folders[0]} is a folder, not an image file, so the restored "
                         f"{folders[0]} cannot be written there; move it away or choose another --out folder")
    taken = [n for n in names if (out / n).exists()]
    if taken and not ns.overwrite:
        raise UsageError(f"--out {out} already holds {', '.join(taken[:3])}{' ...' if len(taken) > 3 else ''}; pass "
                         "--overwrite to replace them, or choose another folder")


def _folder(ns: argparse.Namespace, est: Any, data: Path) -> int:
    import numpy as np

    from aekit.apps.restoration import make_mask, restoration_scores
    from aekit.engine.rundir import atomic_write_bytes

    images = _read_folder(data, "--data")
    out = Path(ns.out)
    if out.suffix.lower() == ".npy":
        raise UsageError(f"--out {out}: a folder of images is restored into a folder; give a directory")
    names = _out_names(ns, data, [im.name for im in images])
    _check_out_dir(ns, out, names, data)
    if ns.command == "colorize":
        for im in images:
            p = im.pixels
            if p.shape[0] == 3 and np.array_equal(p[0], p[1]) and np.array_equal(p[1], p[2]):
                im.pixels = p[:1]
            elif p.shape[0] == 3:
                raise UsageError(f"--data {data / im.name} is a colour image; colorize takes gray images (convert it "
                                 "to gray first), or use denoise")
    masks: list[Any] = [None] * len(images)
    if ns.command == "inpaint":
        masks = _folder_masks(ns.mask, images, ns.seed, make_mask)
        if not any(m.any() for m in masks):
            raise UsageError(_NOTHING_MISSING.format(mask=ns.mask, what="of any image"))
    clean: list[Any] | None = None
    if ns.clean is not None:
        clean_dir = Path(ns.clean)
        if not clean_dir.is_dir():
            raise UsageError(f"--clean {clean_dir}: for a folder of images give a folder of clean images with the same names")
        clean = []
        for im in images:
            ref = clean_dir / im.name
            if not ref.is_file():
                raise UsageError(f"--clean {clean_dir} has no {im.name}; give clean images with the same names")
            clean.append(_read_image(ref))
    restored = []
    for im, m in zip(images, masks, strict=True):
        try:
            restored.append(_restore_one(ns, est, im.pixels[None], None if m is None else m[None])[0])
        except ValueError as exc:
            raise UsageError(f"{im.name}: {exc}") from None
    scores = _scores(clean, restored, masks, [im.name for im in images], restoration_scores) if clean else None
    section = _section(ns, [im.pixels for im in images], restored, clean, masks, scores)
    encoded = [_encode_image(r, Path(n).suffix) for r, n in zip(restored, names, strict=True)]
    out.mkdir(parents=True, exist_ok=True)
    for name, blob in zip(names, encoded, strict=True):
        atomic_write_bytes(out / name, blob)
    renamed = [f"{im.name} -> {n}" for im, n in zip(images, names, strict=True) if n != im.name]
    if renamed:
        _info(f"aekit: inpaint: JPEG written as PNG, to keep the known pixels exact: {', '.join(renamed[:3])}"
              f"{' ...' if len(renamed) > 3 else ''}")
    _report(ns, f"{len(images)} image(s) from {data}", out, scores)
    _add_section(ns, section)
    return 0


def _folder_masks(spec: str, images: list[_Image], seed: int, make_mask: Any) -> list[Any]:
    path = Path(spec)
    shared = None
    if path.is_file():  # one mask for every image
        shared = _read_mask_image(path) if path.suffix.lower() != ".npy" else _read_mask_array(path)
    masks = []
    for i, im in enumerate(images):
        C, H, W = im.pixels.shape
        if shared is not None:
            m = shared
        elif path.is_dir():
            f = path / im.name
            f = f if f.is_file() else path / (Path(im.name).stem + ".png")
            if not f.is_file():
                raise UsageError(f"--mask {path} has no mask for {im.name}; give masks with the images' names")
            m = _read_mask_image(f)
        else:
            try:
                m = make_mask(spec, (1, C, H, W), random_state=seed + i)[0]
            except ValueError as exc:
                raise UsageError(f"--mask: {exc}") from None
        if m.shape != (H, W):
            raise UsageError(f"--mask {spec}: the mask is {m.shape[-2]}x{m.shape[-1]} but {im.name} is {H}x{W}; give "
                             "a mask of the image's size")
        masks.append(m)
    return masks


def _load_mask_npy(path: Path) -> Any:
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--mask {path} could not be read as a .npy array ({' '.join(str(exc).split())}); give a "
                         "0/1 or True/False array saved with numpy.save") from None


def _read_mask_array(path: Path) -> Any:
    """A .npy mask shared by every image of a folder, as (H, W) True = missing; (1, H, W) is read as (H, W)."""
    import numpy as np

    m = _load_mask_npy(path)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]  # (1, H, W) -> (H, W), as a data set's mask is read
    if m.ndim != 2:
        raise UsageError(f"--mask {path} has shape {m.shape}; a .npy mask for a folder of images is one (H, W) or "
                         "(1, H, W) array shared by every image (or give a folder of mask images with the images' names)")
    if m.dtype != bool and not (np.issubdtype(m.dtype, np.number) and np.isin(m, (0, 1)).all()):
        raise UsageError(f"--mask {path}: the mask must be binary (0/1 or False/True, True = missing); threshold it, "
                         "e.g. save mask > 0.5")
    return m.astype(bool)


def _array(ns: argparse.Namespace, est: Any) -> int:
    from aekit.apps.restoration import make_mask, restoration_scores
    from aekit.cli.commands import _check_out_file
    from aekit.data.datasets import load_dataset

    out = Path(ns.out)
    if out.suffix.lower() != ".npy" or out.is_dir():
        raise UsageError(f"--out {out}: a data set is restored into a .npy array; give a path ending in .npy")
    spec, split = _run_data(Path(ns.run), ns, "all")
    _check_out_file(out, ns, spec)  # its folders can be made, it is none of the inputs, --overwrite
    for flag, value in (("--clean", ns.clean), ("--mask", getattr(ns, "mask", None))):
        if value is not None and out.exists() and Path(value).is_file() and out.samefile(value):
            raise UsageError(f"--out {out} is the {flag} file; write the result to another file")
    ds = _load(spec, split=split, download=ns.download)
    X = ds.X
    mask = None
    sample_masks: Any = None  # (N, C, H, W) True = missing, once the mask is read
    if ns.command == "inpaint":
        mpath = Path(ns.mask)
        if mpath.suffix.lower() == ".npy" and mpath.is_file():
            mask = _load_mask_npy(mpath)
        elif mpath.is_file():
            mask = _read_mask_image(mpath)
        elif mpath.is_dir():
            raise UsageError(f"--mask {mpath}: a folder of masks goes with a folder of images; for a data set give a "
                             "spec (block:12x12, random:0.3), a mask image or a .npy array")
        else:
            try:
                mask = make_mask(ns.mask, X.shape if X.ndim == 4 else (X.shape[0], 1, *X.shape[1:]), ns.seed)
            except ValueError as exc:
                raise UsageError(f"--mask: {exc}") from None
        try:
            sample_masks = _sample_masks(mask, X.shape)
        except ValueError as exc:
            raise UsageError(f"--mask {ns.mask}: {exc}") from None
        if not sample_masks.any():
            raise UsageError(_NOTHING_MISSING.format(mask=ns.mask, what="of any sample"))
    clean = None
    if ns.clean is not None:
        cpath = Path(ns.clean)
        if cpath.suffix.lower() != ".npy" or not cpath.is_file():
            raise UsageError(f"--clean {cpath}: for a data set give the clean references as a .npy array")
        try:  # read as --data is read: uint8 images rescaled to [0, 1], other images checked to lie in it
            clean = load_dataset(str(cpath), split="all").X
        except ValueError as exc:
            raise UsageError(f"--clean: {exc}") from None
    R = _restore_one(ns, est, X, mask)
    scores = None
    if clean is not None:
        if clean.shape != R.shape:
            raise UsageError(f"--clean {ns.clean} has shape {clean.shape} but the restored images {R.shape}; give "
                             "references of the same images")
        masks = [None] * len(R) if mask is None else list(sample_masks)
        scores = _scores(list(clean), list(R), masks, [str(i) for i in range(len(R))], restoration_scores)
    n = FIGURE_IMAGES
    shown_masks = [None] * len(R[:n]) if mask is None else list(sample_masks[:n])
    section = _section(ns, _chw(X[:n]), _chw(R[:n]), None if clean is None else _chw(clean[:n]), shown_masks, scores)
    _write_npy(out, R)
    _report(ns, f"{len(R)} sample(s) of {ds.name}", out, scores)
    _add_section(ns, section)
    return 0


def _chw(A: Any) -> list[Any]:
    """Images (n, C, H, W) or (n, H, W) as a list of (C, H, W) arrays."""
    import numpy as np

    A = np.asarray(A, np.float32)
    return list(A[:, None] if A.ndim == 3 else A)


FIGURE_IMAGES = 8  # images shown in the run's report
_SECTION = {
    "denoise": ("Denoising", ["noisy", "restored", "clean"], "noisy input, restored by the model, clean reference"),
    "inpaint": ("Inpainting", ["masked", "filled", "clean"],
                "input with the missing pixels drawn mid-gray, filled by the model (known pixels kept), clean reference"),
    "colorize": ("Colorization", ["gray", "colorized", "original"], "gray input, colorized by the model, original"),
}


@dataclass(frozen=True)
class _Section:
    """A report section drawn before any output is written, so that drawing it cannot fail after the writes."""

    title: str
    png: bytes
    caption: str
    table: list[dict[str, Any]] | None


def _section(ns: argparse.Namespace, inputs: list[Any], restored: list[Any], clean: list[Any] | None,
             masks: list[Any], scores: list[dict[str, Any]] | None) -> _Section:
    """The figure (input / restored / reference) and, with references, the table of scores for the run's report."""
    import numpy as np

    from aekit.report.figures import restoration_figure

    title, labels, caption = _SECTION[ns.command]
    n = min(FIGURE_IMAGES, len(inputs))
    shown = [np.asarray(x, np.float32) for x in inputs[:n]]
    if ns.command == "inpaint":
        shown = [np.where(np.broadcast_to(m, x.shape), np.float32(0.5), x) if m is not None else x
                 for x, m in zip(shown, masks[:n], strict=True)]
    rows = [(labels[0], shown), (labels[1], restored[:n])] + ([(labels[2], clean[:n])] if clean is not None else [])
    png = restoration_figure(rows, title=f"{title}: {' / '.join(r[0] for r in rows)}", n=n)
    table = None
    if scores is not None:
        table = [{"image": s["name"], "PSNR (dB)": round(s["psnr"], 2), "SSIM": round(s["ssim"], 4)}
                 for s in scores[:n]]
        table.append({"image": f"mean of {len(scores)}", "PSNR (dB)": round(_mean(s["psnr"] for s in scores), 2),
                      "SSIM": round(_mean(s["ssim"] for s in scores), 4)})
        caption += "; PSNR and SSIM " + ("on the masked pixels" if ns.command == "inpaint" else "on all pixels")
    return _Section(title, png, caption, table)


def _add_section(ns: argparse.Namespace, section: _Section) -> None:
    """Add ``section`` to the run's report; nothing is written when RUN is not a run directory written by training
    (a model saved from Python)."""
    from aekit.report.html import add_report_section

    path = add_report_section(ns.run, ns.command, section.title, section.png, section.caption, table=section.table)
    if path is not None:
        _info(f"aekit: {ns.command}: figure added to the run's report ({path.name})")


def _sample_masks(mask: Any, shape: tuple[int, ...]) -> Any:
    from aekit.apps.restoration import check_mask

    s4 = tuple(shape) if len(shape) == 4 else (shape[0], 1, *shape[1:])
    return check_mask(mask, (s4[0], s4[1], s4[2], s4[3]))


def _scores(clean: list[Any], restored: list[Any], masks: list[Any], names: list[str], fn: Any) -> list[dict[str, Any]]:
    """PSNR and SSIM per image (over the masked pixels for inpainting; NaN for an image with none masked)."""
    rows = []
    for name, c, r, m in zip(names, clean, restored, masks, strict=True):
        if c.shape != r.shape:
            raise UsageError(f"--clean: {name} has shape {c.shape} but the restored image {r.shape}; give the clean "
                             "version of the same image")
        s = fn(c[None], r[None], mask=None if m is None else m[None])
        rows.append({"name": name, "psnr": s.psnr[0], "ssim": s.ssim[0]})
    return rows


def _mean(values: Any) -> float:
    """The mean of the scores that are defined (not NaN: an image without masked pixels, or too small for SSIM);
    NaN when none is. A PSNR is infinite where an image is restored exactly, and so is then the mean."""
    import math

    defined = [float(v) for v in values if not math.isnan(v)]
    return math.fsum(defined) / len(defined) if defined else math.nan


def _report(ns: argparse.Namespace, what: str, out: Path, scores: list[dict[str, Any]] | None) -> None:
    summary: dict[str, Any] = {"command": ns.command, "input": what, "out": str(out)}
    if scores is not None:
        summary["mean_psnr"] = _mean(s["psnr"] for s in scores)  # infinite if one image is exact
        summary["mean_ssim"] = _mean(s["ssim"] for s in scores)
        summary["images"] = scores
        summary["scored_on"] = "masked pixels" if ns.command == "inpaint" else "all pixels"
    if ns.json:
        _print_json(summary)
        return
    _info(f"aekit: {ns.command}: {what} -> {out}")
    if scores is None:
        _out(str(out))
        return
    width = max(5, *(len(s["name"]) for s in scores))
    _out(f"{'image':<{width}}  {'PSNR dB':>8}  {'SSIM':>6}")
    for s in scores:
        _out(f"{s['name']:<{width}}  {s['psnr']:>8.2f}  {s['ssim']:>6.3f}")
    _out(f"{'mean':<{width}}  {summary['mean_psnr']:>8.2f}  {summary['mean_ssim']:>6.3f}")
