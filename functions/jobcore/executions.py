"""Step Functions executions: the facts of one execution (arn, status, times, error) as the summary
takes them, telling a job's parent execution from the Map's child executions, and reading "Step
Functions Execution Status Change" events (the `detail` model that Powertools' `event_parser` with
its EventBridgeEnvelope validates the handlers' events into)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict

from jobcore.models import CLOSED_STATUSES, ExecutionStatus

CLOSED = frozenset(status.value for status in CLOSED_STATUSES)
# A job's tasks can outlive its execution only when it did not succeed (a succeeded execution saw every
# item's task stop): the statuses StopJobTasks and the reconciler's task sweep act on.
STOPPED_EARLY = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED})


def execution_info(
    arn: str,
    status: str,
    start: Any = None,
    stop: Any = None,
    error: str | None = None,
    cause: str | None = None,
) -> dict[str, Any]:
    """The `execution` argument of build_summary; start/stop as datetime, epoch ms or ISO 8601."""
    return {"arn": arn, "status": status, "start": start, "stop": stop, "error": error, "cause": cause}


def execution_from_description(description: dict[str, Any]) -> dict[str, Any]:
    """From a DescribeExecution (or ListExecutions entry) response."""
    return execution_info(
        arn=description["executionArn"],
        status=description["status"],
        start=description.get("startDate"),
        stop=description.get("stopDate"),
        error=description.get("error"),
        cause=description.get("cause"),
    )


def as_datetime(value: Any) -> datetime | None:
    """An execution time as an aware datetime: a datetime, epoch milliseconds (events) or ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)  # events carry epoch milliseconds
    if isinstance(value, str):
        return as_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
    raise TypeError(f"not a time: {value!r}")


def region_of(arn: str) -> str:
    """The region an ARN names, else this environment's."""
    parts = arn.split(":")
    if len(parts) > 3 and parts[3]:
        return parts[3]
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class ExecutionStatusChange(BaseModel):
    """The `detail` of a status-change event. `input`/`output` may be left out of large events, so
    nothing here relies on them. A status Step Functions does not have fails validation, naming it."""

    model_config = ConfigDict(extra="ignore")

    executionArn: str  # noqa: N815 - the event's own field names
    stateMachineArn: str  # noqa: N815
    name: str
    status: ExecutionStatus
    startDate: int | None = None  # noqa: N815 - epoch milliseconds
    stopDate: int | None = None  # noqa: N815
    error: str | None = None
    cause: str | None = None

    @property
    def job_id(self) -> str:
        """A job's execution is named after it."""
        return self.name

    @property
    def closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    def execution(self) -> dict[str, Any]:
        return execution_info(
            self.executionArn, self.status.value, self.startDate, self.stopDate, self.error, self.cause
        )


def is_child_execution(execution_arn: str, state_machine_arn: str = "") -> bool:
    """Map Run children: `…:execution:<machine>/<map run label>:<id>` (and a `/` after the machine
    name in their state machine ARN); parents are `…:execution:<machine>:<name>`."""
    after_machine = (
        state_machine_arn.split(":stateMachine:", 1)[1] if ":stateMachine:" in state_machine_arn else ""
    )
    after_execution = execution_arn.split(":execution:", 1)[1] if ":execution:" in execution_arn else ""
    return "/" in after_machine or "/" in after_execution


def is_job_execution(change: ExecutionStatusChange, job_state_machine_arn: str | None) -> tuple[bool, str]:
    """(whether the event is about a job's parent execution, why not)."""
    if is_child_execution(change.executionArn, change.stateMachineArn):
        return False, "a Map Run child execution"
    if job_state_machine_arn and change.stateMachineArn != job_state_machine_arn:
        return False, f"an execution of another state machine ({change.stateMachineArn})"
    return True, ""
