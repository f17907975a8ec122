"""The worker program end to end in-process (`worker.runner.main(env)`) against moto's S3."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from jobcore import layout
from jobcore.merge import finalize
from jobcore.models import ResultRecord
from tests.unit.partial_shapes import INVALID_PARTIALS
from worker import runner, storage
from worker.api import Context, processor

BUCKET = "spotmap-test-jobs"
JOB = "job-1"
DATA = b"city,population\nOslo,709000\nBergen,291000\nTromso,77000\n"
HEADER_END = DATA.index(b"\n") + 1


@processor("test-writes-outputs")
def _writes_outputs(ctx: Context) -> dict:
    (ctx.output_dir / "nested").mkdir()
    (ctx.output_dir / "summary.txt").write_text(f"item {ctx.index} param {ctx.params.get('greeting')}")
    (ctx.output_dir / "nested" / "data.json").write_text("{}")
    return {"files": {"$sum": 2}}


@processor("test-stops-itself")
def _stops_itself(ctx: Context) -> dict:
    (ctx.output_dir / "half-done.txt").write_text("partial output")
    os.kill(os.getpid(), signal.SIGTERM)  # as a Spot interruption would, mid-processing
    time.sleep(5)
    return {"never": {"$sum": 1}}


@processor("test-cooperative", cooperative=True)
def _cooperative(ctx: Context) -> dict:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(100):
        if ctx.should_stop():
            return {"stopped": {"$sum": 1}}  # discarded by the runner
        time.sleep(0.01)
    return {"not_stopped": {"$sum": 1}}


@processor("test-unmergeable")
def _unmergeable(ctx: Context) -> dict:
    return {"mean": {"$mean": 3}}


@processor("test-returns-invalid-shape")
def _returns_invalid_shape(ctx: Context) -> object:
    return INVALID_SHAPES[ctx.params["shape"]]


INVALID_SHAPES = {name: partial for name, partial, _ in INVALID_PARTIALS}


@pytest.fixture
def aws(monkeypatch):
    # the suite's fake credentials and region are set (tests/conftest.py); no endpoint: moto's mock
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def session():
    return boto3.session.Session()  # one session per module: creating clients from it is cheap


@pytest.fixture
def s3(aws, session):
    client = session.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="input/cities.csv", Body=DATA)
    return client


def put_job(s3, processor_name: str, params: dict | None = None, items: list[dict] | None = None) -> None:
    descriptor = {
        "job_id": JOB,
        "input": {"bucket": BUCKET, "key": "input/cities.csv", "size": len(DATA)},
        "processor": processor_name,
        "params": params or {},
        "item_count": len(items or [1]),
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    s3.put_object(Bucket=BUCKET, Key=layout.descriptor_key(JOB), Body=json.dumps(descriptor))
    if items is not None:
        s3.put_object(Bucket=BUCKET, Key=layout.items_key(JOB), Body=json.dumps(items))


def shard_item(index: int = 0, **extra) -> dict:
    return {
        "index": index,
        "bucket": BUCKET,
        "key": "input/cities.csv",
        "start": HEADER_END,
        "end": len(DATA),
        "header_end": HEADER_END,
        **extra,
    }


def task_env(tmp_path: Path, index: int = 0, attempt: int = 1, item: dict | None = None) -> dict[str, str]:
    env = {
        "JOB_BUCKET": BUCKET,
        "JOB_ID": JOB,
        "ITEM_INDEX": str(index),
        "ATTEMPT": str(attempt),
        "SCRATCH_DIR": str(tmp_path / "scratch"),
    }
    if item is not None:
        env["ITEM"] = json.dumps(item)
    return env


def read_record(s3, index: int = 0) -> ResultRecord:
    body = s3.get_object(Bucket=BUCKET, Key=layout.result_key(JOB, index))["Body"].read()
    return ResultRecord.model_validate_json(body)


def keys(s3, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_item_from_env_profiles_the_shard_and_writes_the_result_record(s3, tmp_path, capsys):
    # GIVEN a csv-profile job and its item passed in ITEM
    put_job(s3, "csv-profile")

    # WHEN the worker runs the task
    code = runner.main(task_env(tmp_path, item=shard_item()))

    # THEN it exits 0 and the result record carries the mergeable partial result
    assert code == 0
    record = read_record(s3)
    assert (record.job_id, record.index, record.attempt, record.processor) == (JOB, 0, 1, "csv-profile")
    result = finalize(record.partial)
    assert result["rows"] == 3
    assert result["columns"]["population"] == {
        "type": "number",
        "count": 3,
        "nulls": 0,
        "min": 77000.0,
        "max": 709000.0,
        "sum": 1077000.0,
        "mean": 359000.0,
    }
    assert result["columns"]["city"] == {
        "type": "string",
        "count": 3,
        "nulls": 0,
        "min": "Bergen",
        "max": "Tromso",
    }
    # AND every log line is JSON with the task's context
    lines = log_lines(capsys.readouterr().err)
    assert lines and all(
        {"job_id", "item_index", "attempt", "level", "message"} <= set(line) for line in lines
    )
    assert {(line["job_id"], line["item_index"], line["attempt"]) for line in lines} == {(JOB, 0, 1)}


def test_item_is_read_from_items_json_when_ITEM_is_absent(s3, tmp_path):
    # GIVEN a job whose items live only in items.json (the launcher passed a pointer: ITEM_INDEX)
    put_job(s3, "csv-profile", items=[shard_item(0, end=HEADER_END), shard_item(1)])

    # WHEN the worker runs item 1 without ITEM
    code = runner.main(task_env(tmp_path, index=1, attempt=2))

    # THEN it processed that item of the list
    assert code == 0
    record = read_record(s3, 1)
    assert (record.index, record.attempt) == (1, 2)
    assert finalize(record.partial)["rows"] == 3


def test_outputs_go_under_the_attempt_prefix_and_the_record_is_written_last(s3, tmp_path, monkeypatch):
    # GIVEN a processor that writes files, and a recorder of every PUT the worker makes
    put_job(s3, "test-writes-outputs", params={"greeting": "hei"})
    puts: list[str] = []
    make_client = storage.make_s3_client

    def recording_client(env):
        client = make_client(env)
        client.meta.events.register(
            "provide-client-params.s3.PutObject", lambda params, **_: puts.append(params["Key"])
        )
        return client

    monkeypatch.setattr(storage, "make_s3_client", recording_client)

    # WHEN attempt 3 of item 0 runs
    code = runner.main(task_env(tmp_path, attempt=3, item=shard_item()))

    # THEN its outputs are under output/<job>/<index>/attempt-3/ and listed in the record
    assert code == 0
    prefix = layout.output_prefix(JOB, 0, 3)
    expected = [prefix + "nested/data.json", prefix + "summary.txt"]
    assert sorted(keys(s3, "output/")) == expected
    assert read_record(s3).outputs == expected
    body = s3.get_object(Bucket=BUCKET, Key=prefix + "summary.txt")["Body"].read()
    assert body == b"item 0 param hei"
    # AND the result record was the last object written
    assert puts[-1] == layout.result_key(JOB, 0)
    assert sorted(puts[:-1]) == expected
    # AND the attempt's scratch directory is cleaned up
    assert list((tmp_path / "scratch").iterdir()) == []


def test_noop_counts_items(s3, tmp_path):
    # GIVEN a noop job over a sweep item that names no object
    put_job(s3, "noop")

    # WHEN it runs
    code = runner.main(task_env(tmp_path, item={"index": 0, "params": {"seed": 1}}))

    # THEN the partial result counts one item
    assert code == 0
    assert read_record(s3).partial == {"items": {"$sum": 1}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda env: env.pop("JOB_BUCKET"), "JOB_BUCKET is not set"),
        (lambda env: env.update(ITEM_INDEX="one"), "ITEM_INDEX must be a non-negative integer"),
        (lambda env: env.update(ATTEMPT="-1"), "ATTEMPT must be a non-negative integer"),
        (lambda env: env.update(JOB_ID="no-such-job"), "does not exist"),
        (lambda env: env.update(ITEM=json.dumps({"index": 5})), "ITEM has index 5 but ITEM_INDEX is 0"),
        (lambda env: env.update(ITEM="{not json"), "item 0 is invalid"),
        (lambda env: env.update(ITEM_INDEX="9"), "item 9 is not in"),
        (lambda env: env.update(SPOTMAP_PROCESSOR_MODULES="no_such_module_xyz"), "no_such_module_xyz"),
    ],
)
def test_bad_configuration_exits_2_without_a_result_record(s3, tmp_path, capsys, change, message):
    # GIVEN a valid job, and an environment with one thing wrong
    put_job(s3, "csv-profile", items=[shard_item()])
    env = task_env(tmp_path)
    change(env)

    # WHEN the worker runs
    code = runner.main(env)

    # THEN it exits 2, says what is wrong, and writes nothing
    assert code == 2
    assert message in capsys.readouterr().err
    assert keys(s3, "jobs/job-1/results/") == []


def test_unknown_processor_exits_2_naming_the_available_ones(s3, tmp_path, capsys):
    # GIVEN a job that names a processor this image does not have
    put_job(s3, "no-such-processor")

    # WHEN the worker runs
    code = runner.main(task_env(tmp_path, item=shard_item()))

    # THEN it exits 2 and lists what the image has
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown processor 'no-such-processor'" in err
    assert "csv-profile" in err and "command" in err and "noop" in err


def test_unmergeable_partial_result_exits_1(s3, tmp_path, capsys):
    # GIVEN a processor that returns a value the merge algebra cannot combine
    put_job(s3, "test-unmergeable")

    # WHEN the worker runs
    code = runner.main(task_env(tmp_path, item=shard_item()))

    # THEN the item fails instead of poisoning the summary
    assert code == 1
    assert "invalid partial result: key `mean`: $mean takes [sum, count]" in capsys.readouterr().err
    assert keys(s3, "jobs/job-1/results/") == []


@pytest.mark.parametrize(
    ("shape", "says"), [(c[0], c[2]) for c in INVALID_PARTIALS], ids=[c[0] for c in INVALID_PARTIALS]
)
def test_every_invalid_partial_fails_its_item_naming_the_key_before_any_result_record(
    s3, tmp_path, shape, says
):
    # GIVEN a processor whose partial result breaks the merge algebra in one of the known ways
    put_job(s3, "test-returns-invalid-shape", params={"shape": shape})

    # WHEN the worker runs the item
    code = runner.main(task_env(tmp_path, item=shard_item()))

    # THEN the item fails (exit 1), no result record exists, and the failure PollTask reads names the
    # key and the problem
    assert code == 1
    assert keys(s3, "jobs/job-1/results/") == []
    error = json.loads(s3.get_object(Bucket=BUCKET, Key=layout.error_key(JOB, 0, 1))["Body"].read())
    assert "invalid partial result" in error["message"] and says in error["message"]


def test_missing_input_object_exits_1(s3, tmp_path, capsys):
    # GIVEN an item naming an object that does not exist
    put_job(s3, "csv-profile")

    # WHEN the worker runs
    code = runner.main(task_env(tmp_path, item=shard_item(key="input/gone.csv")))

    # THEN it fails the item naming the object
    assert code == 1
    assert "s3://spotmap-test-jobs/input/gone.csv does not exist" in capsys.readouterr().err


def test_sigterm_while_processing_exits_143_without_result_or_outputs(s3, tmp_path, capsys):
    # GIVEN a processor that is interrupted (SIGTERM) after writing part of its output
    put_job(s3, "test-stops-itself")
    previous = signal.getsignal(signal.SIGTERM)

    # WHEN the worker runs
    started = time.monotonic()
    code = runner.main(task_env(tmp_path, item=shard_item()))

    # THEN it stops at once with 143, writes no result record and uploads nothing
    assert code == 143
    assert time.monotonic() - started < 3
    assert keys(s3, "jobs/job-1/results/") == []
    assert keys(s3, "output/") == []
    assert "no result record written" in capsys.readouterr().err
    # AND the process's own SIGTERM handler is restored
    assert signal.getsignal(signal.SIGTERM) is previous


def test_cooperative_processor_is_told_to_stop_and_its_result_is_discarded(s3, tmp_path):
    # GIVEN a cooperative processor that polls should_stop() and is sent SIGTERM
    put_job(s3, "test-cooperative")

    # WHEN the worker runs
    code = runner.main(task_env(tmp_path, item=shard_item()))

    # THEN the processor returned, but the attempt counts as stopped
    assert code == 143
    assert keys(s3, "jobs/job-1/results/") == []


def test_sigterm_during_the_result_put_lets_it_finish_and_exits_0(s3, tmp_path, monkeypatch):
    # GIVEN SIGTERM arrives while the result record is being written
    put_job(s3, "noop")
    write = runner.write_result

    def interrupted_write(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        write(*args)

    monkeypatch.setattr(runner, "write_result", interrupted_write)

    # WHEN the worker runs
    code = runner.main(task_env(tmp_path, item=shard_item()))

    # THEN the record is complete and the attempt counts as a success
    assert code == 0
    assert read_record(s3).partial == {"items": {"$sum": 1}}


def test_job_descriptor_from_env_saves_reading_job_json(s3, tmp_path):
    # GIVEN a job whose descriptor LaunchTask passed in JOB, and no job.json in the bucket
    put_job(s3, "noop")
    descriptor = s3.get_object(Bucket=BUCKET, Key=layout.descriptor_key(JOB))["Body"].read().decode()
    s3.delete_object(Bucket=BUCKET, Key=layout.descriptor_key(JOB))
    env = task_env(tmp_path, item={"index": 0, "params": {"seed": 1}})
    env["JOB"] = descriptor

    # WHEN the worker runs
    code = runner.main(env)

    # THEN it ran the job's processor from the descriptor it was given
    assert code == 0
    assert read_record(s3).processor == "noop"


def test_job_descriptor_of_another_job_exits_2(s3, tmp_path, capsys):
    # GIVEN a JOB that describes a different job than JOB_ID
    put_job(s3, "noop")
    descriptor = json.loads(s3.get_object(Bucket=BUCKET, Key=layout.descriptor_key(JOB))["Body"].read())
    env = task_env(tmp_path, item={"index": 0, "params": {"seed": 1}})
    env["JOB"] = json.dumps({**descriptor, "job_id": "another-job"})

    # WHEN the worker runs
    code = runner.main(env)

    # THEN it refuses with a configuration error naming both, and writes no result
    assert code == 2
    assert "JOB describes job 'another-job'" in capsys.readouterr().err
    assert keys(s3, layout.results_prefix(JOB)) == []


def test_an_input_the_task_role_may_not_see_fails_the_item_saying_so(s3):
    # GIVEN an object S3 answers 403 for (a missing key, to a role that may not list it: the task role)
    from botocore.exceptions import ClientError

    from worker.errors import ProcessingError
    from worker.storage import S3Source, Segment

    def forbidden(params, **_):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    s3.meta.events.register("provide-client-params.s3.GetObject", forbidden)
    source = S3Source(s3, "spotmap-test-jobs", "input/hidden.csv")

    # WHEN the worker opens it / THEN the item fails naming the object and both possible reasons
    expected = "input/hidden.csv does not exist or the task role may not read it"
    with pytest.raises(ProcessingError, match=expected):
        source.open_segment(Segment(0, 10))
