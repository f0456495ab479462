"""Which Azure RBAC actions the signed-in user lacks on the workspace, and the role to ask for.

Pure: :func:`missing_actions` reads the body of Azure Resource Manager's
``GET {scope}/providers/Microsoft.Authorization/permissions`` (one entry per role assignment
that applies at the scope, inherited ones included); :func:`explain` turns what is missing
into one phrase per action naming a built-in role. ``service.fetch_permissions`` makes the call.

Matching follows Azure RBAC: case-insensitive; ``*`` matches any run of characters, ``/``
included; a ``notActions`` entry subtracts only within its own entry (it is not a deny: another
role assignment can still grant the action). One rule is inferred, not documented: ``/*/`` also
matches a single ``/``, so the "AzureML Data Scientist" role's notAction
``workspaces/computes/*/write`` covers ``workspaces/computes/write``; the docs say that role
cannot create compute, and ``computes/write`` is the create action. Deny assignments and ABAC
conditions are not considered, so the check is advisory: a 403 can still happen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

ML = "Microsoft.MachineLearningServices/workspaces"
COMPUTE_WRITE = f"{ML}/computes/write"
REQUIRED = {  # action -> what make train-remote does with it
    f"{ML}/read": "read the workspace",
    f"{ML}/computes/read": "read the compute cluster",
    COMPUTE_WRITE: "create the compute cluster",
    f"{ML}/jobs/write": "submit jobs",
    f"{ML}/environments/write": "register the environment built from docker/",
    f"{ML}/data/write": "register the data asset",
    f"{ML}/models/write": "register the model",
}
ROLE_HINT = {
    COMPUTE_WRITE: (
        'AzureML Compute Operator (or Contributor): "AzureML Data Scientist" excludes it; '
        "or ask an admin to create the cluster"
    ),
    f"{ML}/computes/read": "AzureML Data Scientist, AzureML Compute Operator or Reader",
    f"{ML}/read": "AzureML Data Scientist or Reader",
}
DEFAULT_HINT = "AzureML Data Scientist (or Contributor)"


@cache
def _pattern(action: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(action):
        if action.startswith("/*/", i):
            out.append("(?:/.*/|/)")
            i += 3
        elif action[i] == "*":
            out.append(".*")
            i += 1
        else:
            out.append(re.escape(action[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


def _matches(action: str, patterns: Iterable[str]) -> bool:
    return any(_pattern(p).match(action) for p in patterns)


def allowed(action: str, entries: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any entry grants ``action`` without excluding it in its own notActions."""
    return any(
        _matches(action, e.get("actions") or ()) and not _matches(action, e.get("notActions") or ())
        for e in entries
    )


def missing_actions(
    permissions: Mapping[str, Any], required: Iterable[str] = tuple(REQUIRED)
) -> list[str]:
    entries = permissions.get("value") or []
    return [action for action in required if not allowed(action, entries)]


def explain(missing: Iterable[str]) -> list[str]:
    """``<action> (<what it is for>): ask for <role>`` for each missing action."""
    return [
        f"{action.removeprefix('Microsoft.MachineLearningServices/')} "
        f"({REQUIRED.get(action, action)}): "
        f"ask for {ROLE_HINT.get(action, DEFAULT_HINT)}"
        for action in missing
    ]
