"""The idx reader and writer: round trips, and a one-line error for every kind of bad file."""

from __future__ import annotations

import gzip
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from mnist_repro.errors import MnistReproError
from mnist_repro.idx import DTYPES, MAX_NDIM, idx_bytes, read_header, read_idx, write_idx

SHAPES = [(7,), (3, 5), (4, 28, 28), (2, 3, 4, 5), (0, 3)]


def _sample(dtype: np.dtype, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype.kind == "f":
        array = rng.normal(0, 1e3, shape)
        array.flat[:3] = [np.inf, -0.0, 1e-30][: array.size]
    else:
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, shape, endpoint=True)
        if array.size >= 2:  # the extremes exercise sign and byte order
            array.flat[:2] = [info.min, info.max]
    return array.astype(dtype.newbyteorder("="))


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("code", sorted(DTYPES), ids=lambda c: f"0x{c:02X}")
def test_round_trip(tmp_path: Path, code: int, shape: tuple[int, ...], suffix: str) -> None:
    expected = _sample(DTYPES[code], shape, np.random.default_rng(code))
    path = tmp_path / f"data.idx{suffix}"
    write_idx(path, expected)

    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    header = (gzip.decompress(raw) if suffix else raw)[: 4 + 4 * len(shape)]
    assert header == struct.pack(f">HBB{len(shape)}I", 0, code, len(shape), *shape)

    actual = read_idx(path)
    assert actual.dtype == expected.dtype and actual.dtype.isnative
    assert actual.shape == shape
    np.testing.assert_array_equal(actual, expected)
    assert read_header(path) == (DTYPES[code], shape)


def test_data_is_big_endian_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    write_idx(path, np.array([1, -2], dtype="<i4"))
    assert path.read_bytes() == bytes.fromhex("00000c01 00000002 00000001 fffffffe")
    # ...and a big-endian array in memory is written the same way.
    write_idx(path, np.array([1, -2], dtype=">i4"))
    assert path.read_bytes() == bytes.fromhex("00000c01 00000002 00000001 fffffffe")


def test_gzip_is_deterministic_and_multi_member_reads(tmp_path: Path) -> None:
    array = np.arange(100, dtype=np.uint8).reshape(10, 10)
    a, b = tmp_path / "a.gz", tmp_path / "b.gz"
    write_idx(a, array)
    time.sleep(1.1)  # a gzip mtime would differ now
    write_idx(b, array)
    assert a.read_bytes() == b.read_bytes()
    # Concatenated gzip members are one valid gzip stream (as `cat a.gz b.gz` makes).
    data = idx_bytes(array)
    split = tmp_path / "split.gz"
    split.write_bytes(gzip.compress(data[:50], mtime=0) + gzip.compress(data[50:], mtime=0))
    np.testing.assert_array_equal(read_idx(split), array)


def test_uint8_read_is_zero_copy_read_only_view(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    write_idx(path, np.zeros((2, 3), np.uint8))
    array = read_idx(path)
    assert not array.flags.writeable  # a view on the decompressed bytes, not a copy


def test_writer_rejects_what_idx_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot store dtype uint16"):
        write_idx(tmp_path / "x.idx", np.zeros(3, np.uint16))
    with pytest.raises(ValueError, match="1 to"):
        write_idx(tmp_path / "x.idx", np.uint8(3))
    assert not list(tmp_path.iterdir())


# --- bad input: one line naming the file and the problem -------------------------------------


def _header(code: int, *dims: int) -> bytes:
    return struct.pack(f">HBB{len(dims)}I", 0, code, len(dims), *dims)


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload, mtime=0) if path.name.endswith(".gz") else payload)
    return path


