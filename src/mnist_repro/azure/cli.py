"""``python -m mnist_repro azure <action>``: train on Azure ML and manage its runs.

Every action first checks the workspace config (config.json or .azureml/config.json), then
(except dry runs) the credential, before any other work. Actions are dispatched through
:data:`ACTIONS`, a table like the top-level ``STAGES``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from mnist_repro import log
from mnist_repro.azure import service, workspace
from mnist_repro.azure.entities import (
    HOW_TO_PIN,
    base_image,
    base_is_pinned,
    make_plan,
    write_specs,
)
from mnist_repro.azure.workspace import WorkspaceConfig

SPEC_KINDS = ("compute", "environment", "data", "job")  # the order `az ml` must create them in

Argument = tuple[tuple[str, ...], dict[str, Any]]
DRY_RUN: Argument = (
    ("--dry-run",),
    {"action": "store_true", "help": "write the YAML specs into the build folder, submit nothing"},
)
NO_WAIT: Argument = (
    ("--no-wait",),
    {"action": "store_true", "help": "submit and return without following"},
)
JOB: Argument = (("job",), {"help": "the job's name (shown when it was submitted)"})


class Action(NamedTuple):
    help: str
    run: Callable[[argparse.Namespace, WorkspaceConfig], None]
    arguments: tuple[Argument, ...] = ()


def connect(cfg: WorkspaceConfig, mlflow: bool = False) -> Any:
    """The MLClient, after the MLflow check when the action reads run metrics."""
    if mlflow:
        service.check_mlflow()
    return service.client(cfg)


def dry_run(params: Path, sweep: bool = False, smoke: bool = False) -> None:
    """Write the specs; list them and the `az ml` commands that would create them."""
    plan = make_plan(".", params, sweep=sweep, smoke=smoke, need_data=False)
    if not base_is_pinned(plan.docker_dir):
        log.get("azure").warning(
            "%s: ARG BASE=%s is not pinned by digest: a real submission is refused until it is; %s",
            plan.docker_dir / "Dockerfile",
            base_image(plan.docker_dir),
            HOW_TO_PIN,
        )
    paths = [Path(os.path.relpath(p)) for p in write_specs(plan, plan.build_dir)]
    log.result("dry run: nothing submitted. Specs (also valid for `az ml <kind> create -f`):")
    for path in paths:
        log.result(f"  {path}")
    log.result("to submit them by hand, in this order:")
    for kind, path in zip(SPEC_KINDS, paths, strict=True):
        log.result(f"  az ml {kind} create -f {path}")


def check(args: argparse.Namespace, cfg: WorkspaceConfig) -> None:
    credential = service.check_credential()
    log.result(f"credential: signed in ({cfg.path} names workspace {cfg.workspace_name})")
    settings = workspace.load_settings(args.params)
    ml = service.client(cfg, credential)
    with service.service_errors(cfg):
        service.check(ml, cfg, credential, settings.compute.name)


def submit(args: argparse.Namespace, cfg: WorkspaceConfig) -> None:
    if args.dry_run:
        return dry_run(Path(args.params), sweep=False)
    ml = connect(cfg, mlflow=True)
    with service.service_errors(cfg):
        service.train(ml, make_plan(".", args.params), wait=not args.no_wait)


def smoke(args: argparse.Namespace, cfg: WorkspaceConfig) -> None:
    if args.dry_run:
        return dry_run(Path(args.params), smoke=True)
    ml = connect(cfg, mlflow=True)
    with service.service_errors(cfg):
        service.smoke(ml, make_plan(".", args.params, smoke=True))


def sweep(args: argparse.Namespace, cfg: WorkspaceConfig) -> None:
    if args.dry_run:
        return dry_run(Path(args.params), sweep=True)
    ml = connect(cfg, mlflow=True)
    with service.service_errors(cfg):
        service.sweep(ml, make_plan(".", args.params, sweep=True))


def status(args: argparse.Namespace, cfg: WorkspaceConfig) -> None:
    ml = connect(cfg)
    with service.service_errors(cfg, args.job):
        settings = workspace.load_settings(args.params)
        service.status(ml, args.job, settings.log_tail_lines, settings.build_dir)


def cancel(args: argparse.Namespace, cfg: WorkspaceConfig) -> None:
    ml = connect(cfg)
    with service.service_errors(cfg, args.job):
        service.cancel(ml, args.job)


def metrics(args: argparse.Namespace, cfg: WorkspaceConfig) -> None:
    ml = connect(cfg, mlflow=True)
    with service.service_errors(cfg, args.job):
        service.metrics(ml, args.job)


def delete_compute(args: argparse.Namespace, cfg: WorkspaceConfig) -> None:
    ml = connect(cfg)
    with service.service_errors(cfg):
        name = workspace.load_settings(args.params).compute.name
        if service.delete_compute(ml, name):
            log.result(f"compute: deleted cluster {name}")
        else:
            log.result(f"compute: no cluster {name} in the workspace, nothing to delete")


ACTIONS: dict[str, Action] = {
    "check": Action(
        "check config, sign-in, workspace access, compute, your permissions (naming the role "
        "to ask for) and the container registry; creates nothing",
        check,
    ),
    "submit": Action(
        "train on Azure ML (the train stage's command), download the model, register it",
        submit,
        (DRY_RUN, NO_WAIT),
    ),
    "smoke": Action(
        "the train job's image and command on tiny synthetic data: does this workspace work?",
        smoke,
        (DRY_RUN,),
    ),
    "sweep": Action(
        "sweep regularization (grid, in parallel), register the best model", sweep, (DRY_RUN,)
    ),
    "status": Action("print a job's status and URL; follow its log while it runs", status, (JOB,)),
    "cancel": Action("cancel a job", cancel, (JOB,)),
    "metrics": Action(
        "print a job's run metrics (the tutorial's run.get_metrics())", metrics, (JOB,)
    ),
    "delete-compute": Action(
        "delete the compute cluster (the tutorial's compute_target.delete())", delete_compute
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    for name, action in ACTIONS.items():
        action_parser = sub.add_parser(name, help=action.help, description=action.help)
        for flags, options in action.arguments:
            action_parser.add_argument(*flags, **options)


def run(args: argparse.Namespace) -> int:
    cfg = workspace.find_config(".")
    ACTIONS[args.action].run(args, cfg)
    return 0
