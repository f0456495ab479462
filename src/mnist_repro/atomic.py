"""Write output files atomically (a crash or Ctrl-C never leaves a partial file under its
final name) and with stable bytes (the same content always gives the same file)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mnist_repro.errors import MnistReproError

TEMP_SUFFIX = ".tmp"


def _temp_prefix(final: Path) -> str:
    return f".{final.name}."


def remove_stale_temps(final: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files that a killed writer of ``final`` left beside it; return them.

    Ctrl-C and exceptions clean up after themselves; SIGKILL or a power cut cannot, and a
    leftover would otherwise become part of a DVC output folder.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return []
    stale = sorted(final.parent.glob(f"{glob.escape(_temp_prefix(final))}*{TEMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    The temporary file lives in the same folder (so the rename is atomic on POSIX) and is
    removed if the block raises, including on KeyboardInterrupt. Temporary files of ``final``
    that a killed earlier writer left behind are removed first (one writer per file at a time:
    DVC runs one stage at a time). A failure to write (disk full, permission denied) becomes
    one :class:`MnistReproError` naming ``final``.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(final), suffix=TEMP_SUFFIX, dir=final.parent)
    except OSError as exc:
        raise _cannot_write(final, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the result the permissions a plain open() would have.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, final)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, tmp, str(final)):
            raise _cannot_write(final, exc) from None
        raise


def _cannot_write(final: Path, exc: OSError) -> MnistReproError:
    return MnistReproError(f"{final}: cannot write ({exc.strerror or exc})")


@contextlib.contextmanager
def atomic_open(final: str | os.PathLike[str], mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``final`` for writing; rename it into place on success."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open is for writing, not mode {mode!r}")
    with atomic_path(final) as tmp, open(tmp, mode.replace("x", "w"), **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(final: str | os.PathLike[str], text: str) -> None:
    """Atomically replace ``final`` with ``text`` (UTF-8, ``\\n`` line endings)."""
    with atomic_open(final, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def write_json(final: str | os.PathLike[str], data: object) -> None:
    """Atomically write ``data`` as stable JSON: sorted keys, two-space indent, final newline."""
    write_text(final, json.dumps(data, indent=2, sort_keys=True) + "\n")


def stable_zip_info(name: str) -> zipfile.ZipInfo:
    """A zip entry header that does not depend on when or where it was written.

    Fixed 1980 timestamp, Unix 0644 permissions, stored (zlib output can differ between
    builds). ``numpy.savez`` and skops stamp the current time instead.
    """
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system = 3  # Unix, whatever the platform
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_STORED
    return info
