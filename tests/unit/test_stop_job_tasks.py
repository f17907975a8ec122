"""StopJobTasks stops the tasks a failed, timed-out or aborted job started (moto's ECS)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from jobcore import aws as factory
from jobcore.errors import StopTasksThrottled
from stop_job_tasks import app
from tests.conftest import load_event
from tests.unit.conftest import CLUSTER_ARN


@pytest.fixture
def cluster(aws: None) -> Any:
    """The worker cluster with tasks of two jobs (moto runs them on plain FARGATE, bridge networking)."""
    ecs = factory.ecs()
    ecs.create_cluster(clusterName="spotmap-WorkerCluster")
    definition = ecs.register_task_definition(
        family="spotmap-worker",
        cpu="1024",
        memory="2048",
        containerDefinitions=[{"name": "worker", "image": "worker", "memory": 2048}],
    )["taskDefinition"]["taskDefinitionArn"]
    job_id = load_event("stop_job_tasks_aborted.json")["detail"]["name"]
    for started_by, count in ((job_id, 3), ("another-job-0123456789abcdef", 2)):
        ecs.run_task(
            cluster="spotmap-WorkerCluster",
            taskDefinition=definition,
            count=count,
            launchType="FARGATE",
            startedBy=started_by,
        )
    return ecs


def tasks_of(ecs: Any, started_by: str, desired_status: str) -> list[dict[str, Any]]:
    """The job's tasks with that desired status. (ListTasks takes startedBy only as its sole filter, as
    AWS requires; moto lists stopped tasks too when desiredStatus is omitted, AWS only RUNNING ones.)"""
    arns = ecs.list_tasks(cluster="spotmap-WorkerCluster", startedBy=started_by)["taskArns"]
    described = ecs.describe_tasks(cluster="spotmap-WorkerCluster", tasks=arns)["tasks"] if arns else []
    return [task for task in described if task["desiredStatus"] == desired_status]


def running(ecs: Any, started_by: str) -> list[dict[str, Any]]:
    return tasks_of(ecs, started_by, "RUNNING")


def test_aborted_job_tasks_are_stopped_and_others_left_alone(cluster: Any, lambda_context: Any) -> None:
    # GIVEN an aborted job with three running tasks, and another job's two
    event = load_event("stop_job_tasks_aborted.json")
    job_id = event["detail"]["name"]

    # WHEN StopJobTasks handles the status change
    first = app.lambda_handler(event, lambda_context)

    # THEN the job's tasks are stopped with a reason naming it, and nothing else was touched (that a
    # repeated event stops nothing more is tested against the local Fargate: tests/e2e/test_abort_job.py)
    assert first["stopped"] == 3
    assert running(cluster, job_id) == []
    assert len(running(cluster, "another-job-0123456789abcdef")) == 2
    stopped = tasks_of(cluster, job_id, "STOPPED")
    assert {task["stoppedReason"] for task in stopped} == {f"spotmap: job {job_id} ABORTED"}


@pytest.mark.parametrize("event_name", ["summarize_succeeded.json", "summarize_child_execution.json"])
def test_succeeded_jobs_and_child_executions_stop_nothing(
    cluster: Any, lambda_context: Any, event_name: str
) -> None:
    event = load_event(event_name)
    assert app.lambda_handler(event, lambda_context)["stopped"] == 0
    assert len(running(cluster, load_event("stop_job_tasks_aborted.json")["detail"]["name"])) == 3


def test_a_task_still_throttled_fails_the_invocation_after_the_others_are_stopped(
    aws: None, lambda_context: Any
) -> None:
    # GIVEN an aborted job with two running tasks, and ECS throttling StopTask for the first one beyond
    # the SDK's retries (StopTask shares the "cluster resource modify" bucket with RunTask)
    event = load_event("stop_job_tasks_aborted.json")
    job_id = event["detail"]["name"]
    arns = [f"{CLUSTER_ARN.replace(':cluster/', ':task/')}/{index:032x}" for index in range(2)]
    with Stubber(factory.ecs()) as ecs:
        ecs.add_response("list_tasks", {"taskArns": arns}, {"cluster": CLUSTER_ARN, "startedBy": job_id})
        ecs.add_client_error(
            "stop_task", service_error_code="ThrottlingException", service_message="Rate exceeded"
        )
        ecs.add_response("stop_task", {"task": {}})

        # WHEN StopJobTasks handles the status change
        with pytest.raises(StopTasksThrottled) as raised:
            app.lambda_handler(event, lambda_context)

        # THEN the other task was stopped, and the invocation fails naming the task still running, so
        # that the event's delivery is retried (a retry lists, and stops, only what still runs)
        ecs.assert_no_pending_responses()
    assert f"StopTask stayed throttled for 1 task(s) of job {job_id} (1 stopped): {arns[0]}" == str(
        raised.value
    )
