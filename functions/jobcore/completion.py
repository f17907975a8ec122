"""Completion by ECS task events, with polls as the backstop.

The Launch step waits for a task token (`lambda:invoke.waitForTaskToken`): LaunchTask puts the token in
the task's container overrides (which ECS repeats in every "ECS Task State Change" event) and persists
the launched item state in S3 (JobStore.write_launched), since the step's result is what comes
back with the token, not LaunchTask's return value. When the task stops, an EventBridge rule invokes
TaskStopped, which resumes the item from that state: the same classification PollTask applies
(stopped_tasks.classify_stopped), then SendTaskSuccess with the new item state, so CheckTask routes as after
a poll.

The backstop: the worker sends SendTaskHeartbeat every third of the step's HeartbeatSeconds while it
runs (worker/heartbeat.py). A lost event, or a task that never started, ends the wait with
States.HeartbeatTimeout within one heartbeat period; the step's Catch hands the item to PollTask, which
resumes it from the persisted launch and polls as before. A duplicated or late event finds its token
closed (TaskTimedOut / InvalidToken) and changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from botocore.exceptions import ClientError

from jobcore import stopped_tasks
from jobcore.config import LaunchSettings, PollSettings
from jobcore.errors import SpotmapError
from jobcore.job_store import JobStore
from jobcore.models import ItemState, TaskStatus
from jobcore.store import error_code

log = logging.getLogger(__name__)

TOKEN_VARIABLE = "TASK_TOKEN"  # noqa: S105 - the name of a variable, not a secret
HEARTBEAT_VARIABLE = "TASK_HEARTBEAT_SECONDS"
HEARTBEAT_UNTIL_VARIABLE = "TASK_HEARTBEAT_FOR_SECONDS"  # no heartbeat this long after the worker starts
# After the event the item passes CheckTask (the final state is counted by stopped_tasks.finish).
EVENT_TRANSITIONS = 1
# "The task token has either expired or the task associated with the token has already been closed"
# (TaskTimedOut), or it is no token of a running execution (InvalidToken): SendTaskSuccess /
# SendTaskHeartbeat API reference, Errors.
CLOSED_TOKEN_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
# ECS Task State Change events carry the task description with ISO 8601 timestamps (DescribeTasks
# gives datetimes): the keys classification reads or records.
TIMESTAMP_KEYS = (
    "createdAt",
    "startedAt",
    "stoppingAt",
    "stoppedAt",
    "executionStoppedAt",
    "pullStartedAt",
    "pullStoppedAt",
    "connectivityAt",
    "updatedAt",
)
LAUNCH_LOOKUPS = 3  # polls after a heartbeat timeout that may still find the launch unrecorded


class LaunchNotRecorded(SpotmapError):
    """The stop event of a task came before (or without) the launch record it resumes from: the event's
    delivery is retried, and the item's heartbeat backstop covers it if it never appears."""


def token_environment(token: str, state: ItemState, settings: LaunchSettings) -> list[dict[str, str]]:
    """What the worker needs to keep the waiting Launch step alive (and the stop event to resume it)."""
    environment = [{"name": TOKEN_VARIABLE, "value": token}]
    period = state.heartbeat_seconds or settings.task_heartbeat_seconds
    if period:
        environment.append({"name": HEARTBEAT_VARIABLE, "value": str(period)})
    if settings.item_timeout_minutes is not None:
        # the worker stops vouching for the task one period before the item's timeout, so that the step
        # times out by then and PollTask stops the task as timed out, as with polling (within a period).
        # A duration, not a clock time: the overrides of a launch retried with the same token must be
        # the same, or RunTask answers ConflictException to its client token.
        vouch = max(0.0, settings.item_timeout_minutes * 60 - (period or 0))
        environment.append({"name": HEARTBEAT_UNTIL_VARIABLE, "value": f"{vouch:.0f}"})
    return environment


def persist_launch(store: JobStore | None, state: ItemState) -> None:
    """Write the launched item state; a launch whose state cannot be written fails (the step retries)."""
    if store is None or state.attempt < 1:
        raise ValueError("a launch waiting for its task token needs S3 and a launched attempt")
    store.write_launched(state)


def normalise_task(detail: dict[str, Any]) -> dict[str, Any]:
    """The event's task description in DescribeTasks' (boto3's) shape: timestamps as datetimes."""
    task = dict(detail)
    for key in TIMESTAMP_KEYS:
        value = task.get(key)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                task.pop(key)
                continue
            task[key] = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return task


@dataclass(frozen=True)
class StoppedTask:
    """A stopped task an item waits for: who it belongs to, the token to resume it, what ECS said."""

    job_id: str
    index: int
    attempt: int
    token: str
    task: dict[str, Any]


