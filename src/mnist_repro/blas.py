"""The BLAS kernel is part of the recipe: pin OpenBLAS's kernel before NumPy and SciPy load it.

NumPy and SciPy each bundle an OpenBLAS that picks a kernel for the CPU it finds when it is
loaded, reading ``OPENBLAS_CORETYPE`` first. Different kernels sum in different orders, so the
same fit gives different bits (docs/reproducibility.md). ``params.yaml: blas.kernel`` names the
kernel; :func:`apply` sets ``OPENBLAS_CORETYPE`` to it, over whatever the host's environment
says, before anything imports NumPy. The CLI calls it first thing for :data:`COMMANDS`, so the
venv, the Docker image and the Azure ML job (all ``python -m mnist_repro ...``) get the same
kernel. ``native`` leaves the choice to the host (its own kernel, or its ``OPENBLAS_CORETYPE``).

A CPU that cannot run the pinned kernel (no AVX2 for ``haswell``, or not x86-64) gets a
one-line notice and OpenBLAS's own choice: forcing it would crash with an illegal instruction.

This module must not import NumPy or SciPy at import time (it runs before them).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from mnist_repro import log, params
from mnist_repro.params import Pattern

SECTION = "blas"
ENV = "OPENBLAS_CORETYPE"
NATIVE = "native"
# Commands whose results depend on floating point, and `verify`, which reports the kernel.
COMMANDS = ("train", "evaluate", "sweep", "verify")

# x86-64 kernels this recipe can pin: OpenBLAS's name, and the /proc/cpuinfo flags it needs.
KERNELS: dict[str, tuple[str, frozenset[str]]] = {
    "nehalem": ("Nehalem", frozenset({"ssse3", "sse4_1", "sse4_2"})),
    "sandybridge": ("Sandybridge", frozenset({"avx"})),
    "haswell": ("Haswell", frozenset({"avx", "avx2", "fma"})),
    "skylakex": (
        "SkylakeX",
        frozenset({"avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}),
    ),
}
# OpenBLAS reads its kernel names in any case: so does the recipe.
SPEC = {
    "kernel": [
        Pattern(f"(?i){'|'.join([*KERNELS, NATIVE])}", f"one of {', '.join([*KERNELS, NATIVE])}")
    ]
}
X86_64 = ("x86_64", "amd64")
# The x86-64 micro-architecture levels (what NumPy's dispatch keys on), lowest first.
ISA_LEVELS = (
    ("x86-64-v2", frozenset({"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"})),
    ("x86-64-v3", frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe"})),
    ("x86-64-v4", frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})),
)


def kernel_setting(path: str | os.PathLike[str] = params.PARAMS) -> str:
    """``blas.kernel`` from the params file, checked (params.yaml and yaml only: NumPy must
    not load yet)."""
    return params.load(SECTION, SPEC, path)["kernel"].lower()


def cpu_flags(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_model(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """The CPU's model name (``platform.processor()`` where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return " ".join(value.split())
    return platform.processor() or "unknown"


def isa_level(flags: frozenset[str], machine: str | None = None) -> str:
    """The highest x86-64 level the flags cover (``x86-64`` at least), or the machine name."""
    machine = (machine or platform.machine()).lower()
    if machine not in X86_64:
        return machine or "unknown"
    level = "x86-64"
    for name, needs in ISA_LEVELS:
        if not needs <= flags:
            break
        level = name
    return level


def unsupported(kernel: str, flags: frozenset[str], machine: str) -> str | None:
    """Why this CPU cannot run ``kernel``, or None if it can."""
    if machine.lower() not in X86_64:
        return f"this CPU ({machine or 'unknown'}) is not x86-64"
    missing = sorted(KERNELS[kernel][1] - flags)
    if missing:
        return f"the CPU lacks {', '.join(missing)}"
    return None


def apply(
    kernel: str,
    environ: MutableMapping[str, str] | None = None,
    flags: frozenset[str] | None = None,
    machine: str | None = None,
    loaded: bool | None = None,
) -> str | None:
    """Set ``OPENBLAS_CORETYPE`` for ``kernel``; return a one-line notice, or None if all is as
    asked. Must run before NumPy or SciPy is imported: once they are, it changes nothing.

    The arguments after ``kernel`` default to this process and this CPU (tests pass others).
    """
    environ = os.environ if environ is None else environ
    if loaded is None:
        loaded = any(name in sys.modules for name in ("numpy", "scipy"))
    if kernel == NATIVE or loaded:
        # Loaded: too late to choose (an in-process caller such as a test); model.json still
        # records the kernels that ran (record()).
        return None
    name = KERNELS[kernel][0]
    why = unsupported(
        kernel, cpu_flags() if flags is None else flags, machine or platform.machine()
    )
    if why:
        return (
            f"blas: {why}, so OpenBLAS picks its own kernel instead of the pinned '{kernel}' "
            "(results may differ from the committed ones)"
        )
    host = environ.get(ENV)
    environ[ENV] = name
    if host and host.lower() != kernel:
        return f"blas: {ENV}={host} from the environment overridden by the recipe's '{kernel}'"
    return None


def apply_from_params(path: str | os.PathLike[str] = params.PARAMS) -> str:
    """:func:`apply` the params file's kernel; log its notice; return the kernel."""
    kernel = kernel_setting(path)
    notice = apply(kernel)
    if notice:
        log.get(SECTION).warning(notice.removeprefix(f"{SECTION}: "))
    return kernel


def _library(filepath: str) -> str:
    """``numpy`` or ``scipy`` for the OpenBLAS a wheel bundles (``numpy.libs/...``)."""
    path = Path(filepath)
    parent = path.parent.name
    return parent.removesuffix(".libs") if parent.endswith(".libs") else path.name


def loaded_kernels() -> dict[str, str]:
    """``{library: kernel}`` of every OpenBLAS loaded, after loading NumPy's and SciPy's."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    return {
        _library(info["filepath"]): str(info.get("architecture"))
        for info in threadpool_info()
        if info.get("internal_api") == "openblas"
    }


def record(kernel: str) -> dict[str, Any]:
    """What model.json says about BLAS: the recipe's kernel and what each OpenBLAS runs."""
    return {"kernel": kernel, "openblas": dict(sorted(loaded_kernels().items()))}


def zlib_version() -> str:
    """The zlib that Pillow compresses PNGs with: the system's libz, not one the lock pins."""
    try:
        from PIL import features
    except ImportError:
        return "unknown (no Pillow)"
    return str(features.version("zlib") or "unknown")


def host(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> dict[str, str]:
    """This machine, for run records: CPU model, architecture, x86-64 level, and the system
    zlib that the figures' PNG bytes depend on (docs/reproducibility.md)."""
    machine = platform.machine()
    return {
        "cpu": cpu_model(cpuinfo),
        "machine": machine,
        "isa": isa_level(cpu_flags(cpuinfo), machine),
        "zlib": zlib_version(),
    }


def describe(blas: Mapping[str, Any]) -> str:
    """One line for reports: ``haswell (OpenBLAS: numpy Haswell, scipy Haswell)``."""
    libs = ", ".join(f"{lib} {arch}" for lib, arch in sorted(blas.get("openblas", {}).items()))
    return f"{blas.get('kernel', 'unknown')} (OpenBLAS: {libs or 'none loaded'})"
