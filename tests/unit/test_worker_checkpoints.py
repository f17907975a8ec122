"""Checkpoints (worker/checkpoints.py and the processor API): saved whole or not at all, restored by the
next attempt, counted as work saved, and deleted once the item succeeds. Against moto's S3."""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcore import layout
from jobcore.models import ResultRecord, Resumption
from tests.unit.worker_s3 import mocked_s3
from worker import runner, storage
from worker.api import Context, processor
from worker.cancel import Cancellation
from worker.checkpoints import CheckpointStore, S3Backend
from worker.errors import ProcessingError, Terminated
from worker.testing import run_processor

BUCKET = "spotmap-test-checkpoints"
JOB = "job-1"
KEY = layout.checkpoint_key(JOB, 0)


def put_job(s3: Any, processor_name: str, params: dict | None = None) -> None:
    descriptor = {
        "job_id": JOB,
        "input": {"bucket": BUCKET, "key": "input/none", "size": 0},
        "processor": processor_name,
        "params": params or {},
        "item_count": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    s3.put_object(Bucket=BUCKET, Key=layout.descriptor_key(JOB), Body=json.dumps(descriptor))


def task_env(tmp_path: Path, attempt: int, item: dict) -> dict[str, str]:
    return {
        "JOB_BUCKET": BUCKET,
        "JOB_ID": JOB,
        "ITEM_INDEX": "0",
        "ATTEMPT": str(attempt),
        "SCRATCH_DIR": str(tmp_path / "scratch"),
        "ITEM": json.dumps(item),
    }


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mocked_s3(monkeypatch, BUCKET) as client:
        yield client


def store(s3: Any, tmp_path: Path, attempt: int, cancellation: Cancellation | None = None) -> CheckpointStore:
    workdir = tmp_path / f"attempt-{attempt}"
    workdir.mkdir(parents=True, exist_ok=True)
    return CheckpointStore(
        S3Backend(s3, BUCKET, JOB, 0),
        attempt=attempt,
        workdir=workdir,
        cancellation=cancellation,
        may_exist=attempt > 1,
    )


def stored_meta(s3: Any) -> dict[str, Any]:
    body = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        meta = tar.extractfile("checkpoint.json")
        assert meta is not None
        return json.load(meta)


def has_checkpoint(s3: Any) -> bool:
    return "Contents" in s3.list_objects_v2(Bucket=BUCKET, Prefix=KEY)


# ------------------------------------------------------------------------------------------ the store
def test_the_next_attempt_resumes_from_json_bytes_or_a_directory(s3, tmp_path):
    # GIVEN attempt 1 of an item, which finds nothing to resume from
    first = store(s3, tmp_path, 1)
    assert first.resume_from() is None
    # WHEN it saves JSON, and attempts 2 and 3 (each resuming) save bytes and a directory
    first.save({"next": 4, "total": 14}, progress=4)
    second = store(s3, tmp_path, 2)
    assert second.resume_from() == {"next": 4, "total": 14}
    second.save(b"\x00binary\xff", progress=6)
    third = store(s3, tmp_path, 3)
    assert third.resume_from() == b"\x00binary\xff"
    tree = tmp_path / "tree"
    (tree / "nested").mkdir(parents=True)
    (tree / "nested" / "weights.bin").write_bytes(b"w" * 1000)
    (tree / "state.json").write_text('{"epoch": 3}')
    third.save(tree, progress=7)
    fourth = store(s3, tmp_path, 4)
    restored = fourth.resume_from()

    # THEN each attempt got exactly what the one before saved, and knows who saved it
    assert isinstance(restored, Path)
    assert (restored / "nested" / "weights.bin").read_bytes() == b"w" * 1000
    assert (restored / "state.json").read_text() == '{"epoch": 3}'
    assert fourth.resumed is not None
    assert (fourth.resumed.kind, fourth.resumed.attempt, fourth.resumed.progress) == ("directory", 3, 7)
    # AND the work saved adds up along the chain: attempts 2, 3 and 4 each resumed
    assert fourth.resumption is not None
    assert fourth.resumption.resumed_attempts == 3
    assert fourth.resumption.saved_units == 4 + 6 + 7
    assert fourth.resumption.saved_seconds >= 0


def test_an_upload_that_fails_leaves_the_previous_checkpoint_whole(s3, tmp_path):
    # GIVEN an item's checkpoint saved by attempt 1
    store(s3, tmp_path, 1).save({"next": 2}, progress=2)

    # WHEN attempt 2's next save dies in the middle of its upload (the connection drops)
    class Dropping(S3Backend):
        def put(self, archive: Path) -> None:
            with archive.open("rb") as body:
                body.read(10)  # part of it went out
            raise ConnectionError("connection reset by peer")

    second = CheckpointStore(Dropping(s3, BUCKET, JOB, 0), attempt=2, workdir=tmp_path / "w2", may_exist=True)
    (tmp_path / "w2").mkdir()
    assert second.resume_from() == {"next": 2}
    with pytest.raises(ConnectionError):
        second.save({"next": 5}, progress=5)

    # THEN the next attempt finds the previous checkpoint, complete, and no half of the new one
    assert store(s3, tmp_path, 3).resume_from() == {"next": 2}
    assert stored_meta(s3)["progress"] == 2


def test_a_stop_during_a_save_lets_the_save_finish_then_stops(s3, tmp_path):
    # GIVEN a save whose upload is under way when SIGTERM arrives
    cancellation = Cancellation()
    attempt = store(s3, tmp_path, 1, cancellation)
    put = attempt.backend.put

    def put_then_signal(archive: Path) -> None:
        cancellation.request(signal.SIGTERM)  # the handler only records it: the save is deferred
        put(archive)

    attempt.backend.put = put_then_signal  # type: ignore[method-assign]

    # WHEN it saves
    with pytest.raises(Terminated):
        attempt.save({"next": 9}, progress=9)

    # THEN the checkpoint was written whole before the stop was raised
    assert store(s3, tmp_path, 2).resume_from() == {"next": 9}


def test_a_damaged_or_escaping_checkpoint_fails_the_item_and_is_never_extracted_outside(s3, tmp_path):
    # GIVEN a checkpoint archive whose directory member points outside the attempt's directory
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        meta = json.dumps({"format": 1, "kind": "directory", "attempt": 1, "work_seconds": 1}).encode()
        info = tarfile.TarInfo("checkpoint.json")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
        evil = tarfile.TarInfo("dir/../../../escaped.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=archive.getvalue())

    # WHEN the next attempt resumes from it
    with pytest.raises(ProcessingError, match="is damaged"):
        store(s3, tmp_path, 2).resume_from()

    # THEN nothing was written outside; and an object that is not an archive is damaged too
    assert not list(tmp_path.rglob("escaped.txt"))
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"not a tar")
    with pytest.raises(ProcessingError, match="is damaged"):
        store(s3, tmp_path, 3).resume_from()


def test_values_that_cannot_be_a_checkpoint_are_refused(s3, tmp_path):
    # GIVEN an attempt
    attempt = store(s3, tmp_path, 1)
    # WHEN it saves None, something not JSON, a file path, or a progress that is not a number
    # THEN each is refused before anything is written
    with pytest.raises(ValueError, match="needs a value"):
        attempt.save(None)
    with pytest.raises(TypeError, match="bytes, a directory or JSON"):
        attempt.save({"when": object()})
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="must be a directory"):
        attempt.save(tmp_path / "file.txt")
    with pytest.raises(TypeError, match="progress must be a number"):
        attempt.save({"a": 1}, progress="half")  # type: ignore[arg-type]
    assert not has_checkpoint(s3)


