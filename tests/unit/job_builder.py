"""Builds a job's S3 state (job.json, results, outcomes, the Map Run's result files) the way StartJob,
the worker, PollTask and the Distributed Map leave it, for the summary, summarize and reconcile tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from jobcore import layout
from jobcore.models import Capacity, InputObject, ItemOutcome, JobDescriptor, ResultRecord, TaskStatus, Usage
from spotmap.result_writer import ChildExecution, MapRun, execution_record, write_results
from tests.unit.conftest import BUCKET

CHILD_START = datetime(2026, 11, 23, 10, 0, 0, tzinfo=timezone.utc)
CHILD_STOP = datetime(2026, 11, 23, 10, 10, 0, tzinfo=timezone.utc)


def put_json(s3: Any, key: str, document: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(document).encode())


def put_descriptor(
    s3: Any, job_id: str, item_count: int, *, error: str | None = None, processor: str = "csv-profile"
) -> JobDescriptor:
    descriptor = JobDescriptor(
        job_id=job_id,
        input=InputObject(bucket=BUCKET, key="input/sales 2024 Q1.csv", size=4096, version_id="v1", etag="e"),
        processor=processor,
        item_count=item_count,
        created_at="2026-11-23T10:00:00.000Z",
        empty_result={"rows": 0, "columns": {}},
        error=error,
    )
    put_json(s3, layout.descriptor_key(job_id), descriptor.model_dump(mode="json"))
    return descriptor


def item_usage(spot_seconds: float = 0.0, on_demand_seconds: float = 0.0) -> Usage:
    usage = Usage()
    if spot_seconds:
        usage = usage.add_task(Capacity.SPOT, 1.0, 2.0, spot_seconds)
    if on_demand_seconds:
        usage = usage.add_task(Capacity.ON_DEMAND, 1.0, 2.0, on_demand_seconds)
    return usage.add_lambda(256, 0.2, 1).add_lambda(256, 0.2, 4)


def put_success(
    s3: Any,
    job_id: str,
    index: int,
    partial: Any,
    *,
    attempts: int = 1,
    interruptions: int = 0,
    usage: Usage | None = None,
    partial_in_outcome: bool = False,
) -> ItemOutcome:
    """The result record and the succeeded outcome of an item (the outcome carries the partial, as
    PollTask writes it, only with `partial_in_outcome`); returns the outcome."""
    record = ResultRecord(
        job_id=job_id,
        index=index,
        attempt=attempts,
        processor="csv-profile",
        partial=partial,
        started_at="2026-11-23T10:00:00Z",
        finished_at="2026-11-23T10:10:00Z",
    )
    put_json(s3, layout.result_key(job_id, index), record.model_dump(mode="json"))
    outcome = ItemOutcome(
        index=index,
        status=TaskStatus.SUCCEEDED,
        attempts=attempts,
        spot_interruptions=interruptions,
        usage=usage or item_usage(600),
        task_seconds=600.0,
        partial=partial if partial_in_outcome else None,
    )
    put_json(s3, layout.outcome_key(job_id, index, "SUCCEEDED"), outcome.model_dump(mode="json"))
    return outcome


def put_failure(
    s3: Any,
    job_id: str,
    index: int,
    reason: str,
    *,
    capacity_retries: int = 0,
    on_demand_fallbacks: int = 0,
    attempts: int = 1,
    throttled_run_task_calls: int = 0,
) -> ItemOutcome:
    outcome = ItemOutcome(
        index=index,
        status=TaskStatus.FAILED,
        reason=reason,
        attempts=attempts,
        capacity_retries=capacity_retries,
        on_demand_fallbacks=on_demand_fallbacks,
        throttled_run_task_calls=throttled_run_task_calls,
        usage=item_usage(on_demand_seconds=60),
    )
    put_json(s3, layout.outcome_key(job_id, index, "FAILED"), outcome.model_dump(mode="json"))
    return outcome


def rows(count: int, low: float, high: float) -> dict[str, Any]:
    """A csv-profile-like partial result of one shard."""
    return {
        "rows": {"$sum": count},
        "amount": {
            "$if": {"$all": True},
            "$then": {"min": {"$min": low}, "max": {"$max": high}},
            "$else": {"min": {"$min": str(low)}},
        },
        "order": {"$list": []},
    }


def put_map_run(
    s3: Any, job_id: str, groups: list[list[ChildExecution]], *, omit_partial_of: int | None = None
) -> str:
    """The Map Run's result files as the local cloud writes them: the succeeded children of each group
    in one SUCCEEDED file, in the order given; `omit_partial_of` names a child whose partial was left
    out of its output, as PollTask leaves it when too large. Returns the manifest's key."""
    run = MapRun(
        arn=f"arn:aws:states:us-east-1:123456789012:mapRun:spotmap-job/x:{uuid.uuid4()}",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:spotmap-job/x",
    )
    groups = [
        [
            child if child.index != omit_partial_of else replace(child, output=omitted(child.output))
            for child in group
        ]
        for group in groups
    ]

    def file_size(group: list[ChildExecution]) -> int:
        records = [execution_record(run, child) for child in group if child.status == "SUCCEEDED"]
        return len(json.dumps(records, separators=(",", ":")).encode())

    def put(key: str, body: bytes) -> None:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    children = [child for group in groups for child in group]
    key = write_results(
        put, BUCKET, layout.map_results_prefix(job_id), run, children, max(map(file_size, groups))
    )
    files = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["ResultFiles"]["SUCCEEDED"]
    assert len(files) == len(groups), "groups of equal size make one file each"
    return key


def omitted(outcome: dict[str, Any]) -> dict[str, Any]:
    return ItemOutcome.model_validate(outcome).for_state_output(limit=1).model_dump(mode="json")


def succeeded_child(outcome: ItemOutcome) -> ChildExecution:
    return ChildExecution(
        index=outcome.index,
        status="SUCCEEDED",
        input=json.dumps({"job_id": "job-1", "item": {"index": outcome.index}}),
        start=CHILD_START,
        stop=CHILD_STOP,
        output=outcome.model_dump(mode="json"),
    )
