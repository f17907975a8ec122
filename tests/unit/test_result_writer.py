"""The local cloud's ResultWriter (spotmap/result_writer.py): AWS's result file format, and moto's
distributed Map patched to write it with what each child did."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from spotmap import moto_patches
from spotmap.result_writer import ChildExecution, MapRun, write_results
from tests.unit.conftest import ACCOUNT, BUCKET

PARENT = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:spotmap-job"
RUN = MapRun(
    arn=f"arn:aws:states:us-east-1:{ACCOUNT}:mapRun:spotmap-job/ProcessItems:5c0ffee0-0000-4000-8000-000000000001",
    state_machine_arn=f"{PARENT}/ProcessItems",
)
T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=timezone.utc)
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def child(index: int, status: str = "SUCCEEDED", **fields: Any) -> ChildExecution:
    defaults: dict[str, Any] = {
        "input": json.dumps({"item": {"index": index}}),
        "start": T0 + timedelta(seconds=index),
        "stop": T0 + timedelta(seconds=index + 10),
        "output": {"index": index, "partial": {"n": {"$sum": index}}} if status == "SUCCEEDED" else None,
    }
    defaults.update(fields)
    return ChildExecution(index=index, status=status, **defaults)


class Bucket:
    """What `put` wrote, by key."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> None:
        self.objects[key] = body

    def json(self, key: str) -> Any:
        return json.loads(self.objects[key])


def test_a_map_run_is_written_as_aws_writes_it() -> None:
    # GIVEN a Map Run with a succeeded and a failed child
    bucket = Bucket()
    failed = child(
        1, "FAILED", error="ItemFailed", cause="The item failed; its reason is in the job summary."
    )

    # WHEN its results are written under the ResultWriter's prefix (no trailing slash, as in the ASL)
    manifest_key = write_results(bucket.put, BUCKET, "jobs/job-1/map-results", RUN, [child(0), failed])

    # THEN the manifest sits in <prefix>/<map-run-id>/ and lists one file per status, with its size
    folder = "jobs/job-1/map-results/5c0ffee0-0000-4000-8000-000000000001/"
    assert manifest_key == f"{folder}manifest.json"
    manifest = bucket.json(manifest_key)
    assert manifest == {
        "DestinationBucket": BUCKET,
        "MapRunArn": RUN.arn,
        "ResultFiles": {
            "FAILED": [
                {"Key": f"{folder}FAILED_0.json", "Size": len(bucket.objects[f"{folder}FAILED_0.json"])}
            ],
            "PENDING": [],
            "SUCCEEDED": [
                {"Key": f"{folder}SUCCEEDED_0.json", "Size": len(bucket.objects[f"{folder}SUCCEEDED_0.json"])}
            ],
        },
    }
    # and each file is a JSON array of child execution records, outputs and inputs as JSON text
    (succeeded,) = bucket.json(f"{folder}SUCCEEDED_0.json")
    name = succeeded["Name"]
    assert succeeded == {
        "ExecutionArn": f"arn:aws:states:us-east-1:{ACCOUNT}:execution:spotmap-job/ProcessItems:{name}",
        "Input": '{"item": {"index": 0}}',
        "InputDetails": {"Included": True},
        "Name": name,
        "Output": '{"index":0,"partial":{"n":{"$sum":0}}}',
        "OutputDetails": {"Included": True},
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "StartDate": "2026-11-23T10:00:00.000Z",
        "StateMachineArn": f"{PARENT}/ProcessItems",
        "Status": "SUCCEEDED",
        "StopDate": "2026-11-23T10:00:10.000Z",
    }
    (failure,) = bucket.json(f"{folder}FAILED_0.json")
    assert failure["Status"] == "FAILED" and "Output" not in failure
    assert (failure["Error"], failure["Cause"]) == ("ItemFailed", failed.cause)


def test_results_are_split_into_files_of_bounded_size_in_the_order_given() -> None:
    # GIVEN 20 succeeded children, given out of item order
    order = [7, 3, 19, 0, 12, 5, 1, 18, 2, 4, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17]
    bucket = Bucket()

    # WHEN they are written with files of at most 1,000 bytes
    key = write_results(bucket.put, BUCKET, "p", RUN, [child(i) for i in order], max_file_bytes=1000)

    # THEN one file per child was needed (a child's record is over half the bound), none above the bound,
    # and together they hold every child once, in the order given (AWS does not sort by item either)
    files = bucket.json(key)["ResultFiles"]["SUCCEEDED"]
    assert len(files) == 20
    assert [entry["Key"].rsplit("/", 1)[1] for entry in files] == [
        f"SUCCEEDED_{n}.json" for n in range(len(files))
    ]
    assert all(entry["Size"] == len(bucket.objects[entry["Key"]]) <= 1000 for entry in files)
    records = [record for entry in files for record in bucket.json(entry["Key"])]
    assert [json.loads(record["Output"])["index"] for record in records] == order
    assert bucket.json(key)["ResultFiles"]["FAILED"] == []


