"""Completion by task events (jobcore.completion): the stop event is classified exactly as PollTask
classifies DescribeTasks' answer (one function, stopped_tasks.classify_stopped), from the event's shape."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobcore import completion, launching, layout, stopped_tasks
from jobcore.config import LaunchSettings, PollSettings
from jobcore.job_store import JobStore
from jobcore.models import ItemState
from tests.conftest import load_event
from tests.unit.conftest import BUCKET

STOPPED_AT = datetime(2026, 11, 23, 10, 21, 3, 604000, tzinfo=timezone.utc)


def described(exit_code: int | None, stop_code: str, reason: str) -> dict[str, Any]:
    """A stopped task as DescribeTasks (boto3) describes it: timestamps are datetimes."""
    container: dict[str, Any] = {"name": "worker", "lastStatus": "STOPPED"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    return {
        "taskArn": load_event("poll_task.json")["task_arn"],
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "cpu": "1024",
        "memory": "2048",
        "capacityProviderName": "FARGATE_SPOT",
        "createdAt": STOPPED_AT - timedelta(seconds=1240),
        "startedAt": STOPPED_AT - timedelta(seconds=1200),
        "stoppedAt": STOPPED_AT,
        "stopCode": stop_code,
        "stoppedReason": reason,
        "containers": [container],
    }


def as_event_detail(task: dict[str, Any]) -> dict[str, Any]:
    """The same task as an ECS Task State Change event's detail carries it: ISO 8601 strings."""
    return {
        key: value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if isinstance(value, datetime)
        else value
        for key, value in task.items()
    }


CASES = {
    "succeeded": (0, "EssentialContainerExited", "Essential container in task exited", True),
    "spot-interrupted": (143, "SpotInterruption", "Your Spot Task was interrupted.", False),
    "failed": (1, "EssentialContainerExited", "Essential container in task exited", False),
    "never-ran": (None, "TaskFailedToStart", "CannotPullContainerError: pull access denied", False),
}


@pytest.mark.parametrize("case", CASES)
def test_an_event_is_classified_exactly_as_a_poll(s3: Any, case: str) -> None:
    exit_code, stop_code, reason, with_result = CASES[case]
    # GIVEN a stopped task (with a result record when it succeeded), and the item waiting for it
    state = ItemState.model_validate(load_event("poll_task.json"))
    if with_result:
        key = layout.result_key(state.job_id, state.item.index)
        s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"partial": {"rows": 3}}')
    settings = PollSettings.from_env()
    polled_task = described(exit_code, stop_code, reason)
    now = STOPPED_AT + timedelta(seconds=30)

    # WHEN PollTask's classification sees DescribeTasks' answer, and the event path sees the event
    store = JobStore.of(s3, state)
    by_poll = stopped_tasks.classify_stopped(
        store, settings, state, polled_task, now=now, started=time.perf_counter()
    )
    by_event = stopped_tasks.classify_stopped(
        store,
        settings,
        state,
        completion.normalise_task(as_event_detail(polled_task)),
        now=now,
        started=time.perf_counter(),
        transitions=completion.EVENT_TRANSITIONS,
    )

    # THEN both decide the same: status, reason, interruption, the task's run time, usage, history
    fields = ("status", "reason", "spot_interruptions", "task_seconds", "detection_delay_seconds", "history")
    assert by_event.state.model_dump(include=set(fields)) == by_poll.state.model_dump(include=set(fields))
    assert by_event.interrupted == by_poll.interrupted == (case == "spot-interrupted")
    # Fargate bills from the image pull (createdAt here: no pullStartedAt), 40 s before startedAt
    assert by_event.state.usage.spot_vcpu_seconds == by_poll.state.usage.spot_vcpu_seconds == 1240
    # AND the event path costs fewer state transitions (CheckTask, not a Wait/Poll/CheckTask cycle)
    spent = by_poll.state.usage.state_transitions - by_event.state.usage.state_transitions
    assert spent == stopped_tasks.POLL_TRANSITIONS - completion.EVENT_TRANSITIONS
    assert by_event.state.task_seconds == 1200 and by_event.state.detection_delay_seconds == 30


def test_the_event_names_the_waiting_item_and_its_token() -> None:
    # GIVEN the stop event of a task launched with a task token
    event = load_event("task_stopped.json")
    # WHEN read
    stopped, why_not = completion.stopped_task(event["detail"], "worker")
    # THEN it names the item's job, index, attempt and token, with the task's timestamps as datetimes
    assert why_not == "" and stopped is not None
    assert (stopped.job_id, stopped.index, stopped.attempt) == ("sales-2024-Q1-a17f332620eba499", 3, 1)
    assert stopped.token.startswith("AQCE")
    assert stopped.task["stoppedAt"] == STOPPED_AT
    # AND a task that is not STOPPED, or launched without a token, resumes nothing
    running = {**event["detail"], "lastStatus": "RUNNING"}
    assert completion.stopped_task(running, "worker")[0] is None
    overrides = {
        "containerOverrides": [{"name": "worker", "environment": [{"name": "JOB_ID", "value": "j"}]}]
    }
    assert completion.stopped_task({**event["detail"], "overrides": overrides}, "worker")[0] is None


def test_the_token_always_survives_the_overrides_budget(function_env: dict[str, str]) -> None:
    # GIVEN an item and a job descriptor far too large for ECS's 8,192 characters of overrides
    state = ItemState.model_validate(load_event("poll_task.json")).model_copy(
        update={"heartbeat_seconds": 120}
    )
    settings = LaunchSettings.from_env()
    token = "T" * 2048  # the longest task token the API allows
    always = completion.token_environment(token, state, settings)
    huge = "x" * 20_000
    # WHEN the overrides are built
    overrides = launching.container_overrides("worker", state, 1, job_json=huge, always=always)
    # THEN ITEM/JOB were left out, never the token nor its heartbeat settings
    environment = {e["name"]: e["value"] for e in overrides["containerOverrides"][0]["environment"]}
    assert environment[completion.TOKEN_VARIABLE] == token
    assert environment[completion.HEARTBEAT_VARIABLE] == "120"
    assert "JOB" not in environment
    assert len(str(overrides)) < launching.OVERRIDES_LIMIT
