"""The decode stage: load_raw's checks, the deterministic npz, and the CLI end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.dataset import write_fake_mnist
from mnist_repro.decode import FILES, load_npz, load_raw, save_npz
from mnist_repro.errors import MnistReproError
from mnist_repro.idx import write_idx

N_TRAIN, N_TEST = 120, 40


@pytest.fixture(scope="module")
def synthetic_raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    """A read-only folder of synthetic raw files (copy it before damaging anything)."""
    folder = tmp_path_factory.mktemp("raw")
    return folder, write_fake_mnist(folder, n_train=N_TRAIN, n_test=N_TEST, seed=1)


@pytest.fixture
def raw(tmp_path: Path, synthetic_raw: tuple[Path, dict]) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    for name in FILES.values():
        (folder / name).write_bytes((synthetic_raw[0] / name).read_bytes())
    return folder


def _error(func, *args) -> str:
    with pytest.raises(MnistReproError) as info:
        func(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- load_raw ----------------------------------------------------------------------------------


def test_load_raw_shapes_and_labels(synthetic_raw: tuple[Path, dict]) -> None:
    arrays = load_raw(synthetic_raw[0])
    assert sorted(arrays) == sorted(FILES)
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        assert arrays[f"{split}_images"].shape == (n, 28, 28)
        assert arrays[f"{split}_images"].dtype == np.uint8
        assert arrays[f"{split}_labels"].shape == (n,)
        assert arrays[f"{split}_labels"].dtype == np.uint8
        assert set(np.unique(arrays[f"{split}_labels"])) == set(range(10))


def test_load_raw_one_split_and_progress(synthetic_raw: tuple[Path, dict]) -> None:
    seen = []
    arrays = load_raw(
        synthetic_raw[0], splits=("test",), on_file=lambda p, a, s: seen.append(p.name)
    )
    assert sorted(arrays) == ["test_images", "test_labels"]
    assert seen == [FILES["test_images"], FILES["test_labels"]]
    with pytest.raises(ValueError, match="unknown split"):
        load_raw(synthetic_raw[0], splits=("validation",))


def test_count_mismatch_names_both_files(raw: Path) -> None:
    write_idx(raw / FILES["test_labels"], np.zeros(N_TEST - 1, np.uint8))
    message = _error(load_raw, raw)
    assert message.startswith(f"{raw / FILES['test_labels']}: ")
    assert f"{N_TEST - 1} labels but {FILES['test_images']} holds {N_TEST} images" in message


def test_label_out_of_range(raw: Path) -> None:
    labels = np.arange(N_TRAIN, dtype=np.uint8) % 10
    labels[[7, 50]] = [10, 255]
    write_idx(raw / FILES["train_labels"], labels)
    message = _error(load_raw, raw)
    assert message == (
        f"{raw / FILES['train_labels']}: 2 labels outside 0-9 (first: 10 at index 7)"
    )


@pytest.mark.parametrize(
    ("key", "array", "problem"),
    [
        (
            "train_images",
            np.zeros((N_TRAIN, 28, 27), np.uint8),
            "expected uint8 images N x 28 x 28, found uint8 120 x 28 x 27",
        ),
        ("train_images", np.zeros((N_TRAIN, 784), np.uint8), "found uint8 120 x 784"),
        ("test_images", np.zeros((N_TEST, 28, 28), np.float32), "found float32 40 x 28 x 28"),
        (
            "test_labels",
            np.zeros(N_TEST, np.int32),
            "expected uint8 labels of shape N, found int32 40",
        ),
        ("test_labels", np.zeros((N_TEST, 1), np.uint8), "found uint8 40 x 1"),
    ],
)
def test_wrong_kind_of_idx_file(raw: Path, key: str, array: np.ndarray, problem: str) -> None:
    write_idx(raw / FILES[key], array)
    message = _error(load_raw, raw)
    assert message.startswith(f"{raw / FILES[key]}: ") and problem in message


def test_empty_split(raw: Path) -> None:
    write_idx(raw / FILES["test_images"], np.zeros((0, 28, 28), np.uint8))
    write_idx(raw / FILES["test_labels"], np.zeros(0, np.uint8))
    assert _error(load_raw, raw) == f"{raw / FILES['test_images']}: holds no images (0 x 28 x 28)"


def test_missing_file(raw: Path) -> None:
    (raw / FILES["test_images"]).unlink()
    assert _error(load_raw, raw) == f"{raw / FILES['test_images']}: not found"


# --- save_npz / load_npz -------------------------------------------------------------------------


def test_npz_round_trip_and_fixed_bytes(tmp_path: Path, synthetic_raw: tuple[Path, dict]) -> None:
    arrays = load_raw(synthetic_raw[0])
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    save_npz(first, arrays)
    # Same arrays in another order and memory layout: same bytes.
    reordered = {k: np.asfortranarray(arrays[k]) for k in reversed(list(arrays))}
    save_npz(second, reordered)
    assert first.read_bytes() == second.read_bytes()

    with zipfile.ZipFile(first) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(f"{k}.npy" for k in FILES)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}

    loaded = load_npz(first)
    assert sorted(loaded) == sorted(FILES)
    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded[key], array)
        assert loaded[key].dtype == array.dtype
    with np.load(first) as plain:  # and numpy reads it like any savez output
        np.testing.assert_array_equal(plain["test_labels"], arrays["test_labels"])


def test_load_npz_refuses_pickles(tmp_path: Path, synthetic_raw: tuple[Path, dict]) -> None:
    arrays = dict(load_raw(synthetic_raw[0]))
    arrays["test_labels"] = np.array([{"evil": 1}] * N_TEST, dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    message = _error(load_npz, path)
    assert message.startswith(f"{path}: not a valid .npz of plain arrays")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"train_images": None}, "missing arrays train_images"),
        (
            {"train_images": np.zeros((3, 28, 28), np.float64)},
            "train_images must be uint8 N x 28 x 28, found float64",
        ),
        (
            {"test_labels": np.zeros(N_TEST + 1, np.uint8)},
            f"test_labels must be uint8 of shape ({N_TEST},), found uint8 ({N_TEST + 1},)",
        ),
    ],
)
def test_load_npz_validates(
    tmp_path: Path, synthetic_raw: tuple[Path, dict], change: dict, problem: str
) -> None:
    arrays = dict(load_raw(synthetic_raw[0]))
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = tmp_path / "mnist.npz"
    save_npz(path, arrays)
    message = _error(load_npz, path)
    assert message.startswith(f"{path}: ") and problem in message


def test_load_npz_not_a_zip_or_missing(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    assert _error(load_npz, path) == f"{path}: not found (run the decode stage first)"
    path.write_bytes(b"PK\x03\x04 but not really a zip")
    assert _error(load_npz, path).startswith(f"{path}: not a")


# --- the stage through the CLI -------------------------------------------------------------------


def _decode(raw: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_repro", "decode", "--raw", str(raw), "--out", str(out)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_decode_cli_end_to_end_and_deterministic(tmp_path: Path, raw: Path) -> None:
    out = tmp_path / "processed"
    first = _decode(raw, out, tmp_path)
    assert first.returncode == 0, first.stderr
    for name in FILES.values():
        assert f"decode: {name}: " in first.stderr
    assert first.stdout == ""
    npz_bytes = (out / "mnist.npz").read_bytes()
    summary_text = (out / "summary.json").read_text()

    arrays = load_npz(out / "mnist.npz")
    expected = load_raw(raw)
    for key in FILES:
        np.testing.assert_array_equal(arrays[key], expected[key])

    summary = json.loads(summary_text)
    assert summary_text.endswith("}\n")
    assert summary_text == json.dumps(summary, indent=2, sort_keys=True) + "\n"
    assert summary["splits"]["train"]["images"] == {"shape": [N_TRAIN, 28, 28], "dtype": "uint8"}
    assert summary["splits"]["test"]["labels"] == {"shape": [N_TEST], "dtype": "uint8"}
    for split in ("train", "test"):
        counts = np.bincount(expected[f"{split}_labels"], minlength=10)
        assert summary["splits"][split]["class_counts"] == {
            str(c): int(n) for c, n in enumerate(counts)
        }
    written = write_fake_mnist(tmp_path / "again", n_train=N_TRAIN, n_test=N_TEST, seed=1)
    assert summary["source_files"] == written

    second = _decode(raw, out, tmp_path)
    assert second.returncode == 0, second.stderr
    assert (out / "mnist.npz").read_bytes() == npz_bytes
    assert (out / "summary.json").read_text() == summary_text
    assert sorted(p.name for p in out.iterdir()) == ["mnist.npz", "summary.json"]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated gzip stream"),
        (lambda p: p.write_bytes(b"<html>503 Service Unavailable</html>"), "not a gzip file"),
        (lambda p: p.unlink(), "not found"),
    ],
    ids=["truncated", "html", "missing"],
)
def test_decode_cli_bad_file(tmp_path: Path, raw: Path, damage, problem: str) -> None:
    bad = raw / FILES["test_images"]
    damage(bad)
    out = tmp_path / "processed"
    result = _decode(raw, out, tmp_path)
    assert result.returncode == 1
    *progress, error = result.stderr.splitlines()
    assert error.startswith(f"error: {bad}: ") and problem in error
    assert all(line.startswith("decode: ") for line in progress)
    assert not out.exists() or not list(out.iterdir())  # nothing written, not even a temp file


def test_decode_cli_failure_keeps_previous_outputs(tmp_path: Path, raw: Path) -> None:
    out = tmp_path / "processed"
    assert _decode(raw, out, tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    write_idx(raw / FILES["train_labels"], np.full(N_TRAIN, 11, np.uint8))
    result = _decode(raw, out, tmp_path)
    assert result.returncode == 1 and "labels outside 0-9" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
