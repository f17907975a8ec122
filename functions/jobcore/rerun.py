"""Rerun only what failed: a new job over exactly the items an earlier job did not finish.

    input/<name>.job.json = {"rerun": {"job_id": "<earlier job>"}}

StartJob (`rerun_job`) reads the earlier job's summary (its `failures` are the items to run again:
failed items, and items an aborted or timed-out execution never finished), its descriptor (processor,
params) and its items.json (those items, unchanged: same indices, same params, same keys). The new
job's descriptor carries a `RerunOrigin`; its items.json holds only the rerun items, so only they are
launched. Summarize (`inherited_partials`) takes every other item's partial result from the earlier
job (following a chain of reruns back to the job that ran it) and merges it with the new ones along
the same tree over the item indices (`merge.OrderedMerge`): the result is, to the last bit, what one
job that succeeded everywhere would have produced.

Batches: a batched job's items.json holds batches (`ItemBatch.batch` lists their items, jobcore.batching).
A rerun looks for the failed items inside them and runs them with the earlier job's batching: the
failed items, in index order, grouped again by the same `batch` spec (a rerun of a thousand failed small
items is a dozen tasks, not a thousand); its descriptor counts items and tasks as the earlier one did.

Inputs: an item names what it reads as the earlier job named it. Object items (manifest `keys` and
`prefix` sources) carry no version, so a rerun reads the object as it is now: fix a bad input by
uploading it again under the same `data/` key, then rerun. Shard items (a CSV upload, a manifest's
`shard` source) are byte ranges of one version of one object and stay pinned to it: a fixed CSV has
other line boundaries, so its shards would not be the same items; rerunning those repeats the same
bytes (for a fixed processor, or a transient failure). Upload a fixed CSV as a new job instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from jobcore import batching, merge
from jobcore.job_store import JobStore
from jobcore.manifest import ManifestError, RerunManifest
from jobcore.models import (
    Item,
    ItemBatch,
    JobDescriptor,
    ObjectItem,
    RerunOrigin,
    TaskStatus,
    parse_item,
)
from jobcore.store import error_code, is_not_found

MAX_CHAIN = 100  # reruns of reruns: how far back Summarize follows the chain for inherited items


@dataclass(frozen=True)
class RerunJob:
    """What StartJob needs to write a rerun job: the earlier job's processor and params, the items to
    launch (the earlier job's failed ones) and the link back."""

    processor: str
    params: dict[str, Any]
    empty_result: Any
    items: list[Item]  # the Map items: batches of the failed items when the earlier job was batched
    origin: RerunOrigin
    batch: dict[str, Any] | None = None  # the earlier job's batching, which the rerun keeps
    item_count: int = 0  # the items the rerun runs (in `items`, inside their batches)

    @property
    def task_count(self) -> int | None:
        """The tasks (Map items) of a batched rerun; None when each item is a task."""
        return len(self.items) if self.batch is not None else None


def _readable(read: Callable[[], Any | None]) -> Any | None:
    """What `read` (a JobStore read) returns; None when the object is missing. StartJob may not list
    jobs/ or summaries/, so S3 answers a missing key with 403 (AccessDenied), which means "missing"
    here: the keys it reads are all ones its role may GET, so a 403 cannot hide an object it was meant
    to see."""
    try:
        return read()
    except ClientError as error:
        if is_not_found(error) or error_code(error) in ("AccessDenied", "403"):
            return None
        raise


def rerun_job(s3: Any, bucket: str, manifest_key: str, request: RerunManifest) -> RerunJob:
    """The rerun of `request.rerun.job_id`'s failed items, or ManifestError saying why there is none
    (the job does not exist, has not ended, or was rejected before it ran)."""
    earlier_id = request.rerun.job_id
    where = f"invalid manifest {manifest_key}: rerun.job_id"
    store = JobStore(s3, bucket, earlier_id)
    document = _readable(store.read_descriptor_document)
    if document is None:
        raise ManifestError(
            f"{where}: job {earlier_id} does not exist (no {store.descriptor_key} in {bucket})"
        )
    earlier = JobDescriptor.model_validate(document)
    if earlier.error is not None:
        raise ManifestError(
            f"{where}: job {earlier_id} was rejected before it ran ({earlier.error}); nothing ran to rerun: "
            "fix its manifest and upload it again"
        )
    summary = _readable(store.read_summary)
    if not isinstance(summary, dict):
        raise ManifestError(
            f"{where}: job {earlier_id} has not ended (no {store.summary_key} yet): rerun it "
            "once its summary is written"
        )
    failed = sorted({int(failure["index"]) for failure in summary.get("failures") or []})
    item_count = earlier.rerun.item_count if earlier.rerun is not None else earlier.item_count
    items = _items_at(store, set(failed)) if failed else []
    tasks, batch = _batched_as(s3, bucket, earlier, items)
    note = None
    if not failed:
        note = (
            f"job {earlier_id} had no failed items: nothing was rerun, and this job's result is "
            f"{earlier_id}'s"
        )
    return RerunJob(
        processor=earlier.processor,
        params=earlier.params,
        empty_result=earlier.empty_result,
        items=tasks,
        origin=RerunOrigin(job_id=earlier_id, item_count=item_count, note=note),
        batch=batch,
        item_count=len(items),
    )


def _batched_as(
    s3: Any, bucket: str, earlier: JobDescriptor, items: list[Item]
) -> tuple[list[Item], dict[str, Any] | None]:
    """The rerun's Map items: `items` grouped by the earlier job's batching (and that batching), or
    `items` themselves when it was not batched."""
    if earlier.batch is None:
        return items, None
    spec = batching.BatchSpec.model_validate(earlier.batch)
    size_of = batching.head_size(s3, bucket) if spec.max_bytes is not None else None
    return list(batching.Batcher(spec, size_of)(items)), earlier.batch


def _listed_items(listed: list[Any]) -> Iterator[Item]:
    """Every item of an items.json, a batch's items included (each with the batch's bucket, which a
    batch's items leave out when they share it: jobcore.batching.Batcher)."""
    for entry in listed:
        if not isinstance(entry, dict):
            continue
        item = parse_item(entry)
        if not isinstance(item, ItemBatch):
            yield item
            continue
        for member in item.batch:
            if isinstance(member, ObjectItem) and member.bucket is None:
                yield member.model_copy(update={"bucket": item.bucket})
            else:
                yield member


def _items_at(store: JobStore, indices: set[int]) -> list[Item]:
    """The job's items with these indices, in index order, exactly as its items.json has them (found
    inside its batches for a batched job)."""
    job_id = store.job_id
    listed = _readable(store.read_items_document)
    if not isinstance(listed, list):
        raise ManifestError(f"job {job_id} has no readable item list {store.items_key}")
    found = {item.index: item for item in _listed_items(listed) if item.index in indices}
    missing = sorted(indices - set(found))
    if missing:
        raise ManifestError(f"job {job_id}'s item list has no item {missing[0]} (its summary names it)")
    return [found[index] for index in sorted(found)]


def own_indices(s3: Any, bucket: str, job_id: str) -> set[int]:
    """The indices of the items a job ran itself (its items.json, a batch's items included)."""
    return JobStore(s3, bucket, job_id).item_indices()


def succeeded_partial(store: JobStore, index: int) -> Any:
    """A succeeded item's partial result: from its outcome, else its result record (the same rule as
    the summary's); an item with neither is Unreadable, which fails the merge naming it."""
    outcome = store.outcome(index, TaskStatus.SUCCEEDED)
    if isinstance(outcome, dict) and outcome.get("partial") is not None:
        return outcome["partial"]
    record = store.result(index)
    if isinstance(record, dict):
        return record.get("partial")
    return merge.Unreadable(f"job {store.job_id}, whose result this rerun inherits, has no result for it")


FetchInOrder = Callable[[Iterable[int], Callable[[int], tuple[int, Any]]], Iterator[tuple[int, Any]]]


def inherited_partials(
    s3: Any, bucket: str, origin: RerunOrigin, own: set[int], fetch: FetchInOrder
) -> Iterator[tuple[int, Any]]:
    """(index, partial) of every item of the whole job that this rerun did not run: each from the
    nearest earlier job of the chain that ran it. `fetch` reads them concurrently (the summary's
    fetch_in_order)."""
    wanted = [index for index in range(origin.item_count) if index not in own]
    job_id: str | None = origin.job_id
    for _ in range(MAX_CHAIN):
        if not wanted or job_id is None:
            break
        store = JobStore(s3, bucket, job_id)
        earlier = store.read_descriptor()
        if earlier is None:
            gone = merge.Unreadable(f"job {job_id}, whose result this rerun inherits, is gone")
            yield from ((index, gone) for index in wanted)
            return
        if earlier.rerun is None:
            here, wanted = wanted, []
        else:
            ran = store.item_indices()
            here = [index for index in wanted if index in ran]
            wanted = [index for index in wanted if index not in ran]

        def read(index: int, job: JobStore = store) -> tuple[int, Any]:
            return index, succeeded_partial(job, index)

        yield from fetch(here, read)
        job_id = earlier.rerun.job_id if earlier.rerun is not None else None
    if wanted:
        lost = merge.Unreadable(f"no job of the rerun chain of {origin.job_id} ran it")
        yield from ((index, lost) for index in wanted)


def summary_block(origin: RerunOrigin, inherited: int) -> dict[str, Any]:
    """The summary's `rerun` block: which job this reruns, and how many items it ran or inherited."""
    return {
        "of": origin.job_id,
        "items_rerun": origin.item_count - inherited,
        "items_inherited": inherited,
        "note": origin.note,
    }
