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


def ensure_environment(ml: Any, environment: Any) -> Any:
    """Reuse ``name:version`` (version = hash of docker/); else register it (Azure builds it)."""
    try:
        existing = ml.environments.get(environment.name, version=environment.version)
        print(f"environment: reusing {environment.name}:{environment.version} (docker/ unchanged)")
        return existing
    except _not_found():
        pass
    print(
        f"environment: registering {environment.name}:{environment.version} from docker/ "
        "(Azure ML builds the image on first use, a few minutes)"
    )
    return ml.environments.create_or_update(environment)


def ensure_data(ml: Any, data: Any) -> Any:
    """Reuse ``name:version`` (version = content hash of the files); else upload and register."""
    try:
        existing = ml.data.get(data.name, version=data.version)
        print(f"data: reusing {data.name}:{data.version} (files unchanged, no upload)")
        return existing
    except _not_found():
        pass
    print(f"data: uploading {data.path} as {data.name}:{data.version}")
    return ml.data.create_or_update(data)


def delete_compute(ml: Any, name: str) -> bool:
    """The tutorial's ``compute_target.delete()``; ``False`` if there was nothing to delete."""
    try:
        ml.compute.get(name)
    except _not_found():
        return False
    ml.compute.begin_delete(name).result()
    return True
