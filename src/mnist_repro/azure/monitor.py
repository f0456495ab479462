"""Follow a job to its end: studio URL, streamed logs; Ctrl-C detaches; failure shows its log."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from mnist_repro.errors import MnistReproError

TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}
LOG_NAMES = ("std_log.txt", "std_log_process_0.txt", "70_driver_log.txt")


def how_to_follow(name: str) -> str:
    return (
        f"the job {name} keeps running in Azure ML.\n"
        f"  follow it:  make remote-status JOB={name}\n"
        f"  cancel it:  make remote-cancel JOB={name}"
    )


def log_tail(ml: Any, name: str, lines: int, scratch: Path) -> list[str]:
    """The last ``lines`` lines of the job's main log (downloaded with the job's artifacts)."""
    with tempfile.TemporaryDirectory(dir=scratch, prefix="logs-") as tmp:
        try:
            ml.jobs.download(name, download_path=tmp)
        except Exception as exc:  # the failure message must still come out
            return [f"(could not download the job's logs: {type(exc).__name__}: {exc})"]
        for log_name in LOG_NAMES:
            found = sorted(Path(tmp).rglob(log_name))
            if found:
                text = found[0].read_text(encoding="utf-8", errors="replace")
                return text.splitlines()[-lines:]
    return ["(the job wrote no log)"]


def follow(ml: Any, name: str, url: str | None, tail_lines: int, scratch: Path) -> Any:
    """Stream until the job ends; return the finished job, or raise with its log tail.

    KeyboardInterrupt leaves the job running: it prints how to follow or cancel it and
    re-raises, so the caller exits non-zero and DVC records nothing.
    """
    from azure.ai.ml.exceptions import JobException

    print(f"job {name}: {url or '(no studio URL)'}", flush=True)
    try:
        ml.jobs.stream(name)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {how_to_follow(name)}", file=sys.stderr, flush=True)
        raise
    except JobException:
        pass  # a failed job: the status below says so
    job = ml.jobs.get(name)
    if job.status != "Completed":
        show_failure(ml, job, tail_lines, scratch)
    return job


def show_failure(ml: Any, job: Any, tail_lines: int, scratch: Path) -> None:
    """Print the last lines of a job's log, then raise one line with its status and URL."""
    scratch.mkdir(parents=True, exist_ok=True)
    tail = log_tail(ml, job.name, tail_lines, scratch)
    print(f"--- last {len(tail)} lines of the log of job {job.name} ---", file=sys.stderr)
    print("\n".join(tail), file=sys.stderr, flush=True)
    raise MnistReproError(f"Azure ML job {job.name} ended {job.status}: {job.studio_url}")
