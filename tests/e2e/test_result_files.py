"""The Distributed Map's result files on the local cloud: a real job leaves them in AWS's shape
(spotmap/result_writer.py), and Summarize reads its succeeded items from them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcore import layout
from jobcore.models import ItemOutcome
from jobcore.summary import build_summary, execution_from_description
from spotmap import result_writer
from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.jobs import JobRunner

ITEMS = 12
FAILING = 7  # the item whose program exits 3
PROGRAM = (
    "import json, os, sys; x = int(os.environ['SPOTMAP_PARAM_X']); "
    f"sys.exit(3) if x == {FAILING} else print(json.dumps({{'runs': {{'$sum': 1}}, 'xs': {{'$list': [x]}}}}))"
)
RECORD_FIELDS = {
    "ExecutionArn",
    "Input",
    "InputDetails",
    "Name",
    "RedriveCount",
    "RedriveStatus",
    "StartDate",
    "StateMachineArn",
    "Status",
    "StopDate",
}


class Job:
    def __init__(self, cloud: LocalCloud, summary: dict[str, Any], state_dir: Path):
        self.cloud, self.summary, self.state_dir = cloud, summary, state_dir
        self.s3 = cloud.client("s3")
        self.bucket = cloud.stack.bucket
        self.job_id = str(summary["job_id"])

    def json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [entry["Key"] for entry in listing.get("Contents", [])]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Job]:
    """A sweep of 12 command items (item 7 fails), result files of at most 2,000 bytes."""
    state_dir = tmp_path_factory.mktemp("state")
    params = {"MaxConcurrency": str(ITEMS), "PollMinSeconds": "1", "PollMaxSeconds": "2"}
    manifest = tmp_path_factory.mktemp("input") / "sweep.job.json"
    manifest.write_text(
        json.dumps(
            {
                "processor": "command",
                "params": {"command": ["python3", "-c", PROGRAM]},
                "source": {"items": [{"x": x} for x in range(ITEMS)]},
            }
        ),
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(result_writer, "RESULT_FILE_BYTES", 2000)  # a few records a file
        with LocalCloud(options=CloudOptions(parameters=params, state_dir=state_dir)) as cloud:
            runner = JobRunner(cloud, progress=None)
            watch = runner.submit(manifest)
            (summary,) = runner.wait([watch], timeout=600)
            assert summary is not None, watch
            yield Job(cloud, summary, state_dir)


def test_a_job_leaves_result_files_in_awss_shape(job: Job) -> None:
    # GIVEN the job ran: 11 items succeeded, item 7 failed (so the execution FAILED on the tolerance)
    assert job.summary["items"] == {"total": ITEMS, "succeeded": ITEMS - 1, "failed": 1}

    # WHEN we look under the job's map-results prefix
    prefix = layout.map_results_prefix(job.job_id)
    (manifest_key,) = [key for key in job.keys(prefix) if key.endswith("/manifest.json")]
    manifest = job.json(manifest_key)

    # THEN there is one Map Run folder, named by the Map Run's id, whose manifest lists its files
    map_run_arn = manifest["MapRunArn"]
    run_id = map_run_arn.rsplit(":", 1)[1]
    assert manifest_key == f"{prefix}{run_id}/manifest.json"
    assert re.fullmatch(
        r"arn:aws:states:[a-z0-9-]+:\d{12}:mapRun:[^/:]+-job/[^/:]+:[0-9a-f-]{36}", map_run_arn
    )
    assert manifest["DestinationBucket"] == job.bucket
    assert manifest["ResultFiles"]["PENDING"] == []
    files = manifest["ResultFiles"]
    assert len(files["SUCCEEDED"]) > 1 and len(files["FAILED"]) == 1  # split at 2,000 bytes
    assert sorted(job.keys(f"{prefix}{run_id}/")) == sorted(
        [manifest_key] + [entry["Key"] for entry in files["SUCCEEDED"] + files["FAILED"]]
    )
    for number, entry in enumerate(files["SUCCEEDED"]):
        assert entry["Key"] == f"{prefix}{run_id}/SUCCEEDED_{number}.json"
        assert entry["Size"] == job.s3.head_object(Bucket=job.bucket, Key=entry["Key"])["ContentLength"]

    # AND each file is a JSON array of child execution records
    succeeded = [record for entry in files["SUCCEEDED"] for record in job.json(entry["Key"])]
    (failed,) = job.json(files["FAILED"][0]["Key"])
    label = map_run_arn.split(":mapRun:", 1)[1].rsplit(":", 1)[0]
    state_machine = job.cloud.stack.state_machine_arn
    for record in succeeded + [failed]:
        assert set(record) >= RECORD_FIELDS
        # the children's state machine is the job's, under the Map Run's label
        assert record["StateMachineArn"] == f"{state_machine}/{label.split('/', 1)[1]}"
        assert record["ExecutionArn"] == (
            record["StateMachineArn"].replace(":stateMachine:", ":execution:") + ":" + record["Name"]
        )
        child_input = json.loads(record["Input"])
        assert child_input["job_id"] == job.job_id and child_input["bucket"] == job.bucket
    # the succeeded children's outputs are their items' outcome records, one per succeeded item
    outcomes = [ItemOutcome.model_validate_json(record["Output"]) for record in succeeded]
    assert sorted(outcome.index for outcome in outcomes) == [x for x in range(ITEMS) if x != FAILING]
    for outcome in outcomes:
        assert outcome.partial == {"runs": {"$sum": 1}, "xs": {"$list": [outcome.index]}}
        stored = job.json(layout.outcome_key(job.job_id, outcome.index, "SUCCEEDED"))
        assert outcome.model_dump(mode="json") == stored
    # the failed child carries its Fail state's error and cause, and no output
    assert (failed["Status"], failed["Error"]) == ("FAILED", "ItemFailed") and "Output" not in failed
    assert failed["Cause"] and json.loads(failed["Input"])["item"]["index"] == FAILING


def test_summarize_took_the_succeeded_items_from_the_result_files(job: Job) -> None:
    # GIVEN the summary Summarize wrote, and what it logged
    log = job.state_dir / "logs" / "lambda" / "SummarizeFunction.log"
    written = [
        line
        for line in map(json.loads, filter(str.strip, log.read_text(encoding="utf-8").splitlines()))
        if line.get("message") == "summary written" and line.get("job_id") == job.job_id
    ]

    # THEN it read every succeeded item from the result files and only the failed item's outcome by
    # itself (instead of one object per item)
    assert written, log.read_text(encoding="utf-8")[-2000:]
    reads = written[-1]["reads"]
    assert reads["items_from_result_files"] == ITEMS - 1
    assert reads["result_files"] > 1 and reads["objects"] == 1

    # AND its summary is the one reading every item object by object gives
    sfn = job.cloud.client("stepfunctions")
    arn = job.summary["execution_arn"]
    execution = execution_from_description(sfn.describe_execution(executionArn=arn))
    per_item = build_summary(job.s3, job.bucket, job.job_id, execution, result_files=False)
    with_files = build_summary(job.s3, job.bucket, job.job_id, execution)
    assert with_files == per_item
    for field in ("items", "attempts", "failures", "result", "cost", "error"):
        assert job.summary[field] == per_item[field], field
    assert job.summary["result"] == {"runs": ITEMS - 1, "xs": [x for x in range(ITEMS) if x != FAILING]}


def test_each_lambda_instance_observes_with_its_own_functions_environment(job: Job) -> None:
    # GIVEN what Summarize's instances logged (the local cloud forks them from one preloading process)
    log = job.state_dir / "logs" / "lambda" / "SummarizeFunction.log"
    text = log.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    # THEN its log lines name the service the template gives the function, and its metrics are published
    # in the template's namespace (Logger and Metrics are made in each instance's init phase, as in Lambda)
    written = [line for line in lines if line.get("message") == "summary written"]
    assert written and {line["service"] for line in written} == {"summarize"}
    emf = [line for line in lines if "_aws" in line]
    assert emf and {line["_aws"]["CloudWatchMetrics"][0]["Namespace"] for line in emf} == {"spotmap"}
    assert any("JobsSucceeded" in line or "JobsFailed" in line for line in emf)
