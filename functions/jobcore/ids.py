"""Job ids: deterministic, readable, and valid Step Functions execution names.

The id is the execution name, so a duplicate S3 event (delivery is at least once, and a file may
arrive both as an S3 notification and as an EventBridge event) maps to the same execution, and
StartExecution's name uniqueness makes starting it twice harmless.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_NAME_LENGTH = 80  # Step Functions execution names: 1-80 characters
HASH_LENGTH = 16
_STEM_LENGTH = MAX_NAME_LENGTH - HASH_LENGTH - 1
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_KNOWN_SUFFIXES = (".job.json", ".csv.gz", ".tsv.gz")


def file_stem(key: str) -> str:
    """The readable part of a job id: the file name without its extension, reduced to [A-Za-z0-9_-]."""
    name = key.rsplit("/", 1)[-1]
    lowered = name.lower()
    for suffix in _KNOWN_SUFFIXES:
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        if "." in name.lstrip("."):
            name = name.rsplit(".", 1)[0]
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    stem = _UNSAFE.sub("-", ascii_name).strip("-_")[:_STEM_LENGTH].strip("-_")
    return stem or "job"


def job_id_for(
    bucket: str,
    key: str,
    version_id: str | None = None,
    sequencer: str | None = None,
    etag: str | None = None,
) -> str:
    """`<stem>-<16 hex>`: the hash covers the bucket, the key and what tells uploads of the same key
    apart (the version id, else the event sequencer, else the ETag), so the same upload always gets
    the same id and a new upload of the same key gets a new one."""
    version = version_id if version_id and version_id != "null" else None
    discriminator = version or sequencer or (etag.strip('"') if etag else "") or ""
    digest = hashlib.sha256("\0".join((bucket, key, discriminator)).encode("utf-8")).hexdigest()
    return f"{file_stem(key)}-{digest[:HASH_LENGTH]}"


def is_valid_execution_name(name: str) -> bool:
    return 1 <= len(name) <= MAX_NAME_LENGTH and _UNSAFE.search(name) is None
