"""The Distributed Map's ResultWriter for the local cloud, in AWS's format.

moto 5.x's ResultWriter (`ResourceEvalS3._handle_put_object`) writes an empty manifest and drops the
child outputs. `moto_patches.install_result_writer()` replaces it so that a Map Run with a
ResultWriter leaves what AWS leaves under `<Prefix>/<map-run-id>/`:

    manifest.json       {"DestinationBucket", "MapRunArn",
                         "ResultFiles": {"FAILED": [{"Key", "Size"}], "PENDING": [], "SUCCEEDED": [...]}}
    SUCCEEDED_<n>.json  JSON arrays of child execution records: ExecutionArn, Input (JSON text),
    FAILED_<n>.json     InputDetails, Name, Output (JSON text, succeeded only), OutputDetails,
                        RedriveCount, RedriveStatus, StartDate, StateMachineArn, Status, StopDate;
                        failed ones carry Error and Cause

A file holds at most RESULT_FILE_BYTES (more records start the next file), records in the order the
children finished, as AWS does not sort them by item either. moto runs a distributed Map's children as
frames rather than executions and forgets why one failed, so the patch also wraps the worker that
runs each child to record its input, status, error, cause and times. It also evaluates the
ResultWriter's Parameters against the Map state's input, as AWS does (moto uses the Map's result, so
`"Bucket.$": "$.bucket"` found nothing). The patch lives with moto's others, in spotmap/moto_patches.py.

`write_results` is the formatting code; the benchmark of Summarize uses it to lay out the same files.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

RESULT_FILE_BYTES = 8 * 1024 * 1024
MANIFEST_NAME = "manifest.json"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
PENDING = "PENDING"


@dataclass(frozen=True)
class ChildExecution:
    """One child of a Map Run, as the result files describe it."""

    index: int
    status: str  # SUCCEEDED, FAILED, TIMED_OUT or ABORTED
    input: str  # the child's input (after ItemSelector), as JSON text
    start: datetime
    stop: datetime
    output: Any = None  # the child's output, succeeded children only
    error: str | None = None
    cause: str | None = None
    name: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class MapRun:
    arn: str  # arn:aws:states:<region>:<account>:mapRun:<stateMachine>/<label or id>:<id>
    state_machine_arn: str  # the children's: arn:aws:states:…:stateMachine:<stateMachine>/<label or id>

    @property
    def id(self) -> str:
        return self.arn.rsplit(":", 1)[-1]

    def execution_arn(self, name: str) -> str:
        """A child execution's ARN: …:execution:<stateMachine>/<label or id>:<name>."""
        return f"{self.state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def execution_record(run: MapRun, child: ChildExecution) -> dict[str, Any]:
    """The child's entry in a result file."""
    succeeded = child.status == SUCCEEDED
    record: dict[str, Any] = {
        "ExecutionArn": run.execution_arn(child.name),
        "Input": child.input,
        "InputDetails": {"Included": True},
        "Name": child.name,
    }
    if succeeded:
        record["Output"] = _json(child.output)
        record["OutputDetails"] = {"Included": True}
    else:
        record["Error"] = child.error
        record["Cause"] = child.cause
    record.update(
        {
            "RedriveCount": 0,
            "RedriveStatus": "NOT_REDRIVABLE" if succeeded else "REDRIVABLE_BY_MAP_RUN",
            "StartDate": _iso(child.start),
            "StateMachineArn": run.state_machine_arn,
            "Status": child.status,
            "StopDate": _iso(child.stop),
        }
    )
    return record


class _FileSeries:
    """SUCCEEDED_0.json, SUCCEEDED_1.json, …: records appended until a file would exceed max_bytes."""

    def __init__(self, folder: str, status: str, max_bytes: int, put: Callable[[str, bytes], None]):
        self._folder, self._status, self._max_bytes, self._put = folder, status, max_bytes, put
        self._records: list[bytes] = []
        self._size = 2  # the brackets
        self.files: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        encoded = json.dumps(record, separators=(",", ":")).encode("utf-8")
        if self._records and self._size + 1 + len(encoded) > self._max_bytes:
            self.flush()
        self._size += len(encoded) + (1 if self._records else 0)
        self._records.append(encoded)

    def flush(self) -> None:
        if not self._records:
            return
        body = b"[" + b",".join(self._records) + b"]"
        key = f"{self._folder}{self._status}_{len(self.files)}.json"
        self._put(key, body)
        self.files.append({"Key": key, "Size": len(body)})
        self._records, self._size = [], 2


def write_results(
    put: Callable[[str, bytes], None],
    bucket: str,
    prefix: str,
    run: MapRun,
    children: Iterable[ChildExecution],
    max_file_bytes: int | None = None,
) -> str:
    """Write a Map Run's result files and then its manifest with `put(key, body)`; return the
    manifest's key. `prefix` is the ResultWriter's Prefix; children are written in the given order."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    folder = f"{prefix}{run.id}/"
    limit = RESULT_FILE_BYTES if max_file_bytes is None else max_file_bytes
    series = {status: _FileSeries(folder, status, limit, put) for status in (SUCCEEDED, FAILED)}
    for child in children:
        series[SUCCEEDED if child.status == SUCCEEDED else FAILED].add(execution_record(run, child))
    for files in series.values():
        files.flush()
    manifest = {
        "DestinationBucket": bucket,
        "MapRunArn": run.arn,
        "ResultFiles": {FAILED: series[FAILED].files, PENDING: [], SUCCEEDED: series[SUCCEEDED].files},
    }
    key = f"{folder}{MANIFEST_NAME}"
    put(key, json.dumps(manifest, indent=2).encode("utf-8"))
    return key

