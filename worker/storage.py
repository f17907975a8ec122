"""S3 and file I/O for the worker: streaming an item's input, decoding it line by line with exact error
positions, uploading outputs.

An item's input is a list of byte segments of one object: for a shard, the header [0, header_end) followed
by the range [start, end); for a whole-object item, the object. Segments are fetched with ranged GETs and
streamed in chunks: an input is never held in memory whole.
"""

from __future__ import annotations

import io
import mimetypes
import shutil
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from jobcore.models import Item, ObjectItem, ShardItem
from worker.errors import ProcessingError

CHUNK_SIZE = 1 << 20

_S3_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=10, read_timeout=120)
# uploads run in the main thread, so a stop signal interrupts them directly
_TRANSFER = TransferConfig(use_threads=False)

_session: boto3.session.Session | None = None
_session_lock = threading.Lock()
_clients: dict[tuple[tuple[str, Any], ...], Any] = {}


def _shared_session() -> boto3.session.Session:
    """One boto3 session per process: it caches the service models, so a client made after a fork from a
    preloaded process costs milliseconds instead of a few hundred."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session


def client_settings(env: Mapping[str, str], service_suffix: str) -> dict[str, Any]:
    """A boto3 client's endpoint, region and static credentials as `env` gives them (not os.environ: a
    task's environment is a mapping here); the service's endpoint is AWS_ENDPOINT_URL_<service_suffix>,
    else AWS_ENDPOINT_URL. What `env` does not give is left to boto3's usual chain."""
    kwargs: dict[str, Any] = {}
    endpoint = env.get(f"AWS_ENDPOINT_URL_{service_suffix}") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region_name"] = region
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        kwargs["aws_access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        kwargs["aws_secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            kwargs["aws_session_token"] = env["AWS_SESSION_TOKEN"]
    return kwargs


def make_s3_client(env: Mapping[str, str]) -> Any:
    """An S3 client configured from `env` (endpoint, region, static credentials when given there), falling
    back to boto3's usual chain (the ECS task role in AWS)."""
    kwargs: dict[str, Any] = {"config": _S3_CONFIG, **client_settings(env, "S3")}
    if "aws_access_key_id" not in kwargs:
        return _shared_session().client("s3", **kwargs)
    # static credentials (a local cloud's): one client per configuration and process, so a fork
    # server that made it before forking saves every task ~15 ms of CPU; clients are thread-safe
    # and open no connection until their first request
    identity = tuple(sorted((name, value) for name, value in kwargs.items() if name != "config"))
    with _session_lock:
        client = _clients.get(identity)
    if client is None:
        client = _shared_session().client("s3", **kwargs)
        with _session_lock:
            client = _clients.setdefault(identity, client)
    return client


def warm_up() -> None:
    """Load the S3 service model into the shared session (for a fork server's parent process). Uses dummy
    credentials so the real credential chain is never resolved before the fork."""
    _shared_session().client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="warmup",
        aws_secret_access_key="warmup",  # noqa: S106 - a placeholder, never sent anywhere
    )


def is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound", "NoSuchVersion")


def absence(error: ClientError) -> str | None:
    """Why a read found nothing: S3 answers a missing key with 404 only to a role that may list it, and
    with 403 AccessDenied to anyone else, such as the task role (GetObject API reference, Permissions).
    None for any other error."""
    if is_missing(error):
        return "does not exist"
    if error.response.get("Error", {}).get("Code") in ("AccessDenied", "403"):
        return "does not exist or the task role may not read it (S3 answered 403 AccessDenied)"
    return None


# ----------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Segment:
    """Bytes [start, end) of the input object; end None = to the end of the object."""

    start: int
    end: int | None

    @property
    def length(self) -> int | None:
        return None if self.end is None else self.end - self.start


def segments_for(item: Item) -> list[Segment]:
    """For a shard, the header [0, header_end) (unless the range already starts inside it), then [start,
    end); for any other item, the whole object."""
    if not isinstance(item, ShardItem):
        return [Segment(0, None)]
    start = item.start
    segments = []
    if item.header_end and start >= item.header_end:
        segments.append(Segment(0, item.header_end))
    segments.append(Segment(start, item.end))
    return [s for s in segments if s.end is None or s.end > s.start]


class Source(Protocol):
    """Where an item's input bytes come from."""

    name: str

    def open_segment(self, segment: Segment) -> Any:  # an object with read(n) -> bytes and close()
        ...


def source_for(s3: Any, item: Item, job_bucket: str) -> S3Source | None:
    """The object an item reads (a shard's or a whole object's; in the job's bucket unless it names
    another), or None for an item without input (a sweep item)."""
    if not isinstance(item, ObjectItem) or not item.key:
        return None
    return S3Source(s3, item.bucket or job_bucket, item.key, item.version_id)


