"""LaunchTask's use case: start an item's next ECS task with one RunTask call (Spot or on-demand,
its overrides, its idempotency token), or raise the named error the state machine retries or catches."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError
from cachetools import LRUCache

from jobcore import attempts, completion, launch_retries, wait_policy
from jobcore.aws import THROTTLING_CODES, TRANSIENT_CODES
from jobcore.config import LaunchSettings
from jobcore.errors import (
    AttemptsExhausted,
    CapacityUnavailable,
    LaunchFailed,
    LaunchThrottled,
    LaunchTimedOut,
)
from jobcore.job_store import JobStore
from jobcore.models import Capacity, ItemState, TaskStatus
from jobcore.store import error_code

log = logging.getLogger(__name__)

CAPACITY_FAILURE = "Capacity is unavailable"
OVERRIDES_LIMIT = 8192  # ECS: containerOverrides are limited to 8,192 characters in total
OVERRIDES_BUDGET = 7 * 1024  # keep a margin under the limit for ECS's own accounting
# A launch is one transition (plus one per retry).
LAUNCH_TRANSITIONS = 1


def choose_capacity(state: ItemState, capacity_retries: int, settings: LaunchSettings) -> Capacity:
    """Spot, unless the item was interrupted too often or Spot capacity kept failing to appear
    (`capacity_retries`: this launch's RunTask answers "Capacity is unavailable"). Throttled calls do
    not count: throttling is about the rate of launches, and on-demand has the same launch bucket
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html)."""
    if state.spot_interruptions >= settings.spot_attempts_before_on_demand:
        return Capacity.ON_DEMAND
    if capacity_retries >= settings.capacity_retries_before_on_demand:
        return Capacity.ON_DEMAND
    return Capacity.SPOT


def client_token(
    job_id: str, index: int, attempt: int, capacity: Capacity, task_token: str | None = None
) -> str:
    """RunTask's idempotency token (≤ 64 ASCII characters): the same launch retried by Lambda or the
    state machine never starts a second task; a new attempt or capacity is a new launch. A launch that
    waits for a task token is also a new launch per token: a retried LaunchAndWait gets a new token, and
    a task carrying the old one could never resume the item (its overrides differ, so ECS would answer
    ConflictException to the same client token)."""
    waited = f"\0{hashlib.sha256(task_token.encode()).hexdigest()}" if task_token else ""
    digest = hashlib.sha256(f"{job_id}\0{index}\0{attempt}\0{capacity.value}{waited}".encode()).hexdigest()
    return f"spotmap-{digest[:48]}"


def container_overrides(
    container_name: str,
    state: ItemState,
    attempt: int,
    job_json: str | None = None,
    always: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The worker's per-item environment. ITEM (the item) and JOB (the job descriptor) save the worker
    reading them from S3; whichever would not fit ECS's overrides limit is left out (JOB first), and
    the worker then reads items.json / job.json. `always` (the task token and its heartbeat settings,
    jobcore.completion) is never left out: the stop event must carry it back."""
    environment = [
        {"name": "JOB_ID", "value": state.job_id},
        {"name": "ITEM_INDEX", "value": str(state.item.index)},
        {"name": "ATTEMPT", "value": str(attempt)},
        *(always or []),
    ]
    item = {"name": "ITEM", "value": state.item.model_dump_json(exclude_none=True)}
    job = [{"name": "JOB", "value": job_json}] if job_json else []
    for candidate in (environment + [item] + job, environment + [item]):
        overrides = {"containerOverrides": [{"name": container_name, "environment": candidate}]}
        if len(json.dumps(overrides)) <= OVERRIDES_BUDGET:
            return overrides
    return {"containerOverrides": [{"name": container_name, "environment": environment}]}


# A job's descriptor never changes once StartJob wrote it: kept without expiry, the 64 most recent jobs.
_descriptors: LRUCache[tuple[str, str], str] = LRUCache(maxsize=64)


def clear_descriptor_cache() -> None:
    _descriptors.clear()


