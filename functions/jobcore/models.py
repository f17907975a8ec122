"""The item/result contract shared by the Lambda functions, the state machine and the worker.

The state machine's Choice states compare against the values of `TaskStatus`; a test checks that the
ASL uses exactly these strings, so a typo such as "FAILLED" cannot ship.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializationInfo,
    Tag,
    TypeAdapter,
    field_serializer,
    model_serializer,
    model_validator,
)


class TaskStatus(str, Enum):
    """What PollTask reports about an item's current task; the ASL Choice branches on it."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"


class ExecutionStatus(str, Enum):
    """Step Functions execution statuses; the closed ones end a job."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"


CLOSED_STATUSES = (
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMED_OUT,
    ExecutionStatus.ABORTED,
)


class JobStatus(StrEnum):
    """The summary's `status`: its execution's status, except that a job that cannot have succeeded is
    FAILED (jobcore.summary); UNKNOWN when the execution's status was not given."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def of(cls, execution_status: Any) -> JobStatus:
        """The execution's status (an ExecutionStatus or its value) as a job's; UNKNOWN for none (or a
        status Step Functions does not have)."""
        value = execution_status.value if isinstance(execution_status, Enum) else execution_status
        return cls(value) if value in cls._value2member_map_ else cls.UNKNOWN

    @property
    def closed(self) -> bool:
        """The execution ended (the job's items can no longer change)."""
        return self.value in _CLOSED_VALUES


_CLOSED_VALUES = frozenset(status.value for status in CLOSED_STATUSES)


class Capacity(str, Enum):
    """ECS capacity providers a task can run on."""

    SPOT = "FARGATE_SPOT"
    ON_DEMAND = "FARGATE"


class ItemBase(BaseModel):
    """What every kind of item has: its index in the job. An item is one of the `Item` union's kinds;
    this base is for isinstance checks and for what they share (the wire format, `members()`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str]

    index: int = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _without_other_kinds_empty_fields(cls, data: Any) -> Any:
        """The wire carries every kind's fields (null, 0 or {} when they are not this kind's): drop those
        empty ones, so that a field of another kind is refused only when it says something."""
        if not isinstance(data, dict) or data.keys() <= cls.model_fields.keys():
            return data
        return {
            name: value
            for name, value in data.items()
            if name in cls.model_fields or name not in _EMPTY_FIELDS or value != _EMPTY_FIELDS[name]
        }

    @model_serializer(mode="plain")
    def _wire(self, info: SerializationInfo) -> dict[str, Any]:
        """Every kind serialises exactly as the one Item model did before the kinds were told apart (the
        Map item, ITEM, SPOTMAP_ITEM, items.json): all of `_WIRE_FIELDS` in order, another kind's as null,
        0 or {} (nulls left out under exclude_none); a batch's `batch` last, its items compact (without
        their empty fields), so that a batch fits ECS's 8 KiB of overrides (ITEM) more often. Built by
        hand (a plain serializer): StartJob writes up to millions of items."""
        values = self.__dict__
        wire: dict[str, Any] = {}
        for name in _WIRE_FIELDS:
            value = values[name] if name in values else _EMPTY_FIELDS[name]
            if value is None and info.exclude_none:
                continue
            wire[name] = dict(value) if name == "params" else value
        batch = values.get("batch")
        if batch is not None:
            wire["batch"] = [
                {
                    name: value
                    for name, value in member._wire(info).items()
                    if value is not None and value != _EMPTY_FIELDS.get(name, ...)
                }
                for member in batch
            ]
        return wire

    def members(self) -> list[Item]:
        """The items this Map item stands for: a batch's, or the item itself."""
        return [cast("Item", self)]  # every concrete kind is one of Item's


class ObjectItem(ItemBase):
    """A whole object as an item's input (sources keys and prefix). `bucket` None: the job's bucket (a
    batch's items leave it out when they share the batch's)."""

    kind: ClassVar[str] = "object"

    bucket: str | None = None
    key: str
    version_id: str | None = None


