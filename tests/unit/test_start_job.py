"""StartJob: uploads become jobs (items.json, job.json, a started execution), exactly once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobcore import layout
from jobcore.errors import JobStartFailed
from jobcore.ids import job_id_for
from start_job import app
from tests.conftest import load_event
from tests.unit.conftest import BUCKET, STATE_MACHINE_ARN

KEY = "input/sales 2024 Q1.csv"
CSV = b'region,amount,note\nnorth,10,"multi\nline"\nsouth,20,plain\r\neast,,"a ""quote"""\n'


def put(s3: Any, key: str, body: bytes) -> dict[str, Any]:
    return s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def read_json(s3: Any, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def s3_event_for(version_id: str) -> dict[str, Any]:
    event = load_event("start_job_s3_put.json")
    event["Records"][0]["s3"]["object"]["versionId"] = version_id
    return event


def bridge_event(name: str, version_id: str, key: str | None = None) -> dict[str, Any]:
    event = load_event(name)
    event["detail"]["object"]["version-id"] = version_id
    if key is not None:
        event["detail"]["object"]["key"] = key
    return event


def executions(sfn: Any) -> list[dict[str, Any]]:
    return sfn.list_executions(stateMachineArn=STATE_MACHINE_ARN)["executions"]


def test_s3_notification_with_an_encoded_key_starts_one_job(s3: Any, sfn: Any, lambda_context: Any) -> None:
    # GIVEN "sales 2024 Q1.csv" uploaded, and its S3 notification (key "sales%202024+Q1.csv")
    version = put(s3, KEY, CSV)["VersionId"]

    # WHEN StartJob handles the notification
    response = app.lambda_handler(s3_event_for(version), lambda_context)

    # THEN the job id comes from the decoded key and version, and its files exist
    job_id = job_id_for(BUCKET, KEY, version)
    assert response["jobs"][0]["job_id"] == job_id
    descriptor = read_json(s3, layout.descriptor_key(job_id))
    assert descriptor["input"] == {
        "bucket": BUCKET,
        "key": KEY,
        "size": len(CSV),
        "version_id": version,
        "etag": s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"].strip('"'),
    }
    assert descriptor["processor"] == "csv-profile"
    assert descriptor["empty_result"] == {"rows": 0, "columns": {}}
    items = read_json(s3, layout.items_key(job_id))
    assert descriptor["item_count"] == len(items) == 1
    assert items[0] == {
        "index": 0,
        "bucket": BUCKET,
        "key": KEY,
        "version_id": version,
        "start": CSV.index(b"north"),
        "end": len(CSV),
        "header_end": CSV.index(b"north"),
        "params": {},
    }

    # AND its execution was started with the documented input
    [execution] = executions(sfn)
    assert execution["name"] == job_id
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started == {
        "job_id": job_id,
        "bucket": BUCKET,
        "items_key": f"jobs/{job_id}/items.json",
        "max_concurrency": 100,
        "rejected": False,
    }


def test_shards_follow_shard_size(
    s3: Any, sfn: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a 3,000-row CSV and 8 KiB shards
    monkeypatch.setenv("SHARD_SIZE_MB", str(8 / 1024))
    app.settings.cache_clear()
    body = b"id,text\n" + b"".join(b'%d,"row\n%d"\n' % (i, i) for i in range(3000))
    version = put(s3, KEY, body)["VersionId"]

    # WHEN StartJob handles its EventBridge event
    app.lambda_handler(bridge_event("start_job_eventbridge_object_created.json", version), lambda_context)

    # THEN the items cover the body exactly, in order
    items = read_json(s3, layout.items_key(job_id_for(BUCKET, KEY, version)))
    assert len(items) == 6
    assert [item["index"] for item in items] == list(range(len(items)))
    assert b"".join(body[item["start"] : item["end"]] for item in items) == body[len(b"id,text\n") :]


def test_eventbridge_key_verbatim_or_encoded_finds_the_object(s3: Any, sfn: Any, lambda_context: Any) -> None:
    # GIVEN the upload, and EventBridge events showing its key verbatim and URL-encoded
    version = put(s3, KEY, CSV)["VersionId"]
    verbatim = bridge_event("start_job_eventbridge_object_created.json", version)
    encoded = bridge_event("start_job_eventbridge_encoded_key.json", version)

    # WHEN StartJob handles both
    first = app.lambda_handler(verbatim, lambda_context)["jobs"][0]
    second = app.lambda_handler(encoded, lambda_context)["jobs"][0]

    # THEN both resolve to the same object and job, and only one execution exists
    assert first["key"] == second["key"] == KEY
    assert first["job_id"] == second["job_id"]
    assert second["duplicate"] is True
    assert [e["name"] for e in executions(sfn)] == [first["job_id"]]


def test_a_key_that_really_contains_percent_signs_is_used_verbatim(
    s3: Any, sfn: Any, lambda_context: Any
) -> None:
    # GIVEN an object whose name literally is "sales%202024+Q1.csv"
    literal = "input/sales%202024+Q1.csv"
    version = put(s3, literal, CSV)["VersionId"]

    # WHEN EventBridge reports it verbatim
    job = app.lambda_handler(bridge_event("start_job_eventbridge_encoded_key.json", version), lambda_context)

    # THEN that object is the job's input
    assert job["jobs"][0]["key"] == literal


def test_duplicate_events_start_one_execution(s3: Any, sfn: Any, lambda_context: Any) -> None:
    # GIVEN an upload already turned into a job by its S3 notification
    version = put(s3, KEY, CSV)["VersionId"]
    first = app.lambda_handler(s3_event_for(version), lambda_context)["jobs"][0]
    descriptor_before = s3.get_object(Bucket=BUCKET, Key=layout.descriptor_key(first["job_id"]))[
        "Body"
    ].read()

    # WHEN the same notification and the EventBridge event arrive again
    again = app.lambda_handler(s3_event_for(version), lambda_context)["jobs"][0]
    bridge = app.lambda_handler(
        bridge_event("start_job_eventbridge_object_created.json", version), lambda_context
    )["jobs"][0]

    # THEN nothing new was started or rewritten
    assert again["job_id"] == bridge["job_id"] == first["job_id"]
    assert again["duplicate"] and bridge["duplicate"]
    assert len(executions(sfn)) == 1
    after = s3.get_object(Bucket=BUCKET, Key=layout.descriptor_key(first["job_id"]))["Body"].read()
    assert after == descriptor_before


def test_execution_already_exists_is_success(s3: Any, sfn: Any, lambda_context: Any) -> None:
    # GIVEN a job whose execution has already closed, and whose job.json is gone (e.g. a crash in between)
    version = put(s3, KEY, CSV)["VersionId"]
    job_id = app.lambda_handler(s3_event_for(version), lambda_context)["jobs"][0]["job_id"]
    sfn.stop_execution(executionArn=executions(sfn)[0]["executionArn"])
    s3.delete_object(Bucket=BUCKET, Key=layout.descriptor_key(job_id))

    # WHEN the event is delivered again
    response = app.lambda_handler(s3_event_for(version), lambda_context)

    # THEN job.json is rebuilt, and StartExecution's ExecutionAlreadyExists counts as started
    assert response["jobs"][0]["duplicate"] is True
    assert read_json(s3, layout.descriptor_key(job_id))["job_id"] == job_id
    assert [e["status"] for e in executions(sfn)] == ["ABORTED"]


def test_a_new_version_of_the_same_key_is_a_new_job(s3: Any, sfn: Any, lambda_context: Any) -> None:
    first = put(s3, KEY, CSV)["VersionId"]
    second = put(s3, KEY, CSV + b"west,5,x\n")["VersionId"]
    ids = {
        app.lambda_handler(s3_event_for(version), lambda_context)["jobs"][0]["job_id"]
        for version in (first, second)
    }
    assert len(ids) == 2
    assert len(executions(sfn)) == 2


@pytest.mark.parametrize("event_name", ["start_job_folder_marker.json", "start_job_outside_input.json"])
def test_folder_markers_and_keys_outside_input_start_nothing(
    s3: Any, sfn: Any, lambda_context: Any, event_name: str
) -> None:
    # GIVEN an object that is no job trigger
    event = load_event(event_name)
    put(s3, event["detail"]["object"]["key"], b"")

    # WHEN its event is handled
    response = app.lambda_handler(event, lambda_context)

    # THEN no job and no execution
    assert response == {"jobs": []}
    assert executions(sfn) == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/")["KeyCount"] == 0


@pytest.mark.parametrize(
    "body", [b"", b"region,amount\n", b"region,amount"], ids=["zero", "header", "no-eol"]
)
def test_empty_and_header_only_csv_make_a_job_of_zero_items(
    s3: Any, sfn: Any, lambda_context: Any, body: bytes
) -> None:
    version = put(s3, KEY, body)["VersionId"]
    job_id = app.lambda_handler(s3_event_for(version), lambda_context)["jobs"][0]["job_id"]
    assert read_json(s3, layout.items_key(job_id)) == []
    descriptor = read_json(s3, layout.descriptor_key(job_id))
    assert descriptor["item_count"] == 0
    assert descriptor["empty_result"] == {"rows": 0, "columns": {}}
    assert len(executions(sfn)) == 1


def test_an_object_deleted_before_the_event_is_skipped(s3: Any, sfn: Any, lambda_context: Any) -> None:
    response = app.lambda_handler(
        bridge_event("start_job_eventbridge_object_created.json", "gone"), lambda_context
    )
    assert response == {"jobs": []}
    assert executions(sfn) == []


def test_a_failure_is_raised_so_the_event_is_retried(s3: Any, lambda_context: Any) -> None:
    # GIVEN no state machine (StartExecution fails)
    version = put(s3, KEY, CSV)["VersionId"]
    # WHEN / THEN the handler fails the invocation, naming the key
    with pytest.raises(JobStartFailed, match="sales 2024 Q1.csv"):
        app.lambda_handler(s3_event_for(version), lambda_context)


# ---------------------------------------------------------------- manifests


def run_manifest(s3: Any, manifest: Any, lambda_context: Any) -> tuple[str, dict[str, Any], list[Any]]:
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    version = put(s3, "input/sweep.job.json", body)["VersionId"]
    job = app.lambda_handler(bridge_event("start_job_manifest.json", version), lambda_context)["jobs"][0]
    job_id = job["job_id"]
    return job_id, read_json(s3, layout.descriptor_key(job_id)), read_json(s3, layout.items_key(job_id))


def test_manifest_count_source(s3: Any, sfn: Any, lambda_context: Any) -> None:
    manifest = {
        "processor": "command",
        "params": {"command": ["true"]},
        "source": {"count": 3, "seed_start": 7},
    }
    job_id, descriptor, items = run_manifest(s3, manifest, lambda_context)
    assert descriptor["processor"] == "command" and descriptor["params"] == {"command": ["true"]}
    assert [item["params"] for item in items] == [{"seed": 7}, {"seed": 8}, {"seed": 9}]
    assert descriptor["item_count"] == 3 and descriptor["empty_result"] is None
    assert executions(sfn)[0]["name"] == job_id


def test_manifest_items_keys_and_prefix_sources(s3: Any, sfn: Any, lambda_context: Any) -> None:
    for name in ("a.txt", "b.txt", "sub/c.txt", "sub/"):
        put(s3, f"data/{name}", b"x")
    _, _, by_items = run_manifest(s3, {"processor": "noop", "items": [{"x": 1}, {"x": 2}]}, lambda_context)
    assert [item["params"] for item in by_items] == [{"x": 1}, {"x": 2}]
    _, _, by_keys = run_manifest(
        s3, {"processor": "noop", "source": {"keys": ["data/b.txt", "data/a.txt"]}}, lambda_context
    )
    assert [item["key"] for item in by_keys] == ["data/b.txt", "data/a.txt"]
    _, _, by_prefix = run_manifest(s3, {"processor": "noop", "source": {"prefix": "data/"}}, lambda_context)
    assert [item["key"] for item in by_prefix] == ["data/a.txt", "data/b.txt", "data/sub/c.txt"]


def test_manifest_shard_source(s3: Any, sfn: Any, lambda_context: Any) -> None:
    body = b"n\n" + b"".join(b"%d\n" % i for i in range(2000))
    version = put(s3, "data/big.csv", body)["VersionId"]
    manifest = {
        "processor": "csv-profile",
        "source": {"shard": {"key": "data/big.csv", "shard_size_mb": 0.001}},
    }
    _, descriptor, items = run_manifest(s3, manifest, lambda_context)
    assert len(items) == 9 and all(item["version_id"] == version for item in items)
    assert b"".join(body[item["start"] : item["end"]] for item in items) == body[2:]
    assert descriptor["empty_result"] == {"rows": 0, "columns": {}}


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        (b"{not json", "not valid JSON"),
        ({"processor": "noop"}, "source"),
        ({"processor": "noop", "source": {"count": -1}}, "source.count"),
        ({"processor": "noop", "source": {"count": 1, "keys": ["data/a"]}}, "exactly one of"),
        ({"processor": "noop", "source": {"keys": ["secret/a.csv"]}}, "source.keys"),
        ({"processor": "Bad Name!", "source": {"count": 1}}, "processor"),
        ({"processor": "not-in-image", "source": {"count": 1}}, "not provided by the worker image"),
        ({"processor": "noop", "source": {"shard": {"key": "data/missing.csv"}}}, "does not exist"),
        (
            {"processor": "command", "params": {"command": "echo hi"}, "source": {"count": 2}},
            "params.command: must be a non-empty list of strings (an argv, never run through a shell), e.g. "
            '["my-tool", "{input}"]; got "echo hi"',
        ),
        ({"processor": "command", "params": {}, "source": {"count": 1}}, "params.command: required"),
        (
            {"processor": "command", "params": {"command": ["true"]}, "items": [{}, {"command": ["a", 1]}]},
            "source.items.1.command: must be a non-empty list of strings",
        ),
        (
            {"processor": "command", "params": {"command": ["true"], "env": ["A=1"]}, "count": 1},
            "params.env: must be an object",
        ),
        (
            {"processor": "command", "params": {"command": ["cat", "{input}"], "input": "file"}, "count": 1},
            'params.input: "file" needs items that name an object',
        ),
        (
            {
                "processor": "command",
                "params": {"command": ["true"], "stop_grace_seconds": "soon"},
                "count": 1,
            },
            "params.stop_grace_seconds: must be a number of seconds",
        ),
    ],
)
def test_invalid_manifest_is_a_rejected_job(
    s3: Any, sfn: Any, lambda_context: Any, manifest: Any, problem: str
) -> None:
    # GIVEN a manifest that cannot become a job
    # WHEN StartJob handles it
    job_id, descriptor, items = run_manifest(s3, manifest, lambda_context)

    # THEN job.json names the problem, there are no items, and the execution starts rejected
    assert problem in descriptor["error"]
    assert items == [] and descriptor["item_count"] == 0
    execution = sfn.describe_execution(executionArn=executions(sfn)[0]["executionArn"])
    assert json.loads(execution["input"])["rejected"] is True
    assert execution["name"] == job_id


