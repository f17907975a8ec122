"""Statuses are enums from the event to the summary, and every one of them is still the same string in
JSON (outcome records, batch records, the summary)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from jobcore.models import (
    AttemptOutcome,
    AttemptRecord,
    BatchItemResult,
    Capacity,
    ExecutionStatus,
    JobStatus,
    Summary,
    SummaryItems,
    SummaryTiming,
)


@pytest.mark.parametrize(
    ("given", "status", "closed"),
    [
        (ExecutionStatus.TIMED_OUT, JobStatus.TIMED_OUT, True),
        ("SUCCEEDED", JobStatus.SUCCEEDED, True),
        ("RUNNING", JobStatus.RUNNING, False),
        ("PENDING_REDRIVE", JobStatus.PENDING_REDRIVE, False),
        (None, JobStatus.UNKNOWN, False),
    ],
)
def test_a_jobs_status_is_its_executions(given: object, status: JobStatus, closed: bool) -> None:
    # GIVEN an execution's status as an event or DescribeExecution gives it (or none)
    # WHEN it becomes the job's status
    # THEN it is the same status (UNKNOWN for none), closed when the execution ended
    assert JobStatus.of(given) is status and status.closed is closed


def test_the_summary_document_holds_its_status_as_a_plain_string() -> None:
    # GIVEN a summary whose status is an enum
    summary = Summary(
        job_id="j",
        status=JobStatus.TIMED_OUT,
        execution_status="TIMED_OUT",
        execution_arn=None,
        input=None,
        processor=None,
        params={},
        items=SummaryItems(total=0, succeeded=0, failed=0),
        attempts={},
        checkpoints={},
        tasks={},
        failures=[],
        result=None,
        output_prefix="output/j/",
        timing=SummaryTiming(started_at=None, stopped_at=None, seconds=None),
        error=None,
        cost={},
    )

    # WHEN it becomes the document Summarize writes
    document = summary.as_document()

    # THEN its status is the string itself, as before statuses were enums
    assert type(document["status"]) is str and json.dumps(document["status"]) == '"TIMED_OUT"'


def test_outcomes_are_the_same_strings_in_json() -> None:
    # GIVEN an attempt and a batch's item result made with the enums
    record = AttemptRecord(attempt=1, capacity=Capacity.SPOT, outcome=AttemptOutcome.INTERRUPTED)
    result = BatchItemResult(index=3, status=AttemptOutcome.FAILED, attempt=1, reason="bad row")

    # WHEN they are written
    # THEN their JSON has the strings the worker and the report always read
    assert json.loads(record.model_dump_json())["outcome"] == "interrupted"
    assert json.loads(result.model_dump_json())["status"] == "failed"
    assert (
        BatchItemResult.model_validate({"index": 3, "status": "succeeded", "attempt": 1}).status
        == "succeeded"
    )
    # AND a batch's item is never "interrupted" (its task is)
    with pytest.raises(ValidationError):
        BatchItemResult.model_validate({"index": 3, "status": "interrupted", "attempt": 1})
