"""package_versions() reports this project's version also where it is not installed."""

from __future__ import annotations

from importlib import metadata

import pytest

import mnist_repro
from mnist_repro import provenance


def test_own_version_without_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    # Like the Docker image and the Azure ML job: the source runs from src/, no dist-info.
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(provenance.metadata, "version", not_installed)
    versions = provenance.package_versions(("mnist-repro", "numpy"))
    assert versions["mnist-repro"] == mnist_repro.__version__
    assert versions["numpy"] == "not installed"


def test_python_recorded_without_patch_release(monkeypatch: pytest.MonkeyPatch) -> None:
    # The venv (3.11.7), the stand-in image (3.11.2) and Azure ML must write the same model.json.
    monkeypatch.setattr(provenance.platform, "python_version_tuple", lambda: ("3", "11", "2"))
    assert provenance.package_versions(("numpy",))["python"] == "3.11"
