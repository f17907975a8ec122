"""Builds a job's S3 state (job.json, results, outcomes) the way StartJob, the worker and PollTask
leave it, for the summary, summarize and reconcile tests."""

from __future__ import annotations

import json
from typing import Any

from jobcore import layout
from jobcore.models import Capacity, InputObject, ItemOutcome, JobDescriptor, ResultRecord, TaskStatus, Usage
from tests.unit.conftest import BUCKET


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
) -> None:
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
    )
    put_json(s3, layout.outcome_key(job_id, index, "SUCCEEDED"), outcome.model_dump(mode="json"))


def put_failure(
    s3: Any,
    job_id: str,
    index: int,
    reason: str,
    *,
    capacity_retries: int = 0,
    on_demand_fallbacks: int = 0,
    attempts: int = 1,
) -> None:
    outcome = ItemOutcome(
        index=index,
        status=TaskStatus.FAILED,
        reason=reason,
        attempts=attempts,
        capacity_retries=capacity_retries,
        on_demand_fallbacks=on_demand_fallbacks,
        usage=item_usage(on_demand_seconds=60),
    )
    put_json(s3, layout.outcome_key(job_id, index, "FAILED"), outcome.model_dump(mode="json"))


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
