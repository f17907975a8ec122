"""PollTask: every way a task can end, classified; outcomes written; waits adaptive.

DescribeTasks is stubbed at the factory's client (moto's ECS has no stopCode or Spot); S3 is moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.stub import Stubber

from jobcore import aws as factory
from jobcore import errors, layout
from poll_task import app
from tests.conftest import load_event
from tests.unit.conftest import BUCKET, CLUSTER_ARN


@pytest.fixture
def ecs(s3: Any) -> Iterator[Stubber]:
    with Stubber(factory.ecs()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def state() -> dict[str, Any]:
    return load_event("poll_task.json")


def task(state: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A DescribeTasks task of the item's 1 vCPU / 2 GB task definition, as of now."""
    now = datetime.now(timezone.utc)
    described = {
        "taskArn": state["task_arn"],
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "cpu": "1024",
        "memory": "2048",
        "capacityProviderName": "FARGATE_SPOT",
        "createdAt": now - timedelta(seconds=130),
        "startedAt": now - timedelta(seconds=100),
        "containers": [{"name": "worker", "lastStatus": "RUNNING"}],
    }
    described.update(fields)
    return described


# Fargate bills from the start of the image pull (jobcore.billing): a stopped task's usage is its run
# time plus this pull, at least a minute.
PULL_SECONDS = 30


def stopped(
    state: dict[str, Any], exit_code: int | None, seconds: float = 600, **fields: Any
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "worker", "lastStatus": "STOPPED"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if "reason" in fields:
        container["reason"] = fields.pop("reason")
    started = datetime.now(timezone.utc) - timedelta(seconds=seconds + 5)
    return task(
        state,
        lastStatus="STOPPED",
        desiredStatus="STOPPED",
        # as ECS describes a task that ran: created, then its image pulled for PULL_SECONDS, then started
        createdAt=started - timedelta(seconds=PULL_SECONDS + 2),
        pullStartedAt=started - timedelta(seconds=PULL_SECONDS),
        startedAt=started,
        stoppedAt=started + timedelta(seconds=seconds),
        containers=[container],
        **fields,
    )


def describe(ecs: Stubber, state: dict[str, Any], described: dict[str, Any]) -> None:
    ecs.add_response(
        "describe_tasks",
        {"tasks": [described], "failures": []},
        {"cluster": CLUSTER_ARN, "tasks": [state["task_arn"]]},
    )


def put_result(s3: Any, state: dict[str, Any]) -> None:
    key = layout.result_key(state["job_id"], state["item"]["index"])
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"partial": null}')


def outcome(s3: Any, state: dict[str, Any], status: str) -> dict[str, Any]:
    key = layout.outcome_key(state["job_id"], state["item"]["index"], status)
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def outcomes(s3: Any, state: dict[str, Any]) -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=layout.outcomes_prefix(state["job_id"]))
    return [entry["Key"] for entry in listing.get("Contents", [])]


def test_running_task_waits_geometrically_without_an_expectation(
    ecs: Stubber, state: dict[str, Any], lambda_context: Any
) -> None:
    # GIVEN a task running for 100 s and no finished item in the job
    describe(ecs, state, task(state))

    # WHEN PollTask runs
    result = app.lambda_handler(state, lambda_context)

    # THEN it is RUNNING, waits half the elapsed time, and counts this poll cycle
    assert result["status"] == "RUNNING"
    assert 50 <= result["wait_seconds"] <= 52  # half of the ~100 s elapsed, rounded up
    assert result["polls"] == 1
    assert result["usage"]["state_transitions"] == state["usage"]["state_transitions"] + 3
    assert result["usage"]["lambda_invocations"] == state["usage"]["lambda_invocations"] + 1


