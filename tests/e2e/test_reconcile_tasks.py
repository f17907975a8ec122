"""A job aborted while its status events are lost: StopJobTasks never runs, so its tasks would run on;
the scheduled Reconcile stops them (and writes the summary), on the local cloud with real worker tasks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from jobcore import layout
from jobcore.ids import job_id_for
from spotmap.cli import main as spotmap_main
from spotmap.cloud import CloudOptions, LocalCloud, local_client
from tests.conftest import load_event
from tests.e2e.conftest import wait_for

ITEMS = 2


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    # Every "Step Functions Execution Status Change" event is lost; schedules run only when invoked.
    options = CloudOptions(
        run_schedules=False, drop_status_events=1.0, state_dir=tmp_path_factory.mktemp("state")
    )
    with LocalCloud(options=options) as running:
        yield running



def test_reconcile_stops_the_tasks_of_an_aborted_job_whose_status_event_was_lost(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    ecs = local_client("ecs", cloud.endpoint, cloud.stack.region)
    s3 = local_client("s3", cloud.endpoint, cloud.stack.region)
    sfn = local_client("stepfunctions", cloud.endpoint, cloud.stack.region)
    lambda_client = local_client("lambda", cloud.endpoint, cloud.stack.region)
    cluster = cloud.stack.cluster_arn

    # GIVEN a job of two items whose tasks run for ten minutes, both RUNNING
    manifest = {
        "processor": "command",
        "params": {"command": ["python3", "-c", "import time; time.sleep(600)"]},
        "source": {"count": ITEMS},
    }
    key = "input/abandoned.job.json"
    put = s3.put_object(Bucket=cloud.stack.bucket, Key=key, Body=json.dumps(manifest).encode())
    job_id = job_id_for(cloud.stack.bucket, key, put["VersionId"])

    def job_tasks() -> list[str]:
        # startedBy alone, as ECS requires; RUNNING is ListTasks' default desiredStatus
        return list(ecs.list_tasks(cluster=cluster, startedBy=job_id)["taskArns"])

    def described(arns: list[str]) -> list[dict[str, Any]]:
        return list(ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"])

    arns = wait_for(
        lambda: (found := job_tasks()) and len(found) == ITEMS and found, f"{ITEMS} tasks of {job_id}"
    )
    wait_for(lambda: all(task["lastStatus"] == "RUNNING" for task in described(arns)), "the tasks to run")

    # AND the job is aborted (`spotmap local abort`) while its status-change event is lost
    execution_arn = cloud.stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
    dropped_before = cloud.events.dropped
    assert spotmap_main(["local", "abort", job_id, "--endpoint-url", cloud.endpoint]) == 0
    capsys.readouterr()
    wait_for(lambda: sfn.describe_execution(executionArn=execution_arn)["status"] == "ABORTED", "the abort")
    wait_for(lambda: cloud.events.dropped > dropped_before, "the ABORTED status event to be dropped")
    # so StopJobTasks never ran, and nothing else stops the tasks
    assert [task["desiredStatus"] for task in described(arns)] == ["RUNNING"] * ITEMS

    # WHEN the scheduled Reconcile runs
    def reconcile() -> dict[str, Any]:
        response = lambda_client.invoke(
            FunctionName=cloud.stack.functions["ReconcileFunction"].name,
            Payload=json.dumps(load_event("reconcile_scheduled.json")).encode(),
        )
        payload = response["Payload"].read()
        assert "FunctionError" not in response, payload[:3000]
        return dict(json.loads(payload))

    report = reconcile()

    # THEN it stopped the job's tasks, saying why, and wrote the job's ABORTED summary
    assert job_tasks() == [], report
    assert report["tasks_stopped"] == ITEMS and report["task_sweeps_failed"] == 0, report
    for task in described(arns):
        assert task["desiredStatus"] == "STOPPED"
        assert task["stoppedReason"] == f"spotmap: job {job_id} ABORTED (reconciled)"
    wait_for(lambda: all(task["lastStatus"] == "STOPPED" for task in described(arns)), "the tasks to stop")
    summary = json.loads(
        s3.get_object(Bucket=cloud.stack.bucket, Key=layout.summary_key(job_id))["Body"].read()
    )
    assert summary["status"] == "ABORTED"

    # AND its next run has nothing left to stop
    assert reconcile()["tasks_stopped"] == 0
