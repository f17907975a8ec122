"""Step Functions executions: telling a job's parent execution from the Map's child executions, and
reading "Step Functions Execution Status Change" events (the `detail` model that Powertools'
`event_parser` with its EventBridgeEnvelope validates the handlers' events into)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from jobcore.models import CLOSED_STATUSES, ExecutionStatus
from jobcore.summary import execution_info

CLOSED = frozenset(status.value for status in CLOSED_STATUSES)
# A job's tasks can outlive its execution only when it did not succeed (a succeeded execution saw every
# item's task stop): the statuses StopJobTasks and the reconciler's task sweep act on.
STOPPED_EARLY = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED})


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