def test_running_task_waits_until_the_expected_end(
    s3: Any, ecs: Stubber, state: dict[str, Any], lambda_context: Any
) -> None:
    # GIVEN two finished items of the job that ran 300 s and 340 s
    for index, seconds in ((0, 300.0), (1, 340.0)):
        s3.put_object(
            Bucket=BUCKET,
            Key=layout.outcome_key(state["job_id"], index, "SUCCEEDED"),
            Body=json.dumps({"index": index, "status": "SUCCEEDED", "task_seconds": seconds}),
        )
    describe(ecs, state, task(state))

    # WHEN PollTask sees this one at 100 s
    result = app.lambda_handler(state, lambda_context)

    # THEN it waits about until the median end (320 s)
    assert result["expected_seconds"] == 320.0
    assert 215 <= result["wait_seconds"] <= 220


def test_a_task_past_the_item_timeout_is_stopped_and_fails(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    # GIVEN a task running for longer than ITEM_TIMEOUT_MINUTES (240)
    describe(ecs, state, task(state, startedAt=datetime.now(timezone.utc) - timedelta(minutes=241)))
    ecs.add_response(
        "stop_task",
        {"task": {"taskArn": state["task_arn"]}},
        {
            "cluster": CLUSTER_ARN,
            "task": state["task_arn"],
            "reason": "spotmap: item timed out after 240 minutes",
        },
    )

    # WHEN PollTask runs
    result = app.lambda_handler(state, lambda_context)

    # THEN the task was stopped and the item failed as timed out, its outcome written
    assert result["status"] == "FAILED" and result["reason"] == "timed out after 240 minutes"
    assert outcome(s3, state, "FAILED")["reason"] == "timed out after 240 minutes"


def test_spot_interruption_relaunches(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    # GIVEN a Spot task stopped by an interruption (SIGTERM → 143)
    describe(
        ecs,
        state,
        stopped(
            state,
            143,
            seconds=400,
            stopCode="SpotInterruption",
            stoppedReason="Your Spot Task was interrupted.",
        ),
    )

    # WHEN PollTask runs
    result = app.lambda_handler(state, lambda_context)

    # THEN the item goes back to Launch, the interruption counted, the Spot time paid for, no outcome
    assert result["status"] == "INTERRUPTED" and result["spot_interruptions"] == 1
    # (billed from the image pull: 400 s of run + 30 s of pull, was 400 before the pull was billed)
    assert result["usage"]["spot_vcpu_seconds"] == pytest.approx(400 + PULL_SECONDS)
    assert result["usage"]["spot_gb_seconds"] == pytest.approx(2 * (400 + PULL_SECONDS))
    assert outcomes(s3, state) == []


def test_interrupted_after_writing_the_result_is_a_success(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    put_result(s3, state)
    describe(
        ecs,
        state,
        stopped(state, 0, stopCode="SpotInterruption", stoppedReason="Your Spot Task was interrupted."),
    )
    assert app.lambda_handler(state, lambda_context)["status"] == "SUCCEEDED"


def test_exit_0_with_a_result_succeeds_and_records_usage(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    # GIVEN a task on on-demand FARGATE that exited 0 after writing its result
    put_result(s3, state)
    describe(
        ecs,
        state,
        stopped(state, 0, seconds=600, capacityProviderName="FARGATE", stopCode="EssentialContainerExited"),
    )

    # WHEN PollTask runs
    result = app.lambda_handler(state, lambda_context)

    # THEN the item succeeded and its outcome carries the task's duration and on-demand usage
    assert result["status"] == "SUCCEEDED" and result["reason"] is None
    recorded = outcome(s3, state, "SUCCEEDED")
    assert recorded["task_seconds"] == pytest.approx(600)
    # billed from the image pull (jobcore.billing): the run's 600 s and the pull's 30 s (was 600)
    assert recorded["usage"]["on_demand_vcpu_seconds"] == pytest.approx(600 + PULL_SECONDS)
    assert recorded["usage"]["on_demand_gb_seconds"] == pytest.approx(2 * (600 + PULL_SECONDS))
    assert recorded["usage"]["state_transitions"] == state["usage"]["state_transitions"] + 4
    assert recorded["attempts"] == 1


def test_a_succeeded_items_output_carries_its_outcome_record(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    # GIVEN a task that exited 0 after writing a result record with a partial result
    key = layout.result_key(state["job_id"], state["item"]["index"])
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"partial": {"rows": {"$sum": 7}}}).encode())
    describe(ecs, state, stopped(state, 0))

    # WHEN PollTask runs
    result = app.lambda_handler(state, lambda_context)

    # THEN its `outcome` (the child's output, via ItemSucceeded's OutputPath) is the outcome object
    assert result["status"] == "SUCCEEDED"
    assert result["outcome"] == outcome(s3, state, "SUCCEEDED")
    assert result["outcome"]["partial"] == {"rows": {"$sum": 7}}
    assert result["outcome"]["partial_omitted"] is False


def test_a_partial_too_large_for_a_state_output_is_left_out_of_it(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    # GIVEN a result record whose partial alone is larger than the outcome's share of a state output
    big = {"names": {"$list": ["x" * 1000] * 100, "$limit": 1000}}
    key = layout.result_key(state["job_id"], state["item"]["index"])
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"partial": big}).encode())
    describe(ecs, state, stopped(state, 0))

    # WHEN PollTask runs
    result = app.lambda_handler(state, lambda_context)

    # THEN the output's outcome says the partial was left out, and the outcome object still has it
    assert result["outcome"]["partial"] is None and result["outcome"]["partial_omitted"] is True
    assert len(json.dumps(result)) < 64 * 1024
    recorded = outcome(s3, state, "SUCCEEDED")
    assert recorded["partial"] == big and recorded["partial_omitted"] is False
    assert {**recorded, "partial": None, "partial_omitted": True} == result["outcome"]


