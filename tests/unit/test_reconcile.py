"""Reconcile writes the summaries that lost status events never produced."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobcore import aws as factory
from reconcile import app
from tests.conftest import load_event
from tests.unit.conftest import BUCKET, CLUSTER_ARN, STATE_MACHINE_ARN
from tests.unit.job_builder import put_descriptor, put_success, rows


def start(sfn: Any, name: str) -> str:
    return sfn.start_execution(stateMachineArn=STATE_MACHINE_ARN, name=name, input="{}")["executionArn"]


def test_closed_executions_without_summary_get_one(s3: Any, sfn: Any, ecs: Any, lambda_context: Any) -> None:
    # GIVEN three jobs: one closed without summary, one closed with a summary, one still running
    for job_id in ("lost-event", "summarised", "running"):
        put_descriptor(s3, job_id, 1)
        put_success(s3, job_id, 0, rows(2, 1.0, 3.0))
    for job_id in ("lost-event", "summarised"):
        sfn.stop_execution(executionArn=start(sfn, job_id))
    start(sfn, "running")
    s3.put_object(Bucket=BUCKET, Key="summaries/summarised.json", Body=b'{"kept": true}')

    # WHEN the reconciler runs on its schedule
    report = app.lambda_handler(load_event("reconcile_scheduled.json"), lambda_context)

    # THEN only the missing summary was written, and the existing one is untouched
    assert report == {
        "checked": 3,
        "already_summarized": 1,
        "written": 1,
        "failed": 0,
        "tasks_stopped": 0,
        "task_sweeps_failed": 0,
    }
    written = json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/lost-event.json")["Body"].read())
    assert written["status"] == "ABORTED" and written["result"]["rows"] == 2
    assert written["timing"]["started_at"] is not None
    assert json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/summarised.json")["Body"].read()) == {
        "kept": True
    }
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="summaries/running")["KeyCount"] == 0

    # AND a second run has nothing left to do
    again = app.lambda_handler(load_event("reconcile_scheduled.json"), lambda_context)
    assert again["written"] == 0 and again["already_summarized"] == 2


# ------------------------------------------------------------------ tasks of closed jobs
@pytest.fixture
def ecs(aws: None) -> Any:
    """The worker cluster (moto runs its tasks on plain FARGATE) and the ListTasks requests made."""
    client = factory.ecs()
    client.create_cluster(clusterName="spotmap-WorkerCluster")
    client.register_task_definition(
        family="spotmap-worker",
        cpu="1024",
        memory="2048",
        containerDefinitions=[{"name": "worker", "image": "worker", "memory": 2048}],
    )
    requests: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        requests.append(dict(params))

    client.meta.events.register("provide-client-params.ecs.ListTasks", capture)
    client.list_tasks_requests = requests
    yield client
    client.meta.events.unregister("provide-client-params.ecs.ListTasks", capture)


def run_tasks(ecs: Any, job_id: str, count: int) -> list[str]:
    response = ecs.run_task(
        cluster=CLUSTER_ARN,
        taskDefinition="spotmap-worker",
        count=count,
        launchType="FARGATE",
        startedBy=job_id,
    )
    return [task["taskArn"] for task in response["tasks"]]


def described(ecs: Any, arns: list[str]) -> list[dict[str, Any]]:
    return list(ecs.describe_tasks(cluster=CLUSTER_ARN, tasks=arns)["tasks"])


def test_tasks_of_an_aborted_job_are_stopped_even_when_its_summary_exists(
    s3: Any, sfn: Any, ecs: Any, lambda_context: Any
) -> None:
    # GIVEN an aborted job whose tasks still run (StopJobTasks never got its status event; Summarize did),
    # an aborted job without a summary and a running job, each with two tasks
    tasks = {}
    for job_id in ("aborted-summarised", "aborted-lost", "running"):
        put_descriptor(s3, job_id, 1)
        put_success(s3, job_id, 0, rows(2, 1.0, 3.0))
        tasks[job_id] = run_tasks(ecs, job_id, 2)
    for job_id in ("aborted-summarised", "aborted-lost"):
        sfn.stop_execution(executionArn=start(sfn, job_id))
    start(sfn, "running")
    s3.put_object(Bucket=BUCKET, Key="summaries/aborted-summarised.json", Body=b'{"kept": true}')
    ecs.list_tasks_requests.clear()

    # WHEN the reconciler runs on its schedule
    report = app.lambda_handler(load_event("reconcile_scheduled.json"), lambda_context)

    # THEN the tasks of both aborted jobs are stopped, with a reason naming the job and its status
    assert report["tasks_stopped"] == 4 and report["task_sweeps_failed"] == 0, report
    for job_id in ("aborted-summarised", "aborted-lost"):
        assert [task["desiredStatus"] for task in described(ecs, tasks[job_id])] == ["STOPPED", "STOPPED"]
        reasons = {task["stoppedReason"] for task in described(ecs, tasks[job_id])}
        assert reasons == {f"spotmap: job {job_id} ABORTED (reconciled)"}
    # AND the running job's tasks are left alone
    assert [task["desiredStatus"] for task in described(ecs, tasks["running"])] == ["RUNNING", "RUNNING"]
    # AND ListTasks was asked by startedBy alone: ECS rejects startedBy combined with another filter
    # (moto does not, and lists stopped tasks too where ECS lists desiredStatus RUNNING by default: the
    # local cloud's e2e test checks that a second run stops nothing)
    assert [sorted(request) for request in ecs.list_tasks_requests] == [["cluster", "startedBy"]] * 2
    swept = {request["startedBy"] for request in ecs.list_tasks_requests}
    assert swept == {"aborted-summarised", "aborted-lost"}


def test_one_summary_it_may_not_see_does_not_end_the_run(s3: Any, sfn: Any, lambda_context: Any) -> None:
    # GIVEN two closed jobs without summary, S3 answering 403 for the first one's summary (as it
    # answers a missing key to a role that may not list it)
    from botocore.exceptions import ClientError

    from jobcore.reconciling import reconcile

    for job_id in ("hidden", "lost-event"):
        put_descriptor(s3, job_id, 1)
        put_success(s3, job_id, 0, rows(2, 1.0, 3.0))
        sfn.stop_execution(executionArn=start(sfn, job_id))

    def forbidden(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == "summaries/hidden.json":
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")

    s3.meta.events.register("provide-client-params.s3.HeadObject", forbidden)

    # WHEN the reconciler runs
    report = reconcile(s3, sfn, BUCKET, STATE_MACHINE_ARN)

    # THEN that job counts as failed and the other one still gets its summary
    assert (report.failed, report.written) == (1, 1)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="summaries/lost-event.json")["KeyCount"] == 1