def _assert_error(path: Path, *fragments: str) -> str:
    with pytest.raises(MnistReproError) as info:
        read_idx(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    return message


BAD_PAYLOADS = {
    "bad magic": (
        b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab",
        "bad magic number 0x01000801",
    ),
    "html page": (b"<!DOCTYPE html><html>Not Found</html>", "bad magic number"),
    "unknown dtype": (_header(0x0A, 2) + b"ab", "unknown idx dtype code 0x0A"),
    "zero dims": (b"\x00\x00\x08\x00", "absurd number of dimensions 0"),
    "too many dims": (b"\x00\x00\x08\xff" + b"\x00" * 1020, "absurd number of dimensions 255"),
    "empty": (b"", "too short for an idx header (0 bytes)"),
    "short header": (b"\x00\x00\x08", "too short for an idx header (3 bytes)"),
    "dims cut off": (_header(0x08, 5, 5)[:10], "header ends early (2 dimensions announced, 1"),
    "data too short": (
        _header(0x0B, 3, 2) + b"\x00" * 11,
        "header announces 12 bytes, file holds 11",
    ),
    "trailing bytes": (_header(0x08, 2, 2) + b"abcd" + b"e", "trailing bytes after the 4 bytes"),
    "huge dims": (_header(0x08, 2**32 - 1, 2**32 - 1), "absurd dimensions 4294967295 x 4294967295"),
}


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("case", sorted(BAD_PAYLOADS))
def test_bad_payload(tmp_path: Path, case: str, suffix: str) -> None:
    payload, problem = BAD_PAYLOADS[case]
    _assert_error(_write(tmp_path / f"bad-idx1-ubyte{suffix}", payload), problem)


def _good_gz(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "good.gz"
    write_idx(path, np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8))
    return path, path.read_bytes()


@pytest.mark.parametrize("cut", [0.5, 0.9, -4, -1], ids=["half", "90%", "no-size", "last-byte"])
def test_truncated_gzip(tmp_path: Path, cut: float) -> None:
    path, raw = _good_gz(tmp_path)
    keep = int(len(raw) * cut) if cut > 0 else len(raw) + int(cut)
    path.write_bytes(raw[:keep])
    _assert_error(path, "truncated gzip stream")


def test_corrupt_gzip_body(tmp_path: Path) -> None:
    path, raw = _good_gz(tmp_path)
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    _assert_error(path, "corrupt gzip data")


def test_gzip_crc_mismatch(tmp_path: Path) -> None:
    path, raw = _good_gz(tmp_path)
    path.write_bytes(raw[:-8] + bytes([raw[-8] ^ 0xFF]) + raw[-7:])  # the CRC32 in the trailer
    _assert_error(path, "corrupt gzip data", "incorrect data check")


def test_garbage_after_gzip_stream(tmp_path: Path) -> None:
    path, raw = _good_gz(tmp_path)
    path.write_bytes(raw + b"garbage")
    _assert_error(path, "unexpected bytes after the gzip stream")
    path.write_bytes(raw + raw[:10])  # the header of a second gzip member, nothing more
    _assert_error(path, "truncated gzip stream")


def test_gz_name_without_gzip_data(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(_header(0x08, 1) + b"\x01")
    _assert_error(path, "not a gzip file (starts with 0x0000")


def test_raw_deflate_is_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(zlib.compress(_header(0x08, 1) + b"\x01"))
    _assert_error(path, "not a gzip file")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    _assert_error(tmp_path / "nope.gz", "not found")
    (tmp_path / "dir.gz").mkdir()
    _assert_error(tmp_path / "dir.gz", "is a directory")


def test_ndim_cap_matches_writer(tmp_path: Path) -> None:
    path = tmp_path / "deep.idx"
    write_idx(path, np.zeros((1,) * MAX_NDIM, np.uint8))
    assert read_idx(path).shape == (1,) * MAX_NDIM
    with pytest.raises(ValueError):
        write_idx(path, np.zeros((1,) * (MAX_NDIM + 1), np.uint8))


# --- memory cap: a crafted header must fail before anything is allocated --------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_huge_header_fails_fast_without_allocating(tmp_path: Path, suffix: str) -> None:
    # 2^32-1 x 2^32-1 doubles: ~147 exabytes announced, a handful of bytes present.
    path = _write(tmp_path / f"crafted{suffix}", _header(0x0E, 2**32 - 1, 2**32 - 1) + b"\0" * 64)
    tracemalloc.start()
    try:
        message = _assert_error(path, "absurd dimensions", "more than the cap")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str((2**32 - 1) ** 2 * 8) in message
    assert peak < 1 << 20  # nothing near the announced size was allocated


def test_cap_applies_just_above_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    write_idx(path, np.zeros((10, 10), np.int32))  # 400 bytes of data
    assert read_idx(path, max_bytes=400).shape == (10, 10)
    _assert_error_with_cap(path, 399)


def _assert_error_with_cap(path: Path, cap: int) -> None:
    with pytest.raises(MnistReproError, match=r"absurd dimensions 10 x 10 \(400 bytes"):
        read_idx(path, max_bytes=cap)


def test_gzip_bomb_is_not_inflated_beyond_the_header(tmp_path: Path) -> None:
    # A small header claiming 16 bytes, followed by 200 MB of zeros compressed to ~200 kB:
    # the reader must stop after 17 bytes of output, not inflate the whole bomb.
    inflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [inflater.compress(_header(0x08, 16) + b"\0" * 16)]
    zeros = b"\0" * (1 << 20)
    parts += [inflater.compress(zeros) for _ in range(200)]
    parts.append(inflater.flush())
    path = tmp_path / "bomb.gz"
    path.write_bytes(b"".join(parts))
    tracemalloc.start()
    try:
        _assert_error(path, "trailing bytes after the 16 bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the compressed file (~200 kB) plus small change, not 200 MB


def test_compressed_file_beyond_cap_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.gz"
    path.write_bytes(gzip.compress(b"\0" * 10, mtime=0) + b"\0" * (3 << 20))
    size = path.stat().st_size
    with pytest.raises(MnistReproError, match=f"compressed file of {size} bytes, larger than"):
        read_idx(path, max_bytes=1 << 20)
