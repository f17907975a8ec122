"""The job summary: what happened to every item, the merged result, timing and cost.

Built only from S3 (job.json, results/, outcomes/) and the execution's status, so it can be written
by the status-change handler or, when that event was lost, by the reconciler, and writing it twice
gives the same document. Records are fetched concurrently but consumed in item order with a bounded
number in flight, so a 10,000-item job never holds all its records in memory.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, TypeVar

from jobcore import layout, merge
from jobcore.cost import PARENT_TRANSITIONS, cost_block
from jobcore.models import CLOSED_STATUSES, ExecutionStatus, JobDescriptor, Usage
from jobcore.store import iso, list_indices, put_json, read_descriptor, read_json

FETCH_WORKERS = 16
MAX_REASON_LENGTH = 2000

T = TypeVar("T")
R = TypeVar("R")


# ---------------------------------------------------------------- execution facts


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


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)  # events carry epoch milliseconds
    if isinstance(value, str):
        return _as_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
    raise TypeError(f"not a time: {value!r}")


def region_of(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) > 3 and parts[3]:
        return parts[3]
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


# ---------------------------------------------------------------- S3 reading


def fetch_in_order(
    keys: Iterable[T], fetch: Callable[[T], R], workers: int = FETCH_WORKERS, ahead: int | None = None
) -> Iterator[R]:
    """fetch(key) for every key, concurrently, yielded in the keys' order; at most `ahead` in flight."""
    limit = ahead or workers * 4
    key_iter = iter(keys)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="summary") as pool:
        in_flight: deque[Future[R]] = deque(
            pool.submit(fetch, key) for key in itertools.islice(key_iter, limit)
        )
        while in_flight:
            done = in_flight.popleft()
            for key in itertools.islice(key_iter, 1):
                in_flight.append(pool.submit(fetch, key))
            yield done.result()


# ---------------------------------------------------------------- the summary