def test_a_large_item_list_is_streamed_as_valid_json(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a threshold small enough that 2,000 items take the multipart path
    from jobcore import starting
    from jobcore.models import SweepItem

    monkeypatch.setattr(starting, "SINGLE_PUT_BYTES", 10_000)
    items = (SweepItem(index=i, params={"seed": i}) for i in range(2000))

    # WHEN they are written
    count = starting.write_items(s3, BUCKET, "job-big", items)

    # THEN items.json is one JSON array of all of them, in order
    written = read_json(s3, layout.items_key("job-big"))
    assert count == len(written) == 2000
    assert [item["params"]["seed"] for item in written] == list(range(2000))


def test_uploads_to_another_bucket_start_nothing(s3: Any, sfn: Any, lambda_context: Any) -> None:
    event = load_event("start_job_eventbridge_object_created.json")
    event["detail"]["bucket"]["name"] = "someone-elses-bucket"
    assert app.lambda_handler(event, lambda_context) == {"jobs": []}
    assert executions(sfn) == []


# ---------------------------------------------------------------- Step Functions' 256 KiB payload limit
def child_input_bytes(job_id: str, item: dict[str, Any]) -> int:
    """What the Map's ItemSelector makes of an item of items.json: its child execution's input, counted
    as Step Functions counts it (UTF-8 JSON)."""
    selected = {"job_id": job_id, "bucket": BUCKET, "item": item}
    return len(json.dumps(selected, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def test_an_item_too_large_for_a_state_is_refused_before_anything_starts(
    s3: Any, sfn: Any, lambda_context: Any
) -> None:
    # GIVEN a sweep whose second item carries 300,000 bytes of UTF-8 (150,000 characters)
    manifest = {"processor": "noop", "source": {"items": [{"x": 1}, {"text": "é" * 150_000}, {"x": 3}]}}

    # WHEN StartJob handles it
    job_id, descriptor, items = run_manifest(s3, manifest, lambda_context)

    # THEN the job is refused: job.json names the item and its size, there are no items, and the
    # execution starts rejected (it fails at once and launches nothing: a FAILED summary)
    size = child_input_bytes(job_id, {"index": 1, "header_end": 0, "params": {"text": "é" * 150_000}})
    assert size > 300_000
    assert f"item 1 is too large for the state machine: it is {size:,} bytes" in descriptor["error"]
    assert "256 KiB" in descriptor["error"]
    assert items == [] and descriptor["item_count"] == 0
    execution = sfn.describe_execution(executionArn=executions(sfn)[0]["executionArn"])
    assert json.loads(execution["input"])["rejected"] is True and execution["name"] == job_id


def test_an_item_at_the_limit_is_accepted_and_one_byte_more_is_refused(
    s3: Any, sfn: Any, lambda_context: Any
) -> None:
    from jobcore.models import SweepItem
    from jobcore.payload import MAX_ITEM_STATE_BYTES

    # GIVEN the job id the manifest will get, and items filled to exactly the limit, and one byte over
    job_id = run_manifest(s3, {"processor": "noop", "items": [{}]}, lambda_context)[0]
    empty = json.loads(SweepItem(index=0, params={"fill": ""}).model_dump_json(exclude_none=True))
    fill = MAX_ITEM_STATE_BYTES - child_input_bytes(job_id, empty)

    for extra, accepted in ((0, True), (1, False)):
        manifest = {"processor": "noop", "items": [{"fill": "f" * (fill + extra)}]}
        # WHEN StartJob handles it
        new_job, descriptor, items = run_manifest(s3, manifest, lambda_context)
        assert len(new_job) == len(job_id)  # same key: an id of the same length, the same envelope
        # THEN the item that fits exactly is accepted, as measured independently here
        if accepted:
            assert descriptor.get("error") is None and len(items) == 1
            assert child_input_bytes(new_job, items[0]) == MAX_ITEM_STATE_BYTES
        else:
            assert "item 0 is too large" in descriptor["error"] and items == []


def test_an_oversized_item_after_the_multipart_threshold_leaves_no_upload_behind(
    s3: Any, sfn: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a threshold small enough that items.json is being streamed by multipart upload when the
    # oversized item comes
    from jobcore import starting

    monkeypatch.setattr(starting, "SINGLE_PUT_BYTES", 10_000)
    entries: list[dict[str, Any]] = [{"seed": i} for i in range(2000)] + [{"blob": "b" * 300_000}]

    # WHEN StartJob handles the manifest
    _, descriptor, items = run_manifest(s3, {"processor": "noop", "items": entries}, lambda_context)

    # THEN the job is refused, items.json is empty, and no multipart upload is left open
    assert "item 2000 is too large" in descriptor["error"]
    assert items == []
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
