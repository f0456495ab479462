"""A thin command line over the stage modules: ``python -m mnist_repro <stage>``.

Each subcommand parses its arguments and calls one module's entry point. A
:class:`MnistReproError` or an ``OSError`` (disk full, permission denied) ends it with one
line, ``error: <file>: <problem>``, on stderr and exit status 1; the atomic writers leave no
half-written file behind. Before any stage
module (and so NumPy) is imported, the commands that compute in floating point pin the BLAS
kernel that params.yaml names (:mod:`mnist_repro.blas`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from mnist_repro import blas, log, paths
from mnist_repro.errors import MnistReproError

# subcommand -> (module, help). Each module exposes ``add_arguments(parser)`` and ``run(args)``.
STAGES: dict[str, tuple[str, str]] = {
    "download": ("mnist_repro.download", "fetch and verify the four MNIST idx .gz files"),
    "decode": ("mnist_repro.decode", "decode the idx files into data/processed/mnist.npz"),
    "train": ("mnist_repro.train", "fit the logistic regression on the raw files; write models/"),
    "evaluate": ("mnist_repro.evaluate", "score the model on the test set; metrics and figures"),
    "report": ("mnist_repro.report", "write reports/README.md from the metrics and figures"),
    "sweep": (
        "mnist_repro.sweep",
        "choose the regularization on a validation split, test it once (make sweep)",
    ),
    "azure": (
        "mnist_repro.azure.cli",
        "train on Azure ML and manage its runs (make train-remote)",
    ),
    "verify": ("mnist_repro.verify", "did this run reproduce the committed results? (make verify)"),
}
# MNIST_TRAIN_BACKEND=azureml runs the train stage on Azure ML, same arguments (make train-remote).
BACKENDS = {("train", "azureml"): "mnist_repro.azure.job"}


def stage_module(name: str, default: str) -> str:
    """The module that runs stage ``name`` under the backend chosen by MNIST_TRAIN_BACKEND."""
    backend = os.environ.get("MNIST_TRAIN_BACKEND") or "local"
    if backend == "local" or name != "train":
        return default
    if (name, backend) not in BACKENDS:
        raise SystemExit(f"error: MNIST_TRAIN_BACKEND={backend}: unknown (use local or azureml)")
    return BACKENDS[name, backend]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the chosen stage's module is imported (Azure and sklearn load slowly)."""
    parser = argparse.ArgumentParser(prog="mnist-repro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")
    for name, (module_name, help_text) in STAGES.items():
        stage_parser = sub.add_parser(name, help=help_text, description=help_text)
        stage_parser.add_argument(
            "--params", default=paths.PARAMS, help="params file (default: %(default)s)"
        )
        if name == command:
            module = importlib.import_module(stage_module(name, module_name))
            module.add_arguments(stage_parser)
            stage_parser.set_defaults(run=module.run)
    return parser


def params_path(argv: Sequence[str]) -> str:
    """The ``--params`` value in ``argv`` (``params.yaml`` if none), parsed without the stage."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--params", default=str(paths.PARAMS))
    return pre.parse_known_args(argv)[0].params


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in blas.COMMANDS:
        try:
            blas.apply_from_params(params_path(argv))
        except MnistReproError as exc:
            log.error(str(exc))
            return 1
    args = build_parser(command).parse_args(argv)
    run: Callable[[argparse.Namespace], int | None] = args.run
    try:
        return run(args) or 0
    except MnistReproError as exc:
        log.error(str(exc))
    except OSError as exc:
        log.error(os_error_line(exc))
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    return 1


def os_error_line(exc: OSError) -> str:
    """``<file>: <problem>`` for an OSError (``<problem>`` alone if it names no file)."""
    problem = exc.strerror or str(exc)
    return f"{exc.filename}: {problem}" if exc.filename is not None else problem
