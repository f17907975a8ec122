"""Kept for one release: the item-task use cases now live in their own modules. Import from them.

- jobcore.launching      LaunchTask: start an item's next task
- jobcore.task_polls     PollTask: describe the task, wait again or classify it
- jobcore.stopped_tasks  what became of a stopped task (PollTask and TaskStopped alike)
- jobcore.outcomes       an item's outcome record
- jobcore.failures       RecordFailure: the failure outcome from the caught error
- jobcore.stopping       StopJobTasks: stop a job's tasks
"""

from __future__ import annotations

from jobcore.aws import THROTTLING_CODES, TRANSIENT_CODES
from jobcore.failures import RECORD_FAILURE_TRANSITIONS, describe_failure, failure_reason, record_failure
from jobcore.launching import (
    CAPACITY_FAILURE,
    LAUNCH_TRANSITIONS,
    OVERRIDES_BUDGET,
    OVERRIDES_LIMIT,
    LaunchResult,
    choose_capacity,
    clear_descriptor_cache,
    client_token,
    container_overrides,
    descriptor_json,
    launch_task,
)
from jobcore.outcomes import write_outcome
from jobcore.stopped_tasks import (
    FINAL_TRANSITIONS,
    OUTCOME_OUTPUT_LIMIT,
    POLL_TRANSITIONS,
    SPOT_INTERRUPTION_REASON,
    SPOT_INTERRUPTION_STOP_CODE,
    PollResult,
    classify_stopped,
    exit_class,
    log_location,
    task_id,
)
from jobcore.stopping import stop_job_tasks
from jobcore.task_polls import poll_task

__all__ = [
    "CAPACITY_FAILURE",
    "FINAL_TRANSITIONS",
    "LAUNCH_TRANSITIONS",
    "OUTCOME_OUTPUT_LIMIT",
    "OVERRIDES_BUDGET",
    "OVERRIDES_LIMIT",
    "POLL_TRANSITIONS",
    "RECORD_FAILURE_TRANSITIONS",
    "SPOT_INTERRUPTION_REASON",
    "SPOT_INTERRUPTION_STOP_CODE",
    "THROTTLING_CODES",
    "TRANSIENT_CODES",
    "LaunchResult",
    "PollResult",
    "choose_capacity",
    "classify_stopped",
    "clear_descriptor_cache",
    "client_token",
    "container_overrides",
    "describe_failure",
    "descriptor_json",
    "exit_class",
    "failure_reason",
    "launch_task",
    "log_location",
    "poll_task",
    "record_failure",
    "stop_job_tasks",
    "task_id",
    "write_outcome",
]
