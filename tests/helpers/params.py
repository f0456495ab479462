"""The one params writer: the repository's params.yaml with dotted keys overridden."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from helpers.repo import REPO_ROOT


def write_params(path: str | os.PathLike[str], updates: Mapping[str, Any] | None = None) -> Path:
    """Set dotted keys (``{"train.regularization": 0.8}``) in the params file ``path``.

    ``path`` starts as a copy of the repository's params.yaml if it does not exist yet, so
    every section holds every key (defaults live only in params.yaml). Returns ``path``.
    """
    path = Path(path)
    source = path if path.exists() else REPO_ROOT / "params.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    for dotted, value in (updates or {}).items():
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
