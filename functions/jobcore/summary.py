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
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any, NamedTuple, TypeVar

from jobcore import attempts, batching, layout, map_results, merge, rerun
from jobcore.budget import bound_strings, truncate
from jobcore.cost import PARENT_TRANSITIONS, cost_block
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

FETCH_WORKERS = 16
MAX_REASON_LENGTH = 2000
MAX_ERROR_LENGTH = 4000  # the job's error: merge failures name up to merge.MAX_PROBLEMS keys

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


class _Listing(NamedTuple):
    """Which items have a result record or a succeeded outcome, as LIST says."""

    results: set[int]
    succeeded_outcomes: set[int]


@dataclass(frozen=True)
class _Found:
    """What one item's objects say."""

    index: int
    verdict: TaskStatus | None  # FAILED or SUCCEEDED: which outcome object it has; None: none
    outcome: dict[str, Any] | None
    partial: Any
    succeeded: bool  # a succeeded outcome or a result record, and no failed outcome


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

    With `result_files` and a Map Run that wrote them, succeeded items come from its SUCCEEDED files
    and only what they do not cover (failed items, a partial left out of a child's output, a missing
    file) is read object by object; otherwise every item is (LIST, then GET). Both give the same
    document for the same job. A `timeline` given collects every item's task attempts for the
    report page (jobcore.report) on the same single pass.
    """
    store = JobStore(s3, bucket, job_id)
    reads = reads if reads is not None else Reads()
    status = JobStatus.of(execution.get("status"))
    closed = status.closed
    descriptor = store.read_descriptor()
    failed = store.outcome_indices(TaskStatus.FAILED)
    manifest = store.newest_map_manifest() if result_files and descriptor is not None else None

    listing: _Listing | None = None
    known = set(failed)
    if manifest is None:
        listing = _Listing(store.result_indices(), store.outcome_indices(TaskStatus.SUCCEEDED))
        known |= listing.results | listing.succeeded_outcomes
    # else: a Map Run that wrote its result files has ended every item, and its SUCCEEDED files hold the
    # succeeded ones, so nothing needs listing: the few items they leave out are looked up one by one.
    total = descriptor.item_count if descriptor else (max(known) + 1 if known else 0)
    origin = descriptor.rerun if descriptor is not None else None
    if origin is not None:  # a rerun covers the whole job: its own items, the rest inherited
        total = origin.item_count
    size = max(total, max(known) + 1 if known else 0)
    items = _Items(size, timeline)
    succeeded: set[int] = set()
    inherited = 0
    if origin is not None:
        own = store.item_indices()
        fetch: rerun.FetchInOrder = lambda keys, read: fetch_in_order(keys, read, workers)  # noqa: E731
        for index, partial in rerun.inherited_partials(s3, bucket, origin, own, fetch):
            reads.objects += 1
            items.add(index, TaskStatus.SUCCEEDED, None, partial)  # succeeded in an earlier job: no cost here
            succeeded.add(index)
            inherited += 1

    if manifest is not None:
        for outcome in (
            entry
            for child in _result_file_outcomes(store, manifest, reads)
            for entry in batching.item_outcomes(child)  # a batch's child carries its items' outcomes
        ):
            index = outcome["index"]
            partial = outcome.get("partial")
            if not 0 <= index < size or index in failed or index in succeeded or partial is None:
                continue  # another item's business, a failed item, a repeat, or its partial is elsewhere
            if outcome.get("partial_omitted"):
                continue
            succeeded.add(index)
            items.add(index, TaskStatus.SUCCEEDED, outcome, partial)
        reads.items_from_result_files = len(succeeded) - inherited

    # A child that failed before any Lambda of it could record why (e.g. its state outgrew Step
    # Functions' 256 KiB, maybe after its task ran and wrote a result record) is named, with its cause,
    # only in the Map Run's FAILED result files. Read in both modes, so both give the same document.
    failed_files = manifest
    if failed_files is None and not result_files and descriptor is not None:
        failed_files = store.newest_map_manifest()
    candidates = {index for index in range(size) if index not in succeeded and index not in failed}
    child_failures = (
        _failed_children(store, failed_files, candidates, reads) if failed_files and candidates else {}
    )

    counting = threading.Lock()  # look_up runs in FETCH_WORKERS threads

    def get(read: Callable[..., Any], *arguments: Any) -> Any:
        """One object read through the store, counted."""
        with counting:
            reads.objects += 1
        return read(*arguments)

    def look_up(index: int) -> _Found:
        """An item's verdict, counters and partial result from its own objects. A failed outcome wins
        (EvaluateJob counted it); then a succeeded outcome or a result record (a worker that finished
        while the execution was being stopped still succeeded). A succeeded outcome carries the
        item's partial result; one without it (written before outcomes carried partials) sends us to
        the result record."""
        if index in failed:
            return _Found(index, TaskStatus.FAILED, get(store.outcome, index, TaskStatus.FAILED), None, False)
        has_record: bool | None  # None: not known yet
        if listing is None:
            outcome = get(store.outcome, index, TaskStatus.SUCCEEDED)
            has_outcome = outcome is not None
            # PollTask writes a succeeded outcome only once it has read the item's result record
            has_record = True if has_outcome and outcome.get("partial") is not None else None
        else:
            has_outcome = index in listing.succeeded_outcomes
            outcome = get(store.outcome, index, TaskStatus.SUCCEEDED) if has_outcome else None
            has_record = index in listing.results
        if not has_outcome and index in child_failures:
            # its child failed: EvaluateJob counted it as failed (no succeeded outcome), and so do we,
            # whatever result record its task left
            return _Found(index, None, None, None, False)
        partial = (outcome or {}).get("partial") if has_outcome and has_record else None
        if partial is None and has_record is not False:
            try:
                record = get(store.result, index)
            except (ValueError, RecursionError) as error:  # not JSON: the item's result cannot be merged
                record = {"partial": merge.Unreadable(f"its result record is not JSON ({error})")}
            partial = record.get("partial") if isinstance(record, dict) else None
            if listing is None:
                has_record = record is not None
        verdict = TaskStatus.SUCCEEDED if has_outcome else None
        return _Found(index, verdict, outcome, partial, has_outcome or bool(has_record))

    to_look_up: list[int] = []
    for index in range(size):
        if index in succeeded:
            continue
        if listing is None or index in failed or index in known:
            to_look_up.append(index)
        else:
            items.add(index, None, None, None)  # listed nowhere: not finished, nothing to read
    for found in fetch_in_order(to_look_up, look_up, workers):
        items.add(found.index, found.verdict, found.outcome, found.partial)
        if found.succeeded:
            succeeded.add(found.index)

    start, stop = _as_datetime(execution.get("start")), _as_datetime(execution.get("stop"))
    # Items without an outcome (aborted, timed out, or still running) still launched tasks that ran and
    # cost: count them from their launch records.
    estimated = 0
    if items.without_outcome:
        for records in attempts.launches_of(store, items.without_outcome).values():
            estimated += len(records)
            items.usage.add(attempts.estimated_usage(records, stop))
    items.attempts["launched"] += estimated

    unfinished = [index for index in range(total) if index not in succeeded and index not in failed]
    failures = items.failures
    if closed:
        failures.extend(
            {
                "index": index,
                "reason": _short(child_failures.get(index) or f"not finished: execution {status}"),
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

    summary = Summary(
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
        rerun=rerun.summary_block(origin, inherited) if origin is not None else None,
    )
    return summary.as_document()


def _result_file_outcomes(
    store: JobStore, manifest: dict[str, Any], reads: Reads
) -> Iterator[dict[str, Any]]:
    """The outcomes of the succeeded children in the manifest's result files, streamed. A damaged
    file ends early: the items it did not give are looked up one by one."""
    for key in map_results.result_file_keys(manifest, ExecutionStatus.SUCCEEDED):
        reads.result_files += 1
        try:
            for record in store.map_result_records(key):
                outcome = map_results.succeeded_outcome(record)
                if outcome is not None:
                    yield outcome
        except ValueError as error:
            log.warning("result file %s is damaged, its other items are read one by one: %s", key, error)


def _failed_children(
    store: JobStore, manifest: dict[str, Any], wanted: set[int], reads: Reads
) -> dict[int, str]:
    """Why the Map Run's failed children of the `wanted` items failed, from its FAILED result files."""
    found: dict[int, str] = {}
    for key in map_results.result_file_keys(manifest, ExecutionStatus.FAILED):
        reads.result_files += 1
        try:
            for record in store.map_result_records(key):
                child = map_results.failed_child(record)
                if child is not None and child[0] in wanted and child[0] not in found:
                    found[child[0]] = child[1]
        except ValueError as error:
            log.warning("result file %s is damaged: %s", key, error)
        if len(found) == len(wanted):
            break
    return found


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