class ShardItem(ObjectItem):
    """The byte range [start, end) of an object (end None: to its end), with the header [0, header_end)
    prepended (jobcore.sharding)."""

    kind: ClassVar[str] = "shard"

    start: int = Field(ge=0)
    end: int | None = Field(default=None, ge=0)
    header_end: int = Field(default=0, ge=0)


class SweepItem(ItemBase):
    """An item without input: its params (sources items and count), overlaid on the job's."""

    kind: ClassVar[str] = "sweep"

    params: dict[str, Any] = Field(default_factory=dict)


# The fields of the one Item model items were before their kinds were told apart, in its order, with the
# value an item has for a field that is not its kind's: the wire format keeps them all.
_WIRE_FIELDS = ("index", "bucket", "key", "version_id", "start", "end", "header_end", "params")
_EMPTY_FIELDS: dict[str, Any] = {
    "bucket": None,
    "key": None,
    "version_id": None,
    "start": None,
    "end": None,
    "header_end": 0,
    "params": {},
    "batch": None,
}


def _item_kind(value: Any) -> str:
    """Which kind an item is, from the fields it gives (JSON carries no kind): a batch lists items, a
    shard has a byte range, an object item names an object, any other item is a sweep item."""
    if isinstance(value, ItemBase):
        return value.kind
    if not isinstance(value, dict):
        return SweepItem.kind  # validating it as a SweepItem says what is wrong
    if value.get("batch") is not None:
        return ItemBatch.kind
    if value.get("start") is not None or value.get("end") is not None or value.get("header_end"):
        return ShardItem.kind
    if any(value.get(name) is not None for name in ("bucket", "key", "version_id")):
        return ObjectItem.kind
    return SweepItem.kind


# A batch's items: whole objects or sweep items (a shard source is not batched).
BatchMember = Annotated[
    Annotated[ObjectItem, Tag(ObjectItem.kind)] | Annotated[SweepItem, Tag(SweepItem.kind)],
    Discriminator(_item_kind),
]


class ItemBatch(ItemBase):
    """A batch (jobcore.batching): the items one task runs, in index order, each with its own index (the
    job's item index). The batch itself takes its first item's index; its objects' `bucket` is None when
    it is the batch's, to keep the Map item small."""

    kind: ClassVar[str] = "batch"

    bucket: str | None = None
    batch: list[BatchMember]

    def members(self) -> list[Item]:
        return list(self.batch)


# One unit of work, as a Map item: a shard, a whole object, a sweep item (params) or a batch of items.
Item = Annotated[
    Annotated[ShardItem, Tag(ShardItem.kind)]
    | Annotated[ObjectItem, Tag(ObjectItem.kind)]
    | Annotated[SweepItem, Tag(SweepItem.kind)]
    | Annotated[ItemBatch, Tag(ItemBatch.kind)],
    Discriminator(_item_kind),
]
_ITEM: TypeAdapter[Item] = TypeAdapter(Item)


def parse_item(data: Any) -> Item:
    """An item from its JSON-ready form (items.json's entries, the Map item); ValidationError if invalid."""
    return _ITEM.validate_python(data)


def parse_item_json(text: str | bytes) -> Item:
    """An item from its JSON (ITEM, SPOTMAP_ITEM); ValidationError if invalid."""
    return _ITEM.validate_json(text)