# ---------------------------------------------------------------------------------- the worker task
@processor("test-checkpointing-counter", cooperative=True)
def _checkpointing_counter(ctx: Context) -> dict:
    state = ctx.resume_from() or {"next": 0, "done": []}
    for unit in range(state["next"], 6):
        if ctx.cancelled:
            ctx.checkpoint(state, progress=state["next"])  # raises Terminated once saved
        if ctx.attempt == 1 and unit == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # a Spot reclaim, mid-run
            time.sleep(0.05)
        state = {"next": unit + 1, "done": [*state["done"], [ctx.attempt, unit]]}
    return {"done": {"$list": state["done"]}, "units": {"$sum": 6}}


def test_a_stopped_task_leaves_a_checkpoint_and_its_relaunch_resumes_records_and_deletes_it(s3, tmp_path):
    # GIVEN a cooperative processor of 6 units that checkpoints when told to stop
    put_job(s3, "test-checkpointing-counter")
    item = {"index": 0, "params": {}}

    # WHEN attempt 1 gets SIGTERM during unit 3
    first = runner.main(task_env(tmp_path, attempt=1, item=item))

    # THEN it exits 143 without a result record, leaving a checkpoint of the units it finished
    assert first == 143
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=layout.results_prefix(JOB))
    assert stored_meta(s3)["progress"] == 4

    # WHEN attempt 2 runs
    second = runner.main(task_env(tmp_path, attempt=2, item=item))

    # THEN it did only the units after the checkpoint, the record says what resuming saved, and the
    # checkpoint is gone
    assert second == 0
    body = s3.get_object(Bucket=BUCKET, Key=layout.result_key(JOB, 0))["Body"].read()
    record = ResultRecord.model_validate_json(body)
    done = record.partial["done"]["$list"]
    assert done == [[1, 0], [1, 1], [1, 2], [1, 3], [2, 4], [2, 5]]
    assert record.resumption == Resumption(
        resumed_attempts=1, saved_units=4, saved_seconds=record.resumption.saved_seconds
    )
    assert not has_checkpoint(s3)


