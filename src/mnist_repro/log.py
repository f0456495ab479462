"""The one output channel: ``logging``. Progress goes to stderr, results to stdout.

Every module logs through :func:`get` (a child of the ``mnist_repro`` logger); a record shows
as ``<stage>: <message>`` on stderr, so a long step never looks hung and stdout stays clean for
results. :func:`result` writes a result line (something a user or a script reads) to stdout;
:func:`error` the one ``error: <message>`` line a failed command ends with, on stderr.
:func:`setup` is called once, by the CLI.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator

ROOT = "mnist_repro"
RESULT = f"{ROOT}.result"
ERROR = f"{ROOT}.error"


class _StageFormatter(logging.Formatter):
    """``<stage>: <message>``, with ``warning: `` before warnings and errors."""

    def format(self, record: logging.LogRecord) -> str:
        stage = record.name.rsplit(".", 1)[-1] if record.name != ROOT else ROOT
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"{stage}: {level}{record.getMessage()}"


class _NotResult(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith((RESULT, ERROR))


def setup(level: int = logging.INFO) -> None:
    """Send ``mnist_repro`` progress to stderr and results to stdout (idempotent).

    Handlers look up ``sys.stderr``/``sys.stdout`` at each record, so pytest's capture works.
    """
    root = logging.getLogger(ROOT)
    root.setLevel(level)
    root.propagate = False
    if getattr(root, "_mnist_repro_setup", False):
        return
    progress = _StreamHandler("stderr")
    progress.setFormatter(_StageFormatter())
    progress.addFilter(_NotResult())
    root.addHandler(progress)
    results = logging.getLogger(RESULT)
    results_handler = _StreamHandler("stdout")
    results_handler.setFormatter(logging.Formatter("%(message)s"))
    results.addHandler(results_handler)
    errors_handler = _StreamHandler("stderr")
    errors_handler.setFormatter(logging.Formatter("error: %(message)s"))
    logging.getLogger(ERROR).addHandler(errors_handler)
    root._mnist_repro_setup = True  # type: ignore[attr-defined]


class _StreamHandler(logging.StreamHandler):
    """A StreamHandler that writes to whatever ``sys.<name>`` is at emit time."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property  # type: ignore[override]
    def stream(self):
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


def get(stage: str) -> logging.Logger:
    """The logger of one stage or module: its records read ``<stage>: <message>``."""
    setup()
    return logging.getLogger(f"{ROOT}.{stage}")


def result(message: str) -> None:
    """A result line on stdout (no prefix): what a user or a script reads."""
    setup()
    logging.getLogger(RESULT).info(message)


def error(message: str) -> None:
    """The one line a failed command ends with: ``error: <message>`` on stderr."""
    setup()
    logging.getLogger(ERROR).error(message)


@contextlib.contextmanager
def ticking(logger: logging.Logger, what: str, every: float = 10.0) -> Iterator[None]:
    """Announce ``what``, log the elapsed time every ``every`` seconds, then the total."""
    logger.info("%s ...", what)
    start = time.perf_counter()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            logger.info("%s: %.0f s elapsed", what, time.perf_counter() - start)

    ticker = threading.Thread(target=tick, name=f"{logger.name}-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
    logger.info("%s: done in %.1f s", what, time.perf_counter() - start)