def stopped_task(detail: dict[str, Any], container_name: str) -> tuple[StoppedTask | None, str]:
    """The waiting item of a task state change, or (None, why it resumes nothing)."""
    if detail.get("lastStatus") != "STOPPED":
        return None, f"task is {detail.get('lastStatus')}, not STOPPED"
    environment: dict[str, str] = {}
    for override in (detail.get("overrides") or {}).get("containerOverrides") or []:
        if override.get("name") == container_name:
            environment = {e.get("name", ""): e.get("value", "") for e in override.get("environment") or []}
    token = environment.get(TOKEN_VARIABLE)
    if not token:
        return None, "no task token in the overrides (a launch that polls)"
    try:
        index, attempt = int(environment["ITEM_INDEX"]), int(environment["ATTEMPT"])
        job_id = environment["JOB_ID"]
    except (KeyError, ValueError):
        return None, "no JOB_ID / ITEM_INDEX / ATTEMPT in the overrides"
    return StoppedTask(job_id, index, attempt, token, normalise_task(detail)), ""


@dataclass(frozen=True)
class Completion:
    outcome: Literal["resumed", "closed"]
    state: ItemState | None = None
    interrupted: bool = False
    detail: str = ""


def token_closed(error: ClientError) -> bool:
    return error_code(error) in CLOSED_TOKEN_CODES


def complete(
    s3: Any,
    sfn: Any,
    settings: PollSettings,
    stopped: StoppedTask,
    *,
    now: datetime | None = None,
    started: float | None = None,
) -> Completion:
    """Resume the item a stopped task belongs to; a closed token (duplicate or late event: the item
    already moved on, by an earlier event or its backstop poll) changes nothing."""
    started = time.perf_counter() if started is None else started
    now = now or datetime.now(timezone.utc)
    # A cheap test that the step still waits: a repeated event must not write the outcome again.
    try:
        sfn.send_task_heartbeat(taskToken=stopped.token)
    except ClientError as error:
        if token_closed(error):
            return Completion("closed", detail=f"{error_code(error)}: the item already moved on")
        raise
    store = JobStore(s3, settings.job_bucket, stopped.job_id)
    state = store.launched(stopped.index, stopped.attempt)
    if state is None:
        raise LaunchNotRecorded(
            f"no launch record for item {stopped.index} attempt {stopped.attempt} of job {stopped.job_id}"
        )
    if state.task_arn != stopped.task.get("taskArn"):
        return Completion("closed", detail=f"the launch record names task {state.task_arn}, not this one")
    # one delivery of the stop event resumes the item: a concurrent duplicate loses the claim
    if not store.claim_stop_event(stopped.index, stopped.attempt, stopped.task.get("taskArn")):
        return Completion("closed", detail="another delivery of this event resumes the item")
    result = stopped_tasks.classify_stopped(
        store, settings, state, stopped.task, now=now, started=started, transitions=EVENT_TRANSITIONS
    )
    try:
        sfn.send_task_success(taskToken=stopped.token, output=result.state.model_dump_json())
    except ClientError as error:
        if token_closed(error):  # a concurrent duplicate, or the backstop, resumed it first
            return Completion("closed", detail=f"{error_code(error)} after classifying")
        raise
    return Completion("resumed", result.state, result.interrupted)


def resume_after_wait(s3: Any, state: ItemState) -> ItemState:
    """The item as its last launch left it, for PollTask after the waiting Launch step timed out (no
    event within a heartbeat period): the step's input is the state *before* that launch."""
    if state.wait_error is None:
        return state
    launched = JobStore.of(s3, state).launched(state.item.index, state.attempt + 1)
    if launched is None:
        return state
    return launched.model_copy(update={"wait_error": None, "polls": max(launched.polls, state.polls)})


def without_wait_state(result: Any) -> Any:
    """PollTask's result for a poll the Catch entered directly: no WaitForTask state before it, one
    transition fewer than a poll cycle (stopped_tasks.POLL_TRANSITIONS counts Wait + Poll + CheckTask)."""
    usage = result.state.usage
    state = result.state.model_copy(
        update={"usage": usage.model_copy(update={"state_transitions": max(0, usage.state_transitions - 1)})}
    )
    return dataclasses.replace(result, state=state)


def unrecorded_launch(state: ItemState, settings: PollSettings) -> ItemState | None:
    """PollTask's answer while a timed-out wait's launch record is missing: look again shortly (a
    record written moments after the timeout), then give up on the attempt; None: poll as usual."""
    if state.wait_error is None:
        return None
    if state.polls < LAUNCH_LOOKUPS:
        return state.model_copy(
            update={"status": TaskStatus.RUNNING, "polls": state.polls + 1, "wait_seconds": settings.min_wait}
        )
    why = json.dumps(state.wait_error)[:300]
    return state.model_copy(
        update={"task_arn": None, "wait_error": None, "reason": f"launch not recorded ({why})"}
    )
