"""A batch task: many items of a job in one ECS task (jobcore.batching).

The task runs its batch's items one after another, or a few at once when the task has more than one
vCPU, each exactly as a task of its own would run it: the same Context, output prefix
(`output/<job>/<index>/attempt-<n>/`) and result record (`jobs/<job>/results/<index>.json`), written as
soon as the item finishes. An item that fails leaves its error record (`jobs/<job>/errors/<index>/...`)
and fails alone: the others still run. A task relaunched after a Spot interruption (a higher attempt)
skips the items whose result records exist. Each item has its own checkpoint
(`jobs/<job>/checkpoints/<index>.tar`, worker/checkpoints.py), exactly as an item of its own task: an item
the stop caught mid-run resumes from it in the relaunched task, and it is deleted once the item's result
record is written. Last, the batch's record (`layout.batch_record_key`) lists
every item's result: its existence is the task's success, which PollTask checks as it checks an item's
result record. SIGTERM stops the task at once (exit 143, no batch record); items already recorded stay
done.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from jobcore import layout
from jobcore.models import (
    AttemptOutcome,
    BatchItemResult,
    BatchRecord,
    Item,
    ItemBatch,
    JobDescriptor,
    ResultRecord,
)
from worker import logs, processing, storage
from worker.api import ProcessorSpec
from worker.cancel import Cancellation
from worker.errors import EXIT_OK, ConfigError, ProcessingError, Terminated

if TYPE_CHECKING:
    from worker.runner import WorkerConfig

LOG = logs.get_logger()

MAX_POOL = 4  # a few items at once: enough to use a task's vCPUs, few enough for its memory
METADATA_TIMEOUT_SECONDS = 1.0


def pool_size(env: Mapping[str, str]) -> int:
    """How many items to run at once: SPOTMAP_BATCH_WORKERS when set, else the task's vCPUs from the ECS
    task metadata endpoint (v4: `Limits.CPU`), at most MAX_POOL; 1 (in turn) when neither says more."""
    given = env.get("SPOTMAP_BATCH_WORKERS")
    if given:
        try:
            return max(1, min(MAX_POOL, int(given)))
        except ValueError:
            LOG.warning(f"SPOTMAP_BATCH_WORKERS is not a whole number ({given!r}): items run in turn")
            return 1
    uri = env.get("ECS_CONTAINER_METADATA_URI_V4")
    if not uri:
        return 1
    if not uri.startswith(("http://", "https://")):
        return 1
    try:  # the scheme is checked above: ECS's metadata endpoint is plain HTTP on a link-local address
        with urllib.request.urlopen(f"{uri}/task", timeout=METADATA_TIMEOUT_SECONDS) as response:  # noqa: S310
            vcpus = float(json.loads(response.read()).get("Limits", {}).get("CPU") or 1)
    except (OSError, ValueError, AttributeError) as error:
        LOG.warning(f"task metadata unreadable, items run in turn: {error}")
        return 1
    return max(1, min(MAX_POOL, int(vcpus)))


def run_batch(
    s3: Any,
    config: WorkerConfig,
    job: JobDescriptor,
    spec: ProcessorSpec,
    batch: ItemBatch,
    cancellation: Cancellation,
    env: Mapping[str, str],
    started_at: str,
    scratch_root: Path,
) -> int:
    """Run every item of the batch not done yet, then write the batch's record; returns the exit code."""
    group = batch.members()
    done = _already_done(s3, config, group) if config.attempt > 1 else {}
    todo = [member for member in group if member.index not in done]
    LOG.info(
        "processing batch",
        extra={"processor": spec.name, "items": len(group), "already_done": len(done)},
    )
    results: dict[int, BatchItemResult] = dict(done)

    def run(member: Item) -> BatchItemResult:
        if cancellation.requested:  # a stop arrived: start nothing more
            raise Terminated(cancellation.signum or 15)
        return _run_item(s3, config, job, spec, member, cancellation, env, scratch_root)

    # cooperative processors toggle the task's one Cancellation: they run in turn, as does a 1-vCPU task
    workers = 1 if spec.cooperative else pool_size(env)
    if workers <= 1:
        for member in todo:
            results[member.index] = run(member)
    else:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="item")
        try:
            for member, result in zip(todo, pool.map(run, todo), strict=True):
                results[member.index] = result
        finally:
            pool.shutdown(wait=not cancellation.requested, cancel_futures=True)
    cancellation.check()

    record = BatchRecord(
        job_id=config.job_id,
        index=batch.index,
        attempt=config.attempt,
        processor=spec.name,
        items=[results[member.index] for member in group],
        started_at=started_at,
        finished_at=processing.now(),
    )
    body = json.dumps(record.model_dump(), ensure_ascii=False).encode()
    cancellation.commit()  # from here on a stop signal lets the PUT finish and we exit 0
    s3.put_object(
        Bucket=config.bucket,
        Key=layout.batch_record_key(config.job_id, batch.index),
        Body=body,
        ContentType="application/json",
    )
    failed = sum(1 for result in record.items if result.status is AttemptOutcome.FAILED)
    LOG.info("batch done", extra={"items": len(group), "failed": failed, "skipped": len(done)})
    return EXIT_OK