class Usage(BaseModel):
    """Compute an item consumed, accumulated over its attempts (the cost block is built from it)."""

    spot_vcpu_seconds: float = 0.0
    spot_gb_seconds: float = 0.0
    on_demand_vcpu_seconds: float = 0.0
    on_demand_gb_seconds: float = 0.0
    lambda_invocations: int = 0
    lambda_gb_seconds: float = 0.0
    state_transitions: int = 0
    # The tasks' billed seconds whatever their size (jobcore.billing: a minute at least per task): with the
    # vCPU- and GB-seconds it gives the tasks' mean size, for the cost of one task per item (jobcore.cost).
    task_seconds: float = 0.0

    def add_task(self, capacity: Capacity, vcpu: float, gb: float, seconds: float) -> Usage:
        if capacity is Capacity.SPOT:
            return self.model_copy(
                update={
                    "spot_vcpu_seconds": self.spot_vcpu_seconds + vcpu * seconds,
                    "spot_gb_seconds": self.spot_gb_seconds + gb * seconds,
                    "task_seconds": self.task_seconds + seconds,
                }
            )
        return self.model_copy(
            update={
                "on_demand_vcpu_seconds": self.on_demand_vcpu_seconds + vcpu * seconds,
                "on_demand_gb_seconds": self.on_demand_gb_seconds + gb * seconds,
                "task_seconds": self.task_seconds + seconds,
            }
        )

    def add_lambda(self, memory_mb: int, seconds: float, transitions: int) -> Usage:
        return self.model_copy(
            update={
                "lambda_invocations": self.lambda_invocations + 1,
                "lambda_gb_seconds": self.lambda_gb_seconds + memory_mb / 1024 * seconds,
                "state_transitions": self.state_transitions + transitions,
            }
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields})


class Resumption(BaseModel):
    """What checkpoints saved an item (worker/checkpoints.py): the attempts that resumed from one, along
    the chain of checkpoints that led to its result, and the work they did not redo."""

    resumed_attempts: int = 0
    saved_units: int | float = 0  # the processor's own measure (ctx.checkpoint(..., progress=N)), summed
    saved_seconds: float = 0.0  # the work time the checkpoints they resumed from held


class AttemptOutcome(StrEnum):
    """What became of one task of an item (an AttemptRecord), or of one item in a batch's task."""

    SUCCEEDED = "succeeded"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class AttemptRecord(BaseModel):
    """One ECS task of an item, from launch (the task's createdAt) to stop, and what became of it: what
    the report page's timeline draws as one bar. PollTask appends it when it sees the task stopped."""

    attempt: int
    capacity: Capacity
    launched_at: str | None = None  # ISO 8601
    stopped_at: str | None = None
    outcome: AttemptOutcome


