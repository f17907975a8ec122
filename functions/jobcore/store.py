"""Small S3 helpers shared by the functions: JSON documents, existence checks and listings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from jobcore import layout
from jobcore.models import JobDescriptor

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
JSON_CONTENT = "application/json"


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_not_found(error: ClientError) -> bool:
    return error_code(error) in NOT_FOUND_CODES


def read_json(s3: Any, bucket: str, key: str) -> Any | None:
    """The object's JSON, or None when it does not exist."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if is_not_found(error):
            return None
        raise
    return json.loads(body)


def put_json(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=JSON_CONTENT)


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if is_not_found(error):
            return False
        raise
    return True


def read_descriptor(s3: Any, bucket: str, job_id: str) -> JobDescriptor | None:
    document = read_json(s3, bucket, layout.descriptor_key(job_id))
    return None if document is None else JobDescriptor.model_validate(document)


def list_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under the prefix, page by page."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            yield entry["Key"]


def list_indices(s3: Any, bucket: str, prefix: str) -> set[int]:
    """Item indices of the `<index>.json` keys under a prefix (other keys are ignored)."""
    indices: set[int] = set()
    for key in list_keys(s3, bucket, prefix):
        name = key[len(prefix) :]
        if name.endswith(".json") and name[:-5].isdigit():
            indices.add(int(name[:-5]))
    return indices


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a Z, e.g. 2026-11-23T10:00:00.000Z."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