def _already_done(s3: Any, config: WorkerConfig, group: list[Item]) -> dict[int, BatchItemResult]:
    """Items an earlier attempt of this batch finished: their result records exist (one GET each, only
    on a relaunch)."""
    done: dict[int, BatchItemResult] = {}
    for member in group:
        key = layout.result_key(config.job_id, member.index)
        try:
            body = s3.get_object(Bucket=config.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if storage.absence(error):
                continue
            raise
        try:
            record = ResultRecord.model_validate_json(body)
        except ValueError:
            continue  # not a record: run the item again
        done[member.index] = BatchItemResult(
            index=member.index,
            status=AttemptOutcome.SUCCEEDED,
            attempt=record.attempt,
            partial=record.partial,
            resumption=record.resumption,
        )
    return done


def _run_item(
    s3: Any,
    config: WorkerConfig,
    job: JobDescriptor,
    spec: ProcessorSpec,
    item: Item,
    cancellation: Cancellation,
    env: Mapping[str, str],
    scratch_root: Path,
) -> BatchItemResult:
    """One item of the batch, as a task of its own would run it; a failure is its result, not the task's."""
    started_at = processing.now()
    source = storage.source_for(s3, item, config.bucket)
    name = source.name if source is not None else f"item {item.index}"
    try:
        ctx, record = processing.run_item(
            s3, config, job, spec, item, cancellation, env, scratch_root, started_at
        )
        body = processing.record_body(record)
        with cancellation.deferred():  # a stop waits for this PUT: the record is whole or absent
            s3.put_object(
                Bucket=config.bucket,
                Key=layout.result_key(config.job_id, item.index),
                Body=body,
                ContentType="application/json",
            )
        ctx.checkpoints.discard()  # the item succeeded: its checkpoint is no longer needed
        return BatchItemResult(
            index=item.index,
            status=AttemptOutcome.SUCCEEDED,
            attempt=config.attempt,
            partial=record.partial,
            resumption=record.resumption,
        )
    except Terminated:
        raise
    except Exception as error:  # ProcessingError, ConfigError or anything else: this item fails alone
        known = isinstance(error, (ProcessingError, ConfigError))
        message = str(error) if known else f"unexpected error: {type(error).__name__}: {error}"
        if name not in message:
            message = f"{name}: {message}"
        LOG.error(f"item {item.index} failed: {message}", extra={"item": item.index})
        _record_error(s3, config, item.index, message)
        return BatchItemResult(
            index=item.index, status=AttemptOutcome.FAILED, attempt=config.attempt, reason=message
        )
    finally:
        shutil.rmtree(
            processing.item_workdir(scratch_root, config.job_id, item.index, config.attempt),
            ignore_errors=True,
        )


def _record_error(s3: Any, config: WorkerConfig, index: int, message: str) -> None:
    """The item's error record, where an unbatched item's would be (best effort)."""
    body = json.dumps({"message": message, "exit_code": 1, "at": processing.now()}).encode()
    try:
        s3.put_object(
            Bucket=config.bucket,
            Key=layout.error_key(config.job_id, index, config.attempt),
            Body=body,
            ContentType="application/json",
        )
    except ClientError as error:
        LOG.warning(f"could not record the failure of item {index}: {error}")
