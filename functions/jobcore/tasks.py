"""An item's ECS task: launching it, classifying what became of it, recording a failure, and stopping a
job's tasks. The Lambda handlers are thin wrappers around these functions."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError
from cachetools import LRUCache

from jobcore import attempts, batching, billing, completion, launch_retries, polling
from jobcore.config import LaunchSettings, PollSettings
from jobcore.errors import (
    AttemptsExhausted,
    CapacityUnavailable,
    LaunchFailed,
    LaunchThrottled,
    LaunchTimedOut,
    PollThrottled,
    StopTasksThrottled,
)
from jobcore.job_store import JobStore
from jobcore.models import AttemptOutcome, AttemptRecord, Capacity, ItemOutcome, ItemState, TaskStatus
from jobcore.store import error_code, iso

log = logging.getLogger(__name__)

CAPACITY_FAILURE = "Capacity is unavailable"
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
# ECS's own transient failures: retrying them is as safe as retrying throttling (clientToken dedups).
TRANSIENT_CODES = frozenset({"ServerException", "ServiceUnavailable", "InternalFailure"})
OVERRIDES_LIMIT = 8192  # ECS: containerOverrides are limited to 8,192 characters in total
OVERRIDES_BUDGET = 7 * 1024  # keep a margin under the limit for ECS's own accounting
SPOT_INTERRUPTION_STOP_CODE = "SpotInterruption"
SPOT_INTERRUPTION_REASON = "Your Spot Task was interrupted"
# A state's output is limited to 256 KiB; a succeeded item's outcome larger than this travels without its
# partial (Summarize then reads the outcome object), leaving room for the rest of the item's state.
OUTCOME_OUTPUT_LIMIT = 64 * 1024

# A poll cycle is Wait + Poll + CheckTask; the cycle that ends the item also enters ItemSucceeded or
# ItemFailed. A launch is one transition (plus one per retry).
LAUNCH_TRANSITIONS = 1
POLL_TRANSITIONS = 3
FINAL_TRANSITIONS = 1
RECORD_FAILURE_TRANSITIONS = 2  # RecordFailure + ItemFailed


# ---------------------------------------------------------------- launch


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


def client_token(job_id: str, index: int, attempt: int, capacity: Capacity) -> str:
    """RunTask's idempotency token (≤ 64 ASCII characters): the same launch retried by Lambda or the
    state machine never starts a second task; a new attempt or capacity is a new launch."""
    digest = hashlib.sha256(f"{job_id}\0{index}\0{attempt}\0{capacity.value}".encode()).hexdigest()
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
        "clientToken": client_token(state.job_id, state.item.index, attempt, capacity),
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
        wait = polling.next_wait(0, expected, settings.poll_min_seconds, settings.max_wait)

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
        return polling.expected_duration_of(store)
    except ClientError as error:  # without read access the first wait is simply POLL_MIN_SECONDS
        log.warning("could not read the job's task durations: %s", error)
        return None


# ---------------------------------------------------------------- poll


def task_id(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]


def log_location(settings: PollSettings, task_arn: str) -> str:
    identifier = task_id(task_arn)
    if settings.local_task_log_dir:
        return os.path.join(settings.local_task_log_dir, f"{identifier}.log")
    return (
        f"CloudWatch Logs group {settings.task_log_group} stream "
        f"{settings.task_log_stream_prefix}/{settings.container_name}/{identifier}"
    )


def exit_class(code: int) -> str:
    if code == 137:
        return "killed (SIGKILL): out of memory or killed"
    if code == 143:
        return "terminated (SIGTERM)"
    return "error"


def _parse_units(value: Any, divisor: float) -> float:
    try:
        return float(value) / divisor
    except (TypeError, ValueError):
        return 0.0


def _task_seconds(task: dict[str, Any], until: datetime) -> float:
    begin = task.get("startedAt") or task.get("createdAt")
    return max(0.0, (until - begin).total_seconds()) if begin else 0.0


def _with_task_usage(state: ItemState, task: dict[str, Any], seconds: float) -> ItemState:
    capacity_name = task.get("capacityProviderName")
    capacity = Capacity(capacity_name) if capacity_name in {c.value for c in Capacity} else state.capacity
    vcpu = _parse_units(task.get("cpu"), 1024)  # task cpu is in CPU units, 1024 per vCPU
    gb = _parse_units(task.get("memory"), 1024)  # task memory is in MiB
    return state.model_copy(update={"usage": state.usage.add_task(capacity, vcpu, gb, seconds)})


def _with_attempt(
    state: ItemState, task: dict[str, Any], stopped_at: Any, outcome: AttemptOutcome
) -> ItemState:
    """The state with this task's attempt record appended (the report's timeline draws it)."""
    capacity_name = task.get("capacityProviderName")
    capacity = Capacity(capacity_name) if capacity_name in {c.value for c in Capacity} else state.capacity
    launched = task.get("createdAt") or task.get("startedAt")
    record = AttemptRecord(
        attempt=state.attempt,
        capacity=capacity,
        launched_at=iso(launched) if isinstance(launched, datetime) else None,
        stopped_at=iso(stopped_at) if isinstance(stopped_at, datetime) else None,
        outcome=outcome,
    )
    return state.model_copy(update={"history": [*state.history, record]})


def _container(task: dict[str, Any], name: str) -> dict[str, Any]:
    containers = task.get("containers") or []
    for container in containers:
        if container.get("name") == name:
            return container
    return containers[0] if containers else {}


@dataclass(frozen=True)
class PollResult:
    state: ItemState
    interrupted: bool = False


def poll_task(
    ecs: Any,
    s3: Any,
    settings: PollSettings,
    state: ItemState,
    *,
    now: datetime | None = None,
    started: float | None = None,
) -> PollResult:
    """Classify the item's task: RUNNING (and when to look again), SUCCEEDED, INTERRUPTED or FAILED.
    A final status also writes the item's outcome record."""
    store = JobStore.of(s3, state)
    started = time.perf_counter() if started is None else started
    now = now or datetime.now(timezone.utc)
    state = state.model_copy(update={"polls": state.polls + 1, "error": None})
    if not state.task_arn:
        return _finish(
            store, settings, state, started, TaskStatus.FAILED, "no task to poll (task_arn missing)"
        )
    try:
        response = ecs.describe_tasks(cluster=settings.cluster_arn, tasks=[state.task_arn])
    except ClientError as error:
        code = error_code(error)
        if code in THROTTLING_CODES or code in TRANSIENT_CODES:
            raise PollThrottled(f"DescribeTasks {code}: {error}") from None
        raise
    tasks = response.get("tasks") or []
    if not tasks:
        failures = response.get("failures") or []
        reason = failures[0].get("reason") if failures else None
        text = "task not found" if reason in (None, "MISSING") else f"DescribeTasks failed: {reason}"
        return _finish(store, settings, state, started, TaskStatus.FAILED, f"{text} ({state.task_arn})")
    task = tasks[0]

    if task.get("lastStatus") != "STOPPED":
        return _still_running(ecs, store, settings, state, task, now, started)
    return classify_stopped(store, settings, state, task, now=now, started=started)


