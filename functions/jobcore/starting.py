"""StartJob's domain: from an uploaded object to a started execution.

    HeadObject → job id → (job.json exists? reuse it : items.json, then job.json) → StartExecution

Every step is idempotent, so a duplicate or retried event is harmless: the job id is derived from
the upload, items.json and job.json have deterministic content, job.json is written last (its
existence means items.json is complete), and StartExecution treats ExecutionAlreadyExists as done.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from jobcore import batching, layout, manifest, planning, rerun
from jobcore.config import StartJobSettings
from jobcore.ids import job_id_for
from jobcore.job_store import JobStore
from jobcore.models import InputObject, Item, JobDescriptor, ObjectItem
from jobcore.payload import ItemStateMeter, PayloadTooLarge, check_execution_input
from jobcore.sharding import S3RangeReader, shard_items
from jobcore.store import error_code, is_not_found, iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """What an event says about an uploaded object. `keys` are the candidate keys in the order to
    try them (an EventBridge key may or may not be URL-encoded)."""

    bucket: str
    keys: tuple[str, ...]
    version_id: str | None = None
    sequencer: str | None = None
    etag: str | None = None
    source: str = "s3"

    @property
    def trigger_key(self) -> str | None:
        return next((key for key in self.keys if layout.is_job_trigger(key)), None)

    def skip_reason(self) -> str | None:
        """Why this upload does not start a job, or None when it does."""
        if self.trigger_key is not None:
            return None
        key = self.keys[0] if self.keys else ""
        if key.startswith(layout.INPUT_PREFIX) and key.endswith("/"):
            return f"{key!r} is a folder marker"
        return f"{key!r} is outside {layout.INPUT_PREFIX}"


@dataclass(frozen=True)
class StartedJob:
    job_id: str
    key: str
    item_count: int
    rejected: bool
    duplicate: bool  # job.json already existed: a repeated event
    already_started: bool  # StartExecution answered ExecutionAlreadyExists
    execution_arn: str | None
    error: str | None = None


@dataclass
class _Counter:
    value: int = 0


def head_upload(s3: Any, upload: Upload) -> tuple[str, dict[str, Any]] | None:
    """(the key that exists, its HeadObject) trying each candidate key; None when none exists."""
    for key in upload.keys:
        if not layout.is_job_trigger(key):
            continue
        request: dict[str, Any] = {"Bucket": upload.bucket, "Key": key}
        if upload.version_id and upload.version_id != "null":
            request["VersionId"] = upload.version_id
        try:
            return key, s3.head_object(**request)
        except ClientError as error:
            if is_not_found(error) or error_code(error) == "400":
                continue
            raise
    return None


class _IterStream(io.RawIOBase):
    """A readable file over an iterator of byte chunks, so upload_fileobj can stream a generated body."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _json_array(items: Iterable[Item], counter: _Counter, meter: ItemStateMeter) -> Iterator[bytes]:
    yield b"["
    for item in items:
        if counter.value:
            yield b",\n"
        line = item.model_dump_json(exclude_none=True).encode("utf-8")
        meter.check(item.index, line)  # PayloadTooLarge: the job is refused before anything starts
        yield line
        counter.value += 1
    yield b"]\n"


SINGLE_PUT_BYTES = 8 * 1024 * 1024  # below this, one PutObject; above, a streamed multipart upload


def write_items(s3: Any, bucket: str, job_id: str, items: Iterable[Item]) -> int:
    """Write the item list to jobs/<id>/items.json (a JSON array) without building it whole: a small
    list is one PutObject, a large one streams through a multipart upload. Returns the item count.
    Raises PayloadTooLarge for an item the state machine could not carry (an upload in progress is
    then aborted, and the caller overwrites items.json)."""
    counter = _Counter()
    store = JobStore(s3, bucket, job_id)
    chunks = _json_array(items, counter, ItemStateMeter(job_id, bucket))
    head: list[bytes] = []
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size >= SINGLE_PUT_BYTES:
            stream = io.BufferedReader(_IterStream(itertools.chain(head, chunks)), buffer_size=1024 * 1024)
            store.upload_items(stream)
            return counter.value
    store.put_items(b"".join(head))
    return counter.value


