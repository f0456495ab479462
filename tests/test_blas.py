"""The BLAS kernel is part of the recipe (issue 9).

The end-to-end test plays two machines on one: each run gets another OpenBLAS kernel from the
environment (``OPENBLAS_CORETYPE``, as a host whose OpenBLAS picked that kernel would run), and
runs the real entry point, ``python -m mnist_repro train`` then ``evaluate``. With the recipe's
pin, every output is byte-identical across the hosts; with ``native`` (the control), the model
differs, so the comparison can fail.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.dataset import write_fake_mnist
from helpers.params import write_params
from helpers.repo import pinned_kernel_runs_here, stage_env
from mnist_repro import blas, cli
from mnist_repro.decode import load_raw, save_npz
from mnist_repro.errors import MnistReproError

HASWELL_FLAGS = frozenset({"sse4_2", "avx", "avx2", "fma"})


# --- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kernel"), [("haswell", "haswell"), ("Haswell", "haswell"), ("NATIVE", "native")]
)
def test_known_kernels_are_accepted_in_any_case(tmp_path, value, kernel):
    params = write_params(tmp_path / "params.yaml", {"blas.kernel": value})
    assert blas.kernel_setting(params) == kernel


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"kernel": "zen9"}, "blas.kernel must be one of"),
        ({"kernel": 3}, "blas.kernel must be one of"),
        ({"kernel": "haswell", "threads": 1}, "blas.threads: unknown key"),
        ("haswell", "blas must be a mapping"),
        ({}, "blas.kernel: missing"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, section, problem):
    params = write_params(tmp_path / "params.yaml", {"blas": section})
    with pytest.raises(MnistReproError, match=problem):
        blas.kernel_setting(params)


def test_the_repository_pins_the_kernel_that_made_the_committed_results():
    assert blas.kernel_setting(Path(__file__).parents[1] / "params.yaml") == "haswell"


def test_a_bad_kernel_stops_the_stage_before_anything_runs(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml", {"blas.kernel": "pentium"})
    assert cli.main(["train", "--params", str(params), "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "blas.kernel" in err[0]


# --- applying it ---------------------------------------------------------------------------------


def test_the_recipe_wins_over_the_hosts_environment():
    env = {"OPENBLAS_CORETYPE": "SkylakeX"}
    notice = blas.apply("haswell", env, HASWELL_FLAGS, "x86_64", loaded=False)
    assert env == {"OPENBLAS_CORETYPE": "Haswell"}
    assert notice and "OPENBLAS_CORETYPE=SkylakeX" in notice and "overridden" in notice
    env = {}
    assert blas.apply("haswell", env, HASWELL_FLAGS, "x86_64", loaded=False) is None
    assert env == {"OPENBLAS_CORETYPE": "Haswell"}


def test_native_leaves_the_choice_to_the_host():
    env = {"OPENBLAS_CORETYPE": "Sandybridge"}
    assert blas.apply("native", env, HASWELL_FLAGS, "x86_64", loaded=False) is None
    assert env == {"OPENBLAS_CORETYPE": "Sandybridge"}


@pytest.mark.parametrize(
    ("flags", "machine", "why"),
    [
        (frozenset({"sse4_2", "avx"}), "x86_64", "the CPU lacks avx2, fma"),
        (frozenset(), "aarch64", "this CPU (aarch64) is not x86-64"),
    ],
)
def test_a_cpu_that_cannot_run_the_kernel_runs_natively_with_a_notice(flags, machine, why):
    env = {}
    notice = blas.apply("haswell", env, flags, machine, loaded=False)
    assert env == {}  # never forced: it would die of an illegal instruction
    assert notice is not None and "\n" not in notice
    assert why in notice and "picks its own kernel" in notice


def test_too_late_once_numpy_is_loaded():
    env = {}
    assert blas.apply("haswell", env, HASWELL_FLAGS, "x86_64", loaded=True) is None
    assert env == {}


def test_cpu_facts_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    flags = "fpu sse sse2 ssse3 cx16 sse4_1 sse4_2 popcnt lahf_lm avx avx2 fma bmi1 bmi2 f16c"
    cpuinfo.write_text(
        f"processor\t: 0\nmodel name\t: Some  CPU @ 2.0GHz\nflags\t\t: {flags} abm movbe\n\n"
    )
    assert blas.cpu_model(cpuinfo) == "Some CPU @ 2.0GHz"
    assert {"avx2", "fma"} <= blas.cpu_flags(cpuinfo)
    assert blas.isa_level(blas.cpu_flags(cpuinfo), "x86_64") == "x86-64-v3"
    assert blas.isa_level(blas.cpu_flags(cpuinfo) | blas.ISA_LEVELS[2][1], "x86_64") == "x86-64-v4"
    assert blas.isa_level(frozenset({"sse2"}), "x86_64") == "x86-64"
    assert blas.isa_level(frozenset(), "aarch64") == "aarch64"
    assert blas.cpu_flags(tmp_path / "none") == frozenset()


# --- two machines on one -------------------------------------------------------------------------


def _host_kernels() -> list[str]:
    """Two kernels other than the pinned one that this CPU runs: two 'other machines'."""
    if not pinned_kernel_runs_here():
        pytest.skip("this CPU cannot run the kernel params.yaml pins")
    flags, machine = blas.cpu_flags(), platform.machine()
    hosts = [
        blas.KERNELS[k][0]
        for k in ("skylakex", "sandybridge", "nehalem")
        if not blas.unsupported(k, flags, machine)
    ]
    return hosts[:2]


def _run(stages: list[list[str]], host: str) -> None:
    """Run stages one after the other in a fresh interpreter whose host kernel is ``host``.

    Like ``python -m mnist_repro <stage>`` (the same cli.main); the first call pins the kernel
    before NumPy loads, as in a stage of its own. One interpreter per run keeps the test short.
    """
    code = "import sys\nfrom mnist_repro.cli import main\n" + "".join(
        f"if main({argv!r}) != 0:\n    sys.exit(1)\n" for argv in stages
    )
    env = stage_env({"OPENBLAS_CORETYPE": host})
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _outputs(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_pinned_kernel_gives_identical_bytes_on_two_hosts_and_native_does_not(tmp_path):
    hosts = _host_kernels()
    raw = tmp_path / "raw"
    write_fake_mnist(raw, n_train=300, n_test=100, seed=5)
    save_npz(tmp_path / "mnist.npz", load_raw(raw))
    params = {
        mode: write_params(tmp_path / f"{mode}.yaml", {"blas.kernel": mode})
        for mode in ("haswell", "native")
    }

    def pipeline(mode: str, host: str) -> Path:
        out = tmp_path / f"{mode}-{host}"
        p = ["--params", str(params[mode])]
        stages = [["train", *p, "--data", str(raw), "--out", str(out / "models")]]
        if mode != "native":  # the control needs the model only
            model = ["--model", str(out / "models")]
            npz = ["--data", str(tmp_path / "mnist.npz")]
            stages.append(["evaluate", *p, *npz, *model, "--out", str(out / "reports")])
        _run(stages, host)
        (out / "models/train.timings.json").unlink()  # the run record: times, host
        return out

    runs = [(mode, host) for mode in ("haswell", "native") for host in hosts]
    with ThreadPoolExecutor(max_workers=2) as pool:
        out = dict(zip(runs, pool.map(lambda run: pipeline(*run), runs), strict=True))

    # Pinned: each host's OpenBLAS (NumPy's and SciPy's) ran Haswell, and every byte agrees.
    a, b = (_outputs(out["haswell", host]) for host in hosts)
    assert len(a) == 7 and a.keys() == b.keys()  # model, metadata, metrics, plot data, 3 PNGs
    assert [name for name in a if a[name] != b[name]] == []
    meta = json.loads(a["models/model.json"])
    assert meta["blas"] == {
        "kernel": "haswell",
        "openblas": {"numpy": "Haswell", "scipy": "Haswell"},
    }

    # Control: native, each host ran its own kernel, and the models differ.
    for host in hosts:
        meta = json.loads((out["native", host] / "models/model.json").read_text())
        assert meta["blas"]["openblas"] == {"numpy": host, "scipy": host}
    a, b = ((out["native", host] / "models/model.skops").read_bytes() for host in hosts)
    assert a != b
