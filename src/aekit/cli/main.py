"""The ``aekit`` command line.

Commands: ``list``, ``demo``, ``train``, ``evaluate``, ``encode``, ``reconstruct``, ``generate``,
``interpolate``, ``sweep``, ``report``, ``denoise``, ``inpaint``, ``colorize``, ``index``, ``search``,
``features`` and ``anomaly``. The flags of ``aekit train`` are generated from the chosen family's parameter dataclasses
(the single source of truth for names, types and defaults), so a new family gets its flags for free.

Errors print one line, ``aekit: error: <message>``, on stderr and exit with status 2 for a bad
command line (unknown family, option or config key, invalid hyperparameter, an existing run) or 1
for a failure while running (missing or invalid data, a damaged model file, diverged training).
``--debug`` shows the traceback instead. Progress goes to stderr and results to stdout, so
``aekit evaluate RUN --json > metrics.json`` captures only the JSON.

Which data a command uses, one rule: commands that measure (``evaluate``, ``report``, ``anomaly``) use the
test split of the run's data, or all of a file given with ``--data``; commands that transform data (``encode``,
``reconstruct``) use all of it; ``generate`` fits its Gaussian to the split the run was trained on.
``--split`` overrides each. Only what ``--help`` and ``list`` need is imported before parsing, so they
answer without importing PyTorch.
"""


from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aekit import __version__
from aekit.cli.anomaly import _cmd_anomaly
from aekit.cli.anomaly import add_parsers as _add_anomaly_parsers
from aekit.cli.commands import (
    _cmd_encode,
    _cmd_evaluate,
    _cmd_list,
    _cmd_reconstruct,
    _cmd_report,
)
from aekit.cli.common import (
    _MEASURE_SPLIT,
    _TRANSFORM_SPLIT,
    COMMANDS,
    DEMO_EPOCHS,
    TRAIN_ALIASES,
    UsageError,
    _add_data_args,
    _Parser,
    _parser,
    _positive_int,
)
from aekit.cli.compression import _cmd_compress, _cmd_decompress
from aekit.cli.compression import add_parsers as _add_compression_parsers
from aekit.cli.generation import _cmd_generate, _cmd_interpolate, _cmd_sweep
from aekit.cli.generation import add_parsers as _add_generation_parsers
from aekit.cli.restoration import _cmd_restore
from aekit.cli.restoration import add_parsers as _add_restoration_parsers
from aekit.cli.retrieval import _cmd_features, _cmd_index, _cmd_search
from aekit.cli.retrieval import add_parsers as _add_retrieval_parsers
from aekit.cli.train import _cmd_demo, _cmd_train
from aekit.model.catalog import catalog

__all__ = ["main"]


# ---------------------------------------------------------------------------------------- main


def _main_parser() -> _Parser:
    p = _parser(
        "aekit", "Autoencoders from the lectures: train, evaluate and report them, and put them to work: denoise, inpaint, "
        "colorize, compress, search, classify and detect anomalies.",
        epilog="Start with `aekit demo`; `aekit COMMAND --help` describes each command.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p.add_argument("--version", action="version", version=f"aekit {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str, description: str | None = None, **kw: Any) -> _Parser:
        sp = sub.add_parser(name, help=help_text, description=description or help_text, allow_abbrev=False,
                            formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
        return sp  # type: ignore[no-any-return]

    sp = add("list", "list the registered families")
    sp.add_argument("--json", action="store_true", help="print as JSON")

    sp = add("demo", "train an autoencoder on the bundled digits and write an HTML report (a few seconds)",
             "Train an autoencoder with a 2-D code on scikit-learn's bundled digits (no download) and write a run "
             "directory with report.html: reconstructions, the latent map coloured by digit, decoder samples and "
             "loss curves.")
    sp.add_argument("--out", default="aekit-demo", metavar="DIR", help="run directory (default: ./aekit-demo)")
    sp.add_argument("--epochs", type=_positive_int, default=DEMO_EPOCHS, metavar="N",
                    help=f"maximum epochs; training stops early once validation stalls (default: {DEMO_EPOCHS})")
    sp.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                    help="CPU threads of PyTorch (default: 1, fastest for this small network)")
    sp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing demo run in --out")
    sp.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    # ``train`` builds its own parser once the family is known (see _cmd_train).
    add("train", "train a model of any family (`aekit train --family NAME --help` for its flags)", add_help=False)

    sp = add("evaluate", "reconstruction metrics of a trained run on a data set",
             "Reconstruction metrics of a trained run: per image and PSNR for images, per sample and per feature for "
             "tabular data and signals. Like every command that measures, it uses the test split by default.")
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default=_MEASURE_SPLIT, split_help="split to evaluate on")
    sp.add_argument("--nll-samples", type=_positive_int, default=None, metavar="N",
                    help="also estimate the negative log-likelihood (nll_nats) with N importance samples, for families "
                         "with a likelihood (e.g. vae; the IWAE paper uses 5000)")
    sp.add_argument("--json", action="store_true", help="print the metrics as JSON")

    sp = add("encode", "write the codes of a data set as a .npy array (n_samples, latent_dim)",
             "Write the codes of a data set as a .npy array (n_samples, latent_dim). Like every command that "
             "transforms data, it uses all of the data set (train and test) by default.")
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default=_TRANSFORM_SPLIT, split_help="split to encode")
    sp.add_argument("--out", required=True, metavar="FILE.npy", help="output file")
    sp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")

    sp = add("reconstruct", "write reconstructions as a .npy array or a .png of originals beside reconstructions",
             "Write the reconstructions decode(encode(x)) of a data set: every one as a .npy array, or a .png of the "
             "first originals beside their reconstructions. Like every command that transforms data, it uses all of "
             "the data set (train and test) by default.")
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default=_TRANSFORM_SPLIT, split_help="split to reconstruct")
    sp.add_argument("--out", required=True, metavar="FILE", help="output .npy (all reconstructions) or .png (a figure)")
    sp.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    sp.add_argument("--n", type=_positive_int, default=None, metavar="N",
                    help="pairs shown in a .png: images side by side, at most 4 line plots for tabular data and signals "
                         "(.png only; default: 10)")
    sp.add_argument("--json", action="store_true", help="print a JSON summary with the metrics")

    with_prior = [n for n, e in catalog().items() if "sample" in e.capabilities]
    _add_generation_parsers(add, with_prior)
    _add_restoration_parsers(add)
    _add_compression_parsers(add)
    _add_retrieval_parsers(add)
    _add_anomaly_parsers(add)

    sp = add("report", "write report.html (figures and metrics) for a trained run",
             "Write report.html (figures and metrics) for a trained run. Like every command that measures, it shows "
             "the test split by default; the latent map and the Gaussian for samples use the split the run was "
             "trained on.")
    sp.add_argument("run", metavar="RUN", help="run directory")
    _add_data_args(sp, split_default=_MEASURE_SPLIT, split_help="split shown")
    sp.add_argument("--json", action="store_true", help="print a JSON summary")
    return p


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": _cmd_list, "demo": _cmd_demo, "evaluate": _cmd_evaluate, "encode": _cmd_encode,
    "reconstruct": _cmd_reconstruct, "generate": _cmd_generate, "interpolate": _cmd_interpolate, "sweep": _cmd_sweep,
    "report": _cmd_report, "denoise": _cmd_restore, "inpaint": _cmd_restore, "colorize": _cmd_restore,
    "index": _cmd_index, "search": _cmd_search, "features": _cmd_features,
    "anomaly": _cmd_anomaly, "compress": _cmd_compress, "decompress": _cmd_decompress,
}


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, KeyError) and exc.args:
        text = f"missing key {exc.args[0]!r}"
    return _as_flags(" ".join(text.split())) or type(exc).__name__