def write_descriptor(s3: Any, descriptor: JobDescriptor) -> None:
    JobStore(s3, descriptor.input.bucket, descriptor.job_id).write_descriptor(descriptor)


def _existing_descriptor(s3: Any, bucket: str, job_id: str) -> JobDescriptor | None:
    store = JobStore(s3, bucket, job_id)
    try:
        return store.read_descriptor()
    except ClientError as error:
        if error_code(error) in ("AccessDenied", "403"):
            # S3 answers a missing key with 403 to a role that may not list jobs/ (StartJob may not):
            # build the job; were it there, the content is the same, so rewriting it is harmless.
            log.info("no readable %s (%s): building the job", store.descriptor_key, error_code(error))
            return None
        raise


def build_job(
    s3: Any, settings: StartJobSettings, job_id: str, source: InputObject, created_at: str
) -> JobDescriptor:
    """Write items.json then job.json for an upload; a bad manifest, or an item too large for the state
    machine, gives a rejected job."""
    try:
        if source.key.endswith(layout.MANIFEST_SUFFIX):
            return _build_manifest_job(s3, settings, job_id, source, created_at)
        return _build_upload_job(s3, settings, job_id, source, created_at)
    except (manifest.ManifestError, PayloadTooLarge) as error:
        log.warning("rejected job %s (%s): %s", job_id, source.key, error)
        write_items(s3, source.bucket, job_id, [])
        descriptor = JobDescriptor(
            job_id=job_id,
            input=source,
            processor="(rejected)",
            item_count=0,
            created_at=created_at,
            error=str(error),
        )
        write_descriptor(s3, descriptor)
        return descriptor


def _build_upload_job(
    s3: Any, settings: StartJobSettings, job_id: str, source: InputObject, created_at: str
) -> JobDescriptor:
    reader = S3RangeReader(s3, source.bucket, source.key, source.size, source.version_id)
    items = shard_items(
        reader,
        bucket=source.bucket,
        key=source.key,
        version_id=source.version_id,
        shard_size_mb=settings.shard_size_mb,
    )
    count = write_items(s3, source.bucket, job_id, items)
    descriptor = JobDescriptor(
        job_id=job_id,
        input=source,
        processor=manifest.CSV_PROFILE,
        item_count=count,
        created_at=created_at,
        empty_result=manifest.EMPTY_RESULTS[manifest.CSV_PROFILE],
    )
    write_descriptor(s3, descriptor)
    return descriptor


def _build_manifest_job(
    s3: Any, settings: StartJobSettings, job_id: str, source: InputObject, created_at: str
) -> JobDescriptor:
    request: dict[str, Any] = {"Bucket": source.bucket, "Key": source.key}
    if source.version_id:
        request["VersionId"] = source.version_id
    if source.size > manifest.MAX_MANIFEST_BYTES:
        raise manifest.ManifestError(
            f"manifest {source.key} is {source.size} bytes; the limit is {manifest.MAX_MANIFEST_BYTES}"
        )
    parsed = manifest.parse_job_manifest(
        s3.get_object(**request)["Body"].read(), source.key, settings.processors
    )
    if isinstance(parsed, manifest.RerunManifest):
        return _build_rerun_job(s3, job_id, source, created_at, parsed)
    spec = parsed
    origin = spec.source
    batch = batching.effective_spec(origin.kind, settings, spec.batch, spec.batch_given)
    sizes: dict[str, int] = {}  # object sizes a prefix listing gives, for max_bytes
    items = manifest_items(s3, source.bucket, source.key, spec, settings.shard_size_mb, sizes)
    batcher: batching.Batcher | None = None
    if batch is not None:
        size_of = (
            (lambda item: sizes[item.key] if isinstance(item, ObjectItem) else 0)
            if isinstance(origin, manifest.PrefixSource)
            else batching.head_size(s3, source.bucket)
        )
        batcher = batching.Batcher(batch, size_of)
        items = batcher(items)
    count = write_items(s3, source.bucket, job_id, items)
    descriptor = JobDescriptor(
        job_id=job_id,
        input=source,
        processor=spec.processor,
        params=spec.params,
        item_count=batcher.items if batcher is not None else count,
        created_at=created_at,
        empty_result=spec.empty_result,
        batch=batch.model_dump(exclude_none=True) if batch is not None else None,
        task_count=count if batcher is not None else None,
    )
    write_descriptor(s3, descriptor)
    return descriptor