def build_summary(
    s3: Any,
    bucket: str,
    job_id: str,
    execution: dict[str, Any],
    *,
    prices: dict[str, Any] | None = None,
    workers: int = FETCH_WORKERS,
) -> dict[str, Any]:
    """The summary document of a job (see docs/design.md); deterministic for the same S3 state."""
    status = str(execution.get("status") or "UNKNOWN")
    closed = status in {member.value for member in CLOSED_STATUSES}
    descriptor = read_descriptor(s3, bucket, job_id)

    results = list_indices(s3, bucket, layout.results_prefix(job_id))
    succeeded_outcomes = list_indices(s3, bucket, layout.outcomes_prefix(job_id, "succeeded"))
    failed_outcomes = list_indices(s3, bucket, layout.outcomes_prefix(job_id, "failed"))
    known = results | succeeded_outcomes | failed_outcomes
    total = descriptor.item_count if descriptor else (max(known) + 1 if known else 0)

    # An item's verdict: a failed outcome wins (EvaluateJob counted it), then a succeeded outcome or a
    # result record (a worker that finished while the execution was being stopped still succeeded).
    succeeded = (succeeded_outcomes | results) - failed_outcomes

    attempts = {"launched": 0, "spot_interruptions": 0, "capacity_retries": 0, "on_demand_fallbacks": 0}
    usage = Usage()
    failures: list[dict[str, Any]] = []
    outcome_keys = sorted(
        [(index, "failed") for index in failed_outcomes]
        + [(index, "succeeded") for index in succeeded_outcomes - failed_outcomes]
    )

    def fetch_outcome(entry: tuple[int, str]) -> tuple[int, str, Any]:
        index, verdict = entry
        return index, verdict, read_json(s3, bucket, layout.outcome_key(job_id, index, verdict))

    # Succeeded outcomes carry their item's partial result: merged here, in item order, as they stream
    # in. Only items whose outcome lacks it (e.g. finished while the execution was being stopped) need
    # their result record fetched afterwards.
    merged: Any = None
    merge_error: str | None = None
    merged_from_outcomes: set[int] = set()
    for index, verdict, outcome in fetch_in_order(outcome_keys, fetch_outcome, workers):
        outcome = outcome or {}
        for field in attempts:
            attempts[field] += int(outcome.get(field if field != "launched" else "attempts") or 0)
        usage = usage + Usage.model_validate(outcome.get("usage") or {})
        if verdict == "failed":
            failures.append({"index": index, "reason": _short(outcome.get("reason") or "failed")})
        elif outcome.get("partial") is not None and index in results and merge_error is None:
            merged_from_outcomes.add(index)
            try:
                merged = merge.merge(merged, outcome["partial"])
            except merge.MergeError as error:
                merge_error = f"could not merge the result of item {index}: {error}"

    unfinished = [index for index in range(total) if index not in succeeded and index not in failed_outcomes]
    if closed:
        failures.extend(
            {"index": index, "reason": f"not finished: execution {status}"} for index in unfinished
        )
    failures.sort(key=lambda failure: failure["index"])

    remaining = sorted((results & succeeded) - merged_from_outcomes)
    merged_result, rest_error = (
        (merged, None) if merge_error else _merge_results(s3, bucket, job_id, remaining, workers, merged)
    )
    merge_error = merge_error or rest_error
    if merged_result is None and merge_error is None:
        result = descriptor.empty_result if descriptor else None
    else:
        result = merge.finalize(merged_result) if merge_error is None else None

    start, stop = _as_datetime(execution.get("start")), _as_datetime(execution.get("stop"))
    items: dict[str, int] = {
        "total": total,
        "succeeded": len(succeeded),
        "failed": len(failed_outcomes) + (len(unfinished) if closed else 0),
    }
    if not closed:
        items["pending"] = len(unfinished)

    return {
        "job_id": job_id,
        "status": status,
        "execution_arn": execution.get("arn"),
        "input": (
            {
                "bucket": descriptor.input.bucket,
                "key": descriptor.input.key,
                "size": descriptor.input.size,
                "version_id": descriptor.input.version_id,
            }
            if descriptor
            else None
        ),
        "processor": descriptor.processor if descriptor else None,
        "params": descriptor.params if descriptor else {},
        "items": items,
        "attempts": attempts,
        "failures": failures,
        "result": result,
        "output_prefix": f"{layout.OUTPUT_PREFIX}{job_id}/",
        "timing": {
            "started_at": iso(start),
            "stopped_at": iso(stop),
            "seconds": round((stop - start).total_seconds(), 3) if start and stop else None,
        },
        "error": _job_error(job_id, descriptor, status, execution, merge_error),
        "cost": cost_block(usage, region_of(str(execution.get("arn") or "")), prices, PARENT_TRANSITIONS),
    }


def _merge_results(
    s3: Any, bucket: str, job_id: str, indices: list[int], workers: int, merged: Any = None
) -> tuple[Any, str | None]:
    def fetch_partial(index: int) -> Any:
        record = read_json(s3, bucket, layout.result_key(job_id, index))
        return record.get("partial") if isinstance(record, dict) else None

    for index, partial in zip(indices, fetch_in_order(indices, fetch_partial, workers), strict=True):
        try:
            merged = merge.merge(merged, partial)
        except merge.MergeError as error:
            return None, f"could not merge the result of item {index}: {error}"
    return merged, None


def _job_error(
    job_id: str,
    descriptor: JobDescriptor | None,
    status: str,
    execution: dict[str, Any],
    merge_error: str | None,
) -> str | None:
    problems: list[str] = []
    if descriptor is None:
        problems.append(f"job descriptor {layout.descriptor_key(job_id)} not found")
    elif descriptor.error:
        problems.append(descriptor.error)
    if status != ExecutionStatus.SUCCEEDED.value and not (descriptor and descriptor.error):
        error, cause = execution.get("error"), execution.get("cause")
        if error or cause:
            problems.append(": ".join(part for part in (error, cause) if part))
        elif status in (ExecutionStatus.ABORTED.value, ExecutionStatus.TIMED_OUT.value):
            problems.append(f"execution {status}")
    if merge_error:
        problems.append(merge_error)
    return "; ".join(problems) or None


def _short(text: str) -> str:
    return text if len(text) <= MAX_REASON_LENGTH else text[: MAX_REASON_LENGTH - 1] + "…"


def write_summary(s3: Any, bucket: str, job_id: str, summary: dict[str, Any]) -> str:
    key = layout.summary_key(job_id)
    put_json(s3, bucket, key, json.dumps(summary, indent=2, sort_keys=True, default=str).encode("utf-8"))
    return key
