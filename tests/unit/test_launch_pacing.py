"""A throttled launch waits its turn on Spot; a capacity shortage moves it to on-demand.

LaunchTask makes one RunTask call per invocation; the state machine's Retry re-invokes it (these tests
play the state machine: the same input, `retry_count` = $$.State.RetryCount). What RunTask refused
travels as fields (jobcore.launch_retries), never parsed out of messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.stub import Stubber

from jobcore import aws as factory
from jobcore import errors
from jobcore.job_store import JobStore
from jobcore.launch_retries import LaunchRetries, read_tally, write_tally
from launch_task import app
from tests.conftest import load_event
from tests.unit.conftest import BUCKET, CAPACITY_REASON, TASK_ARN

CAPACITY_RETRIES_BEFORE_ON_DEMAND = 3  # tests/unit/conftest.py FUNCTION_ENV

# the launch client is stubbed (the `ecs` fixture); S3 is moto's, where the launch tallies live
pytestmark = pytest.mark.usefixtures("s3")


def throttle(stubber: Stubber) -> None:
    stubber.add_client_error(
        "run_task", service_error_code="ThrottlingException", service_message="Rate exceeded"
    )


def no_capacity(stubber: Stubber) -> None:
    stubber.add_response("run_task", {"tasks": [], "failures": [{"reason": CAPACITY_REASON}]})


def start(stubber: Stubber) -> None:
    stubber.add_response("run_task", {"tasks": [{"taskArn": TASK_ARN}], "failures": []})


def play_the_state_machine(event: dict[str, Any], lambda_context: Any, tries: int) -> dict[str, Any]:
    """Invoke LaunchTask as the Launch state's retriers do: the same input each time, RetryCount up by
    one per retry, until an invocation returns. Each failed try must be one the ASL retries."""
    for retry_count in range(tries):
        try:
            return app.lambda_handler({**event, "retry_count": retry_count}, lambda_context)
        except (errors.LaunchThrottled, errors.CapacityUnavailable):
            continue
    raise AssertionError(f"no launch after {tries} tries")


def test_a_launch_throttled_many_times_waits_on_spot_with_one_client_token(
    ecs: Any, lambda_context: Any
) -> None:
    # GIVEN RunTask throttling an item's launch 20 times (far more than CapacityRetriesBeforeOnDemand,
    # and more than the 14 tries the old retrier allowed) before it has room
    stubber, requests = ecs
    for _ in range(20):
        throttle(stubber)
    start(stubber)
    event = load_event("launch_task.json")

    # WHEN the state machine retries LaunchThrottled until the launch goes through
    state = play_the_state_machine(event, lambda_context, tries=21)

    # THEN every try asked for the same Spot task with the same clientToken (a retried launch is
    # idempotent), and the task runs on Spot: throttling is about rate, not capacity
    assert len(requests) == 21
    assert {request["clientToken"] for request in requests} == {requests[0]["clientToken"]}
    assert {request["capacityProviderStrategy"][0]["capacityProvider"] for request in requests} == {
        "FARGATE_SPOT"
    }
    assert state["capacity"] == "FARGATE_SPOT" and state["on_demand_fallbacks"] == 0
    # AND the throttled calls are counted as such, as fields, and none as a capacity retry
    assert state["throttled_run_task_calls"] == 20
    assert state["capacity_retries"] == 0
    # AND each try was an invocation and a transition of its own
    assert state["usage"]["lambda_invocations"] == 21 and state["usage"]["state_transitions"] == 21


@pytest.mark.parametrize(
    ("shortages", "capacity"),
    [
        (CAPACITY_RETRIES_BEFORE_ON_DEMAND - 1, "FARGATE_SPOT"),
        (CAPACITY_RETRIES_BEFORE_ON_DEMAND, "FARGATE"),
    ],
)
def test_capacity_shortages_move_the_launch_to_on_demand_exactly_at_the_threshold(
    ecs: Any, lambda_context: Any, shortages: int, capacity: str
) -> None:
    # GIVEN RunTask throttling the launch 5 times, then finding no Spot capacity `shortages` times
    stubber, requests = ecs
    for _ in range(5):
        throttle(stubber)
    for _ in range(shortages):
        no_capacity(stubber)
    start(stubber)

    # WHEN the state machine retries until the launch goes through
    state = play_the_state_machine(load_event("launch_task.json"), lambda_context, tries=5 + shortages + 1)

    # THEN only the shortages count towards on-demand: at CapacityRetriesBeforeOnDemand, not before
    assert requests[-1]["capacityProviderStrategy"] == [{"capacityProvider": capacity, "weight": 1}]
    assert state["capacity"] == capacity
    assert state["on_demand_fallbacks"] == (1 if capacity == "FARGATE" else 0)
    assert state["capacity_retries"] == shortages and state["throttled_run_task_calls"] == 5


def test_the_counts_of_a_launch_add_to_those_of_earlier_launches(ecs: Any, lambda_context: Any) -> None:
    # GIVEN an item relaunched after a Spot interruption, whose first launch was throttled 7 times
    stubber, _ = ecs
    throttle(stubber)
    throttle(stubber)
    start(stubber)
    event = load_event("launch_task.json")
    event["state"].update(attempt=1, spot_interruptions=1, throttled_run_task_calls=7, capacity_retries=1)

    # WHEN its second launch is throttled twice
    state = play_the_state_machine(event, lambda_context, tries=3)

    # THEN the item's counts are the sum over its launches
    assert state["attempt"] == 2
    assert state["throttled_run_task_calls"] == 9 and state["capacity_retries"] == 1


def test_a_launch_throttled_until_the_item_timeout_fails_with_a_clear_reason(
    ecs: Any, lambda_context: Any
) -> None:
    # GIVEN a launch RunTask has throttled 812 times since just over ItemTimeoutMinutes (240) ago
    stubber, requests = ecs
    event = load_event("launch_task.json")
    since = datetime.now(timezone.utc) - timedelta(minutes=240, seconds=1)
    tally = LaunchRetries(index=3, attempt=1, throttled_run_task_calls=812, waiting_since=since)
    write_tally(JobStore(factory.s3(), BUCKET, event["state"]["job_id"]), tally)

    # WHEN the state machine retries it once more
    # THEN the item's own timeout ends the wait: LaunchTimedOut (caught, not retried), saying why
    with pytest.raises(errors.LaunchTimedOut) as raised:
        app.lambda_handler({**event, "retry_count": 812}, lambda_context)
    assert str(raised.value).startswith(
        "timed out after 240 minutes waiting to launch: RunTask was throttled 812 times"
    )
    assert requests == []  # no RunTask once the item has timed out


def test_a_launch_still_within_the_item_timeout_keeps_trying(ecs: Any, lambda_context: Any) -> None:
    # GIVEN a launch throttled for 239 of its 240 minutes
    stubber, requests = ecs
    start(stubber)
    event = load_event("launch_task.json")
    since = datetime.now(timezone.utc) - timedelta(minutes=239)
    tally = LaunchRetries(index=3, attempt=1, throttled_run_task_calls=700, waiting_since=since)
    write_tally(JobStore(factory.s3(), BUCKET, event["state"]["job_id"]), tally)

    # WHEN the state machine retries it THEN RunTask is asked again, and this time the task starts
    state = app.lambda_handler({**event, "retry_count": 700}, lambda_context)
    assert len(requests) == 1 and state["status"] == "RUNNING"
    assert state["throttled_run_task_calls"] == 700


def test_each_refusal_is_tallied_before_the_error_is_raised(ecs: Any, lambda_context: Any) -> None:
    # GIVEN RunTask throttling, then finding no capacity
    stubber, _ = ecs
    throttle(stubber)
    no_capacity(stubber)
    event = load_event("launch_task.json")
    job_id = event["state"]["job_id"]

    # WHEN LaunchTask is tried twice, raising each time
    with pytest.raises(errors.LaunchThrottled):
        app.lambda_handler({**event, "retry_count": 0}, lambda_context)
    with pytest.raises(errors.CapacityUnavailable):
        app.lambda_handler({**event, "retry_count": 1}, lambda_context)

    # THEN the tally in S3 (what survives the raised errors and the retries) says what happened, apart
    tally = read_tally(JobStore(factory.s3(), BUCKET, job_id), 3, 1)
    assert tally.throttled_run_task_calls == 1 and tally.capacity_retries == 1
    assert tally.waiting_since is not None
