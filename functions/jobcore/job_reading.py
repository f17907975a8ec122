"""Reading a job for its summary: which items ended how, with their outcome records and partial results.

Everything here reads S3 (through the job's JobStore) and nothing merges: jobcore.summary feeds what it
reads into the summary's totals. Succeeded items come from the result files the Distributed Map writes
(a few large objects, parsed as they stream in); whatever they do not cover is fetched object by object,
concurrently, with a bounded number in flight. Both ways give the same items for the same S3 state.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from jobcore import attempts, batching, map_results, merge, rerun
from jobcore.job_store import JobStore
from jobcore.models import ExecutionStatus, JobDescriptor, RerunOrigin, TaskStatus

log = logging.getLogger(__name__)

FETCH_WORKERS = 16

T = TypeVar("T")
R = TypeVar("R")


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


@dataclass
class Reads:
    """How a summary was read (for the logs): result files streamed, succeeded items taken from them,
    and objects fetched one by one (outcome objects and result records)."""

    result_files: int = 0
    items_from_result_files: int = 0
    objects: int = 0


class _Listing(NamedTuple):
    """Which items have a result record or a succeeded outcome, as LIST says."""

    results: set[int]
    succeeded_outcomes: set[int]


@dataclass(frozen=True)
class ItemRead:
    """What one item's objects say."""

    index: int
    verdict: TaskStatus | None  # FAILED or SUCCEEDED: which outcome object it has; None: none
    outcome: dict[str, Any] | None
    partial: Any
    succeeded: bool  # a succeeded outcome or a result record, and no failed outcome