def manifest_items(
    s3: Any,
    bucket: str,
    manifest_key: str,
    spec: manifest.Manifest,
    shard_size_mb: float,
    sizes: dict[str, int] | None = None,
) -> Iterable[Item]:
    """The items of a job manifest before batching, exactly as StartJob writes them (also what `spotmap
    plan` counts). `s3` is needed for the shard and prefix sources only (it reads or lists the bucket);
    a prefix listing notes each object's size in `sizes` (batching by bytes needs them)."""
    origin = spec.source
    items: Iterable[Item]
    if isinstance(origin, manifest.ShardSource):
        shard = origin.shard
        try:
            head = s3.head_object(Bucket=bucket, Key=shard.key)
        except ClientError as error:
            if is_not_found(error):
                raise manifest.ManifestError(
                    f"invalid manifest {manifest_key}: source.shard.key: {shard.key} does not exist"
                ) from None
            if error_code(error) in ("AccessDenied", "403"):
                # outside input/ and data/ StartJob may neither read nor list: missing or not, refused
                raise manifest.ManifestError(
                    f"invalid manifest {manifest_key}: source.shard.key: {shard.key} cannot be read"
                    " (it must be under input/ or data/)"
                ) from None
            raise
        version = _version(head.get("VersionId"))
        reader = S3RangeReader(s3, bucket, shard.key, head["ContentLength"], version)
        items = shard_items(
            reader,
            bucket=bucket,
            key=shard.key,
            version_id=version,
            shard_size_mb=shard.shard_size_mb or shard_size_mb,
        )
    elif isinstance(origin, manifest.KeysSource):
        items = manifest.object_items(bucket, iter(origin.keys))
    elif isinstance(origin, manifest.PrefixSource):
        listed = batching.listed_objects(s3, bucket, origin.prefix, sizes if sizes is not None else {})
        items = manifest.object_items(bucket, listed)
    elif isinstance(origin, manifest.ItemsSource):
        items = manifest.param_items(origin.items)
    else:
        items = manifest.seed_items(origin.count, origin.seed_start)
    return items


def _build_rerun_job(
    s3: Any, job_id: str, source: InputObject, created_at: str, request: manifest.RerunManifest
) -> JobDescriptor:
    """A job over the earlier job's failed items only (jobcore.rerun); ManifestError when there is none."""
    planned = rerun.rerun_job(s3, source.bucket, source.key, request)
    count = write_items(s3, source.bucket, job_id, planned.items)
    descriptor = JobDescriptor(
        job_id=job_id,
        input=source,
        processor=planned.processor,
        params=planned.params,
        item_count=planned.item_count if planned.batch is not None else count,
        created_at=created_at,
        empty_result=planned.empty_result,
        batch=planned.batch,  # a batched job's failed items are rerun in batches of the same spec
        task_count=count if planned.batch is not None else None,
        rerun=planned.origin,
    )
    write_descriptor(s3, descriptor)
    return descriptor


def _version(value: Any) -> str | None:
    return value if isinstance(value, str) and value and value != "null" else None


