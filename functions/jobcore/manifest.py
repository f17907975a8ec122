"""Job manifests: `input/<name>.job.json` describes a job instead of being its data.

    {
      "processor": "command",                      # a processor the worker image provides
      "params": {"command": ["simulate", "--out", "{output_dir}"]},
      "source": {"items": [{"x": 1}, {"x": 2}]}    # exactly one item source, see `Source`
    }

A manifest is validated before anything starts; the first problem is reported naming its field.
Items are produced lazily (a prefix of 100,000 objects is listed page by page), and written to
items.json as a stream.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobcore.layout import DATA_PREFIX, INPUT_PREFIX, MANIFEST_SUFFIX
from jobcore.models import Item

READABLE_PREFIXES = (INPUT_PREFIX, DATA_PREFIX)
MAX_ITEMS = 1_000_000


class ManifestError(ValueError):
    """The manifest is not a valid job description; the message names the field and the problem."""


def is_manifest(key: str) -> bool:
    return key.endswith(MANIFEST_SUFFIX)


def _readable(key: str, where: str) -> str:
    if not key.startswith(READABLE_PREFIXES):
        raise ValueError(f"{key!r} is outside {' and '.join(READABLE_PREFIXES)} ({where} must be readable by the worker)")
    return key


class ShardSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1)
    shard_size_mb: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _key_readable(self) -> ShardSource:
        _readable(self.key, "the key")
        return self


class Source(BaseModel):
    """Exactly one of: one object to shard; a list of keys; a prefix (one item per object);
    explicit items (parameter sweeps); a count of seeds (Monte Carlo: item i gets seed seed_start+i)."""

    model_config = ConfigDict(extra="forbid")

    shard: ShardSource | None = None
    keys: list[str] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    prefix: str | None = Field(default=None, min_length=1)
    items: list[dict[str, Any]] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    count: int | None = Field(default=None, ge=1, le=MAX_ITEMS)
    seed_start: int = 0

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        chosen = [name for name in ("shard", "keys", "prefix", "items", "count") if getattr(self, name) is not None]
        if not chosen:
            raise ValueError("no item source: give one of shard, keys, prefix, items, count")
        if len(chosen) > 1:
            raise ValueError(f"more than one item source ({', '.join(chosen)}): give exactly one")
        for key in self.keys or []:
            _readable(key, "every key")
        if self.prefix is not None:
            _readable(self.prefix, "the prefix")
        return self


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    processor: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    source: Source


def _describe(error: ValidationError) -> str:
    problems = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"]) or "manifest"
        message = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def parse_manifest(raw: bytes, known_processors: Iterable[str]) -> Manifest:
    """Validate a manifest's bytes; raise ManifestError naming the field and the problem."""
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise ManifestError(f"manifest: not UTF-8 text ({error})") from error
    except json.JSONDecodeError as error:
        raise ManifestError(f"manifest: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from error
    if not isinstance(document, dict):
        raise ManifestError(f"manifest: expected a JSON object, got {type(document).__name__}")
    try:
        manifest = Manifest.model_validate(document)
    except ValidationError as error:
        raise ManifestError(_describe(error)) from error
    known = sorted(set(known_processors))
    if known and "*" not in known and manifest.processor not in known:
        raise ManifestError(
            f"processor: unknown processor {manifest.processor!r}; the worker image provides: {', '.join(known)}"
        )
    return manifest


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Objects under a prefix, page by page (never the whole listing in memory), folder markers skipped."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                yield obj


def manifest_items(manifest: Manifest, s3: Any, bucket: str) -> Iterator[Item]:
    """The items of a keys / prefix / items / count source (a shard source is built by sharding)."""
    source = manifest.source
    if source.keys is not None:
        for index, key in enumerate(source.keys):
            yield Item(index=index, bucket=bucket, key=key)
    elif source.prefix is not None:
        for index, obj in enumerate(list_objects(s3, bucket, source.prefix)):
            yield Item(index=index, bucket=bucket, key=obj["Key"])
    elif source.items is not None:
        for index, params in enumerate(source.items):
            yield Item(index=index, params=params)
    elif source.count is not None:
        for index in range(source.count):
            yield Item(index=index, params={"seed": source.seed_start + index})
    else:
        raise ManifestError("source.shard: shard sources are built by sharding, not listed")


def write_items(s3: Any, bucket: str, key: str, items: Iterable[Item]) -> int:
    """Stream items into a JSON array object at `key`; returns how many were written.

    The array goes through a spooled temporary file, so 100,000 items never sit in memory as one
    string, and the Distributed Map's ItemReader reads it as plain JSON."""
    count = 0
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as buffer:
        buffer.write(b"[")
        for item in items:
            if count:
                buffer.write(b",\n")
            buffer.write(item.model_dump_json(exclude_defaults=True).encode())
            count += 1
        buffer.write(b"]\n")
        buffer.seek(0)
        s3.upload_fileobj(buffer, bucket, key, ExtraArgs={"ContentType": "application/json"})
    return count


__all__ = [
    "DATA_PREFIX",
    "Manifest",
    "ManifestError",
    "Source",
    "is_manifest",
    "list_objects",
    "manifest_items",
    "parse_manifest",
    "write_items",
]
