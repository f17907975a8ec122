"""Reading the Distributed Map's result files (the ASL's ResultWriter), a few large objects instead of
one object per item.

Under `jobs/<job_id>/map-results/<map-run-id>/` the Map Run leaves `manifest.json` (written last) and
`SUCCEEDED_<n>.json` / `FAILED_<n>.json`, each a JSON array of child execution records whose `Output`
is the child's output as JSON text: for a succeeded item, its ItemOutcome (ItemSucceeded's
`OutputPath: $.outcome`). Files are parsed as they stream in, one record at a time, so no file is ever
held whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import ijson
from botocore.exceptions import ClientError

from jobcore import layout
from jobcore.models import ExecutionStatus
from jobcore.store import is_not_found

MANIFEST_NAME = "manifest.json"
CHUNK_BYTES = 256 * 1024


def newest_manifest_key(s3: Any, bucket: str, job_id: str) -> str | None:
    """The manifest of the job's newest Map Run (a redriven or re-run job has several), or None."""
    newest: tuple[Any, str] | None = None
    prefix = layout.map_results_prefix(job_id)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            if key.endswith(f"/{MANIFEST_NAME}"):
                candidate = (entry["LastModified"], key)
                newest = candidate if newest is None or candidate > newest else newest
    return newest[1] if newest else None


def result_file_keys(manifest: dict[str, Any], status: str) -> list[str]:
    """The keys of the manifest's result files of the children of one status (ExecutionStatus.SUCCEEDED
    or FAILED; the manifest also has PENDING)."""
    files = (manifest.get("ResultFiles") or {}).get(status) or []
    return [str(entry["Key"]) for entry in files if isinstance(entry, dict) and entry.get("Key")]


def iter_json_array(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The elements of one JSON array, decoded by ijson as its bytes arrive: only the current chunk and
    the elements completed in it are held. Numbers come out as int or float (as json.loads gives them).
    A document that is not one whole JSON array is a ValueError."""
    completed = ijson.sendable_list()
    parser = ijson.items_coro(completed, "item", use_float=True)
    started = False
    try:
        for chunk in chunks:
            if not started and chunk.strip():
                first = chr(chunk.lstrip()[0])
                if first != "[":
                    raise ValueError(f"result file is not a JSON array (starts with {first!r})")
                started = True
            parser.send(chunk)
            yield from completed
            del completed[:]
        if not started:
            raise ValueError("result file is empty")
        parser.close()  # an array left open fails here
    except ijson.JSONError as error:
        raise ValueError(f"result file is not a whole JSON array: {error}") from None
    yield from completed


def stream_records(s3: Any, bucket: str, key: str) -> Iterator[dict[str, Any]]:
    """The child execution records of one result file, streamed; nothing when it does not exist."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as error:
        if is_not_found(error):
            return
        raise
    try:
        for record in iter_json_array(body.iter_chunks(CHUNK_BYTES)):
            if isinstance(record, dict):
                yield record
    finally:
        body.close()


def succeeded_outcome(record: dict[str, Any]) -> dict[str, Any] | None:
    """The ItemOutcome a succeeded child returned (its Output), or None for anything else."""
    if record.get("Status") != ExecutionStatus.SUCCEEDED or not isinstance(record.get("Output"), str):
        return None
    try:
        outcome = json.loads(record["Output"])
    except json.JSONDecodeError:
        return None
    if not isinstance(outcome, dict) or not isinstance(outcome.get("index"), int):
        return None
    return outcome


# Step Functions limits the data a state passes (its input, its output) to 256 KiB; an item that grows
# past it fails its child with this uncatchable error, and no Lambda of the child records why.
# https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html (maximum input or output size)
DATA_LIMIT_ERROR = "States.DataLimitExceeded"


_FAILED_CHILD = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED})


def failed_child(record: dict[str, Any]) -> tuple[int, str] | None:
    """(item index, why) for a failed child execution record, from its Input (the item) and its Error
    and Cause; None when the record says neither which item nor anything else."""
    if record.get("Status") not in _FAILED_CHILD or not isinstance(
        record.get("Input"), str
    ):
        return None
    try:
        child_input = json.loads(record["Input"])
    except json.JSONDecodeError:
        return None
    item = child_input.get("item") if isinstance(child_input, dict) else None
    index = item.get("index") if isinstance(item, dict) else None
    if not isinstance(index, int) or isinstance(index, bool):
        return None
    error, cause = record.get("Error"), record.get("Cause")
    why = ": ".join(str(part) for part in (error, cause) if part) or f"child execution {record['Status']}"
    if error == DATA_LIMIT_ERROR:
        why += (
            f" (a state's input or output is limited to 256 KiB; item {index}'s input alone is "
            f"{len(record['Input'].encode()):,} bytes)"
        )
    return index, why