class ItemState(BaseModel):
    """The state a child execution carries through Launch → Wait → Poll; each Lambda returns a new one."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    bucket: str
    item: Item
    attempt: int = 0
    capacity: Capacity = Capacity.SPOT
    spot_interruptions: int = 0
    capacity_retries: int = 0
    on_demand_fallbacks: int = 0
    # RunTask calls refused with ThrottlingException, over all the item's launches (throttling is about
    # rate: it never counts as a capacity retry nor moves the item to on-demand)
    throttled_run_task_calls: int = 0
    task_arn: str | None = None
    status: TaskStatus | None = None
    wait_seconds: int = 0
    polls: int = 0
    reason: str | None = None
    log: str | None = None
    usage: Usage = Field(default_factory=Usage)
    task_seconds: float | None = None  # the last task's run time (startedAt → stoppedAt), once stopped
    expected_seconds: float | None = None  # the job's typical task duration, when PollTask knew it
    detection_delay_seconds: float | None = None  # task stopped → the poll that saw it (polling cost)
    error: dict[str, Any] | None = None  # set by the ASL Catch (ResultPath $.error)
    history: list[AttemptRecord] = Field(default_factory=list)  # the item's stopped tasks, in order
    # Set by PollTask when the item succeeded: its outcome record, which ItemSucceeded makes the child's
    # output (`OutputPath: $.outcome`) so that the Map's ResultWriter batches them into result files.
    outcome: ItemOutcome | None = None
    # Completion by ECS task events (jobcore.completion): "Enabled" when the item's launches wait for
    # the task-stopped event (a task token) instead of polling; set by the Map's ItemSelector from the
    # TaskEvents parameter, with the heartbeat period the waiting Launch state uses as its backstop.
    task_events: Literal["Enabled", "Disabled"] | None = None
    heartbeat_seconds: int | None = None
    # Set by the waiting Launch state's Catch (ResultPath $.wait_error) when no event came within a
    # heartbeat period: PollTask then resumes the item from its persisted launch and polls.
    wait_error: dict[str, Any] | None = None


class ItemOutcome(BaseModel):
    """An item's final record, written once when it succeeds or fails."""

    index: int
    status: TaskStatus
    reason: str | None = None
    log: str | None = None
    attempts: int = 0
    spot_interruptions: int = 0
    capacity_retries: int = 0
    on_demand_fallbacks: int = 0
    throttled_run_task_calls: int = 0
    usage: Usage = Field(default_factory=Usage)
    task_seconds: float | None = None  # the last task's run time; PollTask's expectation is their median
    detection_delay_seconds: float | None = None
    history: list[AttemptRecord] = Field(default_factory=list)  # one record per task, for the timeline
    polls: int = 0  # DescribeTasks polls the item needed (0 when task events completed it)
    # A succeeded item's partial result, copied from its result record by PollTask, so Summarize reads
    # one object per item instead of two.
    partial: Any = None
    # Only in the copy that becomes the child's output: the partial was too large for a state's output
    # (256 KiB), so it was left out here and Summarize reads the outcome object instead.
    partial_omitted: bool = False
    # A succeeded item's checkpoint resumptions, copied from its result record (None: it never resumed)
    resumption: Resumption | None = None
    # Batches (jobcore.batching): the index of the batch (its first item) whose task ran this item; and,
    # in a batch's own outcome only, its items' outcomes, compact (index, status, partial or reason).
    batch_index: int | None = None
    items: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, state: ItemState, partial: Any = None, resumption: Any = None) -> ItemOutcome:
        return cls(
            index=state.item.index,
            status=state.status or TaskStatus.FAILED,
            reason=state.reason,
            log=state.log,
            attempts=state.attempt,
            spot_interruptions=state.spot_interruptions,
            capacity_retries=state.capacity_retries,
            on_demand_fallbacks=state.on_demand_fallbacks,
            throttled_run_task_calls=state.throttled_run_task_calls,
            usage=state.usage,
            task_seconds=state.task_seconds,
            detection_delay_seconds=state.detection_delay_seconds,
            history=state.history,
            polls=state.polls,
            partial=partial,
            resumption=Resumption.model_validate(resumption) if resumption else None,
        )

    def for_state_output(self, limit: int) -> ItemOutcome:
        """This record as a child's output: the same document, without the partial (and saying so)
        when its JSON is larger than `limit` bytes."""
        if self.items is not None:
            from jobcore.batching import batch_outcome_for_state_output  # batches are their own module

            return batch_outcome_for_state_output(self, limit)
        if self.partial is None or len(self.model_dump_json().encode("utf-8")) <= limit:
            return self
        return self.model_copy(update={"partial": None, "partial_omitted": True})


ItemState.model_rebuild()  # its `outcome` field names ItemOutcome, defined after it


class ResultRecord(BaseModel):
    """What a worker writes last, at jobs/<job_id>/results/<index>.json: its existence means success."""

    job_id: str
    index: int
    attempt: int
    processor: str
    partial: Any = None  # a mergeable value (see jobcore.merge)
    outputs: list[str] = Field(default_factory=list)
    started_at: str
    finished_at: str
    resumption: Resumption | None = None  # set when this attempt resumed from a checkpoint


# A batch's record (jobcore.batching): the worker writes it, PollTask and TaskStopped read it.


class BatchItemResult(BaseModel):
    index: int
    status: Literal[AttemptOutcome.SUCCEEDED, AttemptOutcome.FAILED]
    attempt: int  # the attempt (task) that ran it: a relaunched task skips items already done
    partial: Any = None
    reason: str | None = None  # a failed item's reason (its object named)
    resumption: Resumption | None = None  # set when the item resumed from its checkpoint


