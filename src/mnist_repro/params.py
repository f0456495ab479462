"""Read a stage's inputs: its params.yaml section and JSON files earlier stages wrote.

Each stage validates its own section at the boundary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from mnist_repro.errors import MnistReproError

DEFAULT_PARAMS = Path("params.yaml")


def load_section(section: str, path: str | os.PathLike[str] = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return ``params.yaml[section]`` as a dict, with a one-line error if it is missing."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise MnistReproError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise MnistReproError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict) or not isinstance(data.get(section), dict):
        raise MnistReproError(f"{path}: no '{section}' section")
    return data[section]


def read_json(path: str | os.PathLike[str], made_by: str) -> dict[str, Any]:
    """A JSON file the ``made_by`` stage wrote, with a one-line error if absent or broken."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MnistReproError(f"{path}: not found (run the {made_by} stage first)") from None
    except json.JSONDecodeError as exc:
        raise MnistReproError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
