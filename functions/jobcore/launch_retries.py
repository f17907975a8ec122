"""What RunTask refused while an item's launch waited: throttled calls and Spot capacity shortages,
counted apart, as fields (never parsed out of error messages), and kept across the state machine's
retries.

Why S3: when LaunchTask raises `LaunchThrottled` or `CapacityUnavailable`, the Launch state's Retry runs
LaunchTask again with the input it had (Step Functions' retriers re-run a state with the same input:
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html), so nothing a failed
invocation learnt reaches the next one through the item's state; `$$.State.RetryCount` counts every
retry of the state, whichever retrier matched, so it cannot tell throttling from capacity. Each
refused invocation therefore leaves jobs/<job_id>/launch-retries/<index>/attempt-<n>.json (one small
object per launch, rewritten by each refused try: the retries of one item run one after another).
The invocation that finally starts the task folds the tally into the item's state
(`ItemState.capacity_retries`, `ItemState.throttled_run_task_calls`), and RecordFailure does the same
when the launch ends in a failure instead.

Throttling is about rate, not capacity: only `capacity_retries` moves a launch to on-demand FARGATE
(`launching.choose_capacity`); throttled calls only make the launch wait its turn, until the item's own
timeout (`waiting_since` + ItemTimeoutMinutes).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field, ValidationError

from jobcore.job_store import JobStore

log = logging.getLogger(__name__)


class LaunchRetries(BaseModel):
    """One launch (an item's attempt n) as RunTask refused it so far."""

    index: int
    attempt: int
    capacity_retries: int = Field(default=0, ge=0)  # RunTask answered "Capacity is unavailable"
    throttled_run_task_calls: int = Field(default=0, ge=0)  # RunTask refused with ThrottlingException
    transient_errors: int = Field(default=0, ge=0)  # ECS's own ServerException and the like
    waiting_since: datetime | None = None  # the first refusal: the launch's clock for ItemTimeoutMinutes
    last_error: str | None = None

    def refused(self, now: datetime, *, error: str, kind: str) -> LaunchRetries:
        """This tally with one more refusal of `kind` ("throttled", "capacity" or "transient")."""
        counts = {
            "throttled": "throttled_run_task_calls",
            "capacity": "capacity_retries",
            "transient": "transient_errors",
        }
        field = counts[kind]
        return self.model_copy(
            update={
                field: getattr(self, field) + 1,
                "waiting_since": self.waiting_since or now,
                "last_error": error[:500],
            }
        )

    def waited_seconds(self, now: datetime) -> float:
        if self.waiting_since is None:
            return 0.0
        since = (
            self.waiting_since
            if self.waiting_since.tzinfo
            else self.waiting_since.replace(tzinfo=timezone.utc)
        )
        return max(0.0, (now - since).total_seconds())


def read_tally(store: JobStore, index: int, attempt: int) -> LaunchRetries:
    """The launch's tally so far; an empty one when it has none (nothing refused yet)."""
    empty = LaunchRetries(index=index, attempt=attempt)
    try:
        document = store.launch_retries_document(index, attempt)
    except (ClientError, ValueError) as error:
        log.warning("could not read the launch tally of item %s attempt %s: %s", index, attempt, error)
        return empty
    if document is None:
        return empty
    try:
        return LaunchRetries.model_validate(document)
    except ValidationError as error:
        log.warning("launch tally of item %s attempt %s is not valid: %s", index, attempt, error)
        return empty


def write_tally(store: JobStore, tally: LaunchRetries) -> bool:
    """Keep the tally for the next try. Best effort: a refusal that cannot be recorded is missing from
    the counts, but it must not fail the item (the launch is retried all the same)."""
    try:
        store.write_launch_retries(tally)
    except ClientError as error:
        key = store.launch_retries_key(tally.index, tally.attempt)
        log.warning("could not record the launch tally %s: %s", key, error)
        return False
    return True