def descriptor_json(store: JobStore) -> str | None:
    """The job descriptor as compact JSON, read once per job by a warm instance (StartJob writes it
    before the execution starts and nothing changes it); None when it cannot be read, and the worker
    reads it itself."""
    cached = _descriptors.get((store.bucket, store.job_id))
    if cached is not None:
        return cached
    try:
        descriptor = store.read_descriptor_document()
    except (ClientError, ValueError) as error:
        log.warning("could not read the job descriptor: %s", error)
        return None
    if not isinstance(descriptor, dict):
        return None
    text = json.dumps(descriptor, separators=(",", ":"), ensure_ascii=False)
    _descriptors[(store.bucket, store.job_id)] = text
    return text


def _network_configuration(settings: LaunchSettings) -> dict[str, Any] | None:
    if not settings.subnet_ids:
        return None
    vpc: dict[str, Any] = {"subnets": settings.subnet_ids, "assignPublicIp": settings.assign_public_ip}
    if settings.security_group_ids:
        vpc["securityGroups"] = settings.security_group_ids
    return {"awsvpcConfiguration": vpc}


@dataclass(frozen=True)
class LaunchResult:
    state: ItemState
    capacity: Capacity
    fell_back_to_on_demand: bool
    capacity_retries: int = 0  # this launch's, before its task started
    throttled_run_task_calls: int = 0


