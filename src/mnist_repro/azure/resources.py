"""Create or reuse the workspace's compute, environment and data asset (the tutorial's set-up)."""

from __future__ import annotations

from typing import Any

from mnist_repro.errors import MnistReproError


def _not_found() -> type[Exception]:
    from azure.core.exceptions import ResourceNotFoundError

    return ResourceNotFoundError


def ensure_compute(ml: Any, compute: Any) -> Any:
    """Reuse the cluster named ``compute.name`` if it exists, else create it and wait."""
    try:
        existing = ml.compute.get(compute.name)
    except _not_found():
        existing = None
    if existing is not None:
        if getattr(existing, "type", "amlcompute").lower() != "amlcompute":
            raise MnistReproError(
                f"compute '{compute.name}' exists but is a {existing.type}, not an AmlCompute "
                "cluster (set AML_COMPUTE_CLUSTER_NAME to another name)"
            )
        print(f"compute: reusing cluster {compute.name}")
        return existing
    print(
        f"compute: creating cluster {compute.name} ({compute.size}, "
        f"{compute.min_instances}..{compute.max_instances} nodes, idle scale-down after "
        f"{compute.idle_time_before_scale_down} s)"
    )
    return ml.compute.begin_create_or_update(compute).result()


def _ensure_asset(operations: Any, asset: Any, kind: str, reused: str, creating: str) -> Any:
    """Reuse asset ``name:version`` (its version is a content hash), else create it."""
    ref = f"{asset.name}:{asset.version}"
    try:
        existing = operations.get(asset.name, version=asset.version)
    except _not_found():
        print(f"{kind}: {creating.format(ref=ref)}")
        return operations.create_or_update(asset)
    print(f"{kind}: reusing {ref} ({reused})")
    return existing


def ensure_environment(ml: Any, environment: Any) -> Any:
    """The environment built from docker/: registered once per content of docker/."""
    return _ensure_asset(
        ml.environments,
        environment,
        "environment",
        reused="docker/ unchanged",
        creating="registering {ref} from docker/ (Azure ML builds the image on first use)",
    )


def ensure_data(ml: Any, data: Any) -> Any:
    """The data asset: uploaded and registered once per content of the files."""
    return _ensure_asset(
        ml.data,
        data,
        "data",
        reused="files unchanged, no upload",
        creating=f"uploading {data.path} as {{ref}}",
    )


def delete_compute(ml: Any, name: str) -> bool:
    """The tutorial's ``compute_target.delete()``; ``False`` if there was nothing to delete."""
    try:
        ml.compute.get(name)
    except _not_found():
        return False
    ml.compute.begin_delete(name).result()
    return True
