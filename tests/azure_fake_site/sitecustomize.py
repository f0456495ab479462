"""Put the MLClient stand-in under subprocesses (``make``, ``dvc repro`` and the stages).

Active only when ``MNIST_REPRO_FAKE_AZURE`` names a folder (the stand-in's MLflow store);
tests put this folder first on PYTHONPATH. ``MNIST_REPRO_FAKE_AZURE_EXECUTE=1`` makes the
stand-in run each job's command as a node would; ``MNIST_REPRO_FAKE_AZURE_SCRIPT`` says how
the job ends (``FakeJobs.script``: complete, fail, interrupt, ...). Nothing in src/ knows
about it.
"""

import os

if os.environ.get("MNIST_REPRO_FAKE_AZURE"):
    import sys
    from pathlib import Path

    import mnist_repro.azure.service as _service

    def _fake_client(cfg, credential=None):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from helpers.azure import FakeMLClient

        ml = FakeMLClient(Path(os.environ["MNIST_REPRO_FAKE_AZURE"]))
        ml.jobs.execute = os.environ.get("MNIST_REPRO_FAKE_AZURE_EXECUTE") == "1"
        ml.jobs.script = os.environ.get("MNIST_REPRO_FAKE_AZURE_SCRIPT", "complete")
        return ml

    def _fake_credential():
        return object()  # no Azure here: the stand-in needs no token

    def _fake_permissions(credential, scope, **kwargs):
        return {"value": [{"actions": ["*"], "notActions": []}]}  # a Contributor

    _service.client = _fake_client
    _service.check_credential = _fake_credential
    _service.fetch_permissions = _fake_permissions
