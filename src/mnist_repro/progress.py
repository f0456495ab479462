"""Stage progress lines with elapsed time, so a long step never looks hung."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator


def say(stage: str, message: str) -> None:
    """One progress line on stderr: ``<stage>: <message>``."""
    print(f"{stage}: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def ticking(stage: str, what: str, every: float = 10.0) -> Iterator[None]:
    """Announce ``what``, print the elapsed time every ``every`` seconds, then the total."""
    say(stage, f"{what} ...")
    start = time.perf_counter()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            say(stage, f"{what}: {time.perf_counter() - start:.0f} s elapsed")

    ticker = threading.Thread(target=tick, name=f"{stage}-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
    say(stage, f"{what}: done in {time.perf_counter() - start:.1f} s")