def classify_stopped(
    store: JobStore,
    settings: PollSettings,
    state: ItemState,
    task: dict[str, Any],
    *,
    now: datetime,
    started: float,
    transitions: int = POLL_TRANSITIONS,
) -> PollResult:
    """What became of a STOPPED task (`task` as DescribeTasks describes it, timestamps as datetimes):
    SUCCEEDED (exit code 0 and a result record), INTERRUPTED (Spot reclaim: relaunch) or FAILED with its
    reason; a final status writes the item's outcome. PollTask and the task-stopped event
    (jobcore.completion) both decide with this one function; `transitions` is what the caller's path
    through the state machine costs (a poll cycle, or CheckTask after an event)."""
    stopped_at = task.get("stoppedAt") or now
    seconds = _task_seconds(task, stopped_at)
    delay = (now - stopped_at).total_seconds() if isinstance(stopped_at, datetime) else None
    state = _with_task_usage(state, task, billing.billed_seconds(task, stopped_at)).model_copy(
        update={
            "task_seconds": round(seconds, 3),
            "log": log_location(settings, state.task_arn or task.get("taskArn") or ""),
            "detection_delay_seconds": None if delay is None else round(max(0.0, delay), 3),
        }
    )
    container = _container(task, settings.container_name)
    exit_code = container.get("exitCode")
    stop_code = task.get("stopCode") or ""
    stopped_reason = task.get("stoppedReason") or ""
    result = _read_result(store, state) if exit_code == 0 else None
    succeeded = result is not None
    spot_interrupted = stop_code == SPOT_INTERRUPTION_STOP_CODE or SPOT_INTERRUPTION_REASON in stopped_reason
    state = _with_attempt(
        state,
        task,
        stopped_at,
        "succeeded" if succeeded else "interrupted" if spot_interrupted else "failed",
    )

    if spot_interrupted and not succeeded:
        interrupted = state.model_copy(
            update={
                "status": TaskStatus.INTERRUPTED,
                "spot_interruptions": state.spot_interruptions + 1,
                "reason": f"Spot interruption: {stopped_reason or stop_code}",
                "wait_seconds": 0,
                "usage": state.usage.add_lambda(
                    settings.lambda_memory_mb, time.perf_counter() - started, transitions
                ),
            }
        )
        return PollResult(interrupted, interrupted=True)
    if result is not None:
        return _finish(
            store,
            settings,
            state,
            started,
            TaskStatus.SUCCEEDED,
            None,
            partial=result.get("partial"),
            resumption=result.get("resumption"),
            transitions=transitions,
        )
    worker_message = _worker_error(store, state)
    if exit_code == 0:
        text = "exited 0 but wrote no result record"
        return _finish(
            store,
            settings,
            state,
            started,
            TaskStatus.FAILED,
            _joined(text, worker_message),
            transitions=transitions,
        )
    if exit_code is None:
        why = stopped_reason or stop_code or "stopped without starting its container"
        container_reason = container.get("reason")
        detail = f"{why}: {container_reason}" if container_reason and container_reason not in why else why
        return _finish(
            store,
            settings,
            state,
            started,
            TaskStatus.FAILED,
            f"task did not run: {detail}",
            transitions=transitions,
        )
    parts = [
        f"exited with code {exit_code}: {exit_class(int(exit_code))}",
        worker_message,
        container.get("reason"),
    ]
    parts.append(f"log: {state.log}")
    return _finish(
        store, settings, state, started, TaskStatus.FAILED, _joined(*parts), transitions=transitions
    )