def test_a_failed_items_output_carries_no_outcome(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    describe(ecs, state, stopped(state, 1))
    result = app.lambda_handler(state, lambda_context)
    assert result["status"] == "FAILED" and result["outcome"] is None


def test_exit_0_without_a_result_fails(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    describe(ecs, state, stopped(state, 0))
    result = app.lambda_handler(state, lambda_context)
    assert result["status"] == "FAILED"
    assert result["reason"] == "exited 0 but wrote no result record"
    assert outcome(s3, state, "FAILED")["reason"] == result["reason"]


@pytest.mark.parametrize(
    ("exit_code", "container_reason", "expected"),
    [
        (
            137,
            "OutOfMemoryError: Container killed due to memory usage",
            ["code 137", "killed (SIGKILL): out of memory or killed", "OutOfMemoryError"],
        ),
        (143, None, ["code 143", "terminated (SIGTERM)"]),
        (1, None, ["code 1", "error"]),
        (2, None, ["code 2", "error"]),
    ],
)
def test_non_zero_exit_names_the_code_its_class_and_the_log(
    ecs: Stubber,
    s3: Any,
    state: dict[str, Any],
    lambda_context: Any,
    exit_code: int,
    container_reason: str | None,
    expected: list[str],
) -> None:
    # GIVEN a task whose container exited non-zero
    fields = {"reason": container_reason} if container_reason else {}
    describe(ecs, state, stopped(state, exit_code, stopCode="EssentialContainerExited", **fields))

    # WHEN PollTask runs
    result = app.lambda_handler(state, lambda_context)

    # THEN the reason says what happened and where the task's log is in CloudWatch
    task_id = state["task_arn"].rsplit("/", 1)[1]
    log = f"CloudWatch Logs group /spotmap/spotmap/worker stream spotmap/worker/{task_id}"
    assert result["status"] == "FAILED" and result["log"] == log
    for text in [*expected, log]:
        assert text in result["reason"]
    assert outcome(s3, state, "FAILED")["log"] == log


def test_the_workers_error_message_and_local_log_file_are_in_the_reason(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the local cloud (task logs are files) and a worker that left its error message
    monkeypatch.setenv("LOCAL_TASK_LOG_DIR", "/tmp/spotmap/logs/tasks")
    app.settings.cache_clear()
    s3.put_object(
        Bucket=BUCKET,
        Key=layout.error_key(state["job_id"], state["item"]["index"], state["attempt"]),
        Body=json.dumps({"message": "invalid utf-8 at byte 1234 (line 3)", "exit_code": 1}),
    )
    describe(ecs, state, stopped(state, 1))

    # WHEN PollTask runs
    reason = app.lambda_handler(state, lambda_context)["reason"]

    # THEN the reason carries the message and the log file's path
    task_id = state["task_arn"].rsplit("/", 1)[1]
    assert "invalid utf-8 at byte 1234 (line 3)" in reason
    assert f"/tmp/spotmap/logs/tasks/{task_id}.log" in reason


def test_a_task_that_never_started_fails_with_the_stopped_reason(
    ecs: Stubber, state: dict[str, Any], lambda_context: Any
) -> None:
    described = stopped(
        state,
        None,
        stopCode="TaskFailedToStart",
        stoppedReason="CannotPullContainerError: pull image manifest has been retried 5 time(s)",
    )
    del described["startedAt"]
    describe(ecs, state, described)
    result = app.lambda_handler(state, lambda_context)
    assert result["status"] == "FAILED"
    assert "CannotPullContainerError" in result["reason"]


def test_a_task_ecs_no_longer_knows_fails_as_not_found(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    ecs.add_response(
        "describe_tasks", {"tasks": [], "failures": [{"arn": state["task_arn"], "reason": "MISSING"}]}
    )
    result = app.lambda_handler(state, lambda_context)
    assert result["status"] == "FAILED" and result["reason"].startswith("task not found")
    assert outcome(s3, state, "FAILED")["status"] == "FAILED"


def test_throttled_describe_tasks_raises_poll_throttled(
    ecs: Stubber, state: dict[str, Any], lambda_context: Any
) -> None:
    ecs.add_client_error(
        "describe_tasks", service_error_code="ThrottlingException", service_message="Rate exceeded"
    )
    with pytest.raises(errors.PollThrottled):
        app.lambda_handler(state, lambda_context)


def test_a_task_already_stopping_is_looked_at_again_soon(
    ecs: Stubber, state: dict[str, Any], lambda_context: Any
) -> None:
    describe(ecs, state, task(state, lastStatus="DEPROVISIONING", desiredStatus="STOPPED"))
    result = app.lambda_handler(state, lambda_context)
    assert result["status"] == "RUNNING" and result["wait_seconds"] == 10


def test_each_stopped_task_is_recorded_in_the_items_history_from_launch_to_stop(
    ecs: Stubber, s3: Any, state: dict[str, Any], lambda_context: Any
) -> None:
    # GIVEN an item whose first Spot task is interrupted and whose second, on on-demand, succeeds
    interrupted_task = stopped(
        state, 143, seconds=400, stopCode="SpotInterruption", stoppedReason="Your Spot Task was interrupted."
    )
    describe(ecs, state, interrupted_task)

    # WHEN PollTask sees the first task stopped, then (after a relaunch) the second
    first = app.lambda_handler(state, lambda_context)
    relaunched = {**first, "attempt": 2, "capacity": "FARGATE", "status": "RUNNING"}
    put_result(s3, state)
    succeeded_task = stopped(state, 0, seconds=300, capacityProviderName="FARGATE")
    describe(ecs, state, succeeded_task)
    second = app.lambda_handler(relaunched, lambda_context)

    # THEN the outcome record holds one entry per task: its capacity, launch (createdAt), stop and fate
    history = outcome(s3, state, "SUCCEEDED")["history"]
    assert [(entry["attempt"], entry["capacity"], entry["outcome"]) for entry in history] == [
        (1, "FARGATE_SPOT", "interrupted"),
        (2, "FARGATE", "succeeded"),
    ]
    for entry, described in zip(history, (interrupted_task, succeeded_task), strict=True):
        assert entry["launched_at"] == described["createdAt"].isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        )
        assert entry["stopped_at"] == described["stoppedAt"].isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        )
    assert second["outcome"]["history"] == history  # the copy the Map's result files carry