def execution_input(descriptor: JobDescriptor, settings: StartJobSettings) -> dict[str, Any]:
    return {
        "job_id": descriptor.job_id,
        "bucket": descriptor.input.bucket,
        "items_key": layout.items_key(descriptor.job_id),  # where the Map's ItemReader reads
        "max_concurrency": descriptor.max_concurrency or settings.max_concurrency,
        "rejected": descriptor.error is not None,
    }


def start_execution(
    sfn: Any, settings: StartJobSettings, descriptor: JobDescriptor
) -> tuple[str | None, bool]:
    """(execution ARN, already started). Starting a job twice is not an error."""
    document = execution_input(descriptor, settings)
    check_execution_input(document)  # bounded by construction (ids and names): a regression guard
    try:
        response = sfn.start_execution(
            stateMachineArn=settings.state_machine_arn,
            name=descriptor.job_id,
            input=json.dumps(document),
        )
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":
            arn = (
                settings.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{descriptor.job_id}"
            )
            return arn, True
        raise
    return response["executionArn"], False


QuotaReader = Callable[[], tuple[planning.Quota, planning.Quota]]


def add_warnings(
    s3: Any, settings: StartJobSettings, descriptor: JobDescriptor, quotas: QuotaReader | None
) -> JobDescriptor:
    """The job's plan warnings (jobcore.planning: a quota or a limit, not the work, sets its pace), in
    job.json for the summary to repeat. Needs the task size (TASK_CPU, TASK_MEMORY) and the quotas."""
    if quotas is None or descriptor.error is not None or not settings.task_cpu or not settings.task_memory:
        return descriptor
    plan = planning.start_plan(
        descriptor.item_count,
        settings.max_concurrency,
        settings.task_cpu,
        settings.task_memory,
        quotas(),
        descriptor.task_count,  # a batched job's tasks are its batches
    )
    warnings: list[str] = plan["warnings"]
    if not warnings:
        return descriptor
    for warning in warnings:
        log.warning("job %s: %s", descriptor.job_id, warning)
    # RunTask beyond the Spot vCPU quota starts nothing (failures[]): the Map launches no more than fit
    cap = planning.quota_concurrency(plan)
    descriptor = descriptor.model_copy(update={"warnings": warnings, "max_concurrency": cap})
    write_descriptor(s3, descriptor)
    return descriptor


def start_job(
    s3: Any, sfn: Any, settings: StartJobSettings, upload: Upload, quotas: QuotaReader | None = None
) -> StartedJob | None:
    """Turn one upload into a started job; None when the object no longer exists. `quotas` reads the
    account's Fargate vCPU quotas (jobcore.planning.account_quotas) for the job's plan warnings."""
    found = head_upload(s3, upload)
    if found is None:
        log.warning("no object for %s in %s (deleted since the event?)", list(upload.keys), upload.bucket)
        return None
    key, head = found
    version = _version(upload.version_id) or _version(head.get("VersionId"))
    etag = (head.get("ETag") or upload.etag or "").strip('"') or None
    job_id = job_id_for(upload.bucket, key, version, upload.sequencer, etag)
    descriptor = _existing_descriptor(s3, upload.bucket, job_id)
    duplicate = descriptor is not None
    if descriptor is None:
        source = InputObject(
            bucket=upload.bucket, key=key, size=int(head["ContentLength"]), version_id=version, etag=etag
        )
        # The upload's own time: the same for every delivery of the event, so job.json is deterministic.
        created_at = iso(head.get("LastModified")) or ""
        descriptor = build_job(s3, settings, job_id, source, created_at)
        descriptor = add_warnings(s3, settings, descriptor, quotas)
    arn, already_started = start_execution(sfn, settings, descriptor)
    return StartedJob(
        job_id=job_id,
        key=key,
        item_count=descriptor.item_count,
        rejected=descriptor.error is not None,
        duplicate=duplicate,
        already_started=already_started,
        execution_arn=arn,
        error=descriptor.error,
    )
