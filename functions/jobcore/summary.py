"""The job summary: what happened to every item, the merged result, timing and cost.

Built only from S3 (job.json, the Map Run's result files, outcomes/, results/) and the execution's
status, so it can be written by the status-change handler or, when that event was lost, by the
reconciler, and writing it twice gives the same document. Reading the job is jobcore.job_reading's
(result files streamed, the rest object by object); this module merges what it reads into the summary.
Partial results are merged along a fixed tree over the item indices (`merge.OrderedMerge`) and usage is
summed exactly, so the document does not depend on which path or order the items were read in, and a
10,000-item job never holds all its records in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from jobcore import attempts, layout, merge, rerun
from jobcore.budget import bound_strings, truncate
from jobcore.cost import PARENT_TRANSITIONS, cost_block
from jobcore.executions import as_datetime, region_of
from jobcore.executions import execution_from_description as execution_from_description  # re-exported
from jobcore.executions import execution_info as execution_info  # re-exported: it was defined here
from jobcore.job_reading import FETCH_WORKERS as FETCH_WORKERS  # re-exported: it was defined here
from jobcore.job_reading import JobReader, Reads
from jobcore.job_reading import fetch_in_order as fetch_in_order  # re-exported: it was defined here
from jobcore.job_store import JobStore
from jobcore.models import (
    ExecutionStatus,
    JobDescriptor,
    JobStatus,
    Summary,
    SummaryInput,
    SummaryItems,
    SummaryTiming,
    TaskStatus,
    Usage,
)
from jobcore.report import Timeline, render_report
from jobcore.store import iso

log = logging.getLogger(__name__)

MAX_REASON_LENGTH = 2000
MAX_ERROR_LENGTH = 4000  # the job's error: merge failures name up to merge.MAX_PROBLEMS keys

# ---------------------------------------------------------------- merging the items


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

    def __init__(self, size: int, timeline: Timeline | None = None) -> None:
        self.timeline = timeline
        self.attempts = dict.fromkeys(
            (
                "launched",
                "spot_interruptions",
                "capacity_retries",
                "on_demand_fallbacks",
                "throttled_run_task_calls",
            ),
            0,
        )
        self.usage = UsageTotal()
        self.failures: list[dict[str, Any]] = []
        self.partials = merge.OrderedMerge(size)
        self.without_outcome: set[int] = set()
        self.checkpoints = _Resumptions()

    def add(
        self, index: int, verdict: TaskStatus | None, outcome: dict[str, Any] | None, partial: Any
    ) -> None:
        if self.timeline is not None:
            self.timeline.add(index, verdict, outcome)
        if verdict is None:
            self.without_outcome.add(index)
        else:
            outcome = outcome or {}
            for field in self.attempts:
                self.attempts[field] += int(outcome.get(field if field != "launched" else "attempts") or 0)
            self.usage.add(Usage.model_validate(outcome.get("usage") or {}))
            self.checkpoints.add(outcome.get("resumption"))
            if verdict is TaskStatus.FAILED:
                self.failures.append({"index": index, "reason": _short(outcome.get("reason") or "failed")})
        self.partials.add(index, partial)


class _Resumptions:
    """The `checkpoints` block: attempts that resumed from a checkpoint and the work they did not redo
    (worker/checkpoints.py), summed exactly so that the order items are read in changes nothing."""

    def __init__(self) -> None:
        self.items = 0
        self.resumed_attempts = 0
        self.saved_units = Fraction(0)
        self.saved_seconds = Fraction(0)

    def add(self, resumption: Any) -> None:
        if not isinstance(resumption, dict) or not resumption.get("resumed_attempts"):
            return
        try:  # PollTask validated it (jobcore.models.Resumption); a damaged one never fails the summary
            attempts = int(resumption["resumed_attempts"])
            units = Fraction(resumption.get("saved_units") or 0)
            seconds = Fraction(resumption.get("saved_seconds") or 0)
        except (TypeError, ValueError, OverflowError):
            return
        self.items += 1
        self.resumed_attempts += attempts
        self.saved_units += units
        self.saved_seconds += seconds

    def block(self) -> dict[str, Any]:
        units = self.saved_units
        return {
            "items_resumed": self.items,
            "resumed_attempts": self.resumed_attempts,
            "saved_units": int(units) if units.denominator == 1 else float(units),
            "saved_seconds": round(float(self.saved_seconds), 3),
        }


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
    timeline: Timeline | None = None,
) -> dict[str, Any]:
    """The summary document of a job (see docs/design.md); deterministic for the same S3 state.

    The job is read by a JobReader (with `result_files`, from the Map Run's result files where it
    wrote them; else object by object: both give the same document) and its items merged here. A
    `timeline` given collects every item's task attempts for the report page (jobcore.report) on the
    same single pass.
    """
    job = JobReader(JobStore(s3, bucket, job_id), workers=workers, result_files=result_files, reads=reads)
    items = _Items(job.size, timeline)
    for item in job.items():
        items.add(item.index, item.verdict, item.outcome, item.partial)
    # Items without an outcome (aborted, timed out, or still running) still launched tasks that ran and
    # cost: they are counted from their launch records.
    launches = job.launches_of(items.without_outcome) if items.without_outcome else {}
    return _merged(job, items, launches, execution, prices).as_document()


def _merged(
    job: JobReader,
    items: _Items,
    launches: dict[int, list[attempts.LaunchRecord]],
    execution: dict[str, Any],
    prices: dict[str, Any] | None,
) -> Summary:
    """The summary of a job read by `job`, whose items were all added to `items`; `launches`: the launch
    records of the items without an outcome. Reads nothing more."""
    store, descriptor, origin, total = job.store, job.descriptor, job.origin, job.total
    succeeded, failed = job.succeeded, job.failed
    status = JobStatus.of(execution.get("status"))
    closed = status.closed
    start, stop = as_datetime(execution.get("start")), as_datetime(execution.get("stop"))
    estimated = 0
    for records in launches.values():
        estimated += len(records)
        items.usage.add(attempts.estimated_usage(records, stop))
    items.attempts["launched"] += estimated

    unfinished = [index for index in range(total) if index not in succeeded and index not in failed]
    failures = items.failures
    if closed:
        failures.extend(
            {
                "index": index,
                "reason": _short(job.child_failures.get(index) or f"not finished: execution {status}"),
            }
            for index in unfinished
        )
    failures.sort(key=lambda failure: failure["index"])

    merged, merge_failures = items.partials.result()
    merge_error = (
        "the items' partial results could not be merged: " + "; ".join(map(str, merge_failures))
        if merge_failures
        else None
    )
    if merged is None and merge_error is None:
        result = descriptor.empty_result if descriptor else None
    else:
        result = bound_strings(merge.finalize(merged)) if merge_error is None else None
    # A job without a descriptor, or whose results do not merge, did not succeed whatever its execution
    # says: the summary's status (and `spotmap local run`'s exit code) must not claim it did.
    if status is JobStatus.SUCCEEDED and (descriptor is None or merge_error is not None):
        status = JobStatus.FAILED

    job_id = store.job_id
    return Summary(
        job_id=job_id,
        status=status,
        execution_status=execution.get("status"),
        execution_arn=execution.get("arn"),
        input=(
            SummaryInput(
                bucket=descriptor.input.bucket,
                key=descriptor.input.key,
                size=descriptor.input.size,
                version_id=descriptor.input.version_id,
            )
            if descriptor
            else None
        ),
        processor=descriptor.processor if descriptor else None,
        params=descriptor.params if descriptor else {},
        items=SummaryItems(
            total=total,
            succeeded=len(succeeded),
            failed=len(failed) + (len(unfinished) if closed else 0),
            pending=None if closed else len(unfinished),
        ),
        attempts={**items.attempts, "estimated": estimated},
        checkpoints=items.checkpoints.block(),
        # ECS tasks apart from items: a batched job runs many items per task (jobcore.batching)
        tasks={
            "total": descriptor.task_count if descriptor and descriptor.task_count is not None else total,
            "launched": items.attempts["launched"],
        },
        failures=failures,
        result=result,
        output_prefix=store.output_prefix,
        timing=SummaryTiming(
            started_at=iso(start),
            stopped_at=iso(stop),
            seconds=round((stop - start).total_seconds(), 3) if start and stop else None,
        ),
        error=_job_error(job_id, descriptor, str(execution.get("status")), execution, merge_error),
        cost=cost_block(
            items.usage.total(),
            region_of(str(execution.get("arn") or "")),
            prices,
            PARENT_TRANSITIONS,
            items=total,
            tasks=descriptor.task_count if descriptor else None,
        ),
        # the plan's: a limit, not the work, set the pace
        warnings=descriptor.warnings if descriptor is not None and descriptor.warnings else None,
        rerun_of=origin.job_id if origin is not None else None,
        rerun=rerun.summary_block(origin, job.inherited) if origin is not None else None,
    )


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
    return truncate("; ".join(problems), MAX_ERROR_LENGTH) or None


def _short(text: str) -> str:
    return truncate(text, MAX_REASON_LENGTH)


def write_summary(s3: Any, bucket: str, job_id: str, summary: dict[str, Any]) -> str:
    return JobStore(s3, bucket, job_id).write_summary(summary)


@dataclass(frozen=True)
class Written:
    summary: dict[str, Any]
    summary_key: str
    report_key: str | None  # None when the page could not be rendered (the summary is written anyway)


def summarize_job(
    s3: Any, bucket: str, job_id: str, execution: dict[str, Any], *, reads: Reads | None = None
) -> Written:
    """Build the job's summary and write its report page, then the JSON: the JSON is what tells that a
    job is summarised (the CLI and the reconciler look for it), so the page is there by then."""
    timeline = Timeline()
    summary = build_summary(s3, bucket, job_id, execution, reads=reads, timeline=timeline)
    try:
        page: str | None = render_report(summary, timeline)
    except Exception:  # a page that cannot be drawn must not cost the job its summary
        log.exception("could not render the report page of %s", job_id)
        page = None
    store = JobStore(s3, bucket, job_id)
    report_key = store.write_report(page) if page is not None else None
    return Written(summary, store.write_summary(summary), report_key)