def _joined(*parts: Any) -> str:
    return "; ".join(str(part) for part in parts if part)


def _worker_error(store: JobStore, state: ItemState) -> str | None:
    """The message a failed worker attempt left in jobs/<id>/errors/ (worker/README.md), if any."""
    try:
        record = store.worker_error(state.item.index, state.attempt)
    except ClientError as error:  # the reason is still useful without the message
        log.warning("could not read %s: %s", store.worker_error_key(state.item.index, state.attempt), error)
        return None
    except ValueError:
        return None
    message = record.get("message") if isinstance(record, dict) else None
    return str(message)[:1500] if message else None


def _still_running(
    ecs: Any,
    store: JobStore,
    settings: PollSettings,
    state: ItemState,
    task: dict[str, Any],
    now: datetime,
    started: float,
) -> PollResult:
    elapsed = _task_seconds(task, now)  # since startedAt, or createdAt while the task is starting
    timeout_s = settings.item_timeout_seconds
    if elapsed > timeout_s:
        minutes = f"{settings.item_timeout_minutes:g}"
        try:
            ecs.stop_task(
                cluster=settings.cluster_arn,
                task=state.task_arn,
                reason=f"spotmap: item timed out after {minutes} minutes",
            )
        except ClientError as error:  # already stopping: the item fails as timed out either way
            log.warning("stop_task failed for %s: %s", state.task_arn, error)
        state = _with_task_usage(state, task, billing.billed_seconds(task, now)).model_copy(
            update={"task_seconds": round(elapsed, 3), "log": log_location(settings, state.task_arn or "")}
        )
        state = _with_attempt(state, task, now, "failed")
        return _finish(
            store, settings, state, started, TaskStatus.FAILED, f"timed out after {minutes} minutes"
        )

    expected = polling.expected_duration_of(store)
    wait = polling.next_wait(elapsed, expected, settings.poll_min_seconds, settings.max_wait)
    if task.get("desiredStatus") == "STOPPED":  # already stopping: it will be STOPPED in moments
        wait = settings.min_wait
    # Look again right when the item would time out, not up to POLL_MAX_SECONDS later.
    wait = max(settings.min_wait, min(wait, math.ceil(timeout_s - elapsed) + 1))
    running = state.model_copy(
        update={
            "status": TaskStatus.RUNNING,
            "wait_seconds": wait,
            "expected_seconds": expected,
            "usage": state.usage.add_lambda(
                settings.lambda_memory_mb, time.perf_counter() - started, POLL_TRANSITIONS
            ),
        }
    )
    return PollResult(running)


def _read_result(store: JobStore, state: ItemState) -> dict[str, Any] | None:
    """The item's result record (a batch's record for a batch), or None: its existence is what makes an
    exit code 0 a success."""
    record = store.task_result(state.item)
    return record if isinstance(record, dict) else None


def _finish(
    store: JobStore,
    settings: PollSettings,
    state: ItemState,
    started: float,
    status: TaskStatus,
    reason: str | None,
    partial: Any = None,
    resumption: Any = None,
    transitions: int = POLL_TRANSITIONS,
) -> PollResult:
    final = state.model_copy(
        update={
            "status": status,
            "reason": reason,
            "wait_seconds": 0,
            "usage": state.usage.add_lambda(
                settings.lambda_memory_mb, time.perf_counter() - started, transitions + FINAL_TRANSITIONS
            ),
        }
    )
    outcome = write_outcome(store, final, partial, resumption)
    if status is TaskStatus.SUCCEEDED:  # the child's output (ItemSucceeded), batched by the ResultWriter
        final = final.model_copy(update={"outcome": outcome.for_state_output(OUTCOME_OUTPUT_LIMIT)})
    return PollResult(final)


