"""Train a run directory end to end: resolve, fit with checkpoints, save, evaluate, report.

A run moves through three stages, recorded as ``status`` in its ``config.json``:

``training``
    ``config.json`` names the family, the parameters, the data and its fingerprint; checkpoints
    and ``history.csv`` are rewritten after every epoch (of every pretraining stage too).
``saved``
    ``history.csv`` and ``model.safetensors`` are final; ``config.json`` is written after them.
``done``
    ``metrics.json``, the figures and ``report.html`` are written; ``config.json`` last.

A finished run is evaluated, and its figures drawn, on at most ``eval_limit`` samples of each split
(:data:`EVAL_LIMIT` by default, drawn at random once with a fixed seed; ``"all"`` takes every one), so
that the time after training stays small and does not grow with the data: on MNIST, evaluating all
70,000 train and test images took longer than drawing the whole report. ``metrics.json`` records how
many were measured (``n_samples``) out of how many (``n_split``).

Every file is replaced atomically and the status is written after the files of its stage, so a
process killed at any instant leaves a run that :func:`resume_run` completes, with the weights and
history an uninterrupted run would have had. The final checkpoint stays, so that a finished run
can be trained for more epochs (``max_epochs`` larger than before).
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aekit.data.datasets import Dataset
from aekit.engine.checkpoint import checkpoint_epoch
from aekit.engine.rundir import (
    CONFIG_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    RUN_FILES,
    RunClaim,
    RunExistsError,
    atomic_write_text,
    check_run_path,
    claim_run_dir,
    has_checkpoint,
    json_text,
    read_history,
    run_config,
    write_json,
)
from aekit.model.persist import _tupled, estimator_config, write_estimator_files
from aekit.workflow.data import DataSpec, check_fingerprint, fingerprint

TRAINING, SAVED, DONE = "training", "saved", "done"
#: parameters that may change when a run is resumed: the rest must match its checkpoint
RESUME_PARAMS = ("max_epochs", "device", "verbose")

#: Samples of each split a finished run is evaluated on by default. The mean squared error of 10,000
#: MNIST images has a relative standard error under 1 %, below what separates two models worth comparing.
EVAL_LIMIT = 10_000
#: ``eval_limit``: a number of samples per split, or "all".
EvalLimit = int | Literal["all"]
# Training samples whose codes the report's latent map and decoder samples are drawn from.
_REPORT_CODES = 5_000

Log = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    """What :func:`train_run` and :func:`resume_run` return.

    Attributes
    ----------
    run_dir : Path
        The run directory.
    family : str
    estimator : fitted aekit estimator
    epochs : int
        Rows of the training history (epochs of every stage, or iterations of a closed-form solver).
    train_seconds : float
        Training time summed over the epochs (over every process that trained this run).
    metrics : dict
        Reconstruction metrics by split (``train``, and ``test`` when the data has one).
    report : Path
        The run's ``report.html``.
    resumed : bool
        True when an existing run was continued.
    """

    run_dir: Path
    family: str
    estimator: Any
    epochs: int
    train_seconds: float
    metrics: dict[str, dict[str, Any]]
    report: Path
    resumed: bool


def train_run(
    family: str,
    params: Mapping[str, Any] | None = None,
    data: str | DataSpec | Mapping[str, Any] = "digits",
    out: str | Path = "",
    *,
    resume: bool = False,
    overwrite: bool = False,
    allow_data_change: bool = False,
    download: bool = False,
    threads: int | None = None,
    eval_limit: EvalLimit = EVAL_LIMIT,
    log: Log | None = None,
) -> RunResult:
    """Train a model of ``family`` on ``data`` into the run directory ``out``, end to end.

    Fits with a checkpoint after every epoch, saves ``config.json``, ``model.safetensors`` and
    ``history.csv``, evaluates (``metrics.json``) and writes the figures and ``report.html``. The run
    records its data set, so ``aekit evaluate RUN`` needs no ``--data``.

    Parameters
    ----------
    family : str
        A registered family (see :func:`aekit.list_families`).
    params : mapping, optional
        Keyword arguments of the family's estimator. Without ``random_state`` a seed is drawn and
        recorded, so a resumed run continues with the same split and batch order.
    data : str, DataSpec or mapping
        A built-in data set name, a path, or a :class:`DataSpec` (split, limit, ...).
    out : path
        The run directory: new, empty, or an aekit run (see ``overwrite`` and ``resume``).
    resume : bool
        When ``out`` already holds a run of this family on this data, continue it (see
        :func:`resume_run`) instead of refusing; ``params`` must then match the run's, apart from
        ``max_epochs``, ``device`` and ``verbose``.
    overwrite : bool
        Replace the run in ``out``: the files its ``config.json`` lists are removed, nothing else.
    allow_data_change : bool
        With ``resume``, continue even if the data's fingerprint differs from the one recorded.
    download : bool
        Download MNIST/Fashion-MNIST if missing.
    threads : int, optional
        CPU threads of PyTorch while this run trains (recorded, and reused on resume).
    eval_limit : int or "all"
        The metrics and figures are computed on at most this many samples of each split, drawn at
        random with a fixed seed (recorded, and reused on resume); "all" evaluates every sample.
    log : callable, optional
        Receives one line per stage (what is trained, how long it took).

    Returns
    -------
    RunResult

    Raises
    ------
    RunExistsError
        ``out`` holds a run (and neither ``overwrite`` nor ``resume`` was given), files aekit did
        not write, or is being written by another process.
    RunPathError
        ``out`` is empty, a file, or below a file.
    ValueError
        Invalid parameters or data; nothing is left in ``out``.
    """
    from aekit.model.registry import get_family

    say = log or _silent
    eval_limit = check_eval_limit(eval_limit)
    out_path = check_run_path(out)
    info = get_family(family)
    params = _with_threads(info, dict(params or {}), threads)
    if resume and run_config(out_path) is not None:
        return _resume_matching(info.name, params, data, out_path, allow_data_change, download, threads, eval_limit,
                                say)
    est = info.estimator(**params)
    est._validate_params()
    if "random_state" in est.get_params(deep=False) and est.random_state is None:
        # A fixed seed is recorded so a resumed run rebuilds the same validation split and batch order.
        est.set_params(random_state=secrets.randbelow(2**31 - 1))
    spec = DataSpec.of(data)
    ds = spec.load(download=download)
    with claim_run_dir(out_path, overwrite=overwrite) as claim:
        config = {
            "format": "aekit-run", "family": info.name, "params": est.get_params(deep=False), "data": spec.as_dict(),
            "data_fingerprint": fingerprint(spec, ds), "threads": threads, "eval_limit": eval_limit, "status": TRAINING,
            "files": list(RUN_FILES),
        }
        from aekit import __version__

        config["aekit_version"] = __version__
        return _train_and_finish(info, est, spec, ds, claim, config, threads, download, say, resumed=False)


def resume_run(
    run: str | Path,
    *,
    max_epochs: int | None = None,
    device: str | None = None,
    verbose: int | None = None,
    allow_data_change: bool = False,
    download: bool = False,
    threads: int | None = None,
    eval_limit: EvalLimit | None = None,
    log: Log | None = None,
) -> RunResult:
    """Continue the run in ``run`` from whatever stage it reached, and complete it.

    A run killed during training continues from its last checkpoint (of the pretraining stage it was
    in, for layer-wise pretraining) and ends with the weights and history of an uninterrupted run; a
    run killed while saving, evaluating or reporting finishes that stage. A finished run is trained
    further when ``max_epochs`` is larger than the one it was trained with.

    Parameters
    ----------
    run : path
        A run directory written by :func:`train_run` or ``aekit train``.
    max_epochs, device, verbose : optional
        The only parameters that may change; the others come from the run's ``config.json``.
    allow_data_change : bool
        Continue even if the training data's fingerprint differs from the one recorded.
    download : bool
        Download MNIST/Fashion-MNIST if missing.
    threads : int, optional
        CPU threads of PyTorch; by default those the run recorded.
    eval_limit : int or "all", optional
        Samples of each split to evaluate on; by default the run's recorded value (all for a run
        that recorded none).
    log : callable, optional
        Receives one line per stage.

    Returns
    -------
    RunResult

    Raises
    ------
    RunExistsError
        ``run`` is not an aekit run, is complete (nothing to resume), or is being written by another process.
    DataChangedError
        The training data changed since the run started (and ``allow_data_change`` is False).
    """
    from aekit.model.registry import get_family

    say = log or _silent
    if eval_limit is not None:
        eval_limit = check_eval_limit(eval_limit)
    p = check_run_path(run)
    cfg = run_config(p)
    if cfg is None:
        raise RunExistsError("{dir} is not an aekit run directory (no {cfg} written by aekit), so there is nothing to "
                             "resume; start a new run there instead", dir=p, cfg=CONFIG_FILE)
    info = get_family(str(cfg.get("family")))
    if not isinstance(cfg.get("data"), dict):
        raise RunExistsError("{cfg} does not record the data set the run was trained on, so the run cannot be resumed",
                             cfg=p / CONFIG_FILE)
    spec = DataSpec.of(cfg["data"])
    params = {k: _tupled(v) for k, v in dict(cfg.get("params", {})).items()}
    valid = set(info.estimator().get_params(deep=False))
    for name, value in (("max_epochs", max_epochs), ("device", device), ("verbose", verbose)):
        if value is None:
            continue
        if name not in valid:
            raise ValueError(f"{name} cannot be set for family {info.name!r}, which has no such parameter; its "
                             f"parameters are: {', '.join(sorted(valid))}")
        params[name] = value
    status = str(cfg.get("status", TRAINING))
    rebuild = status == DONE and not (p / MODEL_FILE).is_file() and has_checkpoint(p)
    if rebuild:
        # The model file is gone but the checkpoint of the last epoch is there: resuming from it trains no
        # further epoch and writes the model, its metrics and report again.
        say(f"{p} has no {MODEL_FILE}; rebuilding it from the run's checkpoint")
    elif status == DONE:
        before = _trained_epochs(cfg)
        if max_epochs is None or before is None or max_epochs <= before:
            with claim_run_dir(p, resume=True):
                pass  # removes what a process killed after the run's last commit left: its lock
            more = f"; pass {{epochs}} larger than {before} to train it further" if before is not None else ""
            raise RunExistsError("{dir} is complete (status done): nothing to resume" + more
                                 + ", or train a new run", dir=p)
        if not has_checkpoint(p):
            raise RunExistsError("{dir} is complete and its checkpoint is gone, so it cannot be trained further exactly; "
                                 "train a new run", dir=p)
    elif max_epochs is not None:
        done = checkpoint_epoch(p)
        if done is not None and max_epochs < done:
            # Refused before anything is written: the run stays resumable as it was.
            raise RunExistsError("{dir} has {done} epochs of training already, more than {epochs} {asked}; pass "
                                 "{epochs} {done} or more, or leave it out to finish the run as it was configured",
                                 dir=p, done=done, asked=max_epochs)
    params = _with_threads(info, params, threads)
    est = info.estimator(**params)
    est._validate_params()
    if threads is None and isinstance(cfg.get("threads"), int):
        threads = int(cfg["threads"])
    ds = spec.load(download=download)
    current = fingerprint(spec, ds)
    if not allow_data_change:
        check_fingerprint(cfg.get("data_fingerprint"), current, spec, p)
    with claim_run_dir(p, resume=True) as claim:
        cfg = run_config(p) or cfg  # as it is now that no other process writes it
        if eval_limit is not None:
            cfg = {**cfg, "eval_limit": eval_limit}
        if str(cfg.get("status", TRAINING)) == SAVED:
            from aekit.model.loading import load

            say(f"finishing {p}: the model is saved; evaluating and writing the report")
            est = load(p)
            with _threads(threads):
                return _evaluate_and_report(info, est, spec, ds, p, cfg, download, resumed=True)
        config = {**cfg, "params": est.get_params(deep=False), "status": TRAINING, "threads": threads,
                  "data_fingerprint": current}
        return _train_and_finish(info, est, spec, ds, claim, config, threads, download, say, resumed=True)


def _resume_matching(family: str, params: dict[str, Any], data: Any, out: Path, allow_data_change: bool,
                     download: bool, threads: int | None, eval_limit: EvalLimit, say: Log) -> RunResult:
    cfg = run_config(out) or {}
    if cfg.get("family") != family:
        raise RunExistsError("{dir} holds a run of family {other!r}, not {family!r}; choose another {out}",
                             dir=out, other=cfg.get("family"), family=family)
    saved = {k: _tupled(v) for k, v in dict(cfg.get("params", {})).items()}
    differ = sorted(k for k, v in params.items() if k not in RESUME_PARAMS and k in saved and saved[k] != _tupled(v))
    if differ:
        raise RunExistsError("{dir} was started with other values of {names}; a run resumes exactly as configured. "
                             "Choose another {out}, or pass {overwrite} to replace it", dir=out, names=", ".join(differ))
    if isinstance(cfg.get("data"), dict) and DataSpec.of(data) != DataSpec.of(cfg["data"]):
        raise RunExistsError("{dir} was started on other data ({then}); choose another {out}", dir=out,
                             then=DataSpec.of(cfg["data"]).name)
    asked = params.get("max_epochs")
    if str(cfg.get("status")) == DONE and (asked == saved.get("max_epochs") or (
            isinstance(asked, int) and asked <= (_trained_epochs(cfg) or 0))):
        return _finished_result(out, cfg)
    return resume_run(out, max_epochs=params.get("max_epochs"), device=params.get("device"),
                      verbose=params.get("verbose"), allow_data_change=allow_data_change, download=download,
                      threads=threads, eval_limit=eval_limit, log=say)


def _trained_epochs(cfg: dict[str, Any]) -> int | None:
    """The epoch limit a run was trained with: its resolved ``max_epochs`` (a family may choose it from the
    data, ``"auto"``), or the one given; None for a family without epochs."""
    for section in ("resolved", "params"):
        value = dict(cfg.get(section) or {}).get("max_epochs")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _finished_result(out: Path, cfg: dict[str, Any]) -> RunResult:
    from aekit.engine.rundir import read_json
    from aekit.model.loading import load

    est = load(out)
    metrics = {k: v for k, v in read_json(out / "metrics.json").items() if isinstance(v, dict)}
    return RunResult(out, str(cfg.get("family")), est, len(est.history_), float(cfg.get("train_seconds", 0.0)),
                     metrics, out / "report.html", resumed=True)


def _train_and_finish(info: Any, est: Any, spec: DataSpec, ds: Dataset, claim: RunClaim, config: dict[str, Any],
                      threads: int | None, download: bool, say: Log, *, resumed: bool) -> RunResult:
    out = claim.path
    if resumed and not has_checkpoint(out):
        try:
            rows = read_history(out / HISTORY_FILE) if (out / HISTORY_FILE).is_file() else []
        except (OSError, ValueError):
            rows = []  # unreadable: no record of trained epochs to lose
        if rows:
            # Epochs were trained and recorded, but their checkpoint is gone: starting over would silently
            # throw them away.
            raise RunExistsError("{dir} records {n} trained epochs in {history} but holds no checkpoint (was it "
                                 "deleted?), so it cannot continue where it stopped; restore the checkpoint, or train "
                                 "it again from the start (the same command with {overwrite})", dir=out, n=len(rows),
                                 history=HISTORY_FILE)
    atomic_write_text(out / CONFIG_FILE, json_text(config))
    shape = "x".join(map(str, ds.sample_shape))
    say(f"training {info.name} on {ds.name} ({ds.split}, {len(ds)} samples of shape {shape}) into {out}"
        + (" (resuming)" if resumed else ""))
    y = ds.y if "labels" in info.capabilities else None
    resume = has_checkpoint(out)
    if resumed and not resume:
        say(f"{out} has no checkpoint yet (stopped during its first epoch); training from the start")
    t0 = time.perf_counter()
    try:
        with _threads(threads):
            # The run's own fingerprint check (with --allow-data-change) has already decided on a changed data set.
            est.fit(ds.X, y, checkpoint_dir=out, resume=resume, allow_data_change=True)
    except Exception:
        if not resumed and not has_checkpoint(out):
            # Refused (say, a loss that does not suit the data) before anything worth keeping: leave
            # nothing behind, so the corrected call can use the same directory.
            claim.rollback()
        raise
    wall = time.perf_counter() - t0
    history = list(getattr(est, "history_", None) or [])
    seconds = sum(float(r.get("seconds", 0.0)) for r in history) if any("seconds" in r for r in history) else wall
    # The saved stage: history and weights first, then the config that says they are final.
    # What the fitted estimator says of itself replaces what the config held (a resumed run's earlier values).
    own = ("format", "aekit_version", "family", "params", "resolved", "data_info", "sample_shape", "scaling", "fitted",
           "files")
    extra = {k: v for k, v in config.items() if k not in own}
    extra.update(status=SAVED, train_seconds=round(seconds, 3))
    text = estimator_config(est, extra, files=RUN_FILES)
    write_estimator_files(est, out, text, config_first=False)
    cfg = run_config(out) or {}
    with _threads(threads):
        return _evaluate_and_report(info, est, spec, ds, out, cfg, download, resumed=resumed)


def _evaluate_and_report(info: Any, est: Any, spec: DataSpec, ds: Dataset, out: Path, cfg: dict[str, Any],
                         download: bool, *, resumed: bool) -> RunResult:
    from aekit.report.html import write_report
    from aekit.report.metrics import ordered_metrics

    # A run that recorded no limit was started before there was one: it is evaluated on everything.
    limit = _recorded_limit(cfg.get("eval_limit", "all"))
    metrics, test_ds = evaluate(est, ds, spec, download=download, limit=limit)
    # In the order the metrics were computed, the order every table and the report show them.
    write_json(out / "metrics.json", _finite(ordered_metrics(metrics)), sort_keys=False)
    # The latent map draws at most 5,000 codes, and a Gaussian over a few dozen code units is well fitted
    # by as many: encoding more only costs time.
    train_sample = evaluation_sample(ds, min(limit or _REPORT_CODES, _REPORT_CODES))
    shown = test_ds if test_ds is not None else ds  # the report shows its first samples only
    report = write_report(est, shown, out, metrics=metrics, train_dataset=train_sample)
    write_json(out / CONFIG_FILE, {**cfg, "status": DONE})
    history = list(getattr(est, "history_", None) or [])
    if not history and (out / HISTORY_FILE).is_file():
        history = read_history(out / HISTORY_FILE)
    return RunResult(out, info.name, est, len(history), float(cfg.get("train_seconds", 0.0)), metrics, report, resumed)


def evaluate(
    est: Any, ds: Dataset, spec: DataSpec, *, download: bool = False, limit: int | None = None
) -> tuple[dict[str, dict[str, Any]], Dataset | None]:
    """Metrics on the training data and, when the source has one, on its test split (same data limit):
    the reconstruction figures and, for a model with a likelihood bound, ``elbo_nats``.

    With ``limit``, each split is measured on :func:`evaluation_sample` of it and its metrics record
    ``n_split``, the split's size, beside ``n_samples``, the samples measured. The returned test split
    is whole.
    """
    from aekit.report.metrics import likelihood_metrics, reconstruction_metrics

    def measure(d: Dataset) -> dict[str, Any]:
        sample = evaluation_sample(d, limit)
        m: dict[str, Any] = reconstruction_metrics(sample.X, est.reconstruct(sample.X))
        m.update(likelihood_metrics(est, sample.X))  # elbo_nats for a model with a bound (a VAE)
        if limit is not None:
            m["n_split"] = len(d)
        return m

    metrics: dict[str, dict[str, Any]] = {ds.split: measure(ds)}
    test_ds = None
    if ds.split == "train":
        try:
            test_ds = spec.load(split="test", download=download)
        except (ValueError, OSError):
            test_ds = None  # a source without a test split: train metrics only
        if test_ds is not None:
            metrics["test"] = measure(test_ds)
    return metrics, test_ds


def evaluation_sample(ds: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """``ds`` itself when it has at most ``limit`` samples (or ``limit`` is None), else ``limit`` of its
    samples drawn at random without replacement (seeded, so every call picks the same), in their order."""
    n = len(ds)
    if limit is None or n <= limit:
        return ds
    import numpy as np

    keep = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    return dataclasses.replace(ds, X=ds.X[keep], y=None if ds.y is None else ds.y[keep])


def check_eval_limit(value: Any) -> EvalLimit:
    """``value`` if it is a positive int or "all"; else a ValueError that says what is accepted."""
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value  # type: ignore[no-any-return]
    raise ValueError(f"eval_limit must be a positive number of samples or 'all', got {value!r}")


def _recorded_limit(value: Any) -> int | None:
    return None if value == "all" else int(check_eval_limit(value))


def _finite(obj: Any) -> Any:
    """JSON has no NaN or infinity: write them as null (a perfect PSNR is infinite)."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _with_threads(info: Any, params: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """``threads`` as the training loop's own parameter where the family has one (saved, so a resume keeps it)."""
    if threads is not None and "threads" in info.estimator().get_params(deep=False):
        params = {**params, "threads": threads}
    return params


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _silent(_: str) -> None:
    pass