def test_a_command_finds_the_directory_it_left_when_it_failed_restored(s3, tmp_path):
    # GIVEN a command that counts its runs in its checkpoint directory and fails on its first run
    script = (
        "import json, os, sys\n"
        "path = os.path.join(os.environ['SPOTMAP_CHECKPOINT_DIR'], 'runs')\n"
        "runs = int(open(path).read()) + 1 if os.path.exists(path) else 1\n"
        "open(path, 'w').write(str(runs))\n"
        "assert sys.argv[1] == os.environ['SPOTMAP_CHECKPOINT_DIR']\n"
        "if runs == 1: sys.exit(3)\n"
        "print(json.dumps({'runs': {'$max': runs}}))\n"
    )
    put_job(s3, "command", params={"command": ["python3", "-c", script, "{checkpoint_dir}"]})
    item = {"index": 0, "params": {}}

    # WHEN attempt 1 runs (and fails), then attempt 2
    assert runner.main(task_env(tmp_path, attempt=1, item=item)) == 1
    saved = stored_meta(s3)
    assert runner.main(task_env(tmp_path, attempt=2, item=item)) == 0

    # THEN attempt 1's directory was saved as it stopped and restored for attempt 2, which saw its count
    assert (saved["kind"], saved["attempt"]) == ("directory", 1)
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=layout.result_key(JOB, 0))["Body"].read())
    assert record["partial"] == {"runs": {"$max": 2}}
    assert record["resumption"]["resumed_attempts"] == 1
    assert not has_checkpoint(s3)


def test_a_first_attempt_that_saves_nothing_makes_no_checkpoint_request(s3, tmp_path, monkeypatch):
    # GIVEN a processor that never checkpoints, and a recorder of the worker's checkpoint requests
    put_job(s3, "noop")
    requests: list[str] = []

    def record(model: Any, params: dict, **_: Any) -> None:
        if "checkpoints/" in str(params.get("Key", "")) + str(params.get("Prefix", "")):
            requests.append(model.name)

    s3.meta.events.register("before-call.s3.*", record)
    monkeypatch.setattr(storage, "make_s3_client", lambda env: s3)

    # WHEN attempt 1 runs
    code = runner.main(task_env(tmp_path, attempt=1, item={"index": 0, "params": {}}))

    # THEN it succeeded without looking up, writing or deleting a checkpoint (10,000 items pay nothing)
    assert code == 0
    assert requests == []


