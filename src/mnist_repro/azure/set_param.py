"""Set one params value for a sweep trial.

``python -m mnist_repro.azure.set_param SOURCE DEST KEY=VALUE`` copies params file SOURCE to
DEST with KEY replaced; the trial then runs the local train command with ``--params DEST``,
so the model records the value it was trained with. DEST is outside the job's code folder
(which the container user may not be allowed to write). Needs only PyYAML: it runs in the
job's image, where the Azure SDK is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from mnist_repro.atomic import write_text
from mnist_repro.errors import MnistReproError


def set_param(source: Path, dest: Path, key: str, raw_value: str) -> None:
    """Write ``source`` to ``dest`` with the existing value at dotted ``key`` replaced."""
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MnistReproError(f"{source}: cannot read params ({exc})") from None
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        raise MnistReproError(f"{source}: no key {key} to override")
    node[leaf] = yaml.safe_load(raw_value)
    write_text(dest, yaml.safe_dump(data, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or "=" not in args[2]:
        print("usage: python -m mnist_repro.azure.set_param SOURCE DEST KEY=VALUE", file=sys.stderr)
        return 2
    key, value = args[2].split("=", 1)
    try:
        set_param(Path(args[0]), Path(args[1]), key, value)
    except MnistReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args[1]}: {key} = {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
