"""What the local cloud's endpoint reads from S3 requests itself, before or instead of moto: which
bucket and key a request names, whether a successful one created an object (for S3's "Object Created"
events), and the fast path that answers plain GetObjects straight from moto's stored objects."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote

from werkzeug.wrappers import Response

from spotmap.access import virtual_hosted_bucket

RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def is_s3(environ: dict[str, Any]) -> bool:
    return "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", "")


def bucket_and_key(environ: dict[str, Any]) -> tuple[str, str] | None:
    """The (decoded) bucket and key an S3 request names, path-style or virtual-host style."""
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    raw_path = raw_path.split("?", 1)[0]
    bucket = virtual_hosted_bucket(environ.get("HTTP_HOST", "").split(":")[0])
    if bucket is not None:
        key = raw_path.lstrip("/")
    else:
        parts = raw_path.lstrip("/").split("/", 1)
        if len(parts) < 2 or not parts[1]:
            return None
        bucket, key = parts
    return unquote(bucket), unquote(key)


def created_object(environ: dict[str, Any]) -> tuple[str, str, str] | None:
    """(bucket, key, reason) when this successful request created an object."""
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    method = environ["REQUEST_METHOD"]
    if method == "PUT":
        if query:  # parts, tagging, acl, versioning...: not a new object
            return None
        reason = "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject"
    elif "uploadId" in query and "uploads" not in query:
        reason = "CompleteMultipartUpload"
    else:
        return None
    located = bucket_and_key(environ)
    return (*located, reason) if located else None


def plain_get(environ: dict[str, Any], account_id: str) -> Response | None:
    """A plain GetObject (whole object, or a `bytes=a-b` / `bytes=a-` range, optionally of a
    version) answered from moto's stored object, as moto's own handler answers it.

    Two costs of moto, measured: it reads (and copies) the whole object for every GET and then
    slices it, so the shards of a 500 MB file cost seconds each; and its request routing costs a
    few ms per GET, several GETs per item. Anything else (conditions, SSE-C, CORS, parts,
    response-header overrides, other storage classes, missing keys, unsatisfiable ranges) is left
    to moto (None), which answers exactly as S3 does."""
    from moto.s3.models import s3_backends

    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    requested_range = environ.get("HTTP_RANGE", "").strip()
    match = RANGE.fullmatch(requested_range) if requested_range else None
    located = bucket_and_key(environ)
    if (
        (requested_range and not match)
        or not located
        or not located[1]
        or set(query) - {"versionId", "x-id"}
        or "HTTP_ORIGIN" in environ
        or any(
            name.startswith(("HTTP_IF_", "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER")) for name in environ
        )
    ):
        return None
    version = query.get("versionId", [None])[0]
    try:
        key = s3_backends[account_id]["aws"].get_object(*located, version_id=version)
    except Exception:  # noqa: BLE001 - moto will answer with the proper error
        return None
    if key is None or getattr(key, "is_delete_marker", False) or key.storage_class not in (None, "STANDARD"):
        return None
    headers = {name: value for name, value in key.response_dict.items() if value is not None}
    if key.version_id != "null":
        headers["x-amz-version-id"] = key.version_id
    # a whole object's checksum only: a range is not what it was computed over
    if match is None and environ.get("HTTP_X_AMZ_CHECKSUM_MODE") == "ENABLED" and key.checksum_algorithm:
        checksum = key.checksum_value
        if key.checksum_type == "COMPOSITE":
            checksum = f"{key.checksum_value}-{key.checksum_parts}"
        headers[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = checksum
        if key.checksum_type:
            headers["x-amz-checksum-type"] = key.checksum_type
    headers.update(key.metadata)
    headers["accept-ranges"] = "bytes"
    headers["x-amz-request-id"] = uuid.uuid4().hex
    if match is None:
        with key.lock:
            key._value_buffer.seek(0)
            body = key._value_buffer.read()
        headers["content-length"] = str(len(body))
        return Response(body, status=200, headers=headers)
    start = int(match.group(1))
    if start >= key.size:
        return None
    end = min(int(match.group(2)) if match.group(2) else key.size - 1, key.size - 1)
    with key.lock:
        key._value_buffer.seek(start)
        body = key._value_buffer.read(end - start + 1)
    headers["content-length"] = str(len(body))
    headers["content-range"] = f"bytes {start}-{end}/{key.size}"
    headers.setdefault("content-type", "binary/octet-stream")
    return Response(body, status=206, headers=headers)