def test_run_processor_keeps_checkpoints_between_attempts_for_local_tests(tmp_path):
    # GIVEN a processor that saves its progress and then fails on its first attempt
    def flaky(ctx: Context) -> dict:
        done = ctx.resume_from() or 0
        if ctx.attempt == 1:
            ctx.checkpoint(5, progress=5)
            raise ProcessingError("the first attempt breaks after unit 5")
        return {"resumed_at": {"$max": done}}

    # WHEN it runs locally as attempt 1, then attempt 2, with a checkpoint directory
    with pytest.raises(ProcessingError):
        run_processor(flaky, checkpoints=tmp_path / "ckpt", attempt=1)
    result = run_processor(flaky, checkpoints=tmp_path / "ckpt", attempt=2)

    # THEN attempt 2 resumed from what attempt 1 saved
    assert result == {"resumed_at": {"$max": 5}}


# ------------------------------------------------------------------------------------------ a batch
@processor("test-checkpointing-batch-member", cooperative=True)
def _checkpointing_member(ctx: Context) -> dict:
    """Counts 4 units per item, checkpointing when told to stop; attempt 1 is reclaimed during item 1."""
    state = ctx.resume_from() or {"next": 0, "done": []}
    for unit in range(state["next"], 4):
        if ctx.cancelled:
            ctx.checkpoint(state, progress=state["next"])  # raises Terminated once saved
        if ctx.attempt == 1 and ctx.item.index == 1 and unit == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # a Spot reclaim, in the middle of the batch
            time.sleep(0.05)
        state = {"next": unit + 1, "done": [*state["done"], [ctx.attempt, unit]]}
    return {"done": {"$list": state["done"]}}


def test_a_batch_item_checkpoints_and_resumes_as_an_item_of_its_own_task(s3, tmp_path):
    # GIVEN a batch task of items 0, 1 and 2 whose processor checkpoints when told to stop
    put_job(s3, "test-checkpointing-batch-member")
    batch = {"index": 0, "batch": [{"index": index, "params": {}} for index in range(3)]}

    # WHEN attempt 1 is reclaimed (SIGTERM) while item 1 runs
    first = runner.main(task_env(tmp_path, attempt=1, item=batch))

    # THEN it exits 143: item 0 is recorded, item 1 left its checkpoint in the job bucket, item 2 did
    # not start
    assert first == 143
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=layout.result_key(JOB, 0))["KeyCount"] == 1
    item_1 = layout.checkpoint_key(JOB, 1)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=item_1)["KeyCount"] == 1

    # WHEN the relaunched task (attempt 2) runs the batch
    second = runner.main(task_env(tmp_path, attempt=2, item=batch))

    # THEN item 1 did only the units after its checkpoint, its record says what resuming saved, and
    # its checkpoint is gone; item 0 was not run again, item 2 ran from the start
    assert second == 0

    def record(index: int) -> ResultRecord:
        body = s3.get_object(Bucket=BUCKET, Key=layout.result_key(JOB, index))["Body"].read()
        return ResultRecord.model_validate_json(body)

    assert record(0).partial["done"]["$list"] == [[1, 0], [1, 1], [1, 2], [1, 3]]
    assert record(1).partial["done"]["$list"] == [[1, 0], [1, 1], [1, 2], [2, 3]]
    assert record(1).resumption is not None and record(1).resumption.saved_units == 3
    assert record(2).partial["done"]["$list"] == [[2, 0], [2, 1], [2, 2], [2, 3]]
    assert record(2).resumption is None
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=layout.checkpoints_prefix(JOB))["KeyCount"] == 0
    # AND the batch's record carries item 1's resumption to its outcome (the summary counts it)
    body = s3.get_object(Bucket=BUCKET, Key=layout.batch_record_key(JOB, 0))["Body"].read()
    items = {entry["index"]: entry for entry in json.loads(body)["items"]}
    assert items[1]["resumption"]["resumed_attempts"] == 1
    assert items[0]["resumption"] is None
