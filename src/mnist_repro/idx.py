"""Read and write idx files, the format MNIST ships in (plain or gzip-compressed).

An idx file is a 4-byte magic number (two zero bytes, a dtype code, the number of
dimensions), then one big-endian uint32 per dimension, then the data, big-endian,
in C order. See http://yann.lecun.com/exdb/mnist/ ("THE IDX FILE FORMAT").

Reading is strict and cheap: the header is read and checked first, the size it
announces is capped before anything is allocated (so a crafted header cannot
exhaust memory), and the body is decompressed once into a single buffer that
numpy wraps without copying. Every problem is a :class:`MnistReproError` with a
one-line message naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mnist_repro.atomic import atomic_path
from mnist_repro.errors import MnistReproError

# dtype code -> big-endian numpy dtype, as the format defines them.
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CODES: dict[np.dtype, int] = {dtype: code for code, dtype in DTYPES.items()}

# Caps checked against the header before any allocation. MNIST's largest file is
# 47 MB decoded; these leave room for bigger idx data sets (EMNIST) but not for abuse.
MAX_NDIM = 16
MAX_BYTES = 1 << 30  # decoded data, 1 GiB

GZIP_MAGIC = b"\x1f\x8b"


class _Reader:
    """Sequential reads from a plain or gzip idx file, with one-line errors.

    ``read(n)`` returns at most ``n`` bytes (fewer only at the end of the data). A gzip
    file is detected by its magic bytes, read whole (capped) and decompressed on demand,
    across concatenated gzip members, never producing more than the caller asked for.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self._fh = None
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise MnistReproError(f"{path}: not found") from None
        except IsADirectoryError:
            raise MnistReproError(f"{path}: is a directory, not an idx file") from None
        except OSError as exc:
            raise MnistReproError(f"{path}: cannot read ({exc.strerror or exc})") from None
        try:
            self._head = fh.read(2)
            self.gzip = self._head == GZIP_MAGIC
            if self.gzip:
                self._start_inflate(self._head + self._read_compressed(fh, max_bytes))
            elif path.name.endswith(".gz"):
                raise MnistReproError(
                    f"{path}: not a gzip file (starts with 0x{self._head.hex()}, "
                    f"expected 0x{GZIP_MAGIC.hex()})"
                )
            else:
                self._fh, fh = fh, None  # a plain file is read in place, header first
        except OSError as exc:
            raise MnistReproError(f"{path}: cannot read ({exc.strerror or exc})") from None
        finally:
            if fh is not None:
                fh.close()

    def _read_compressed(self, fh: BinaryIO, max_bytes: int) -> bytes:
        # Deflate expands incompressible data by well under 1%: a compressed file beyond
        # this limit cannot hold data within max_bytes, so it is not even read.
        limit = max_bytes + max_bytes // 100 + (1 << 20)
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise MnistReproError(
                f"{self.path}: compressed file of {size} bytes, larger than data within "
                f"the cap of {max_bytes} bytes can compress to"
            )
        return fh.read()

    def _start_inflate(self, compressed: bytes) -> None:
        if compressed[:2] != GZIP_MAGIC:
            raise MnistReproError(f"{self.path}: unexpected bytes after the gzip stream")
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._pending = compressed

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()

    def read(self, n: int) -> bytes:
        if self.gzip:
            return self._inflate(n)
        # Plain file: the 2 sniffed bytes first, then straight from the file.
        out, self._head = self._head[:n], self._head[n:]
        if len(out) < n:
            rest = self._fh.read(n - len(out))
            out = out + rest if out else rest
        return out

    def _inflate(self, n: int) -> bytes:
        parts: list[bytes] = []
        want = n
        try:
            while want > 0:
                d = self._inflater
                if d.eof:
                    # Another gzip member may follow (concatenated .gz files are valid gzip).
                    if not d.unused_data:
                        break
                    self._start_inflate(d.unused_data)
                    continue
                if not self._pending:
                    raise MnistReproError(
                        f"{self.path}: truncated gzip stream (compressed data ends early)"
                    )
                # Feed all input at once: zlib stops at max_length and keeps the rest.
                chunk = d.decompress(self._pending, want)
                self._pending = d.unconsumed_tail
                if chunk:
                    parts.append(chunk)
                    want -= len(chunk)
        except zlib.error as exc:
            raise MnistReproError(f"{self.path}: corrupt gzip data ({exc})") from None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def at_end(self) -> bool:
        """True if no data follows; for gzip also checks that the stream ends cleanly (CRC)."""
        if self.read(1):
            return False
        if self.gzip and not self._inflater.eof:
            raise MnistReproError(f"{self.path}: truncated gzip stream (no end-of-stream marker)")
        return True