def write_outcome(
    store: JobStore, state: ItemState, partial: Any = None, resumption: Any = None
) -> ItemOutcome:
    """The item's final record, its outcome (one per item of a batch)."""
    if state.item.batch is not None:
        return batching.write_batch_outcome_to(store, state)
    outcome = ItemOutcome.of(state, partial, resumption)
    store.write_outcome(outcome)
    return outcome


# ---------------------------------------------------------------- record failure


def failure_reason(error: dict[str, Any] | None) -> tuple[str, int]:
    """(a readable reason, 0) from the ASL Catch's {Error, Cause}. Kept for its callers: retry counts
    are no longer read out of messages (they travel as fields, jobcore.launch_retries), so the second
    element is always 0; use `describe_failure`."""
    return describe_failure(error), 0


def describe_failure(error: dict[str, Any] | None) -> str:
    """A readable reason from the ASL Catch's {Error, Cause}."""
    if not error:
        return "failed (no error recorded)"
    name = str(error.get("Error") or "Error")
    cause_text = error.get("Cause")
    message = cause_text if isinstance(cause_text, str) else json.dumps(cause_text) if cause_text else ""
    if isinstance(cause_text, str) and cause_text.strip().startswith("{"):
        try:
            cause = json.loads(cause_text)
        except json.JSONDecodeError:
            cause = None
        if isinstance(cause, dict):
            message = str(cause.get("errorMessage") or cause.get("Cause") or cause_text)
            name = str(cause.get("errorType") or name) if name in ("Error", "States.TaskFailed") else name
    if name == "States.Timeout" and not message:
        message = "the Lambda function did not answer in time"
    return f"{name}: {message}" if message else name


def record_failure(
    s3: Any,
    ecs: Any | None,
    cluster_arn: str | None,
    state: ItemState,
    memory_mb: int,
    started: float | None = None,
) -> ItemState:
    """The item's failure outcome, from the error the state machine caught. A launch that ended in a
    failure (capacity retries exhausted, LaunchTimedOut, ...) left its tally of refusals for the attempt
    it never started: folded into the item's counts here, as LaunchTask does on success."""
    started = time.perf_counter() if started is None else started
    store = JobStore.of(s3, state)
    reason = describe_failure(state.error)
    tally = launch_retries.read_tally(store, state.item.index, state.attempt + 1)
    if ecs is not None and cluster_arn and state.task_arn and state.status is TaskStatus.RUNNING:
        # Poll gave up on a task that may still run: stop it so it neither costs nor writes results.
        try:
            ecs.stop_task(cluster=cluster_arn, task=state.task_arn, reason="spotmap: item failed")
        except ClientError as error:
            log.warning("stop_task failed for %s: %s", state.task_arn, error)
    failed = state.model_copy(
        update={
            "status": TaskStatus.FAILED,
            "reason": reason[:2000],
            "capacity_retries": state.capacity_retries + tally.capacity_retries,
            "throttled_run_task_calls": state.throttled_run_task_calls + tally.throttled_run_task_calls,
            "wait_seconds": 0,
            "usage": state.usage.add_lambda(
                memory_mb, time.perf_counter() - started, RECORD_FAILURE_TRANSITIONS
            ),
        }
    )
    write_outcome(store, failed)
    return failed


# ---------------------------------------------------------------- stop a job's tasks


def stop_job_tasks(ecs: Any, cluster_arn: str, job_id: str, status: str) -> int:
    """Stop every running task the job started; safe to repeat.

    ListTasks takes startedBy only as its sole filter ("When you specify startedBy as the filter, it
    must be the only filter that you use", ECS API Reference, ListTasks); it lists the tasks whose
    desired status is RUNNING by default, which are the ones to stop."""
    stopped = 0
    throttled: list[str] = []
    paginator = ecs.get_paginator("list_tasks")
    for page in paginator.paginate(cluster=cluster_arn, startedBy=job_id[:128]):
        for task_arn in page.get("taskArns", []):
            try:
                ecs.stop_task(
                    cluster=cluster_arn, task=task_arn, reason=f"spotmap: job {job_id} {status}"[:255]
                )
                stopped += 1
            except ClientError as error:
                if error_code(error) in THROTTLING_CODES:  # still running: must not be forgotten
                    throttled.append(task_arn)
                else:  # stopped meanwhile
                    log.warning("stop_task failed for %s: %s", task_arn, error)
    if throttled:
        # StopTask shares ECS's "cluster resource modify" bucket (100, refilled 40/s) with RunTask: a
        # large job's abort can outlast the SDK's retries. Failing makes the event's delivery retry.
        raise StopTasksThrottled(
            f"StopTask stayed throttled for {len(throttled)} task(s) of job {job_id} "
            f"({stopped} stopped): {', '.join(throttled[:5])}"
        )
    return stopped
