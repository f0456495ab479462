"""Find the workspace's config.json and a credential, before any other work."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_repro.errors import MnistReproError

CONFIG_PLACES = (Path("config.json"), Path(".azureml") / "config.json")
REQUIRED_KEYS = ("subscription_id", "resource_group", "workspace_name")
ARM_SCOPE = "https://management.azure.com/.default"
HOW_TO_CONFIG = (
    "create config.json (or .azureml/config.json) in the repository root with "
    + ", ".join(REQUIRED_KEYS)
    + ": download it from your workspace's overview page in Azure ML studio, or copy "
    "config.example.json and fill it in (it is git-ignored)"
)
HOW_TO_LOGIN = (
    "no Azure credential found: run `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
    "AZURE_CLIENT_SECRET for a service principal, or run where a managed identity is available"
)


@dataclass(frozen=True)
class WorkspaceConfig:
    path: Path
    subscription_id: str
    resource_group: str
    workspace_name: str


def find_config(root: str | os.PathLike[str] = ".") -> WorkspaceConfig:
    """The first of ``config.json`` and ``.azureml/config.json`` under ``root``, validated."""
    root = Path(root)
    for place in CONFIG_PLACES:
        path = root / place
        if path.is_file():
            return read_config(path)
    raise MnistReproError(f"no Azure ML workspace config in {root.resolve()}: {HOW_TO_CONFIG}")


def read_config(path: Path) -> WorkspaceConfig:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MnistReproError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MnistReproError(f"{path}: expected a JSON object with {', '.join(REQUIRED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise MnistReproError(f"{path}: missing or empty {', '.join(missing)}")
    return WorkspaceConfig(path, *(data[k].strip() for k in REQUIRED_KEYS))


def default_credential() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def check_credential(factory: Callable[[], Any] = default_credential) -> Any:
    """A credential that can get a token for Azure Resource Manager, or a one-line error."""
    from azure.core.exceptions import ClientAuthenticationError

    quiet = logging.getLogger("azure.identity")  # it logs every credential it tried, at length
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        credential = factory()
        credential.get_token(ARM_SCOPE)
    except ClientAuthenticationError:
        raise MnistReproError(HOW_TO_LOGIN) from None
    finally:
        quiet.setLevel(level)
    return credential


def connect(config: WorkspaceConfig, credential: Any) -> Any:
    """An ``MLClient`` for the workspace in ``config``."""
    from azure.ai.ml import MLClient

    return MLClient.from_config(credential=credential, path=str(config.path))
