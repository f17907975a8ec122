"""`spotmap local upload FILE --event EVENT` on a local cloud whose uploads raise no event
(`spotmap local serve --no-object-events`): what the README's `sam local invoke` pipeline relies on,
checked without Docker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spotmap.cli import main as spotmap_main
from spotmap.cloud import CloudOptions, LocalCloud, local_client
from tests.conftest import EVENTS


@pytest.fixture(scope="module")
def quiet_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    options = CloudOptions(run_schedules=False, object_events=False, state_dir=tmp_path_factory.mktemp("s"))
    with LocalCloud(options=options) as running:
        yield running


def start_job(cloud: LocalCloud, event: dict[str, Any]) -> dict[str, Any]:
    """StartJob's answer to the event, through Lambda's Invoke on the local cloud."""
    client = local_client("lambda", cloud.endpoint, cloud.stack.region)
    response = client.invoke(
        FunctionName=cloud.stack.functions["StartJobFunction"].name, Payload=json.dumps(event).encode()
    )
    assert "FunctionError" not in response
    answer: dict[str, Any] = json.loads(response["Payload"].read())
    return answer


@pytest.mark.parametrize("event_file", ["start_job_s3_put.json", "start_job_eventbridge_object_created.json"])
def test_the_printed_event_names_the_upload_and_starts_its_job(
    quiet_cloud: LocalCloud, event_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a CSV and an event file of events/ (an example version id that no upload has)
    data = tmp_path / "data.csv"
    data.write_text(f"name,value\n{event_file},1\n", encoding="utf-8")
    as_written = json.loads((EVENTS / event_file).read_text(encoding="utf-8"))
    sfn = local_client("stepfunctions", quiet_cloud.endpoint, quiet_cloud.stack.region)
    before = sfn.list_executions(stateMachineArn=quiet_cloud.stack.state_machine_arn)["executions"]

    # WHEN the file is uploaded under the event's key and the event for that upload is printed
    capsys.readouterr()
    code = spotmap_main(
        [
            "local",
            "upload",
            str(data),
            "--event",
            str(EVENTS / event_file),
            "--endpoint-url",
            quiet_cloud.endpoint,
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)

    # THEN the printed event carries the upload's version id, size and ETag
    s3 = local_client("s3", quiet_cloud.endpoint, quiet_cloud.stack.region)
    head = s3.head_object(Bucket=quiet_cloud.stack.bucket, Key="input/sales 2024 Q1.csv")
    if "Records" in printed:
        obj = printed["Records"][0]["s3"]["object"]
        assert (obj["versionId"], obj["size"], obj["eTag"]) == (
            head["VersionId"],
            head["ContentLength"],
            head["ETag"].strip('"'),
        )
        assert obj["key"] == as_written["Records"][0]["s3"]["object"]["key"]  # still URL-encoded
    else:
        obj = printed["detail"]["object"]
        assert (obj["version-id"], obj["size"], obj["etag"]) == (
            head["VersionId"],
            head["ContentLength"],
            head["ETag"].strip('"'),
        )

    # AND the event file as written names no version of the upload: StartJob starts nothing with it
    assert start_job(quiet_cloud, as_written) == {"jobs": []}

    # AND the printed event starts the job - the first to do so: the upload itself started nothing
    (job,) = start_job(quiet_cloud, printed)["jobs"]
    assert job["duplicate"] is False and job["key"] == "input/sales 2024 Q1.csv"
    after = sfn.list_executions(stateMachineArn=quiet_cloud.stack.state_machine_arn)["executions"]
    assert {e["executionArn"] for e in after} - {e["executionArn"] for e in before} == {job["execution_arn"]}