def launch_task(
    ecs: Any,
    settings: LaunchSettings,
    state: ItemState,
    retry_count: int,
    *,
    s3: Any = None,
    started: float | None = None,
    now: datetime | None = None,
    task_token: str | None = None,
) -> LaunchResult:
    """Start the item's next task with one RunTask call; raise a named error the state machine retries
    or catches.

    Pacing: a throttled call raises LaunchThrottled at once and the state machine waits before the next
    try (full-jitter exponential backoff, at most MaxDelaySeconds apart, with no practical count limit),
    as ECS asks of throttled callers ("Request throttling for the Amazon ECS API",
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html). Waiting in the
    state machine rather than sleeping here holds no Lambda concurrency (an account's 1,000 by default,
    fewer than the Map's 10,000 items) and costs one transition per try. Only the item's own timeout ends
    the wait: LaunchTimedOut once it has waited ItemTimeoutMinutes since RunTask first refused it.

    `retry_count` ($$.State.RetryCount) counts every retry of the Launch state, throttled or not: it
    only tells whether an earlier try left a tally (jobcore.launch_retries), which holds the counts that
    matter, apart.

    With `task_token` (the Launch step waits for it: completion by events), the token travels in the
    task's overrides and the launched state is persisted in S3, since the step's result is then what
    the task-stopped event sends back, not this function's return value."""
    started = time.perf_counter() if started is None else started
    now = now or datetime.now(timezone.utc)
    if state.attempt >= settings.max_attempts:
        raise AttemptsExhausted(
            f"item {state.item.index} used {state.attempt} of {settings.max_attempts} attempts "
            f"({state.spot_interruptions} Spot interruptions)"
            + (f"; last: {state.reason}" if state.reason else "")
        )
    attempt = state.attempt + 1
    store = JobStore.of(s3, state) if s3 is not None else None
    tally = launch_retries.LaunchRetries(index=state.item.index, attempt=attempt)
    if retry_count and store is not None:
        tally = launch_retries.read_tally(store, state.item.index, attempt)
    timeout_minutes = settings.item_timeout_minutes
    if timeout_minutes is not None and tally.waited_seconds(now) >= timeout_minutes * 60:
        raise LaunchTimedOut(
            f"timed out after {timeout_minutes:g} minutes waiting to launch: RunTask was throttled "
            f"{tally.throttled_run_task_calls} times"
            + (f", {tally.capacity_retries} times without Spot capacity" if tally.capacity_retries else "")
            + (f" (last: {tally.last_error})" if tally.last_error else "")
        )
    capacity = choose_capacity(state, tally.capacity_retries, settings)
    request: dict[str, Any] = {
        "cluster": settings.cluster_arn,
        "taskDefinition": settings.task_definition_arn,
        "count": 1,
        "capacityProviderStrategy": [{"capacityProvider": capacity.value, "weight": 1}],
        "clientToken": client_token(state.job_id, state.item.index, attempt, capacity, task_token),
        "startedBy": state.job_id[:128],
        "tags": [
            {"key": "spotmap:job-id", "value": state.job_id},
            {"key": "spotmap:item-index", "value": str(state.item.index)},
            {"key": "spotmap:attempt", "value": str(attempt)},
        ],
        "overrides": container_overrides(
            settings.container_name,
            state,
            attempt,
            descriptor_json(store) if store is not None else None,
            always=completion.token_environment(task_token, state, settings) if task_token else None,
        ),
    }
    network = _network_configuration(settings)
    if network:
        request["networkConfiguration"] = network

    def refused(kind: str, text: str) -> launch_retries.LaunchRetries:
        counted = tally.refused(now, error=text, kind=kind)
        if store is not None:
            launch_retries.write_tally(store, counted)
        return counted

    try:
        response = ecs.run_task(**request)
    except ClientError as error:
        code = error_code(error)
        message = error.response.get("Error", {}).get("Message", str(error))
        text = f"RunTask {code}: {message}"
        if code in THROTTLING_CODES or code in TRANSIENT_CODES:
            counted = refused("throttled" if code in THROTTLING_CODES else "transient", text)
            raise LaunchThrottled(
                f"{text} (on {capacity.value}; this launch throttled "
                f"{counted.throttled_run_task_calls} times, waiting {counted.waited_seconds(now):.0f} s)"
            ) from None
        raise LaunchFailed(f"{text} (on {capacity.value})") from None
    tasks = response.get("tasks") or []
    failures = response.get("failures") or []
    if not tasks:
        reasons = (
            "; ".join(
                " ".join(part for part in (failure.get("reason"), failure.get("detail")) if part)
                for failure in failures
            )
            or "RunTask started no task and reported no failure"
        )
        if CAPACITY_FAILURE.lower() in reasons.lower():
            counted = refused("capacity", reasons)
            raise CapacityUnavailable(
                f"{reasons} (on {capacity.value}; this launch found no capacity "
                f"{counted.capacity_retries} times)"
            )
        raise LaunchFailed(f"{reasons} (on {capacity.value})")
    if store is not None:  # so a summary can count and cost this attempt even if the item never ends
        attempts.record_launch(store, state.item.index, attempt, capacity, tasks[0])

    wait = settings.min_wait
    if settings.max_wait is not None:
        expected = state.expected_seconds
        if expected is None and store is not None:
            expected = _expected_or_none(store)
        wait = wait_policy.next_wait(0, expected, settings.poll_min_seconds, settings.max_wait)

    usage = state.usage
    seconds = time.perf_counter() - started
    for _ in range(retry_count + 1):  # each failed try was an invocation and a transition too
        usage = usage.add_lambda(settings.lambda_memory_mb, seconds, LAUNCH_TRANSITIONS)
    if state.task_events is not None and state.attempt == 0:  # the item entered by ChooseCompletion
        usage = usage.model_copy(update={"state_transitions": usage.state_transitions + 1})
    on_demand = capacity is Capacity.ON_DEMAND
    new_state = state.model_copy(
        update={
            "attempt": attempt,
            "capacity": capacity,
            "task_arn": tasks[0]["taskArn"],
            "status": TaskStatus.RUNNING,
            "capacity_retries": state.capacity_retries + tally.capacity_retries,
            "throttled_run_task_calls": state.throttled_run_task_calls + tally.throttled_run_task_calls,
            "on_demand_fallbacks": max(state.on_demand_fallbacks, 1 if on_demand else 0),
            "wait_seconds": wait,
            "reason": None,
            "log": None,
            "error": None,
            "wait_error": None,
            "task_seconds": None,
            "usage": usage,
        }
    )
    if task_token:
        completion.persist_launch(store, new_state)
    return LaunchResult(
        new_state,
        capacity,
        on_demand and state.on_demand_fallbacks == 0,
        tally.capacity_retries,
        tally.throttled_run_task_calls,
    )


def _expected_or_none(store: JobStore) -> float | None:
    try:
        return wait_policy.expected_duration_of(store)
    except ClientError as error:  # without read access the first wait is simply POLL_MIN_SECONDS
        log.warning("could not read the job's task durations: %s", error)
        return None
