"""Reading the Distributed Map's result files (the ASL's ResultWriter), a few large objects instead of
one object per item.

Under `jobs/<job_id>/map-results/<map-run-id>/` the Map Run leaves `manifest.json` (written last) and
`SUCCEEDED_<n>.json` / `FAILED_<n>.json`, each a JSON array of child execution records whose `Output`
is the child's output as JSON text: for a succeeded item, its ItemOutcome (ItemSucceeded's
`OutputPath: $.outcome`). Files are parsed as they stream in, one record at a time, so no file is ever
held whole.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from jobcore import layout
from jobcore.store import is_not_found

MANIFEST_NAME = "manifest.json"
CHUNK_BYTES = 256 * 1024
_WHITESPACE = " \t\n\r"


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
    """The keys of the manifest's result files of one status (SUCCEEDED, FAILED or PENDING)."""
    files = (manifest.get("ResultFiles") or {}).get(status) or []
    return [str(entry["Key"]) for entry in files if isinstance(entry, dict) and entry.get("Key")]


def iter_json_array(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The elements of one JSON array, decoded as its bytes arrive: only the element being read and
    the current chunk are held."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    source = iter(chunks)
    text, pos, ended = "", 0, False
    expect = "["  # then a value or "]", then "," or "]"

    def more() -> bool:
        nonlocal text, pos, ended
        if ended:
            return False
        chunk = next(source, None)
        if chunk is None:
            ended = True
            text = text[pos:] + utf8.decode(b"", final=True)
        else:
            text = text[pos:] + utf8.decode(chunk)
        pos = 0
        return True

    while True:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if pos == len(text):
            if more():
                continue
            raise ValueError("result file ended inside its JSON array")
        char = text[pos]
        if expect == "[":
            if char != "[":
                raise ValueError(f"result file is not a JSON array (starts with {char!r})")
            pos, expect = pos + 1, "first"
        elif expect in ("first", "next") and char == "]":
            return
        elif expect == "next":
            if char != ",":
                raise ValueError(f"unexpected {char!r} between result records")
            pos, expect = pos + 1, "value"
        else:
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                if more():
                    continue
                raise
            if not isinstance(value, (dict, list, str)) and not ended:
                # a number is complete only once what follows it has arrived ("1" may be "1.5")
                following = text[end:].lstrip(_WHITESPACE)
                if (not following or following[0] not in ",]") and more():
                    continue
            yield value
            pos, expect = end, "next"


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
    if record.get("Status") != "SUCCEEDED" or not isinstance(record.get("Output"), str):
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


def failed_child(record: dict[str, Any]) -> tuple[int, str] | None:
    """(item index, why) for a failed child execution record, from its Input (the item) and its Error
    and Cause; None when the record says neither which item nor anything else."""
    if record.get("Status") not in ("FAILED", "TIMED_OUT", "ABORTED") or not isinstance(
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
