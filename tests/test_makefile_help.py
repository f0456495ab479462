"""`make help`: every target the Makefile declares is listed, with its help, under its section."""

from __future__ import annotations

import re

from helpers.repo import REPO_ROOT, run

SECTIONS = [
    "Setup",
    "Pipeline",
    "Quality",
    "Data sharing (storage)",
    "Benchmarks",
    "Azure ML",
    "Docker",
]


def phony_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return {name for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for name in line.split()}


def help_sections() -> dict[str, list[str]]:
    """Section title (up to a colon) -> the targets listed under it, in order."""
    out = run(["make", "--no-print-directory", "help"], cwd=REPO_ROOT).stdout
    sections: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line and not line.startswith(" "):
            current = line.split(":")[0]
            sections[current] = []
        elif line.strip():
            target, _, text = line.strip().partition(" ")
            assert current is not None and text.strip(), line
            sections[current].append(target)
    return sections


def test_help_lists_every_target_once_under_the_sections_in_order() -> None:
    sections = help_sections()
    assert list(sections) == SECTIONS
    listed = [target for targets in sections.values() for target in targets]
    assert sorted(listed) == sorted(phony_targets())
    assert "\033" not in run(["make", "help"], cwd=REPO_ROOT).stdout  # no colours in a pipe


def test_targets_sit_in_their_sections() -> None:
    sections = help_sections()
    assert {"repro", "sweep"} <= set(sections["Pipeline"])
    assert {"push", "pull", "test-storage"} <= set(sections["Data sharing (storage)"])
    assert {"bench", "bench-decode", "bench-storage"} <= set(sections["Benchmarks"])
    assert {"docker-build", "train-local", "test-docker"} <= set(sections["Docker"])
    assert "train-remote" in sections["Azure ML"]