class BatchRecord(BaseModel):
    """jobs/<job_id>/results/batch-<index>.json, written last by a batch task that ran all its items (each
    of which succeeded or failed alone): what ResultRecord is to a plain item."""

    job_id: str
    index: int
    attempt: int
    processor: str
    items: list[BatchItemResult]
    started_at: str
    finished_at: str


class InputObject(BaseModel):
    bucket: str
    key: str
    size: int
    version_id: str | None = None
    etag: str | None = None


class RerunOrigin(BaseModel):
    """What makes a job a rerun (jobcore.rerun): the earlier job whose failed items it runs again. Its
    own items.json holds those items, with their original indices; the other items' partial results
    are inherited from the earlier job (and its own earlier jobs), so the summary covers the whole job."""

    job_id: str  # the earlier job
    item_count: int  # the whole job's items: the earlier job's, inherited ones included
    note: str | None = None  # e.g. why nothing was rerun


class JobDescriptor(BaseModel):
    """jobs/<job_id>/job.json: what the job is, written by StartJob before the execution starts."""

    job_id: str
    input: InputObject
    processor: str
    params: dict[str, Any] = Field(default_factory=dict)
    item_count: int
    created_at: str
    empty_result: Any = None  # the result of a job with no items (e.g. a header-only CSV)
    # Batches (jobcore.batching): how items were grouped into tasks, and the Map items (tasks) it made;
    # None for a job of one item per task.
    batch: dict[str, Any] | None = None
    task_count: int | None = None
    error: str | None = None  # set when the job was rejected before it started (bad manifest)
    rerun: RerunOrigin | None = None  # set for a rerun of an earlier job's failed items
    # What a limit, not the work, will do to the job's pace (jobcore.planning): the summary repeats them.
    warnings: list[str] = Field(default_factory=list)
    # The Map's MaxConcurrency when the account's Fargate Spot vCPU quota allows fewer tasks at once than
    # the MaxConcurrency parameter (StartJob's plan): the execution input carries it.
    max_concurrency: int | None = None


class SummaryInput(BaseModel):
    """The upload a job was made from."""

    bucket: str
    key: str
    size: int
    version_id: str | None = None


class SummaryItems(BaseModel):
    """Item counts; `pending` only while the execution still runs (omitted once it closed)."""

    total: int
    succeeded: int
    failed: int
    pending: int | None = None


class SummaryTiming(BaseModel):
    started_at: str | None  # ISO 8601 in UTC
    stopped_at: str | None
    seconds: float | None


class Summary(BaseModel):
    """summaries/<job_id>.json: one field per row of the README's summary table, in the document's key
    order. `as_document()` is the JSON-ready dict Summarize writes (jobcore.job_store), the report page
    renders and the CLI reads; the optional blocks (`warnings`, `rerun_of`, `rerun`) and a closed
    execution's `items.pending` are left out rather than written as null."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    status: JobStatus
    execution_status: Any  # the execution's own status, as DescribeExecution gave it
    execution_arn: str | None
    input: SummaryInput | None
    processor: str | None
    params: dict[str, Any]
    items: SummaryItems
    attempts: dict[str, int]
    checkpoints: dict[str, Any]
    tasks: dict[str, int]
    failures: list[dict[str, Any]]
    result: Any
    output_prefix: str
    timing: SummaryTiming
    error: str | None
    cost: dict[str, Any]
    warnings: list[str] | None = None
    rerun_of: str | None = None
    rerun: dict[str, Any] | None = None

    @field_serializer("status")
    def _plain_status(self, status: JobStatus) -> str:
        return status.value  # the document holds plain strings (the CLI and the report read it as JSON)

    def as_document(self) -> dict[str, Any]:
        document = self.model_dump(exclude={"items", "warnings", "rerun_of", "rerun"})
        document["items"] = self.items.model_dump(exclude_none=True)
        ordered = {name: document[name] for name in type(self).model_fields if name in document}
        for name in ("warnings", "rerun_of", "rerun"):
            value = getattr(self, name)
            if value is not None:
                ordered[name] = value
        return ordered