_SETTING = re.compile(r"(?<![\w.-])([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^\s,;:)]+)")


@functools.cache
def _flag_names() -> dict[str, str]:
    """The command line's flag for each parameter name a message may quote (``learning_rate`` -> ``--lr``)."""
    names: dict[str, str] = {}
    if "aekit.model.registry" in sys.modules:  # the families are loaded: their parameters are flags
        from aekit.model.registry import families

        for info in families().values():
            for name in info.estimator().get_params(deep=False):
                names[name] = "--" + name.replace("_", "-")
    names.update({k: "--" + v.replace("_", "-") for k, v in TRAIN_ALIASES.items()})
    names.update(split="--split", limit="--limit", n_components="--components")
    return names


def _as_flags(text: str) -> str:
    """A message of the Python API in the command line's words: ``use scaling='minmax'`` -> ``use --scaling minmax``;
    a switch ``tied=True`` -> ``--tied``. Names that are not flags are left as they are."""
    flags = _flag_names()

    def swap(m: re.Match[str]) -> str:
        flag = flags.get(m.group(1))
        if flag is None:
            return m.group(0)
        value = m.group(2).strip("'\"")
        if value in ("True", "False"):
            return flag if value == "True" else "--no-" + flag[2:]
        return f"{flag} {value}"

    return _SETTING.sub(swap, text)


def _command_parser(parser: argparse.ArgumentParser, command: str) -> _Parser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]  # type: ignore[no-any-return]
    raise AssertionError("the main parser has no commands")


def _dispatch(argv: list[str]) -> int:
    parser = _main_parser()
    ns, extra = parser.parse_known_args(argv)
    if ns.command is None:
        if extra:
            raise parser.unrecognized(extra)
        raise UsageError(f"choose a command: {', '.join(COMMANDS)} (see aekit --help)")
    if ns.command == "train":
        return _cmd_train(extra)
    if extra:
        raise _command_parser(parser, ns.command).unrecognized(extra)
    return _HANDLERS[ns.command](ns)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aekit`` command line; returns the exit status (0 success, 1 runtime error, 2 usage error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args
    try:
        return _dispatch(args)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except UsageError as exc:
        if debug:
            raise
        print(f"aekit: error: {_one_line(exc)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("aekit: error: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`aekit list | head`): stop quietly, as Unix tools do.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        if debug:
            raise
        from aekit.engine.rundir import ModelFileError
        from aekit.engine.training import TrainingDivergedError

        expected = (ModelFileError, TrainingDivergedError, ValueError, TypeError, OSError)
        msg = _one_line(exc)
        if not isinstance(exc, expected):
            msg = f"{type(exc).__name__}: {msg} (rerun with --debug for the traceback)"
        print(f"aekit: error: {msg}", file=sys.stderr, flush=True)
        return 1
    except BaseException as exc:  # a native library's panic (pyo3's PanicException) is no Exception
        if debug or isinstance(exc, GeneratorExit):
            raise
        print(f"aekit: error: {type(exc).__name__}: {_one_line(exc)} (rerun with --debug for the traceback)",
              file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
