"""The Distributed Map's ResultWriter for the local cloud, in AWS's format.

moto 5.x's ResultWriter (`ResourceEvalS3._handle_put_object`) writes an empty manifest and drops the
child outputs. `install()` replaces it so that a Map Run with a ResultWriter leaves what AWS leaves
under `<Prefix>/<map-run-id>/`:

    manifest.json       {"DestinationBucket", "MapRunArn",
                         "ResultFiles": {"FAILED": [{"Key", "Size"}], "PENDING": [], "SUCCEEDED": [...]}}
    SUCCEEDED_<n>.json  JSON arrays of child execution records: ExecutionArn, Input (JSON text),
    FAILED_<n>.json     InputDetails, Name, Output (JSON text, succeeded only), OutputDetails,
                        RedriveCount, RedriveStatus, StartDate, StateMachineArn, Status, StopDate;
                        failed ones carry Error and Cause

A file holds at most RESULT_FILE_BYTES (more records start the next file), records in the order the
children finished, as AWS does not sort them by item either. moto runs a distributed Map's children as
frames rather than executions and forgets why one failed, so `install()` also wraps the worker that
runs each child to record its input, status, error, cause and times. It also evaluates the
ResultWriter's Parameters against the Map state's input, as AWS does (moto uses the Map's result, so
`"Bucket.$": "$.bucket"` found nothing).

`write_results` is the formatting code; the benchmark of Summarize uses it to lay out the same files.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

RESULT_FILE_BYTES = 8 * 1024 * 1024
MANIFEST_NAME = "manifest.json"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
PENDING = "PENDING"


def _now() -> datetime:
    return datetime.now(timezone.utc)


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


# ---------------------------------------------------------------- moto


_children: weakref.WeakKeyDictionary[Any, dict[int, ChildExecution]] = weakref.WeakKeyDictionary()
_children_lock = threading.Lock()


def _children_of(map_run_record: Any) -> dict[int, ChildExecution]:
    with _children_lock:
        return _children.setdefault(map_run_record, {})


def _status_of(program_state: Any) -> tuple[str, str | None, str | None]:
    from moto.stepfunctions.parser.asl.eval.program_state import (
        ProgramEnded,
        ProgramError,
        ProgramStopped,
        ProgramTimedOut,
    )

    if isinstance(program_state, ProgramEnded):
        return SUCCEEDED, None, None
    if isinstance(program_state, ProgramError):
        details = program_state.error or {}
        return FAILED, details.get("error"), details.get("cause")
    if isinstance(program_state, ProgramStopped):
        return "ABORTED", program_state.error, program_state.cause
    if isinstance(program_state, ProgramTimedOut):
        return "TIMED_OUT", "States.Timeout", None
    return FAILED, "States.Runtime", "the child ended without a final state"


def _ordered_children(children: dict[int, ChildExecution], outputs: list[Any]) -> Iterator[ChildExecution]:
    """The children in the order they finished, each succeeded one with its output (moto keeps the
    outputs in item order, failed children's as None)."""
    for child in sorted(children.values(), key=lambda child: (child.stop, child.index)):
        if child.status == SUCCEEDED and child.index < len(outputs):
            yield dataclasses.replace(child, output=outputs[child.index])
        else:
            yield child


@functools.cache
def install() -> None:
    """Patch moto's distributed Map worker and its S3 ResultWriter (once per process)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker_module,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer import (
        result_writer_decl,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3,
    )
    from moto.stepfunctions.parser.asl.utils import boto_client
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    worker_class = worker_module.DistributedItemProcessorWorker
    eval_input = worker_class._eval_input
    eval_job = worker_class._eval_job

    def _eval_input_recorded(self: Any, env_frame: Any) -> None:
        eval_input(self, env_frame)
        env_frame.spotmap_child_input = env_frame.states.get_input()

    def _eval_job_recorded(self: Any, env: Any, job: Any) -> None:
        start = _now()
        try:
            eval_job(self, env, job)
        finally:
            status, error, cause = _status_of(env.program_state())
            child_input = getattr(env, "spotmap_child_input", job.job_input)
            _children_of(self._map_run_record)[job.job_index] = ChildExecution(
                index=job.job_index,
                status=status,
                input=to_json_str(child_input, separators=(",", ":")),
                start=start,
                stop=_now(),
                error=error,
                cause=cause,
            )

    def _eval_body(self: Any, env: Any) -> None:
        # AWS evaluates the Parameters' paths against the Map state's input; moto against the outputs.
        outputs = env.stack.pop()
        env.stack.append(env.states.get_input())
        self.parargs.eval(env=env)
        parameters = env.stack.pop()
        env.stack.pop()
        env.stack.extend([outputs, parameters])
        self.resource_eval.eval_resource(env=env)

    def _handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = env.stack.pop()
        outputs = env.stack.pop()
        s3: Any = boto_client.boto_client_for(  # looked up at call time: the local cloud caches clients
            service="s3", region=resource_runtime_part.region, state_credentials=state_credentials
        )
        map_run_record = env.map_run_record_pool_manager.get_all().pop()
        with _children_lock:
            children = _children.pop(map_run_record, {})
        bucket = parameters["Bucket"]
        key = write_results(
            lambda key, body: s3.put_object(Bucket=bucket, Key=key, Body=body),
            bucket,
            parameters.get("Prefix", ""),
            MapRun(map_run_record.map_run_arn, map_run_record.map_state_machine_arn),
            _ordered_children(children, outputs),
        )
        env.stack.append(
            {"MapRunArn": map_run_record.map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": key}}
        )

    result_writer_decl.ResultWriter._eval_body = _eval_body  # type: ignore[method-assign]
    worker_class._eval_input = _eval_input_recorded  # type: ignore[method-assign]
    worker_class._eval_job = _eval_job_recorded  # type: ignore[method-assign]
    resource_eval_s3.ResourceEvalS3._handle_put_object = staticmethod(_handle_put_object)  # type: ignore[method-assign]
