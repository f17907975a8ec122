"""Processing one item: the same steps whether the item has a task of its own (worker.runner) or is one
of a batch (worker.batch). Its scratch directory and Context, then the processor's call, the check of
its partial result, the upload of its outputs and its result record."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobcore import layout
from jobcore.merge import finalize, merge, problems
from jobcore.models import Item, JobDescriptor, ResultRecord, ShardItem
from worker import checkpoints, logs, storage
from worker.api import Context, ProcessorSpec
from worker.cancel import Cancellation
from worker.errors import ConfigError, ProcessingError

if TYPE_CHECKING:
    from worker.runner import WorkerConfig

LOG = logs.get_logger()


def now() -> str:
    """The records' clock: UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def run_item(
    s3: Any,
    config: WorkerConfig,
    job: JobDescriptor,
    spec: ProcessorSpec,
    item: Item,
    cancellation: Cancellation,
    env: Mapping[str, str],
    scratch_root: Path,
    started_at: str,
) -> tuple[Context, ResultRecord]:
    """Process the item in an empty scratch directory of its own, with its checkpoint store (a relaunched
    attempt finds its checkpoint there): its Context and result record, the record not yet written (the
    caller writes it as a stop allows, then discards the item's checkpoint)."""
    workdir = item_workdir(scratch_root, config.job_id, item.index, config.attempt)
    try:
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
    except OSError as error:
        raise ConfigError(f"SCRATCH_DIR {scratch_root} is not writable: {error}") from error
    source = storage.source_for(s3, item, config.bucket)
    store = checkpoints.for_task(
        s3, config.bucket, config.job_id, item.index, config.attempt, workdir, cancellation
    )
    ctx = Context(
        job=job,
        item=item,
        attempt=config.attempt,
        workdir=workdir,
        source=source,
        cancellation=cancellation,
        env=env,
        logger=logs.get_logger(f"processor.{spec.name}"),
        checkpoints=store,
    )
    LOG.info(
        "processing item",
        extra={"processor": spec.name, "input": ctx.input_name, "range": _byte_range(item)},
    )
    if spec.cooperative:
        with cancellation.deferred():
            partial = spec.func(ctx)
    else:
        partial = spec.func(ctx)
    cancellation.check()
    check_partial(spec.name, partial)
    prefix = layout.output_prefix(config.job_id, item.index, config.attempt)
    outputs = storage.upload_tree(s3, ctx.output_dir, config.bucket, prefix)
    record = ResultRecord(
        job_id=config.job_id,
        index=item.index,
        attempt=config.attempt,
        processor=spec.name,
        partial=partial,
        outputs=outputs,
        started_at=started_at,
        finished_at=now(),
        resumption=store.resumption,
    )
    return ctx, record


def item_workdir(scratch_root: Path, job_id: str, index: int, attempt: int) -> Path:
    return scratch_root / f"{job_id}-{index}-attempt-{attempt}"


def record_body(record: ResultRecord) -> bytes:
    # python mode + json: a float overflow stays Infinity (pydantic's json mode would write null)
    return json.dumps(record.model_dump(), ensure_ascii=False).encode()


def check_partial(name: str, partial: Any) -> None:
    """A partial result must be valid in the merge algebra (Summarize merges it without the processor):
    refused here, it fails its own item with the key and the problem, before any result record exists."""
    found = problems(partial)
    if found:
        raise ProcessingError(f"processor {name!r} returned an invalid partial result: " + "; ".join(found))
    try:  # the checks above admit only values these accept; a last guard all the same
        json.dumps(partial, allow_nan=True)
        finalize(merge(partial, partial))
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as error:
        raise ProcessingError(
            f"processor {name!r} returned a partial result that does not merge: "
            f"{type(error).__name__}: {error}"
        ) from error


def _byte_range(item: Item) -> list[int | None]:
    """The [start, end) a shard reads, for the log ([None, None]: the whole object, or no input)."""
    return [item.start, item.end] if isinstance(item, ShardItem) else [None, None]