def test_a_record_larger_than_the_bound_gets_a_file_of_its_own() -> None:
    bucket = Bucket()
    big = child(1, output={"index": 1, "blob": "x" * 5000})
    key = write_results(bucket.put, BUCKET, "", RUN, [child(0), big, child(2)], max_file_bytes=1000)
    files = bucket.json(key)["ResultFiles"]["SUCCEEDED"]
    assert [len(bucket.json(entry["Key"])) for entry in files] == [1, 1, 1]
    assert key == f"{RUN.id}/manifest.json"  # an empty prefix writes at the bucket's root, as AWS does


# ------------------------------------------------------------------------------------- moto patched

DEFINITION = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSON"},
                "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.items_key"},
            },
            "ItemSelector": {"job_id.$": "$.job_id", "item.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Check",
                "States": {
                    "Check": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.item.fail", "BooleanEquals": True, "Next": "Failed"}],
                        "Default": "Done",
                    },
                    "Done": {"Type": "Succeed", "OutputPath": "$.item"},
                    "Failed": {"Type": "Fail", "Error": "ItemFailed", "Cause": "item said so"},
                },
            },
            "ToleratedFailurePercentage": 100.0,
            "ResultWriter": {
                "Resource": "arn:aws:states:::s3:putObject",
                "Parameters": {
                    "Bucket.$": "$.bucket",
                    "Prefix.$": "States.Format('jobs/{}/map-results', $.job_id)",
                },
            },
            "ResultPath": None,
            "End": True,
        }
    },
}


@pytest.fixture
def executing_moto(s3: Any) -> Iterator[Any]:
    """moto's Step Functions executing definitions, with the result writer installed."""
    from moto.core.config import default_user_config

    from jobcore import aws as factory

    moto_patches.install_result_writer()
    moto_patches.install_result_writer()  # idempotent: a second local cloud patches nothing twice
    previous = default_user_config["stepfunctions"]["execute_state_machine"]
    default_user_config["stepfunctions"]["execute_state_machine"] = True
    yield factory.stepfunctions()
    default_user_config["stepfunctions"]["execute_state_machine"] = previous


def test_moto_writes_each_childs_output_or_error(s3: Any, executing_moto: Any) -> None:
    # GIVEN a distributed Map over 3 items (item 1 fails) whose ResultWriter paths read the state input
    items = [{"index": 0}, {"index": 1, "fail": True}, {"index": 2}]
    s3.put_object(Bucket=BUCKET, Key="jobs/job-1/items.json", Body=json.dumps(items).encode())
    sfn = executing_moto
    machine = sfn.create_state_machine(
        name="fan", definition=json.dumps(DEFINITION), roleArn=f"arn:aws:iam::{ACCOUNT}:role/r"
    )["stateMachineArn"]

    # WHEN it runs
    execution = sfn.start_execution(
        stateMachineArn=machine,
        input=json.dumps({"job_id": "job-1", "bucket": BUCKET, "items_key": "jobs/job-1/items.json"}),
    )["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, sfn.get_execution_history(executionArn=execution)["events"][-3:]
        time.sleep(0.05)

    # THEN it succeeded and left a manifest under the prefix evaluated from the state input
    assert described["status"] == "SUCCEEDED", described
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/job-1/map-results/")["Contents"]
    (manifest_key,) = [entry["Key"] for entry in listing if entry["Key"].endswith("/manifest.json")]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    assert manifest_key.split("/")[3] == manifest["MapRunArn"].rsplit(":", 1)[1]

    def records(status: str) -> list[dict[str, Any]]:
        return [
            record
            for entry in manifest["ResultFiles"][status]
            for record in json.loads(s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read())
        ]

    # the succeeded children with their outputs and their inputs (after ItemSelector)
    succeeded = records("SUCCEEDED")
    assert sorted(json.loads(r["Output"])["index"] for r in succeeded) == [0, 2]
    assert {json.loads(r["Input"])["job_id"] for r in succeeded} == {"job-1"}
    # the failed child with the error and cause of its Fail state
    (failed,) = records("FAILED")
    assert json.loads(failed["Input"]) == {"job_id": "job-1", "item": {"index": 1, "fail": True}}
    assert (failed["Error"], failed["Cause"], failed["Status"]) == ("ItemFailed", "item said so", "FAILED")
    # every child named like an AWS child execution of this Map Run, with its times
    for record in succeeded + [failed]:
        label = manifest["MapRunArn"].split(":mapRun:", 1)[1].rsplit(":", 1)[0]
        assert record["StateMachineArn"] == machine.replace("stateMachine:fan", f"stateMachine:{label}")
        assert record["ExecutionArn"] == record["StateMachineArn"].replace(
            ":stateMachine:", ":execution:"
        ) + (":" + record["Name"])
        assert ISO_MS.fullmatch(record["StartDate"]) and record["StartDate"] <= record["StopDate"]
