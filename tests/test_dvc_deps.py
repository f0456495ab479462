"""dvc.yaml deps are complete: each stage depends on every package module its command imports.

A module missing from a stage's deps lets a code change leave ``dvc repro`` saying "up to date"
over outputs that no longer match the code. The imports are read from the code itself (every
``import``, also those inside functions), starting from what ``python -m mnist_repro <stage>``
runs: the package, ``__main__``, the CLI and the stage's module (cli.STAGES, local backend).
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

from helpers.repo import REPO_ROOT
from mnist_repro import cli

SRC = REPO_ROOT / "src"
PACKAGE = "mnist_repro"
DVC_YAML = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def module_file(name: str) -> Path | None:
    """The source file of package module ``name`` (``a.b`` -> a/b.py or a/b/__init__.py)."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(name: str) -> set[str]:
    """Package modules that module ``name`` imports anywhere in its body."""
    path = module_file(name)
    assert path is not None, name
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            # `from pkg import mod` imports pkg and, if mod is a module, pkg.mod too.
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for candidate in candidates:
            if candidate.split(".")[0] == PACKAGE and module_file(candidate):
                found.add(candidate)
    return found


def closure(roots: set[str]) -> set[str]:
    """``roots`` and every package module they import, transitively, with parent packages."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b runs a
        todo += sorted(imported_modules(name))
    return seen


def stage_modules(stage: str) -> set[str]:
    """What ``python -m mnist_repro <subcommand>`` imports for a stage of dvc.yaml."""
    argv = shlex.split(DVC_YAML[stage]["cmd"])
    assert argv[:3] == ["python", "-m", PACKAGE], DVC_YAML[stage]["cmd"]
    module = cli.STAGES[argv[3]][0]
    return closure({f"{PACKAGE}.__main__", f"{PACKAGE}.cli", module})


def covered(path: str, deps: list[str]) -> bool:
    """Whether a file is one of ``deps`` or lies in a folder among them."""
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", sorted(DVC_YAML))
def test_stage_depends_on_every_module_its_command_imports(stage):
    deps = [str(dep) for dep in DVC_YAML[stage].get("deps", [])]
    needed = sorted(
        module_file(name).relative_to(REPO_ROOT).as_posix() for name in stage_modules(stage)
    )
    missing = [path for path in needed if not covered(path, deps)]
    assert not missing, f"dvc.yaml stage '{stage}' lacks deps: {missing}"
    for dep in deps:
        assert (REPO_ROOT / dep).exists() or not dep.startswith("src/"), dep


def test_the_import_reader_sees_lazy_and_from_imports():
    # train imports decode inside run() and provenance inside metadata(): both must count.
    train = imported_modules("mnist_repro.train")
    assert {"mnist_repro.decode", "mnist_repro.provenance", "mnist_repro.atomic"} <= train
    assert "mnist_repro.errors" in closure({"mnist_repro.cli"})
    # The CLI loads stage modules by name (importlib), not by import statements.
    assert "mnist_repro.train" not in closure({"mnist_repro.cli"})


def test_a_stage_missing_a_module_is_caught(monkeypatch):
    deps = [d for d in DVC_YAML["train"]["deps"] if d != "src/mnist_repro/atomic.py"]
    monkeypatch.setitem(DVC_YAML, "train", {**DVC_YAML["train"], "deps": deps})
    with pytest.raises(AssertionError, match=r"atomic\.py"):
        test_stage_depends_on_every_module_its_command_imports("train")


def test_committed_dvc_lock_matches_the_code_and_params():
    """The committed results were made by this code: every src/ dep and params section that
    dvc.lock records matches the checkout (else a fresh clone's `make repro` reruns stages and
    leaves dvc.lock modified). A code change needs `make repro` and a recommit of dvc.lock."""
    import hashlib

    lock = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    stale = []
    for stage, entry in lock.items():
        for dep in entry.get("deps", []):
            path = REPO_ROOT / dep["path"]
            code = dep["path"].startswith("src/")
            if code and hashlib.md5(path.read_bytes()).hexdigest() != dep["md5"]:
                stale.append(f"{stage}: {dep['path']}")
        for section, values in entry.get("params", {}).get("params.yaml", {}).items():
            if params.get(section) != values:
                stale.append(f"{stage}: params {section}")
    assert not stale, f"dvc.lock is older than the code (run make repro, commit): {stale}"
