"""RecordFailure turns the Catch's {Error, Cause} into a readable reason and a failed outcome."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from jobcore import aws as factory
from jobcore import layout
from jobcore.failures import failure_reason
from jobcore.job_store import JobStore
from jobcore.launch_retries import LaunchRetries, write_tally
from record_failure import app
from tests.conftest import load_event
from tests.unit.conftest import BUCKET, CLUSTER_ARN


@pytest.fixture
def ecs(s3: Any) -> Iterator[Stubber]:
    with Stubber(factory.ecs()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def failed_outcome(s3: Any, state: dict[str, Any]) -> dict[str, Any]:
    key = layout.outcome_key(state["job_id"], state["item"]["index"], "FAILED")
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def test_capacity_failure_after_retries(ecs: Stubber, s3: Any, lambda_context: Any) -> None:
    # GIVEN an item whose Launch ran out of retries on CapacityUnavailable while its task was RUNNING,
    # the launch's tally saying RunTask found no capacity 8 times and throttled it 5 times
    state = load_event("record_failure.json")
    tally = LaunchRetries(
        index=3, attempt=state["attempt"] + 1, capacity_retries=8, throttled_run_task_calls=5
    )
    write_tally(JobStore(s3, BUCKET, state["job_id"]), tally)
    ecs.add_response(
        "stop_task",
        {"task": {}},
        {"cluster": CLUSTER_ARN, "task": state["task_arn"], "reason": "spotmap: item failed"},
    )

    # WHEN RecordFailure runs
    result = app.lambda_handler(state, lambda_context)

    # THEN the reason is readable, the counts come from the tally, the task stopped, the outcome written
    assert result["status"] == "FAILED"
    assert result["reason"].startswith("CapacityUnavailable: Capacity is unavailable at this time")
    assert result["capacity_retries"] == 8 and result["throttled_run_task_calls"] == 5
    recorded = failed_outcome(s3, state)
    assert recorded["reason"] == result["reason"] and recorded["capacity_retries"] == 8
    assert recorded["throttled_run_task_calls"] == 5
    assert recorded["usage"]["state_transitions"] == state["usage"]["state_transitions"] + 2


def test_counts_are_never_read_out_of_the_message(ecs: Stubber, s3: Any, lambda_context: Any) -> None:
    # GIVEN a caught error whose message mentions retries, and no tally of the launch
    state = load_event("record_failure.json")
    state["error"]["Cause"] = json.dumps(
        {"errorMessage": "no capacity (on FARGATE, after 8 retries)", "errorType": "CapacityUnavailable"}
    )
    ecs.add_response("stop_task", {"task": {}})

    # WHEN RecordFailure runs
    result = app.lambda_handler(state, lambda_context)

    # THEN the message is the reason, and counts nothing (issue #12: retry counts travel as fields)
    assert result["reason"] == "CapacityUnavailable: no capacity (on FARGATE, after 8 retries)"
    assert result["capacity_retries"] == 0 and result["throttled_run_task_calls"] == 0


def test_lambda_timeout_has_a_reason_of_its_own(ecs: Stubber, s3: Any, lambda_context: Any) -> None:
    state = load_event("record_failure_timeout.json")
    ecs.add_response("stop_task", {"task": {}})
    result = app.lambda_handler(state, lambda_context)
    assert result["reason"] == "States.Timeout: the Lambda function did not answer in time"
    assert failed_outcome(s3, state)["status"] == "FAILED"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            {
                "Error": "AttemptsExhausted",
                "Cause": json.dumps(
                    {"errorMessage": "item 3 used 4 of 4 attempts", "errorType": "AttemptsExhausted"}
                ),
            },
            "AttemptsExhausted: item 3 used 4 of 4 attempts",
        ),
        (
            {
                "Error": "Lambda.Unknown",
                "Cause": "The cause could not be determined because Lambda did not return",
            },
            "Lambda.Unknown: The cause could not be determined because Lambda did not return",
        ),
        (
            {
                "Error": "States.TaskFailed",
                "Cause": json.dumps({"errorMessage": "boom", "errorType": "KeyError"}),
            },
            "KeyError: boom",
        ),
        (None, "failed (no error recorded)"),
    ],
)
def test_failure_reasons(error: dict[str, str] | None, reason: str) -> None:
    assert failure_reason(error)[0] == reason
