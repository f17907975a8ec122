"""Launch records: one small object per task LaunchTask starts, so a summary can count and cost every
attempt even when its item never got an outcome.

An item's outcome (written by PollTask or RecordFailure when the item ends) holds its attempts and
usage. An execution that is aborted, times out or fails while tasks run ends its items without one, and
their usage lived only in the state machine's item state. LaunchTask therefore leaves
jobs/<job_id>/attempts/<index>/attempt-<n>.json (capacity, vCPU, memory, launch time) for every task
it starts; the summary reads these only for items without an outcome and costs each attempt from its
launch until the next attempt's launch or the execution's stop (StopJobTasks stops the last one then):
an upper bound, as the summary says.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from jobcore import billing
from jobcore.job_store import JobStore
from jobcore.models import Capacity, Usage

log = logging.getLogger(__name__)


class LaunchRecord(BaseModel):
    index: int
    attempt: int
    capacity: Capacity
    vcpu: float
    gb: float
    task_arn: str
    launched_at: datetime


def _units(value: Any, divisor: float) -> float:
    try:
        return float(value) / divisor
    except (TypeError, ValueError):
        return 0.0


def record_launch(
    store: JobStore, index: int, attempt: int, capacity: Capacity, task: dict[str, Any]
) -> None:
    """Leave the launch record of a task RunTask started (`task` as RunTask returns it). Best effort: a
    launch never fails for want of its record (the summary then just cannot cost that attempt)."""
    record = LaunchRecord(
        index=index,
        attempt=attempt,
        capacity=capacity,
        vcpu=_units(task.get("cpu"), 1024),  # CPU units, 1024 per vCPU
        gb=_units(task.get("memory"), 1024),  # MiB
        task_arn=str(task.get("taskArn") or ""),
        launched_at=task.get("createdAt") or datetime.now(timezone.utc),
    )
    try:
        store.write_launch_record(record)
    except ClientError as error:
        log.warning("could not record the launch of item %s attempt %s: %s", index, attempt, error)


def launches_of(store: JobStore, indices: set[int]) -> dict[int, list[LaunchRecord]]:
    """The launch records of the given items, by item, in attempt order (one LIST, then a GET each)."""
    found: dict[int, list[LaunchRecord]] = {}
    for key, document in store.launch_record_documents(indices):
        try:
            record = LaunchRecord.model_validate(document)
        except ValidationError as error:
            log.warning("launch record %s is not valid, not counted: %s", key, error)
            continue
        found.setdefault(record.index, []).append(record)
    for records in found.values():
        records.sort(key=lambda record: record.attempt)
    return found


def estimated_usage(records: list[LaunchRecord], until: datetime | None) -> Usage:
    """Fargate usage of an item's attempts: each from its launch to the next launch, the last until
    `until` (the execution's stop); nothing for the last one when `until` is unknown."""
    usage = Usage()
    for position, record in enumerate(records):
        end = records[position + 1].launched_at if position + 1 < len(records) else until
        if end is None:
            continue
        start = (
            record.launched_at
            if record.launched_at.tzinfo
            else record.launched_at.replace(tzinfo=timezone.utc)
        )
        end = end if end.tzinfo else end.replace(tzinfo=timezone.utc)
        seconds = billing.billed_duration((end - start).total_seconds())  # a minute at least, as AWS bills
        usage = usage.add_task(record.capacity, record.vcpu, record.gb, seconds)
    return usage
