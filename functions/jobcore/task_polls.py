"""PollTask's use case: describe the item's task; a running one gets its next wait (jobcore.wait_policy)
or, past the item's timeout, is stopped and failed; a stopped one is classified (jobcore.stopped_tasks)."""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from jobcore import billing, wait_policy
from jobcore.aws import THROTTLING_CODES, TRANSIENT_CODES
from jobcore.config import PollSettings
from jobcore.errors import (
    PollThrottled,
)
from jobcore.job_store import JobStore
from jobcore.models import AttemptOutcome, ItemState, TaskStatus
from jobcore.stopped_tasks import (
    POLL_TRANSITIONS,
    PollResult,
    classify_stopped,
    finish,
    log_location,
    task_seconds,
    with_attempt,
    with_task_usage,
)
from jobcore.store import error_code

log = logging.getLogger(__name__)


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
        return finish(
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
        return finish(store, settings, state, started, TaskStatus.FAILED, f"{text} ({state.task_arn})")
    task = tasks[0]

    if task.get("lastStatus") != "STOPPED":
        return _still_running(ecs, store, settings, state, task, now, started)
    return classify_stopped(store, settings, state, task, now=now, started=started)


def _still_running(
    ecs: Any,
    store: JobStore,
    settings: PollSettings,
    state: ItemState,
    task: dict[str, Any],
    now: datetime,
    started: float,
) -> PollResult:
    elapsed = task_seconds(task, now)  # since startedAt, or createdAt while the task is starting
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
        state = with_task_usage(state, task, billing.billed_seconds(task, now)).model_copy(
            update={"task_seconds": round(elapsed, 3), "log": log_location(settings, state.task_arn or "")}
        )
        state = with_attempt(state, task, now, AttemptOutcome.FAILED)
        return finish(
            store, settings, state, started, TaskStatus.FAILED, f"timed out after {minutes} minutes"
        )

    expected = wait_policy.expected_duration_of(store)
    wait = wait_policy.next_wait(elapsed, expected, settings.poll_min_seconds, settings.max_wait)
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
