"""The job summary: what happened to every item, the merged result, timing and cost.

Built only from S3 (job.json, the Map Run's result files, outcomes/, results/) and the execution's
status, so it can be written by the status-change handler or, when that event was lost, by the
reconciler, and writing it twice gives the same document. Succeeded items come from the result files
the Distributed Map writes (a few large objects, parsed as they stream in); whatever they do not cover
is fetched object by object, concurrently, with a bounded number in flight. Partial results are merged
along a fixed tree over the item indices (`merge.OrderedMerge`) and usage is summed exactly, so the
document does not depend on which path or order the items were read in, and a 10,000-item job never
holds all its records in memory.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from jobcore import layout, map_results, merge
from jobcore.cost import PARENT_TRANSITIONS, cost_block
from jobcore.models import CLOSED_STATUSES, ExecutionStatus, JobDescriptor, Usage
from jobcore.store import iso, list_indices, put_json, read_descriptor, read_json

log = logging.getLogger(__name__)

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


@dataclass
class Reads:
    """How a summary was read (for the logs): result files streamed, succeeded items taken from them,
    and objects fetched one by one (outcome objects and result records)."""

    result_files: int = 0
    items_from_result_files: int = 0
    objects: int = 0


_EXACT = 1074  # every finite float is a whole multiple of 2 ** -1074


class UsageTotal:
    """The sum of the items' Usage, computed exactly: the total is the same whatever the order the
    items are read in (result files and per-item reads meet them in different orders)."""

    def __init__(self) -> None:
        self._sums = dict.fromkeys(Usage.model_fields, 0)

    def add(self, usage: Usage) -> None:
        for name in self._sums:
            numerator, denominator = float(getattr(usage, name)).as_integer_ratio()
            self._sums[name] += numerator << (_EXACT + 1 - denominator.bit_length())

    def total(self) -> Usage:
        scale = 1 << _EXACT
        values = {name: total / scale for name, total in self._sums.items()}
        for name, field in Usage.model_fields.items():
            if field.annotation in (int, "int"):
                values[name] = self._sums[name] >> _EXACT
        return Usage(**values)


class _Items:
    """What the items add up to, fed one item at a time in any order."""

    def __init__(self, size: int) -> None:
        self.attempts = dict.fromkeys(
            ("launched", "spot_interruptions", "capacity_retries", "on_demand_fallbacks"), 0
        )
        self.usage = UsageTotal()
        self.failures: list[dict[str, Any]] = []
        self.partials = merge.OrderedMerge(size)

    def add(self, index: int, verdict: str | None, outcome: dict[str, Any] | None, partial: Any) -> None:
        if verdict is not None:
            outcome = outcome or {}
            for field in self.attempts:
                self.attempts[field] += int(outcome.get(field if field != "launched" else "attempts") or 0)
            self.usage.add(Usage.model_validate(outcome.get("usage") or {}))
            if verdict == "failed":
                self.failures.append({"index": index, "reason": _short(outcome.get("reason") or "failed")})
        self.partials.add(index, partial)


def build_summary(
    s3: Any,
    bucket: str,
    job_id: str,
    execution: dict[str, Any],
    *,
    prices: dict[str, Any] | None = None,
    workers: int = FETCH_WORKERS,
    result_files: bool = True,
    reads: Reads | None = None,
) -> dict[str, Any]:
    """The summary document of a job (see docs/design.md); deterministic for the same S3 state.

    Succeeded items are taken from the Map Run's result files when there are some (`result_files`);
    everything they do not cover (failed items, partials left out of a child's output, an execution
    that ended before the Map wrote its files) is read object by object. Both give the same document.
    """
    reads = reads if reads is not None else Reads()
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
    accepted = succeeded_outcomes - failed_outcomes
    items = _Items(max(total, max(known) + 1 if known else 0))

    # A succeeded outcome carries its item's partial result; one without it (an outcome written before
    # partials were copied into outcomes) sends us to the result record. So does a result record
    # without any outcome.
    def partial_of(index: int, outcome: dict[str, Any]) -> tuple[bool, Any]:
        """(known, partial) from a succeeded item's outcome; not known: read its result record."""
        if index not in results:
            return True, None
        partial = outcome.get("partial")
        return partial is not None, partial

    covered: set[int] = set()
    if result_files:
        for outcome in _result_file_outcomes(s3, bucket, job_id, reads):
            index = outcome["index"]
            if index not in accepted or index in covered or outcome.get("partial_omitted"):
                continue
            known_partial, partial = partial_of(index, outcome)
            if known_partial:
                covered.add(index)
                items.add(index, "succeeded", outcome, partial)
        reads.items_from_result_files = len(covered)

    def fetch(index: int) -> tuple[int, str | None, dict[str, Any] | None, Any]:
        verdict = "failed" if index in failed_outcomes else "succeeded" if index in accepted else None
        outcome: dict[str, Any] | None = None
        known_partial, partial = verdict == "failed", None
        if verdict is not None:
            outcome = read_json(s3, bucket, layout.outcome_key(job_id, index, verdict))
            reads.objects += 1
            if verdict == "succeeded":
                known_partial, partial = partial_of(index, outcome or {})
        if not known_partial and index in results:
            record = read_json(s3, bucket, layout.result_key(job_id, index))
            reads.objects += 1
            partial = record.get("partial") if isinstance(record, dict) else None
        return index, verdict, outcome, partial

    per_item: list[int] = []
    for index in range(items.partials.size):
        if index in covered:
            continue
        if index in failed_outcomes or index in accepted or index in results:
            per_item.append(index)
        else:
            items.add(index, None, None, None)  # not finished: nothing to read
    for index, verdict, fetched, partial in fetch_in_order(per_item, fetch, workers):
        items.add(index, verdict, fetched, partial)

    unfinished = [index for index in range(total) if index not in succeeded and index not in failed_outcomes]
    failures = items.failures
    if closed:
        failures.extend(
            {"index": index, "reason": f"not finished: execution {status}"} for index in unfinished
        )
    failures.sort(key=lambda failure: failure["index"])

    merged, failure = items.partials.result()
    merge_error = f"could not merge the result of item {failure[0]}: {failure[1]}" if failure else None
    if merged is None and merge_error is None:
        result = descriptor.empty_result if descriptor else None
    else:
        result = merge.finalize(merged) if merge_error is None else None

    start, stop = _as_datetime(execution.get("start")), _as_datetime(execution.get("stop"))
    counts: dict[str, int] = {
        "total": total,
        "succeeded": len(succeeded),
        "failed": len(failed_outcomes) + (len(unfinished) if closed else 0),
    }
    if not closed:
        counts["pending"] = len(unfinished)

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
        "items": counts,
        "attempts": items.attempts,
        "failures": failures,
        "result": result,
        "output_prefix": f"{layout.OUTPUT_PREFIX}{job_id}/",
        "timing": {
            "started_at": iso(start),
            "stopped_at": iso(stop),
            "seconds": round((stop - start).total_seconds(), 3) if start and stop else None,
        },
        "error": _job_error(job_id, descriptor, status, execution, merge_error),
        "cost": cost_block(
            items.usage.total(), region_of(str(execution.get("arn") or "")), prices, PARENT_TRANSITIONS
        ),
    }


def _result_file_outcomes(s3: Any, bucket: str, job_id: str, reads: Reads) -> Iterator[dict[str, Any]]:
    """The outcomes of the succeeded children in the newest Map Run's result files, streamed; none when
    the Map wrote no files (e.g. the execution was stopped first). A damaged file ends early: the
    items it did not give are read one by one."""
    manifest_key = map_results.newest_manifest_key(s3, bucket, job_id)
    manifest = read_json(s3, bucket, manifest_key) if manifest_key else None
    if not isinstance(manifest, dict):
        return
    for key in map_results.result_file_keys(manifest, "SUCCEEDED"):
        reads.result_files += 1
        try:
            for record in map_results.stream_records(s3, bucket, key):
                outcome = map_results.succeeded_outcome(record)
                if outcome is not None:
                    yield outcome
        except ValueError as error:
            log.warning("result file %s is damaged, its other items are read one by one: %s", key, error)


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