class JobReader:
    """One job's objects, read for its summary. Construction reads what decides how the items are read
    (the descriptor, the failed outcomes, the Map Run's newest manifest, else the listings); `items()`
    then reads every item once.

    With `result_files` and a Map Run that wrote them, succeeded items come from its SUCCEEDED files
    and only what they do not cover (failed items, a partial left out of a child's output, a missing
    file) is read object by object; otherwise every item is (LIST, then GET)."""

    def __init__(
        self,
        store: JobStore,
        *,
        workers: int = FETCH_WORKERS,
        result_files: bool = True,
        reads: Reads | None = None,
    ) -> None:
        self.store = store
        self.workers = workers
        self.reads = reads if reads is not None else Reads()
        self._result_files = result_files
        self.descriptor: JobDescriptor | None = store.read_descriptor()
        self.failed: set[int] = store.outcome_indices(TaskStatus.FAILED)
        self._manifest = store.newest_map_manifest() if result_files and self.descriptor is not None else None
        self._listing: _Listing | None = None
        self._known = set(self.failed)
        if self._manifest is None:
            self._listing = _Listing(store.result_indices(), store.outcome_indices(TaskStatus.SUCCEEDED))
            self._known |= self._listing.results | self._listing.succeeded_outcomes
        # else: a Map Run that wrote its result files has ended every item, and its SUCCEEDED files hold
        # the succeeded ones, so nothing needs listing: the few items they leave out are looked up one by one.
        known_size = max(self._known) + 1 if self._known else 0
        descriptor = self.descriptor
        self.origin: RerunOrigin | None = descriptor.rerun if descriptor is not None else None
        # a rerun covers the whole job: its own items, the rest inherited
        self.total = (
            self.origin.item_count
            if self.origin is not None
            else descriptor.item_count
            if descriptor
            else known_size
        )
        self.size = max(self.total, known_size)
        # filled in by items():
        self.succeeded: set[int] = set()
        self.inherited = 0  # items a rerun took from earlier jobs
        self.child_failures: dict[int, str] = {}  # why the children of items without an outcome failed

    def items(self) -> Iterator[ItemRead]:
        """Every item below `size` once: inherited (a rerun's), from the result files, then the rest
        from their own objects (an item listed nowhere has not finished: nothing to read)."""
        yield from self._inherited()
        if self._manifest is not None:
            yield from self._from_result_files(self._manifest)
            self.reads.items_from_result_files = len(self.succeeded) - self.inherited
        self.child_failures = self._failed_children()
        to_look_up: list[int] = []
        for index in range(self.size):
            if index in self.succeeded:
                continue
            if self._listing is None or index in self.failed or index in self._known:
                to_look_up.append(index)
            else:
                yield ItemRead(index, None, None, None, False)  # listed nowhere: not finished
        counting = threading.Lock()  # look_up runs in `workers` threads

        def get(read: Callable[..., Any], *arguments: Any) -> Any:
            """One object read through the store, counted."""
            with counting:
                self.reads.objects += 1
            return read(*arguments)

        for found in fetch_in_order(to_look_up, lambda index: self._look_up(index, get), self.workers):
            if found.succeeded:
                self.succeeded.add(found.index)
            yield found

    def launches_of(self, indices: set[int]) -> dict[int, list[attempts.LaunchRecord]]:
        """The launch records of items without an outcome (aborted, timed out or still running): their
        tasks ran and cost all the same."""
        return attempts.launches_of(self.store, indices)

    # ------------------------------------------------------------------------------ the three sources

    def _inherited(self) -> Iterator[ItemRead]:
        """A rerun's items that succeeded in an earlier job: their partials, and no cost here."""
        if self.origin is None:
            return
        own = self.store.item_indices()
        workers = self.workers
        fetch: rerun.FetchInOrder = lambda keys, read: fetch_in_order(keys, read, workers)  # noqa: E731
        store = self.store
        for index, partial in rerun.inherited_partials(store.s3, store.bucket, self.origin, own, fetch):
            self.reads.objects += 1
            self.succeeded.add(index)
            self.inherited += 1
            yield ItemRead(index, TaskStatus.SUCCEEDED, None, partial, True)

    def _from_result_files(self, manifest: dict[str, Any]) -> Iterator[ItemRead]:
        for outcome in (
            entry
            for child in self._result_file_outcomes(manifest)
            for entry in batching.item_outcomes(child)  # a batch's child carries its items' outcomes
        ):
            index = outcome["index"]
            partial = outcome.get("partial")
            if (
                not 0 <= index < self.size
                or index in self.failed
                or index in self.succeeded
                or partial is None
            ):
                continue  # another item's business, a failed item, a repeat, or its partial is elsewhere
            if outcome.get("partial_omitted"):
                continue
            self.succeeded.add(index)
            yield ItemRead(index, TaskStatus.SUCCEEDED, outcome, partial, True)

    def _look_up(self, index: int, get: Callable[..., Any]) -> ItemRead:
        """An item's verdict, counters and partial result from its own objects. A failed outcome wins
        (EvaluateJob counted it); then a succeeded outcome or a result record (a worker that finished
        while the execution was being stopped still succeeded). A succeeded outcome carries the
        item's partial result; one without it (written before outcomes carried partials) sends us to
        the result record."""
        store, listing = self.store, self._listing
        if index in self.failed:
            return ItemRead(
                index, TaskStatus.FAILED, get(store.outcome, index, TaskStatus.FAILED), None, False
            )
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
        if not has_outcome and index in self.child_failures:
            # its child failed: EvaluateJob counted it as failed (no succeeded outcome), and so do we,
            # whatever result record its task left
            return ItemRead(index, None, None, None, False)
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
        return ItemRead(index, verdict, outcome, partial, has_outcome or bool(has_record))

    # -------------------------------------------------------------------------- the Map's result files

    def _result_file_outcomes(self, manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The outcomes of the succeeded children in the manifest's result files, streamed. A damaged
        file ends early: the items it did not give are looked up one by one."""
        for key in map_results.result_file_keys(manifest, ExecutionStatus.SUCCEEDED):
            self.reads.result_files += 1
            try:
                for record in self.store.map_result_records(key):
                    outcome = map_results.succeeded_outcome(record)
                    if outcome is not None:
                        yield outcome
            except ValueError as error:
                log.warning("result file %s is damaged, its other items are read one by one: %s", key, error)

    def _failed_children(self) -> dict[int, str]:
        """Why the Map Run's failed children of the items neither succeeded nor failed so far failed.

        A child that failed before any Lambda of it could record why (e.g. its state outgrew Step
        Functions' 256 KiB, maybe after its task ran and wrote a result record) is named, with its
        cause, only in the Map Run's FAILED result files. Read in both modes, so both give the same
        document."""
        manifest = self._manifest
        if manifest is None and not self._result_files and self.descriptor is not None:
            manifest = self.store.newest_map_manifest()
        wanted = {
            index for index in range(self.size) if index not in self.succeeded and index not in self.failed
        }
        if not manifest or not wanted:
            return {}
        found: dict[int, str] = {}
        for key in map_results.result_file_keys(manifest, ExecutionStatus.FAILED):
            self.reads.result_files += 1
            try:
                for record in self.store.map_result_records(key):
                    child = map_results.failed_child(record)
                    if child is not None and child[0] in wanted and child[0] not in found:
                        found[child[0]] = child[1]
            except ValueError as error:
                log.warning("result file %s is damaged: %s", key, error)
            if len(found) == len(wanted):
                break
        return found
