"""Batches: many items per task.

A task of Fargate costs at least a minute and ~30-60 s of start-up (mostly the image pull), so a job of
many small items pays for starting tasks rather than for work. A job may therefore group its items into
batches: a manifest's `"batch": {"max_items": N, "max_bytes": B}` (either or both), else the template's
BatchMaxItems / BatchMaxBytes (1 / 0: off). Consecutive items go into one batch until it holds
`max_items` items, or the next object would take it over `max_bytes` (an object larger than that goes
alone), or its item list would outgrow `BATCH_ITEMS_BYTES` (a Step Functions state carries it).

The batches are formed in the item list itself (moto's interpreter has no ItemBatcher): one Map item is
one batch, run by one ECS task. A batch is an `ItemBatch` whose `batch` lists its items, each with its own
index (the job's item index), and which takes its first item's index; a group of one stays a plain item.
The worker runs a batch's items one after another (or a few at once), writing each item's result record
as it finishes, and last the batch's record (`layout.batch_record_key`): its existence is the task's
success, as an item's result record is for a plain item. PollTask then writes one outcome per item
(`write_batch_outcome`), so EvaluateJob, Summarize and `spotmap status` count items exactly as for an
unbatched job. The batch's task-level figures (attempts, interruptions, usage, history) are carried by
its first item's outcome alone, so that sums over items count every task once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobcore import layout
from jobcore.job_store import JobStore
from jobcore.models import (
    AttemptOutcome,
    BatchItemResult,
    BatchMember,
    BatchRecord,
    Item,
    ItemBatch,
    ItemOutcome,
    ItemState,
    ObjectItem,
    ShardItem,
    TaskStatus,
    Usage,
)
from jobcore.store import error_code

if TYPE_CHECKING:
    from jobcore.config import StartJobSettings

log = logging.getLogger(__name__)

MAX_BATCH_ITEMS = 1000
# A batch's items as compact JSON travel in the Map item (and so in every state of its child): a batch
# closes before they outgrow this, whatever max_items says (keys are up to 1 KiB: at least 64 per batch).
BATCH_ITEMS_BYTES = 64 * 1024
OBJECT_SOURCES = ("keys", "prefix")
WRITE_WORKERS = 8


class BatchSpec(BaseModel):
    """How to group a job's items into tasks: at most `max_items` items and about `max_bytes` bytes of
    input objects per task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_items: int | None = Field(default=None, ge=1, le=MAX_BATCH_ITEMS, strict=True)
    max_bytes: int | None = Field(default=None, ge=1, strict=True)

    @model_validator(mode="after")
    def _one_limit(self) -> BatchSpec:
        if self.max_items is None and self.max_bytes is None:
            raise ValueError("give max_items, max_bytes or both")
        return self

    @property
    def groups(self) -> bool:
        """False for a spec that puts one item in each task anyway ({"max_items": 1})."""
        return (self.max_items or MAX_BATCH_ITEMS) > 1


def manifest_problem(spec: BatchSpec | None, source_kind: str) -> str | None:
    """What is wrong with a manifest's batch for its source, or None."""
    if spec is None:
        return None
    if source_kind == "shard":
        return "a shard source is not batched (its shards are sized by shard_size_mb); remove batch"
    if spec.max_bytes is not None and source_kind not in OBJECT_SOURCES:
        return (
            f"max_bytes needs items that name an object (source keys or prefix), not {source_kind}; "
            "use max_items"
        )
    return None


def effective_spec(
    source_kind: str, settings: StartJobSettings, manifest_spec: BatchSpec | None, given: bool
) -> BatchSpec | None:
    """The batching a job gets: the manifest's `batch` when it has one (`"batch": null` turns it off),
    else the template's BatchMaxItems / BatchMaxBytes (max_bytes for object sources only); None: one
    item per task. Shards (an uploaded CSV, a shard source) are never batched."""
    return spec_for(source_kind, settings.batch_max_items, settings.batch_max_bytes, manifest_spec, given)


