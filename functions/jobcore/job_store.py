"""One job's objects in S3: every read and write of the job's layout, behind one typed object.

Domain code says *what* it reads or writes (`store.read_descriptor()`, `store.write_outcome(outcome)`,
`store.result(index)`), never *where*: the keys are jobcore.layout's, which stays the one place that
builds them, and this class is the one place that turns them into S3 calls (the cookbook's data-access
layer: a typed client, a small interface, nothing else). The worker keeps its own storage module
(worker/storage.py): it may import jobcore's contract only (import-linter).

Missing objects read as None (or an empty listing); other S3 errors propagate, so each caller decides
what a denied or failed read means for it (e.g. LaunchTask goes on without the descriptor).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from jobcore import layout, map_results
from jobcore.models import Item, ItemBatch, ItemOutcome, ItemState, JobDescriptor, TaskStatus
from jobcore.store import JSON_CONTENT, error_code, exists, list_indices, list_keys, put_json, read_json

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from jobcore.attempts import LaunchRecord
    from jobcore.launch_retries import LaunchRetries

# a conditional write that found the object (412), or raced another one in flight (409)
CLAIMED_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
HTML_CONTENT = "text/html; charset=utf-8"


class JobStore:
    """The objects of job `job_id` in `bucket`: descriptor, items, results, outcomes, worker errors,
    launch records, launched states, launch tallies, checkpoints, map result files, summary and report."""

    def __init__(self, s3: S3Client, bucket: str, job_id: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.job_id = job_id

    @classmethod
    def of(cls, s3: S3Client, state: ItemState) -> JobStore:
        """The store of the job an item belongs to."""
        return cls(s3, state.bucket, state.job_id)

    def __repr__(self) -> str:
        return f"JobStore(s3://{self.bucket}/{layout.job_prefix(self.job_id)})"

    def where(self, key: str) -> str:
        """An object's address for messages: s3://bucket/key."""
        return f"s3://{self.bucket}/{key}"

    # ------------------------------------------------------------ descriptor (StartJob writes it once)

    @property
    def descriptor_key(self) -> str:
        return layout.descriptor_key(self.job_id)

    def read_descriptor_document(self) -> Any | None:
        """The descriptor as stored (JSON), or None when there is none."""
        return read_json(self.s3, self.bucket, self.descriptor_key)

    def read_descriptor(self) -> JobDescriptor | None:
        document = self.read_descriptor_document()
        return None if document is None else JobDescriptor.model_validate(document)

    def write_descriptor(self, descriptor: JobDescriptor) -> None:
        put_json(
            self.s3, self.bucket, self.descriptor_key, descriptor.model_dump_json(indent=2).encode("utf-8")
        )

    # ------------------------------------------------------------ the item list (the Map's ItemReader)

    @property
    def items_key(self) -> str:
        return layout.items_key(self.job_id)

    def read_items_document(self) -> Any | None:
        """items.json as stored (a JSON array of items), or None when there is none."""
        return read_json(self.s3, self.bucket, self.items_key)

    def item_indices(self) -> set[int]:
        """The indices of the items the job ran itself, a batch's items included (jobcore.batching); a
        missing item list is an error (NoSuchKey)."""
        listed = json.loads(self.s3.get_object(Bucket=self.bucket, Key=self.items_key)["Body"].read())
        indices: set[int] = set()
        for entry in listed if isinstance(listed, list) else []:
            if not isinstance(entry, dict):
                continue
            members = entry.get("batch")
            if isinstance(members, list):
                indices.update(int(member["index"]) for member in members if isinstance(member, dict))
            else:
                indices.add(int(entry["index"]))
        return indices

    def put_items(self, body: bytes) -> None:
        put_json(self.s3, self.bucket, self.items_key, body)

    def upload_items(self, stream: Any) -> None:
        """A large item list, streamed through a multipart upload (boto3's managed transfer)."""
        self.s3.upload_fileobj(stream, self.bucket, self.items_key, ExtraArgs={"ContentType": JSON_CONTENT})

    # ------------------------------------------------------------ results (written last by the worker)

    def result(self, index: int) -> Any | None:
        """An item's result record (JSON), or None: its existence makes an exit code 0 a success."""
        return read_json(self.s3, self.bucket, layout.result_key(self.job_id, index))

    def batch_record(self, index: int) -> Any | None:
        """A batch task's record (JSON), keyed by the batch's first item, or None."""
        return read_json(self.s3, self.bucket, layout.batch_record_key(self.job_id, index))

    def task_result(self, item: Item) -> Any | None:
        """The record that makes a task's exit code 0 a success: a batch's record, or the item's."""
        return self.batch_record(item.index) if isinstance(item, ItemBatch) else self.result(item.index)

    def result_indices(self) -> set[int]:
        """The items that have a result record (one LIST)."""
        return list_indices(self.s3, self.bucket, layout.results_prefix(self.job_id))

    # ------------------------------------------------------------ outcomes (PollTask, RecordFailure)

    def outcome(self, index: int, status: TaskStatus) -> Any | None:
        """An item's outcome of that status (SUCCEEDED or FAILED) as stored, or None."""
        return read_json(self.s3, self.bucket, layout.outcome_key(self.job_id, index, status))

    def write_outcome(self, outcome: ItemOutcome) -> None:
        key = layout.outcome_key(self.job_id, outcome.index, outcome.status.value)
        put_json(self.s3, self.bucket, key, outcome.model_dump_json().encode("utf-8"))

    def outcome_indices(self, status: TaskStatus) -> set[int]:
        """The items with an outcome of that status (a LIST)."""
        return list_indices(self.s3, self.bucket, layout.outcomes_prefix(self.job_id, status))

    def count_outcomes(self, status: TaskStatus) -> int:
        prefix = layout.outcomes_prefix(self.job_id, status)
        return sum(1 for key in list_keys(self.s3, self.bucket, prefix) if key.endswith(".json"))

    def sample_outcomes(self, status: TaskStatus, samples: int) -> list[Any]:
        """Up to `samples` outcomes of that status (one LIST page, then their GETs in parallel); an
        unreadable one is left out (a sample only makes an estimate less precise)."""
        listing = self.s3.list_objects_v2(
            Bucket=self.bucket, Prefix=layout.outcomes_prefix(self.job_id, status), MaxKeys=samples
        )
        keys = [entry["Key"] for entry in listing.get("Contents", []) if "Key" in entry]
        if not keys:
            return []

        def read(key: str) -> Any | None:
            try:
                return read_json(self.s3, self.bucket, key)
            except Exception:  # noqa: BLE001 - an unreadable sample is left out, whatever broke
                return None

        with ThreadPoolExecutor(max_workers=min(len(keys), 10)) as pool:
            return [document for document in pool.map(read, keys) if document is not None]

    # ------------------------------------------------------------ worker errors

    def worker_error(self, index: int, attempt: int) -> Any | None:
        """Why a worker attempt failed (its last error line, worker/README.md), or None."""
        return read_json(self.s3, self.bucket, layout.error_key(self.job_id, index, attempt))

    def worker_error_key(self, index: int, attempt: int) -> str:
        return layout.error_key(self.job_id, index, attempt)

    # ------------------------------------------------------------ launch records (jobcore.attempts)

    def write_launch_record(self, record: LaunchRecord) -> None:
        key = layout.attempt_key(self.job_id, record.index, record.attempt)
        put_json(self.s3, self.bucket, key, record.model_dump_json().encode())

    def launch_record_documents(self, indices: set[int]) -> Iterator[tuple[str, Any]]:
        """(key, JSON) of the launch records of the given items (one LIST, then a GET each)."""
        prefix = layout.attempts_prefix(self.job_id)
        for key in list_keys(self.s3, self.bucket, prefix):
            index_text = key[len(prefix) :].split("/", 1)[0]
            if index_text.isdigit() and int(index_text) in indices:
                yield key, read_json(self.s3, self.bucket, key)

    # ------------------------------------------------------------ launched states (completion by events)

    def launched(self, index: int, attempt: int) -> ItemState | None:
        """The item state LaunchTask left for that attempt, or None."""
        document = read_json(self.s3, self.bucket, layout.launched_key(self.job_id, index, attempt))
        return None if document is None else ItemState.model_validate(document)

    def write_launched(self, state: ItemState) -> None:
        key = layout.launched_key(self.job_id, state.item.index, state.attempt)
        put_json(self.s3, self.bucket, key, state.model_dump_json(exclude={"outcome"}).encode("utf-8"))

    def claim_stop_event(self, index: int, attempt: int, task_arn: str | None) -> bool:
        """True for the one caller that may resume the attempt from its stop event: a conditional write
        (If-None-Match: *, S3 conditional writes) that a concurrent duplicate loses with 412."""
        key = layout.event_claim_key(self.job_id, index, attempt)
        body = json.dumps({"task_arn": task_arn}).encode()
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=JSON_CONTENT, IfNoneMatch="*"
            )
        except ClientError as error:
            if error_code(error) in CLAIMED_CODES:
                return False
            raise
        return True

    # ------------------------------------------------------------ launch tallies (jobcore.launch_retries)

    def launch_retries_key(self, index: int, attempt: int) -> str:
        return layout.launch_retries_key(self.job_id, index, attempt)

    def launch_retries_document(self, index: int, attempt: int) -> Any | None:
        return read_json(self.s3, self.bucket, self.launch_retries_key(index, attempt))

    def write_launch_retries(self, tally: LaunchRetries) -> None:
        key = self.launch_retries_key(tally.index, tally.attempt)
        put_json(self.s3, self.bucket, key, tally.model_dump_json().encode())

    # ------------------------------------------------------------ checkpoints (written by the worker)

    def has_checkpoint(self, index: int) -> bool:
        return exists(self.s3, self.bucket, layout.checkpoint_key(self.job_id, index))

    # ------------------------------------------------------------ the Map's result files

    def newest_map_manifest(self) -> dict[str, Any] | None:
        """The manifest of the job's newest Map Run, or None when the Map wrote no result files."""
        key = map_results.newest_manifest_key(self.s3, self.bucket, self.job_id)
        manifest = read_json(self.s3, self.bucket, key) if key else None
        return manifest if isinstance(manifest, dict) else None

    def map_result_records(self, key: str) -> Iterator[dict[str, Any]]:
        """The child execution records of one of the manifest's result files, streamed."""
        return map_results.stream_records(self.s3, self.bucket, key)

    # ------------------------------------------------------------ summary and report

    @property
    def output_prefix(self) -> str:
        """Where the job's worker attempts write their output (the worker builds each attempt's)."""
        return layout.job_output_prefix(self.job_id)

    @property
    def summary_key(self) -> str:
        return layout.summary_key(self.job_id)

    @property
    def report_key(self) -> str:
        return layout.report_key(self.job_id)

    def summary_exists(self) -> bool:
        return exists(self.s3, self.bucket, self.summary_key)

    def read_summary(self) -> Any | None:
        return read_json(self.s3, self.bucket, self.summary_key)

    def write_summary(self, summary: dict[str, Any]) -> str:
        body = json.dumps(summary, indent=2, sort_keys=True, default=str).encode("utf-8")
        put_json(self.s3, self.bucket, self.summary_key, body)
        return self.summary_key

    def write_report(self, page: str) -> str:
        self.s3.put_object(
            Bucket=self.bucket, Key=self.report_key, Body=page.encode("utf-8"), ContentType=HTML_CONTENT
        )
        return self.report_key
