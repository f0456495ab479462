"""``python -m mnist_repro remote <action>``: train on Azure ML and manage its runs.

Every action first checks the workspace config (config.json or .azureml/config.json), then
(except dry runs) the credential, before any other work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mnist_repro.azure import config
from mnist_repro.errors import MnistReproError

ACTIONS = {
    "check": "check the workspace config and the credential, nothing else",
    "submit": "train on Azure ML (the train stage's command), download the model, register it",
    "sweep": "sweep regularization (grid, in parallel), register the best model",
    "status": "print a job's status and URL; follow its log while it runs",
    "cancel": "cancel a job",
    "metrics": "print a job's run metrics (the tutorial's run.get_metrics())",
    "delete-compute": "delete the compute cluster (the tutorial's compute_target.delete())",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    for action, help_text in ACTIONS.items():
        p = sub.add_parser(action, help=help_text, description=help_text)
        if action in ("submit", "sweep"):
            p.add_argument(
                "--dry-run",
                action="store_true",
                help="write the YAML specs into the build folder and submit nothing",
            )
        if action == "submit":
            p.add_argument(
                "--no-wait", action="store_true", help="submit and return without following"
            )
        if action in ("status", "cancel", "metrics"):
            p.add_argument("job", help="the job's name (shown when it was submitted)")


def client(cfg: config.WorkspaceConfig) -> Any:
    """Credential check, then an MLClient (tests replace this with a stand-in)."""
    return config.connect(cfg, config.check_credential())


def dry_run(params: Path, sweep: bool) -> int:
    from mnist_repro.azure.plan import make_plan, write_specs

    plan = make_plan(".", params, sweep=sweep, need_data=False)
    paths = write_specs(plan, plan.build_dir)
    print("dry run: nothing submitted. Specs (also valid for `az ml <kind> create -f`):")
    paths = [Path(os.path.relpath(p)) for p in paths]
    for path in paths:
        print(f"  {path}")
    kinds = ["compute", "environment", "data", "job"]
    print("to submit them by hand, in this order:")
    for kind, path in zip(kinds, paths, strict=True):
        print(f"  az ml {kind} create -f {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    params = Path(args.params)
    cfg = config.find_config(".")
    if getattr(args, "dry_run", False):
        return dry_run(params, sweep=args.action == "sweep")
    if args.action == "check":
        config.check_credential()
        print(f"workspace {cfg.workspace_name} ({cfg.path}): config and credential OK")
        return 0
    if args.action in ("submit", "sweep", "metrics"):
        from mnist_repro.azure.results import check_mlflow

        check_mlflow()
    ml = client(cfg)
    job = getattr(args, "job", None)
    with service_errors(cfg, job):
        return act(ml, args.action, params, job, getattr(args, "no_wait", False))


@contextlib.contextmanager
def service_errors(cfg: config.WorkspaceConfig, job: str | None = None) -> Iterator[None]:
    """The service's errors as one line (the SDK's messages run to many)."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    try:
        yield
    except ResourceNotFoundError as exc:
        what = f"job {job}" if job else "resource"
        first = (str(exc.message or exc).strip().splitlines() or [""])[0]
        raise MnistReproError(
            f"{what} not found in workspace {cfg.workspace_name}: {first}"
        ) from None
    except HttpResponseError as exc:
        first = (str(exc.message or exc).strip().splitlines() or [""])[0]
        raise MnistReproError(f"Azure ML ({cfg.workspace_name}): {first}") from None


def act(ml: Any, action: str, params: Path, job: str | None = None, no_wait: bool = False) -> int:
    from mnist_repro.azure import remote, resources
    from mnist_repro.azure.plan import make_plan
    from mnist_repro.azure.settings import load_settings

    if action == "submit":
        remote.train(ml, make_plan(".", params), wait=not no_wait)
    elif action == "sweep":
        remote.sweep(ml, make_plan(".", params, sweep=True))
    else:
        settings = load_settings(params)
        if action == "status":
            remote.status(ml, job, settings.log_tail_lines, settings.build_dir / "downloads")
        elif action == "cancel":
            remote.cancel(ml, job)
        elif action == "metrics":
            remote.metrics(ml, job)
        elif action == "delete-compute":
            name = settings.compute.name
            if resources.delete_compute(ml, name):
                print(f"compute: deleted cluster {name}")
            else:
                print(f"compute: no cluster {name} in the workspace, nothing to delete")
    return 0
