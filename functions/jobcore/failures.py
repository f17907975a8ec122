"""RecordFailure's use case: an item's failure outcome from the error the state machine caught."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from jobcore import launch_retries
from jobcore.job_store import JobStore
from jobcore.models import ItemState, TaskStatus
from jobcore.outcomes import write_outcome

log = logging.getLogger(__name__)

RECORD_FAILURE_TRANSITIONS = 2  # RecordFailure + ItemFailed


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