def read_header(path: str | os.PathLike[str], max_bytes: int = MAX_BYTES):
    """``(dtype, shape)`` announced by the header of an idx file, validated and capped."""
    path = Path(path)
    reader = _Reader(path, max_bytes)
    try:
        return _parse_header(reader, path, max_bytes)
    finally:
        reader.close()


def _parse_header(reader: _Reader, path: Path, max_bytes: int) -> tuple[np.dtype, tuple[int, ...]]:
    magic = reader.read(4)
    if len(magic) < 4:
        raise MnistReproError(f"{path}: too short for an idx header ({len(magic)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", magic)
    if zero != 0:
        raise MnistReproError(
            f"{path}: bad magic number 0x{magic.hex()} (an idx file starts with two zero bytes)"
        )
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in DTYPES)
        raise MnistReproError(f"{path}: unknown idx dtype code 0x{code:02X} (known: {known})")
    if not 1 <= ndim <= MAX_NDIM:
        raise MnistReproError(
            f"{path}: absurd number of dimensions {ndim} (expected 1 to {MAX_NDIM})"
        )
    raw_dims = reader.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise MnistReproError(
            f"{path}: header ends early ({ndim} dimensions announced, {len(raw_dims) // 4} present)"
        )
    shape = struct.unpack(f">{ndim}I", raw_dims)
    dtype = DTYPES[code]
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_bytes:
        dims = " x ".join(map(str, shape))
        raise MnistReproError(
            f"{path}: absurd dimensions {dims} ({nbytes} bytes of data, "
            f"more than the cap of {max_bytes})"
        )
    return dtype, shape


def read_idx(path: str | os.PathLike[str], max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an idx file (plain, or gzip if it starts with the gzip magic) into a native array.

    Parameters
    ----------
    path
        The file. A name ending in ``.gz`` must hold gzip data.
    max_bytes
        Largest decoded data size accepted, checked against the header before reading on.

    Returns
    -------
    numpy.ndarray
        Shape and dtype from the header, native byte order. For single-byte types the
        array is a read-only view on the decompressed buffer (no copy).
    """
    path = Path(path)
    reader = _Reader(path, max_bytes)
    try:
        dtype, shape = _parse_header(reader, path, max_bytes)
        nbytes = math.prod(shape) * dtype.itemsize
        body = reader.read(nbytes)
        if len(body) < nbytes:
            raise MnistReproError(
                f"{path}: data too short: header announces {nbytes} bytes, file holds {len(body)}"
            )
        if not reader.at_end():
            raise MnistReproError(
                f"{path}: trailing bytes after the {nbytes} bytes of data the header announces"
            )
    finally:
        reader.close()
    array = np.frombuffer(body, dtype=dtype).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding (header and big-endian data) of ``array``."""
    array = np.asarray(array)
    code = CODES.get(array.dtype.newbyteorder(">"))
    if code is None:
        known = ", ".join(str(d.newbyteorder("=")) for d in DTYPES.values())
        raise ValueError(f"idx cannot store dtype {array.dtype} (supported: {known})")
    if not 1 <= array.ndim <= MAX_NDIM:
        raise ValueError(f"idx stores 1 to {MAX_NDIM} dimensions, not {array.ndim}")
    if any(n >= 1 << 32 for n in array.shape):
        raise ValueError(f"idx dimensions must fit in uint32, got {array.shape}")
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(">")).tobytes()
    return header + data


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compresslevel: int = 6) -> None:
    """Write ``array`` as an idx file, gzip-compressed if the name ends in ``.gz``.

    The gzip header carries no timestamp or file name, so equal arrays give equal bytes.
    Written atomically (temporary file, then rename).
    """
    path = Path(path)
    data = idx_bytes(array)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=compresslevel, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
