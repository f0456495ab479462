"""The train stage on Azure ML: what ``python -m mnist_repro train`` runs when
``MNIST_TRAIN_BACKEND=azureml`` (``make train-remote``).

Same arguments as the local stage; the data folder becomes the data asset, the job runs the
local command, and the model comes back to ``--out``, so DVC records it like a local run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_repro.azure import cli as remote_cli
from mnist_repro.azure import config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mnist_repro import train

    train.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mnist_repro.azure import remote
    from mnist_repro.azure.plan import make_plan
    from mnist_repro.azure.results import check_mlflow
    from mnist_repro.errors import MnistReproError

    cfg = config.find_config(".")
    check_mlflow()
    ml = remote_cli.client(cfg)
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
    with remote_cli.service_errors(cfg):
        remote.train(ml, plan)
    return 0
