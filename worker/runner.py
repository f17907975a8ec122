"""One worker task: read the job and the item, run the processor, upload its outputs, write the result
record last. `main(env) -> exit code` is the whole program (`python -m worker` calls it with os.environ);
a fork server can import this module, call `preload()`, fork, and call `main(task_env)` in the child.

Exit codes: 0 success (result record written), 1 processing error, 2 bad configuration,
128 + signal (143 for SIGTERM) when stopped: no result record is written by a stopped attempt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from botocore.exceptions import ClientError
from pydantic import Field, ValidationError

from jobcore import layout
from jobcore.models import (
    Item,
    ItemBatch,
    JobDescriptor,
    parse_item,
    parse_item_json,
)
from jobcore.settings import NonNegativeInt, Settings
from worker import batch, heartbeat, logs, processing, processors, storage
from worker.api import get_processor, registered
from worker.cancel import Cancellation
from worker.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, ConfigError, ProcessingError, Terminated

LOG = logs.get_logger()

# built-in processors and modules dropped into worker/processors are imported with this module
processors.discover()


class WorkerConfig(Settings):
    """The task's environment, parsed once (pydantic-settings, as the functions' settings); every
    problem is reported at once as ConfigError (exit 2)."""

    config_error_heading: ClassVar[str] = "bad worker configuration"

    bucket: str = Field(alias="JOB_BUCKET")
    job_id: str = Field(alias="JOB_ID")
    index: NonNegativeInt = Field(alias="ITEM_INDEX")
    attempt: NonNegativeInt = Field(alias="ATTEMPT")
    item_json: str | None = Field(default=None, alias="ITEM")
    job_json: str | None = Field(default=None, alias="JOB")
    scratch_dir: Path | None = Field(default=None, alias="SCRATCH_DIR")
    processor_modules: str | None = Field(default=None, alias="SPOTMAP_PROCESSOR_MODULES")


def preload() -> None:
    """Import everything a task needs and load the S3 model, so a process forked after this starts a task
    in milliseconds. Safe to call more than once."""
    processors.discover()
    storage.warm_up()


def main(env: Mapping[str, str] | None = None) -> int:
    """Run one task as described by `env` (default os.environ); returns the exit code."""
    env = os.environ if env is None else env
    context: dict[str, Any] = {
        "job_id": env.get("JOB_ID"),
        "item_index": _int_or_raw(env.get("ITEM_INDEX")),
        "attempt": _int_or_raw(env.get("ATTEMPT")),
    }
    handler = logs.configure(context, env.get("LOG_LEVEL"))
    cancellation = Cancellation()
    try:
        with cancellation.installed(), heartbeat.running(env):
            return _run(env, cancellation)
    finally:
        logs.unconfigure(handler)


def _run(env: Mapping[str, str], cancellation: Cancellation) -> int:
    try:
        try:
            return _task(env, cancellation)
        except ConfigError as error:
            LOG.error(str(error), extra={"exit_code": EXIT_CONFIG})
            _report_failure(env, str(error), EXIT_CONFIG)
            return EXIT_CONFIG
        except ProcessingError as error:
            LOG.error(str(error), extra={"exit_code": EXIT_FAILED})
            _report_failure(env, str(error), EXIT_FAILED)
            return EXIT_FAILED
        except Exception as error:
            message = f"unexpected error: {type(error).__name__}: {error}"
            LOG.exception(message, extra={"exit_code": EXIT_FAILED})
            _report_failure(env, message, EXIT_FAILED)
            return EXIT_FAILED
    except Terminated as stop:
        LOG.warning(
            f"{stop}: attempt abandoned, no result record written", extra={"exit_code": stop.exit_code}
        )
        return stop.exit_code


def _task(env: Mapping[str, str], cancellation: Cancellation) -> int:
    started_at = processing.now()
    config = WorkerConfig.from_env(env)
    s3 = storage.make_s3_client(env)
    job = _read_job(s3, config)
    processors.discover(config.processor_modules)
    spec = get_processor(job.processor)
    if spec is None:
        available = ", ".join(sorted(registered())) or "none"
        broken = "".join(
            f"; {name} failed to import: {err}" for name, err in processors.IMPORT_ERRORS.items()
        )
        raise ConfigError(f"unknown processor {job.processor!r} (this image has: {available}){broken}")
    item = _read_item(s3, config)

    scratch_root = config.scratch_dir or Path(tempfile.mkdtemp(prefix="spotmap-"))
    if isinstance(item, ItemBatch):  # many items in this task (jobcore.batching): worker/batch.py runs them
        try:
            return batch.run_batch(s3, config, job, spec, item, cancellation, env, started_at, scratch_root)
        finally:
            if config.scratch_dir is None:
                shutil.rmtree(scratch_root, ignore_errors=True)
    try:
        ctx, record = processing.run_item(
            s3, config, job, spec, item, cancellation, env, scratch_root, started_at
        )
        body = processing.record_body(record)
        cancellation.commit()  # from here on a stop signal lets the PUT finish and we exit 0
        write_result(s3, config.bucket, layout.result_key(config.job_id, config.index), body)
        ctx.checkpoints.discard()  # the item succeeded: its checkpoint is no longer needed
        LOG.info(
            "item succeeded", extra={"outputs": len(record.outputs), "stop_requested": cancellation.requested}
        )
        return EXIT_OK
    finally:
        shutil.rmtree(
            processing.item_workdir(scratch_root, config.job_id, config.index, config.attempt),
            ignore_errors=True,
        )
        if config.scratch_dir is None:
            shutil.rmtree(scratch_root, ignore_errors=True)


def _report_failure(env: Mapping[str, str], message: str, exit_code: int) -> None:
    """Leave the failure's message where PollTask finds it (jobs/<id>/errors/...), so the item's
    reason says what went wrong and not only the exit code. Best effort: the log has it anyway."""
    try:
        job_id, index, attempt = env["JOB_ID"], int(env["ITEM_INDEX"]), int(env["ATTEMPT"])
        body = json.dumps({"message": message, "exit_code": exit_code, "at": processing.now()}).encode()
        storage.make_s3_client(env).put_object(
            Bucket=env["JOB_BUCKET"],
            Key=layout.error_key(job_id, index, attempt),
            Body=body,
            ContentType="application/json",
        )
    except Exception as error:  # never let reporting hide the failure itself
        LOG.warning(f"could not record the failure in S3: {type(error).__name__}: {error}")


def write_result(s3: Any, bucket: str, key: str, body: bytes) -> None:
    """The last write of a successful attempt; its existence is what PollTask calls success."""
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def _read_json(s3: Any, bucket: str, key: str, what: str) -> Any:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        why = storage.absence(error)
        if why:
            raise ConfigError(f"{what} s3://{bucket}/{key} {why}") from error
        raise
    try:
        return json.loads(body)
    except ValueError as error:
        raise ConfigError(f"{what} s3://{bucket}/{key} is not JSON: {error}") from error


def _read_job(s3: Any, config: WorkerConfig) -> JobDescriptor:
    if config.job_json:  # LaunchTask passed the descriptor along: no S3 read
        try:
            job = JobDescriptor.model_validate_json(config.job_json)
        except ValidationError as error:
            raise ConfigError(f"JOB is not a valid job descriptor: {error}") from error
        if job.job_id != config.job_id:
            raise ConfigError(f"JOB describes job {job.job_id!r} but JOB_ID is {config.job_id!r}")
        return job
    key = layout.descriptor_key(config.job_id)
    try:
        return JobDescriptor.model_validate(_read_json(s3, config.bucket, key, "job descriptor"))
    except ValidationError as error:
        raise ConfigError(f"job descriptor s3://{config.bucket}/{key} is invalid: {error}") from error


def _read_item(s3: Any, config: WorkerConfig) -> Item:
    try:
        if config.item_json:
            item = parse_item_json(config.item_json)
        else:
            key = layout.items_key(config.job_id)
            items = _read_json(s3, config.bucket, key, "item list")
            if not isinstance(items, list):
                raise ConfigError(f"item list s3://{config.bucket}/{key} is not a JSON array")
            found = items[config.index] if config.index < len(items) else None
            if not (isinstance(found, dict) and found.get("index") == config.index):
                found = next(
                    (i for i in items if isinstance(i, dict) and i.get("index") == config.index), None
                )
            if found is None:
                raise ConfigError(
                    f"item {config.index} is not in s3://{config.bucket}/{key} ({len(items)} items)"
                )
            item = parse_item(found)
    except ValidationError as error:
        raise ConfigError(f"item {config.index} is invalid: {error}") from error
    if item.index != config.index:
        raise ConfigError(f"ITEM has index {item.index} but ITEM_INDEX is {config.index}")
    return item


def _int_or_raw(value: str | None) -> int | str | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return value