def spec_for(
    source_kind: str,
    batch_max_items: int,
    batch_max_bytes: int,
    manifest_spec: BatchSpec | None,
    given: bool,
) -> BatchSpec | None:
    """effective_spec from the template's BatchMaxItems / BatchMaxBytes themselves (`spotmap plan`
    reads them from the stack's parameters)."""
    if source_kind == "shard":
        return None
    if given:
        spec = manifest_spec
    else:
        max_items = batch_max_items if batch_max_items > 1 else None
        max_bytes = batch_max_bytes if batch_max_bytes > 0 else None
        if source_kind not in OBJECT_SOURCES:
            max_bytes = None
        if max_items is None and max_bytes is None:
            return None
        spec = BatchSpec(max_items=max_items, max_bytes=max_bytes)
    return spec if spec is not None and spec.groups else None


class Batcher:
    """Groups items into batches as they stream past; counts the items and the tasks (Map items)."""

    def __init__(self, spec: BatchSpec, size_of: Callable[[Item], int] | None = None):
        self.spec = spec
        self.size_of = size_of
        self.items = 0
        self.tasks = 0

    def __call__(self, items: Iterable[Item]) -> Iterator[Item]:
        limit = self.spec.max_items or MAX_BATCH_ITEMS
        group: list[Item] = []
        size = json_size = 0
        for item in items:
            self.items += 1
            item_size = self.size_of(item) if self.spec.max_bytes is not None and self.size_of else 0
            item_json = len(item.model_dump_json(exclude_none=True)) + 1
            if group and (
                len(group) >= limit
                or (self.spec.max_bytes is not None and size + item_size > self.spec.max_bytes)
                or json_size + item_json > BATCH_ITEMS_BYTES
            ):
                yield self._close(group)
                group, size, json_size = [], 0, 0
            group.append(item)
            size += item_size
            json_size += item_json
        if group:
            yield self._close(group)

    def _close(self, group: list[Item]) -> Item:
        self.tasks += 1
        if len(group) == 1:
            return group[0]
        bucket = group[0].bucket if isinstance(group[0], ObjectItem) else None
        members: list[BatchMember] = []
        for member in group:
            if isinstance(member, ShardItem | ItemBatch):  # a shard source is not batched (spec_for)
                raise TypeError(f"item {member.index}: a {member.kind} item is not batched")
            shares_bucket = isinstance(member, ObjectItem) and member.bucket == bucket
            members.append(member.model_copy(update={"bucket": None}) if shares_bucket else member)
        return ItemBatch(index=group[0].index, bucket=bucket, batch=members)


def listed_objects(s3: Any, bucket: str, prefix: str, sizes: dict[str, int]) -> Iterator[str]:
    """Data objects under the prefix, page by page (folder markers and manifests skipped), noting each
    one's size in `sizes` as it goes (the listing has them: no HeadObject needed)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            if not key.endswith("/") and not key.endswith(layout.MANIFEST_SUFFIX):
                sizes[key] = int(entry.get("Size") or 0)
                yield key


def head_size(s3: Any, bucket: str) -> Callable[[Item], int]:
    """An item's object size by HeadObject (keys sources, only when max_bytes needs it)."""

    def size_of(item: Item) -> int:
        if not isinstance(item, ObjectItem):
            return 0  # no object: nothing to weigh
        try:
            return int(s3.head_object(Bucket=item.bucket or bucket, Key=item.key)["ContentLength"])
        except ClientError as error:  # missing or unreadable: its item fails in its task, naming it
            log.info("no size for %s (%s): counted as 0 bytes", item.key, error_code(error))
            return 0

    return size_of


def members(item: Item) -> list[Item]:
    """The items a Map item stands for: a batch's, or the item itself."""
    return item.members()




# ---------------------------------------------------------------- outcomes (PollTask, RecordFailure)


def _read_record(store: JobStore, state: ItemState) -> dict[int, BatchItemResult]:
    document = store.batch_record(state.item.index)
    if document is None:
        return {}
    try:
        record = BatchRecord.model_validate(document)
    except ValidationError as error:
        log.warning("batch record of item %s is not valid: %s", state.item.index, error)
        return {}
    return {result.index: result for result in record.items}


def _own_result(store: JobStore, index: int) -> BatchItemResult | None:
    """An item's own result record (written as it finished), for a batch whose task did not finish; None
    when there is none, or when the caller may not read it (then the item fails with the batch's reason;
    PollTask's and RecordFailure's roles may both read jobs/*/results/*)."""
    try:
        record = store.result(index)
    except ClientError as error:
        if error_code(error) not in ("AccessDenied", "403"):
            raise
        log.warning("cannot read the result record of item %s (%s): counted as not done", index, error)
        return None
    if not isinstance(record, dict):
        return None
    return BatchItemResult(
        index=index,
        status=AttemptOutcome.SUCCEEDED,
        attempt=int(record.get("attempt") or 0),
        partial=record.get("partial"),
        resumption=record.get("resumption") or None,
    )


