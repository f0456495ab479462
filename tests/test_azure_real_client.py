"""The monitor against a *real* MLClient whose HTTP requests are answered in-process
(helpers.azure.FakeService): every line of azure-ai-ml runs, only the bytes on the wire are
fake. What the SDK really does when the user presses Ctrl-C, when a running job is
downloaded, where a downloaded output lands, and what its errors look like."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError

from helpers.azure import FakeService, real_client
from mnist_repro.azure import service
from mnist_repro.azure.workspace import WorkspaceConfig
from mnist_repro.errors import MnistReproError

pytestmark = pytest.mark.filterwarnings("ignore::Warning:azure.*")
CFG = WorkspaceConfig(Path("config.json"), "sub", "my-resource-group", "my-workspace")


@pytest.fixture
def svc(monkeypatch):
    import azure.ai.ml.operations._job_ops_helper as helper

    assert helper.time.sleep("no wait") is None  # helpers.azure made the SDK's polling instant
    return FakeService()


def test_ctrl_c_in_the_sdks_stream_exits_130_with_the_hint_and_no_download(svc, tmp_path, capsys):
    svc.status["job-1"] = "Running"
    svc.details = ["Running", "Running", KeyboardInterrupt()]
    ml = real_client(svc)
    with pytest.raises(KeyboardInterrupt):
        service.follow(ml, "job-1", "https://studio/job-1", 40, tmp_path)
    err = capsys.readouterr().err
    assert "make remote-status JOB=job-1" in err and "make remote-cancel JOB=job-1" in err
    assert not any(line.endswith(("/rundata", "/datastores")) for line in svc.log), svc.log
    assert any(line.endswith("/runs/job-1/details") for line in svc.log)


def test_status_prints_the_value_not_the_enum(svc, tmp_path, capsys):
    svc.status["job-2"] = "Failed"
    ml = real_client(svc)
    assert str(ml.jobs.get("job-2").status) == "JobStatus.FAILED"  # the gotcha
    with pytest.raises(MnistReproError, match=r"^Azure ML job job-2 ended Failed: https://"):
        service.status(ml, "job-2", 40, tmp_path)
    assert "job job-2: Failed  https://ml.azure.com/runs/job-2" in capsys.readouterr().out


def test_the_sdk_refuses_to_download_a_running_job(svc, tmp_path):
    svc.status["job-1"] = "Running"
    with (
        pytest.raises(MnistReproError) as info,
        service.service_errors(CFG, "job-1"),
    ):
        service.download_model(real_client(svc), "job-1", tmp_path / "models", tmp_path / "s")
    assert str(info.value) == (
        "Azure ML (my-workspace): This job is in state JobStatus.RUNNING. Download is allowed "
        "only in states ['Completed', 'Failed', 'Canceled', 'NotResponding', 'Paused']"
    )


def test_download_model_reads_the_sdks_output_layout(svc, tmp_path, monkeypatch):
    """Only the blob copy is replaced: the SDK resolves the output and picks the folder."""
    import azure.ai.ml.operations._job_operations as job_ops

    copied = []

    def blob_copy(uri, destination, datastore_operation):
        copied.append((uri, Path(destination).relative_to(tmp_path / "s").parts[1:]))
        Path(destination).mkdir(parents=True, exist_ok=True)
        for name in ("model.skops", "model.json"):
            (Path(destination) / name).write_bytes(name.encode())
        return destination

    monkeypatch.setattr(job_ops, "download_artifact_from_aml_uri", blob_copy)
    svc.status["job-3"] = "Completed"
    written = service.download_model(real_client(svc), "job-3", tmp_path / "models", tmp_path / "s")
    assert [p.name for p in written] == ["model.skops", "model.json"]
    assert (tmp_path / "models" / "model.skops").read_bytes() == b"model.skops"
    assert copied[0][1] == ("named-outputs", "model")  # the SDK's own folder layout


def test_an_expired_mfa_sign_in_keeps_its_cause(svc):
    class ExpiredMfa:
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError(
                "DefaultAzureCredential failed to retrieve a token from the included "
                "credentials.\nAttempted credentials:\n\tEnvironmentCredential: "
                "EnvironmentCredential authentication unavailable. Environment variables are "
                "not fully configured.\n\tAzureCliCredential: ERROR: AADSTS50076: Due to a "
                "configuration change made by your administrator, you must use multi-factor "
                "authentication to access '797f4846'.\nTo mitigate this issue, please refer to "
                "the troubleshooting guidelines here at https://aka.ms/azsdk/python/identity."
            )

    with pytest.raises(MnistReproError) as info, service.service_errors(CFG):
        real_client(svc, ExpiredMfa()).jobs.get("job-1")
    message = str(info.value)
    assert message.startswith("Azure sign-in failed: AzureCliCredential: ERROR: AADSTS50076")
    assert message.endswith("(multi-factor authentication is required: run `az login` again)")
    assert "\n" not in message and "EnvironmentCredential" not in message


def test_no_credential_at_all_lists_what_was_tried(monkeypatch):
    from azure.identity import DefaultAzureCredential

    for var in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "IDENTITY_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no az, no azd, no pwsh
    with pytest.raises(MnistReproError) as info:
        service.check_credential(
            lambda: DefaultAzureCredential(exclude_managed_identity_credential=True)
        )
    message = str(info.value)
    assert message.startswith("no Azure credential found: run `az login`")
    assert "(tried: EnvironmentCredential, " in message and "AzureCliCredential" in message


def test_a_403_and_sdk_exceptions_are_one_line(svc):
    from azure.ai.ml.exceptions import ErrorTarget, ValidationException
    from marshmallow.exceptions import ValidationError

    svc.route = lambda r: (
        403,
        {
            "error": {
                "code": "AuthorizationFailed",
                "message": "The client 'u@x' does not have authorization to perform action "
                "'Microsoft.MachineLearningServices/workspaces/computes/write'",
            }
        },
    )
    with pytest.raises(MnistReproError) as info, service.service_errors(CFG):
        real_client(svc).compute.get("cpucluster")
    assert str(info.value).startswith("Azure ML (my-workspace): 403 AuthorizationFailed: The ")
    assert str(info.value).endswith("names the role that is missing)")
    bad_name = ValidationException(
        message="bad name\n  x", no_personal_data_message="bad", target=ErrorTarget.JOB
    )
    one_line = r"^Azure ML \(my-workspace\): bad name x$"
    with pytest.raises(MnistReproError, match=one_line), service.service_errors(CFG):
        raise bad_name
    bad_mode = ValidationError({"mode": ["Must be one of: upload, rw_mount."]})
    invalid = r"invalid spec: \{'mode': \['Must be one of"
    with pytest.raises(MnistReproError, match=invalid), service.service_errors(CFG):
        raise bad_mode