class S3Source:
    def __init__(self, s3: Any, bucket: str, key: str, version_id: str | None = None) -> None:
        self.s3, self.bucket, self.key, self.version_id = s3, bucket, key, version_id
        self.name = f"s3://{bucket}/{key}"

    def open_segment(self, segment: Segment) -> Any:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            kwargs["VersionId"] = self.version_id
        if segment.end is not None:
            kwargs["Range"] = f"bytes={segment.start}-{segment.end - 1}"
        elif segment.start:
            kwargs["Range"] = f"bytes={segment.start}-"
        try:
            return self.s3.get_object(**kwargs)["Body"]
        except ClientError as error:
            why = absence(error)
            if why:
                raise ProcessingError(f"input {self.name} {why}") from error
            raise


class BytesSource:
    """Input held in memory or in a local file: for tests and `worker.testing.run_processor`."""

    def __init__(self, data: bytes | Path, name: str = "local") -> None:
        self.data, self.name = data, name

    def open_segment(self, segment: Segment) -> Any:
        if isinstance(self.data, Path):
            handle = self.data.open("rb")
            handle.seek(segment.start)
            return _Limited(handle, segment.length)
        return io.BytesIO(self.data[segment.start : segment.end])


class _Limited:
    def __init__(self, handle: BinaryIO, length: int | None) -> None:
        self.handle, self.left = handle, length

    def read(self, size: int = -1) -> bytes:
        if self.left is not None:
            if self.left <= 0:
                return b""
            size = self.left if size < 0 else min(size, self.left)
        data = self.handle.read(size)
        if self.left is not None:
            self.left -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()


class SegmentStream(io.RawIOBase):
    """A read-only binary stream over an input's segments, fetched one after the other in chunks."""

    def __init__(self, source: Source, segments: list[Segment]) -> None:
        super().__init__()
        self.source, self.segments = source, segments
        self._index = 0
        self._body: Any = None
        self._got = 0

    def readable(self) -> bool:
        return True

    def file_offset(self, position: int) -> int:
        """The offset in the input object of byte `position` of this stream."""
        for segment in self.segments:
            length = segment.length
            if length is None or position < length:
                return segment.start + position
            position -= length
        last = self.segments[-1] if self.segments else Segment(0, 0)
        return (last.end or 0) + position

    def readinto(self, buffer: Any) -> int:
        while self._index < len(self.segments):
            segment = self.segments[self._index]
            if self._body is None:
                self._body = self.source.open_segment(segment)
                self._got = 0
            data = self._body.read(len(buffer))
            if data:
                size = len(data)
                buffer[:size] = data
                self._got += size
                return size
            self._close_body()
            if segment.length is not None and self._got != segment.length:
                raise ProcessingError(
                    f"{self.source.name}: bytes [{segment.start}, {segment.end}) ended after "
                    f"{self._got} bytes (the object is shorter than the item says; "
                    "was it replaced during the job?)"
                )
            self._index += 1
        return 0

    def _close_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    def close(self) -> None:
        self._close_body()
        super().close()


def open_binary(source: Source, segments: list[Segment]) -> io.BufferedReader:
    return io.BufferedReader(SegmentStream(source, segments), buffer_size=CHUNK_SIZE)


class DecodedLines:
    """Iterates an input's lines as `str` (line endings kept, as csv wants with newline=''), decoding UTF-8
    strictly line by line so an invalid byte is reported with its offset in the object and its line.
    A BOM at the start of the object is dropped. `position` is the stream offset of the next line."""

    def __init__(self, stream: io.BufferedReader, raw: SegmentStream, where: str) -> None:
        self._stream, self._raw, self.where = stream, raw, where
        self.line = 0
        self.position = 0
        self._at_object_start = raw.file_offset(0) == 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        data = self._stream.readline()
        if not data:
            raise StopIteration
        start = self.position
        self.position += len(data)
        self.line += 1
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ProcessingError(
                f"invalid UTF-8 in {self.where} at byte offset {self.file_offset(start + error.start)} "
                f"({self.describe_line(self.line)}): {error.reason}"
            ) from None
        if self.line == 1 and self._at_object_start and text.startswith("\ufeff"):
            text = text[1:]
        return text

    def file_offset(self, position: int | None = None) -> int:
        """The offset in the input object of stream position `position` (default: the next line)."""
        return self._raw.file_offset(self.position if position is None else position)

    def describe_line(self, line: int) -> str:
        segments = self._raw.segments
        contiguous = all(
            after.start == before.end for before, after in zip(segments, segments[1:], strict=False)
        )
        if segments and segments[0].start == 0 and contiguous:  # the item's bytes are the object's start
            return f"line {line}"
        ranges = " + ".join(f"[{s.start}, {'end' if s.end is None else s.end})" for s in segments)
        return f"line {line} of this item's bytes {ranges}"

    def close(self) -> None:
        self._stream.close()


def download(source: Source, segments: list[Segment], path: Path) -> Path:
    """Copy an input to a local file in chunks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_binary(source, segments) as stream, path.open("wb") as out:
        shutil.copyfileobj(stream, out, CHUNK_SIZE)
    return path


# ---------------------------------------------------------------------------------------------- outputs


def upload_tree(s3: Any, directory: Path, bucket: str, prefix: str) -> list[str]:
    """Upload every regular file under `directory` to `prefix` + its relative path; returns the keys."""
    keys = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
        key = prefix + path.relative_to(directory).as_posix()
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type}, Config=_TRANSFER)
        keys.append(key)
    return keys