def _failure_reason(state: ItemState, member: Item, result: BatchItemResult | None) -> str:
    first, last = state.item.index, state.item.members()[-1].index
    where = f"in the batch task of items {first}-{last}"
    if result is not None and result.reason:
        return f"{result.reason} ({where}, attempt {result.attempt}; log: {state.log})"
    return f"{state.reason or 'failed'} ({where})"


def write_batch_outcome(s3: Any, state: ItemState) -> ItemOutcome:
    """write_batch_outcome_to the store of the batch's job."""
    return write_batch_outcome_to(JobStore.of(s3, state), state)


def write_batch_outcome_to(store: JobStore, state: ItemState) -> ItemOutcome:
    """Every item of a batch that ended gets its own outcome object, as if it had run alone: succeeded
    with its partial when its result is recorded (in the batch's record, else its own result record from
    an earlier or a broken task), failed with its own reason otherwise. The first item's outcome carries
    the batch's task figures. Returns the batch's outcome, its items' outcomes inside (compact)."""
    group = state.item.batch if isinstance(state.item, ItemBatch) else []
    results = _read_record(store, state) if state.status is TaskStatus.SUCCEEDED else {}
    missing = [member.index for member in group if member.index not in results]
    if missing:
        with ThreadPoolExecutor(WRITE_WORKERS, thread_name_prefix="batch") as pool:
            found_records = pool.map(lambda index: _own_result(store, index), missing)
            for index, found in zip(missing, found_records, strict=True):
                if found is not None:
                    results[index] = found
    outcomes: list[ItemOutcome] = []
    lead = ItemOutcome.of(state)
    for position, member in enumerate(group):
        result = results.get(member.index)
        succeeded = result is not None and result.status is AttemptOutcome.SUCCEEDED
        figures: dict[str, Any] = (
            {
                name: getattr(lead, name)
                for name in (
                    "attempts",
                    "spot_interruptions",
                    "capacity_retries",
                    "on_demand_fallbacks",
                    "usage",
                    "detection_delay_seconds",
                    "history",
                )
            }
            if position == 0
            else {"usage": Usage()}
        )
        # every item ran in that task: PollTask's expectation of a task's duration samples any of them
        figures["task_seconds"] = lead.task_seconds
        outcomes.append(
            ItemOutcome(
                index=member.index,
                status=TaskStatus.SUCCEEDED if succeeded else TaskStatus.FAILED,
                reason=None if succeeded else _failure_reason(state, member, result)[:2000],
                log=state.log,
                partial=result.partial if succeeded and result is not None else None,
                resumption=result.resumption if succeeded and result is not None else None,
                batch_index=state.item.index,
                **figures,
            )
        )

    with ThreadPoolExecutor(WRITE_WORKERS, thread_name_prefix="batch") as pool:
        list(pool.map(store.write_outcome, outcomes))
    return lead.model_copy(
        update={
            "items": [outcome.model_dump(mode="json", exclude_defaults=True) for outcome in outcomes],
        }
    )


def item_outcomes(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """The item outcomes a child's output holds: a batch's items, or the outcome itself."""
    inside = outcome.get("items")
    if isinstance(inside, list):
        return [entry for entry in inside if isinstance(entry, dict) and isinstance(entry.get("index"), int)]
    return [outcome]


def batch_outcome_for_state_output(outcome: ItemOutcome, limit: int) -> ItemOutcome:
    """A batch's outcome as its child's output (a state's output is at most 256 KiB): whole when its JSON
    fits `limit`, else its items without their partials (Summarize then reads their outcome objects),
    else without its items at all (the same, for every item)."""
    if len(outcome.model_dump_json().encode("utf-8")) <= limit:
        return outcome
    stripped = [
        {**entry, "partial": None, "partial_omitted": True} if entry.get("partial") is not None else entry
        for entry in outcome.items or []
    ]
    lighter = outcome.model_copy(update={"items": stripped})
    if len(lighter.model_dump_json().encode("utf-8")) <= limit:
        return lighter
    return outcome.model_copy(update={"items": [], "partial_omitted": True})
