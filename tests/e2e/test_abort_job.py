"""Aborting a job stops its worker tasks: Step Functions does not stop ECS tasks a Lambda function
launched, so StopJobTasks must, through an ECS API that refuses what AWS refuses (ListTasks accepts
startedBy only as the sole filter)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.events import STATUS_CHANGE
from spotmap.jobs import JobRunner
from tests.e2e.conftest import wait_for

ITEMS = 2


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    params = {"PollMinSeconds": "1", "PollMaxSeconds": "2"}
    options = CloudOptions(parameters=params, run_schedules=False, state_dir=tmp_path_factory.mktemp("state"))
    with LocalCloud(options=options) as running:
        yield running



def test_aborting_a_running_job_stops_its_tasks(cloud: LocalCloud, tmp_path: Path) -> None:
    # GIVEN a job of two items whose worker tasks run for ten minutes, both RUNNING
    manifest = tmp_path / "long-running.job.json"
    manifest.write_text(
        json.dumps({"processor": "noop", "params": {"sleep_seconds": 600}, "source": {"count": ITEMS}})
    )
    watch = JobRunner(cloud, progress=None).submit(manifest)
    assert watch.job_id and watch.execution_arn
    ecs = cloud.client("ecs")
    cluster = cloud.stack.cluster_arn

    def running_tasks() -> list[str] | None:
        arns: list[str] = ecs.list_tasks(cluster=cluster, startedBy=watch.job_id)["taskArns"]
        if len(arns) < ITEMS:
            return None
        described = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
        return arns if all(task["lastStatus"] == "RUNNING" for task in described) else None

    arns = wait_for(running_tasks, f"{ITEMS} running tasks of job {watch.job_id}")

    # WHEN the job's execution is aborted
    cloud.client("stepfunctions").stop_execution(executionArn=watch.execution_arn, cause="test: abort")

    # THEN StopJobTasks stops every task of the job, as a user-initiated stop naming the job's status
    def stopped() -> list[dict[str, Any]] | None:
        described: list[dict[str, Any]] = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
        return described if all(task["desiredStatus"] == "STOPPED" for task in described) else None

    described = wait_for(stopped, "the tasks of the aborted job to be stopped (see StopJobTasks' log)")
    assert {task["stopCode"] for task in described} == {"UserInitiated"}
    assert {task["stoppedReason"] for task in described} == {f"spotmap: job {watch.job_id} ABORTED"}
    assert ecs.list_tasks(cluster=cluster, startedBy=watch.job_id)["taskArns"] == []

    # AND the same status event delivered again (delivery is at least once) stops nothing more
    event = next(
        event
        for _rule, event in cloud.events.delivered
        if event["detail-type"] == STATUS_CHANGE
        and event["detail"]["executionArn"] == watch.execution_arn
        and event["detail"]["status"] == "ABORTED"
    )
    response = cloud.client("lambda").invoke(
        FunctionName=cloud.stack.functions["StopJobTasksFunction"].name, Payload=json.dumps(event).encode()
    )
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read())["stopped"] == 0
