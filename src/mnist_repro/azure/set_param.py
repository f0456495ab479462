"""Set one params.yaml value inside a sweep trial: ``python -m mnist_repro.azure.set_param k=v``.

A sweep trial runs the local train command unchanged after this rewrites the trial's own copy
of params.yaml (the job's code folder), so the model records the value it was trained with.
Needs only PyYAML: it runs in the job's image, where the Azure SDK is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from mnist_repro.atomic import write_text
from mnist_repro.errors import MnistReproError


def set_param(params_path: Path, key: str, raw_value: str) -> None:
    """Replace the existing value at dotted ``key`` with ``raw_value`` parsed as YAML."""
    data = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        raise MnistReproError(f"{params_path}: no key {key} to override")
    node[leaf] = yaml.safe_load(raw_value)
    write_text(params_path, yaml.safe_dump(data, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or "=" not in args[0]:
        print("usage: python -m mnist_repro.azure.set_param KEY=VALUE", file=sys.stderr)
        return 2
    key, value = args[0].split("=", 1)
    try:
        set_param(Path("params.yaml"), key, value)
    except MnistReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"params.yaml: {key} = {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
