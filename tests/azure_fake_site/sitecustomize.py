"""Put the MLClient stand-in under a subprocess (``dvc repro`` runs the train stage as one).

Active only when ``MNIST_REPRO_FAKE_AZURE`` names a folder (the stand-in's MLflow store);
tests put this folder first on PYTHONPATH. Nothing in src/ knows about it.
"""

import os

if os.environ.get("MNIST_REPRO_FAKE_AZURE"):
    import sys
    from pathlib import Path

    import mnist_repro.azure.cli as _remote_cli

    def _fake_client(cfg):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from azure_support import FakeMLClient

        return FakeMLClient(Path(os.environ["MNIST_REPRO_FAKE_AZURE"]))

    _remote_cli.client = _fake_client
