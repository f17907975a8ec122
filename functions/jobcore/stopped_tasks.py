"""What became of an item's stopped task: SUCCEEDED (exit code 0 and a result record), INTERRUPTED (Spot
reclaim: relaunch) or FAILED with its reason; a final status writes the item's outcome. PollTask
(jobcore.task_polls) and the task-stopped event (jobcore.completion) both decide with this one module."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from jobcore import billing
from jobcore.config import PollSettings
from jobcore.job_store import JobStore
from jobcore.models import AttemptOutcome, AttemptRecord, Capacity, ItemState, TaskStatus
from jobcore.outcomes import write_outcome
from jobcore.store import iso

log = logging.getLogger(__name__)

SPOT_INTERRUPTION_STOP_CODE = "SpotInterruption"
SPOT_INTERRUPTION_REASON = "Your Spot Task was interrupted"
# A state's output is limited to 256 KiB; a succeeded item's outcome larger than this travels without its
# partial (Summarize then reads the outcome object), leaving room for the rest of the item's state.
OUTCOME_OUTPUT_LIMIT = 64 * 1024

# A poll cycle is Wait + Poll + CheckTask; the cycle that ends the item also enters ItemSucceeded or
# ItemFailed.
POLL_TRANSITIONS = 3
FINAL_TRANSITIONS = 1


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


def task_seconds(task: dict[str, Any], until: datetime) -> float:
    begin = task.get("startedAt") or task.get("createdAt")
    return max(0.0, (until - begin).total_seconds()) if begin else 0.0


def with_task_usage(state: ItemState, task: dict[str, Any], seconds: float) -> ItemState:
    capacity_name = task.get("capacityProviderName")
    capacity = Capacity(capacity_name) if capacity_name in {c.value for c in Capacity} else state.capacity
    vcpu = _parse_units(task.get("cpu"), 1024)  # task cpu is in CPU units, 1024 per vCPU
    gb = _parse_units(task.get("memory"), 1024)  # task memory is in MiB
    return state.model_copy(update={"usage": state.usage.add_task(capacity, vcpu, gb, seconds)})


def with_attempt(
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


def container_of(task: dict[str, Any], name: str) -> dict[str, Any]:
    containers = task.get("containers") or []
    for container in containers:
        if container.get("name") == name:
            return container
    return containers[0] if containers else {}


@dataclass(frozen=True)
class PollResult:
    state: ItemState
    interrupted: bool = False


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
    seconds = task_seconds(task, stopped_at)
    delay = (now - stopped_at).total_seconds() if isinstance(stopped_at, datetime) else None
    state = with_task_usage(state, task, billing.billed_seconds(task, stopped_at)).model_copy(
        update={
            "task_seconds": round(seconds, 3),
            "log": log_location(settings, state.task_arn or task.get("taskArn") or ""),
            "detection_delay_seconds": None if delay is None else round(max(0.0, delay), 3),
        }
    )
    container = container_of(task, settings.container_name)
    exit_code = container.get("exitCode")
    stop_code = task.get("stopCode") or ""
    stopped_reason = task.get("stoppedReason") or ""
    result = _read_result(store, state) if exit_code == 0 else None
    succeeded = result is not None
    spot_interrupted = stop_code == SPOT_INTERRUPTION_STOP_CODE or SPOT_INTERRUPTION_REASON in stopped_reason
    state = with_attempt(
        state,
        task,
        stopped_at,
        AttemptOutcome.SUCCEEDED
        if succeeded
        else AttemptOutcome.INTERRUPTED
        if spot_interrupted
        else AttemptOutcome.FAILED,
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
        return finish(
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
        return finish(
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
        return finish(
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
    return finish(
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


def _read_result(store: JobStore, state: ItemState) -> dict[str, Any] | None:
    """The item's result record (a batch's record for a batch), or None: its existence is what makes an
    exit code 0 a success."""
    record = store.task_result(state.item)
    return record if isinstance(record, dict) else None


def finish(
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
