"""Drop a file, get its summary: one test, two targets.

With AWS_SAM_STACK_NAME set (e.g. `AWS_SAM_STACK_NAME=spotmap pytest tests/e2e/test_deployed_stack.py`)
the scenario runs against that deployed stack with the credentials and region of the environment: its
bucket comes from the stack's `JobBucketName` output, a small generated CSV is uploaded to
`input/`, and the test waits (up to 20 minutes, looking every 10 s) for `summaries/<job_id>.json`.
It leaves the upload and the job's objects in the bucket. Without AWS_SAM_STACK_NAME the very same
steps run against an embedded local cloud, and nothing reaches AWS.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.product import jobcore_ids, jobcore_layout
from tests.conftest import FAKE_ENVIRONMENT
from tests.e2e.conftest import assert_profile_equal, profile_csv, write_csv

STACK_ENV = "AWS_SAM_STACK_NAME"
ROWS = 500


@dataclass(frozen=True)
class Target:
    """Where the scenario runs: the bucket and clients, and how long a job may take there."""

    description: str
    bucket: str
    s3: Any
    sfn: Any
    state_machine_arn: str | None
    timeout_seconds: float
    poll_seconds: float


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides the suite's fake credentials: a deployed stack is reached with the environment's own
    credentials; otherwise the fake ones, as everywhere else."""
    if os.environ.get(STACK_ENV):
        return
    for name, value in FAKE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


def deployed_stack(stack_name: str) -> Target:
    import boto3

    session = boto3.session.Session()
    stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
    bucket = outputs.get("JobBucketName")
    assert bucket, f"stack {stack_name} has no JobBucketName output (outputs: {sorted(outputs)})"
    return Target(
        description=f"stack {stack_name} in {session.region_name}",
        bucket=bucket,
        s3=session.client("s3"),
        sfn=session.client("stepfunctions"),
        state_machine_arn=outputs.get("JobStateMachineArn"),
        timeout_seconds=20 * 60,
        poll_seconds=10,
    )


def local_cloud(cloud: LocalCloud) -> Target:
    return Target(
        description=f"the local cloud at {cloud.endpoint}",
        bucket=cloud.stack.bucket,
        s3=cloud.client("s3"),
        sfn=cloud.client("stepfunctions"),
        state_machine_arn=cloud.stack.state_machine_arn,
        timeout_seconds=180,
        poll_seconds=0.5,
    )


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    stack_name = os.environ.get(STACK_ENV)
    if stack_name:
        yield deployed_stack(stack_name)
        return
    with LocalCloud(options=CloudOptions(state_dir=tmp_path / "state")) as cloud:
        yield local_cloud(cloud)


# ---------------------------------------------------------------- the scenario's steps


def drop_file(target: Target, key: str, body: bytes) -> str:
    """Upload as a user would (`aws s3 cp`); the job id follows from the upload, as StartJob derives it."""
    put = target.s3.put_object(Bucket=target.bucket, Key=key, Body=body)
    return str(
        jobcore_ids().job_id_for(
            target.bucket, key, version_id=put.get("VersionId"), etag=put.get("ETag", "").strip('"')
        )
    )


def read_summary(target: Target, job_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the summary, None) once it exists, else (None, why it could not be read)."""
    key = jobcore_layout().summary_key(job_id)
    try:
        return json.loads(target.s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()), None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "AccessDenied", "403"):  # 403: missing, without ListBucket
            return None, f"{code} for s3://{target.bucket}/{key}"
        raise


def wait_for_summary(target: Target, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + target.timeout_seconds
    last_error: str | None = None
    while True:
        summary, last_error = read_summary(target, job_id)
        if summary is not None:
            return summary
        if time.monotonic() >= deadline:
            break
        time.sleep(target.poll_seconds)
    raise AssertionError(
        f"no summary for job {job_id} on {target.description} after {target.timeout_seconds:.0f} s "
        f"(last read: {last_error}); {diagnostics(target, job_id)}"
    )


def diagnostics(target: Target, job_id: str) -> str:
    """What the job left behind: its execution's status and its objects under jobs/<id>/."""
    facts = []
    if target.state_machine_arn:
        arn = target.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
        try:
            execution = target.sfn.describe_execution(executionArn=arn)
            facts.append(
                f"execution {execution['status']}"
                + "".join(
                    f", {field}: {execution[field]}" for field in ("error", "cause") if execution.get(field)
                )
            )
        except (ClientError, BotoCoreError) as error:
            facts.append(f"execution {arn}: {error}")
    prefix = jobcore_layout().job_prefix(job_id)
    try:
        pages = target.s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=prefix)
        keys = [entry["Key"][len(prefix) :] for page in pages for entry in page.get("Contents", [])]
        groups = {
            "job.json": sum(key == "job.json" for key in keys),
            "items.json": sum(key == "items.json" for key in keys),
            "results": sum(key.startswith("results/") for key in keys),
            "succeeded outcomes": sum(key.startswith("outcomes/succeeded/") for key in keys),
            "failed outcomes": sum(key.startswith("outcomes/failed/") for key in keys),
            "worker errors": sum(key.startswith("errors/") for key in keys),
        }
        facts.append(
            f"s3://{target.bucket}/{prefix}: " + ", ".join(f"{n} {what}" for what, n in groups.items())
        )
    except (ClientError, BotoCoreError) as error:
        facts.append(f"cannot list s3://{target.bucket}/{prefix}: {error}")
    return "; ".join(facts)


# ---------------------------------------------------------------- the test


def test_a_csv_dropped_into_input_gets_a_succeeded_summary(target: Target, tmp_path: Path) -> None:
    # GIVEN a small generated CSV (quoted commas and newlines, empty cells) and a key no one used before
    data = write_csv(tmp_path / "data.csv", ROWS, seed=7).read_bytes()
    expected = profile_csv(data)
    key = f"input/spotmap-e2e-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}.csv"

    # WHEN it is dropped into the bucket's input/ prefix
    job_id = drop_file(target, key, data)
    summary = wait_for_summary(target, job_id)

    # THEN the job succeeded on every item and profiled every row of the upload
    assert summary["status"] == "SUCCEEDED", (
        summary["status"],
        summary.get("error"),
        summary["failures"][:3],
    )
    assert summary["job_id"] == job_id
    assert (summary["input"]["bucket"], summary["input"]["key"]) == (target.bucket, key)
    assert summary["items"]["failed"] == 0
    assert summary["items"]["succeeded"] == summary["items"]["total"] >= 1
    assert summary["result"]["rows"] == ROWS
    assert_profile_equal(summary["result"], expected)
    # AND it says what the job cost
    assert summary["cost"]["total_usd"] > 0, summary["cost"]
