"""The job side: the train stage's Azure ML backend, and what a sweep trial runs first.

``MNIST_TRAIN_BACKEND=azureml python -m mnist_repro train ...`` (``make train-remote``) runs
:func:`run`: same arguments as the local stage; the data folder becomes the data asset, the
job runs the local command, and the model comes back to ``--out``, so DVC records it like a
local run. With ``MNIST_AZURE_JOB=<name>`` (``make remote-fetch``) nothing is submitted: the
model of that finished job comes back instead, recorded the same way.

``python -m mnist_repro.azure.job set-param SOURCE DEST KEY=VALUE`` runs inside a sweep
trial: it copies params file SOURCE to DEST with KEY replaced; the trial then runs the local
train command with ``--params DEST``, so the model records the value it was trained with.
DEST is outside the job's code folder (which the container user may not be allowed to write).
This module needs only PyYAML at import: it runs in the job's image, without the Azure SDK.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from mnist_repro import log
from mnist_repro.atomic import write_text
from mnist_repro.errors import MnistReproError

logger = log.get("azure")
SET_PARAM_USAGE = "usage: python -m mnist_repro.azure.job set-param SOURCE DEST KEY=VALUE"
ENV_JOB = "MNIST_AZURE_JOB"  # make remote-fetch: fetch this job's model instead of training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mnist_repro import train

    train.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """The train stage, on Azure ML: submit, follow, download into ``--out``, register."""
    from mnist_repro.azure import service, workspace
    from mnist_repro.azure.entities import make_plan

    cfg = workspace.find_config(".")
    service.check_mlflow()
    ml = service.client(cfg)
    plan = make_plan(".", args.params)
    for flag, given, expected in (
        ("--data", args.data, plan.data_dir),
        ("--out", args.out, plan.out_dir),
    ):
        if Path(given).resolve() != expected.resolve():
            raise MnistReproError(
                f"train {flag} {given}: the Azure ML backend runs dvc.yaml's train command, "
                f"which uses {expected}"
            )
    job = os.environ.get(ENV_JOB, "").strip()
    with service.service_errors(cfg, job or None):
        if job:
            service.fetch(ml, plan, job)
        else:
            service.train(ml, plan)
    return 0


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
    if len(args) != 4 or args[0] != "set-param" or "=" not in args[3]:
        logger.error(SET_PARAM_USAGE)
        return 2
    source, dest, assignment = args[1:]
    key, value = assignment.split("=", 1)
    try:
        set_param(Path(source), Path(dest), key, value)
    except MnistReproError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("%s: %s = %s", dest, key, value)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
