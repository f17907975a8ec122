"""Every file in events/ invoked through the local cloud, as `spotmap invoke <LogicalId> -e <file>` does.

One local cloud; the world the events refer to is seeded first (the job, items, results and outcomes
that the launch/poll/evaluate/summarize events name, and the uploads the StartJob events name), so each
invocation does its real work: it starts a job, launches or polls or stops a real worker task, writes
an outcome or a summary. Only what the local cloud cannot reproduce is put into an event before it is
delivered: the version id S3 gave the upload, and the ARN of a task that really runs.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import pytest

from jobcore import layout
from jobcore.ids import job_id_for
from jobcore.models import (
    InputObject,
    ItemOutcome,
    JobDescriptor,
    ResultRecord,
    ShardItem,
    TaskStatus,
    Usage,
    parse_item,
)
from spotmap.cli import main as spotmap_main
from spotmap.cloud import CloudOptions, LocalCloud, local_client
from tests.conftest import EVENTS, ROOT, load_event
from tests.e2e.conftest import wait_for

EVENT_FILES = sorted(path.name for path in EVENTS.glob("*.json") if path.name != "env.json")
# file-name prefix → the function the event is for
PREFIXES = (
    ("start_job_", "StartJobFunction"),
    ("launch_task", "LaunchTaskFunction"),
    ("poll_task", "PollTaskFunction"),
    ("record_failure", "RecordFailureFunction"),
    ("evaluate_job", "EvaluateJobFunction"),
    ("summarize_", "SummarizeFunction"),
    ("stop_job_tasks_", "StopJobTasksFunction"),
    ("reconcile_", "ReconcileFunction"),
    ("task_stopped", "TaskStoppedFunction"),
)
CLOSED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")

# The seeded job: four items; 0-2 succeeded (noop results), 3 failed. Its tasks sleep until stopped.
ITEM_COUNT = 4
SUCCEEDED = (0, 1, 2)
SHARD_BYTES = 64 * 1024 * 1024
HEADER_END = 42
CSV_UPLOAD = b"region,amount\nnorth,10\nsouth,20\neast,30\n"
MANIFEST_UPLOAD = json.dumps({"processor": "noop", "source": {"count": 3}}).encode()
MANIFEST_ITEMS = 3


def function_for(name: str) -> str | None:
    return next((logical_id for prefix, logical_id in PREFIXES if name.startswith(prefix)), None)


@dataclass(frozen=True)
class World:
    bucket: str
    job_id: str  # the job the launch/poll/record/evaluate/summarize/stop events name
    item: dict[str, Any]  # its item, as the events carry it


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    options = CloudOptions(run_schedules=False, state_dir=tmp_path_factory.mktemp("state"))
    with LocalCloud(options=options) as running:
        yield running


@functools.cache
def _client(endpoint: str, region: str, service: str) -> Any:
    return local_client(service, endpoint, region)


def client(cloud: LocalCloud, service: str) -> Any:
    return _client(cloud.endpoint, cloud.stack.region, service)


def upload_without_event(cloud: LocalCloud, key: str, body: bytes) -> tuple[str, int, str]:
    """Put an object straight into the local cloud's S3 store, so no "Object Created" event is raised
    for it: the event file under test is then the one delivery of the upload's event. Returns the
    object's (version id, size, ETag)."""
    from moto.s3.models import s3_backends

    stored = s3_backends[cloud.stack.account_id]["aws"].put_object(cloud.stack.bucket, key, body)
    return stored.version_id, stored.size, stored.etag.strip('"')


def put_json(cloud: LocalCloud, key: str, document: Any) -> None:
    body = document if isinstance(document, str) else json.dumps(document)
    client(cloud, "s3").put_object(
        Bucket=cloud.stack.bucket, Key=key, Body=body.encode(), ContentType="application/json"
    )


def get_json(cloud: LocalCloud, key: str) -> Any:
    """The object's JSON, or None when it does not exist."""
    s3 = client(cloud, "s3")
    try:
        return json.loads(s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def invoke(cloud: LocalCloud, logical_id: str, event: dict[str, Any]) -> Any:
    """Invoke the function through the local cloud's Lambda API; fail on a function error."""
    response = client(cloud, "lambda").invoke(
        FunctionName=cloud.stack.functions[logical_id].name, Payload=json.dumps(event).encode()
    )
    payload = response["Payload"].read()
    assert "FunctionError" not in response, f"{logical_id} failed: {payload[:3000]!r}"
    return json.loads(payload)


def describe_task(cloud: LocalCloud, arn: str) -> dict[str, Any]:
    (task,) = client(cloud, "ecs").describe_tasks(cluster=cloud.stack.cluster_arn, tasks=[arn])["tasks"]
    return task


def executions(cloud: LocalCloud) -> list[dict[str, Any]]:
    sfn = client(cloud, "stepfunctions")
    return sfn.list_executions(stateMachineArn=cloud.stack.state_machine_arn)["executions"]


def running_task(cloud: LocalCloud, world: World, attempt: int) -> str:
    """A fresh worker task of the world's item, RUNNING (RunTask as LaunchTask issues it, without a
    client token, so every call is a new task)."""
    container = cloud.stack.task_definition.containers[0].name
    environment = {
        "JOB_ID": world.job_id,
        "ITEM_INDEX": str(world.item["index"]),
        "ATTEMPT": str(attempt),
        "ITEM": json.dumps(world.item),
    }
    response = client(cloud, "ecs").run_task(
        cluster=cloud.stack.cluster_arn,
        taskDefinition=cloud.stack.task_definition.arn,
        count=1,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        startedBy=world.job_id,
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": ["subnet-local-a"], "assignPublicIp": "ENABLED"}
        },
        overrides={
            "containerOverrides": [
                {"name": container, "environment": [{"name": k, "value": v} for k, v in environment.items()]}
            ]
        },
    )
    arn = response["tasks"][0]["taskArn"]
    wait_for(lambda: describe_task(cloud, arn)["lastStatus"] == "RUNNING", f"task {arn} to run")
    return arn


@pytest.fixture(scope="module")
def world(cloud: LocalCloud) -> World:
    """The job the item-level and status-change events name: job.json, items.json, three succeeded
    items (result records and outcomes) and one failed item, as a run of it would have left them."""
    state = load_event("launch_task.json")["state"]
    job_id, bucket, event_item = state["job_id"], state["bucket"], state["item"]
    assert bucket == cloud.stack.bucket
    items = [
        ShardItem(
            index=index,
            bucket=bucket,
            key=event_item["key"],
            version_id=event_item["version_id"],
            start=HEADER_END + index * SHARD_BYTES,
            end=HEADER_END + (index + 1) * SHARD_BYTES,
            header_end=HEADER_END,
        )
        for index in range(ITEM_COUNT - 1)
    ] + [parse_item(event_item)]
    assert [item.index for item in items] == list(range(ITEM_COUNT))
    descriptor = JobDescriptor(
        job_id=job_id,
        input=InputObject(
            bucket=bucket, key=event_item["key"], size=event_item["end"], version_id=event_item["version_id"]
        ),
        processor="noop",
        params={"sleep_seconds": 600},  # a task of this job runs until it is stopped
        item_count=ITEM_COUNT,
        created_at="2026-11-23T10:00:00.000Z",
    )
    put_json(
        cloud, layout.items_key(job_id), [item.model_dump(mode="json", exclude_none=True) for item in items]
    )
    put_json(cloud, layout.descriptor_key(job_id), descriptor.model_dump_json())
    usage = Usage(
        spot_vcpu_seconds=0.25 * 600,
        spot_gb_seconds=0.5 * 600,
        lambda_invocations=12,
        lambda_gb_seconds=0.6,
        state_transitions=31,
    )
    for index in SUCCEEDED:
        record = ResultRecord(
            job_id=job_id,
            index=index,
            attempt=1,
            processor="noop",
            partial={"items": {"$sum": 1}},
            started_at="2026-11-23T10:00:05.000Z",
            finished_at="2026-11-23T10:10:05.000Z",
        )
        put_json(cloud, layout.result_key(job_id, index), record.model_dump_json())
        outcome = ItemOutcome(
            index=index, status=TaskStatus.SUCCEEDED, attempts=1, usage=usage, task_seconds=600.0
        )
        put_json(cloud, layout.outcome_key(job_id, index, "SUCCEEDED"), outcome.model_dump_json())
    failed = ItemOutcome(
        index=event_item["index"],
        status=TaskStatus.FAILED,
        reason="exited with code 1: error",
        attempts=1,
        usage=usage,
        task_seconds=10.0,
    )
    put_json(cloud, layout.outcome_key(job_id, event_item["index"], "FAILED"), failed.model_dump_json())
    return World(bucket=bucket, job_id=job_id, item=event_item)


# ---------------------------------------------------------------- the event files


def test_every_event_file_is_for_a_function_of_the_template(cloud: LocalCloud) -> None:
    # GIVEN every event file and the template's functions
    assert EVENT_FILES
    # THEN each file's name says which function it is for, and that function exists
    unmapped = [name for name in EVENT_FILES if function_for(name) not in cloud.stack.functions]
    assert not unmapped, f"event files for no function of the template: {unmapped}"
    # AND every function has at least one event file
    assert {function_for(name) for name in EVENT_FILES} == set(cloud.stack.functions)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _buckets(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "bucket" and isinstance(item, str):
                yield item
            elif key == "bucket" and isinstance(item, dict) and isinstance(item.get("name"), str):
                yield item["name"]
            yield from _buckets(item)
    elif isinstance(value, list):
        for item in value:
            yield from _buckets(item)


@pytest.mark.parametrize("name", EVENT_FILES)
def test_event_file_names_the_local_clouds_resources(cloud: LocalCloud, name: str) -> None:
    # GIVEN an event file and the local cloud's bucket, state machine, cluster, account and region
    event = load_event(name)
    stack = cloud.stack
    machine = stack.state_machine_arn.split(":stateMachine:", 1)[1]
    # THEN every bucket it names is the job bucket
    for bucket in _buckets(event):
        assert bucket == stack.bucket, f"{name}: bucket {bucket!r}"
    for text in _strings(event):
        if text.startswith("arn:aws:s3:::"):
            assert text == f"arn:aws:s3:::{stack.bucket}", f"{name}: {text}"
        elif text.startswith("arn:aws:"):
            # AND every other ARN is in the stack's account and region, of its state machine or cluster
            parts = text.split(":", 5)
            assert (parts[3], parts[4]) == (stack.region, stack.account_id), f"{name}: {text}"
            resource = parts[5]
            if resource.startswith(("stateMachine:", "execution:")):
                assert resource.split(":", 2)[1].split("/", 1)[0] == machine, f"{name}: {text}"
            if resource.startswith("task/"):
                assert resource.split("/")[1] == stack.cluster_name, f"{name}: {text}"
    if isinstance(event.get("account"), str):
        assert (event["account"], event["region"]) == (stack.account_id, stack.region), name


@pytest.mark.parametrize("name", EVENT_FILES)
def test_event_file_invokes_its_function_and_does_its_work(
    cloud: LocalCloud, world: World, name: str
) -> None:
    logical_id = function_for(name)
    if logical_id is None:
        pytest.fail(f"{name} maps to no function: name it after one of {[p for p, _ in PREFIXES]}")
    CHECKS[logical_id](cloud, world, load_event(name))


# ---------------------------------------------------------------- per function


def uploaded_key(event: dict[str, Any]) -> str:
    """The object key an upload event is about, decoded as StartJob decodes it: S3 notifications
    always URL-encode (space as '+'); an EventBridge key may be encoded or verbatim."""
    if "Records" in event:
        return unquote_plus(event["Records"][0]["s3"]["object"]["key"])
    return unquote_plus(event["detail"]["object"]["key"])


def with_upload(event: dict[str, Any], version_id: str, size: int, etag: str) -> dict[str, Any]:
    """The event as S3 would send it for this very upload (version id, size and ETag)."""
    event = copy.deepcopy(event)
    if "Records" in event:
        event["Records"][0]["s3"]["object"].update({"versionId": version_id, "size": size, "eTag": etag})
    else:
        event["detail"]["object"].update({"version-id": version_id, "size": size, "etag": etag})
    return event


def check_start_job(cloud: LocalCloud, world: World, event: dict[str, Any]) -> None:
    key = uploaded_key(event)
    bucket = cloud.stack.bucket
    if not layout.is_job_trigger(key):
        # GIVEN the object the event names exists (a folder marker, or an object outside input/)
        version, _, _ = upload_without_event(cloud, key, b"" if key.endswith("/") else b"x\n")
        before = len(executions(cloud))
        # WHEN the event file is delivered to StartJob
        result = invoke(cloud, "StartJobFunction", event)
        # THEN no job starts: nothing is written for the upload, no execution is started
        assert result == {"jobs": []}
        assert len(executions(cloud)) == before
        job_id = job_id_for(bucket, key, version)
        assert get_json(cloud, layout.descriptor_key(job_id)) is None
        return

    # GIVEN the object the event names, just uploaded (a new version) and its event not yet delivered
    manifest = key.endswith(layout.MANIFEST_SUFFIX)
    body = MANIFEST_UPLOAD if manifest else CSV_UPLOAD
    version, size, etag = upload_without_event(cloud, key, body)
    delivered = with_upload(event, version, size, etag)

    # WHEN the event file (with that upload's version id) is delivered to StartJob
    result = invoke(cloud, "StartJobFunction", delivered)

    # THEN it started that upload's job: job.json and items written, the execution named by the job id
    job_id = job_id_for(bucket, key, version)
    (job,) = result["jobs"]
    assert (job["job_id"], job["key"], job["duplicate"], job["rejected"]) == (job_id, key, False, False)
    assert job["items"] == (MANIFEST_ITEMS if manifest else 1)
    descriptor = get_json(cloud, layout.descriptor_key(job_id))
    assert descriptor["input"]["key"] == key and descriptor["input"]["version_id"] == version
    assert len(get_json(cloud, layout.items_key(job_id))) == job["items"]
    execution = client(cloud, "stepfunctions").describe_execution(executionArn=job["execution_arn"])
    assert execution["name"] == job_id
    # AND delivering it again starts nothing new
    (again,) = invoke(cloud, "StartJobFunction", delivered)["jobs"]
    assert again["duplicate"] is True and again["execution_arn"] == job["execution_arn"]
    assert [e["name"] for e in executions(cloud)].count(job_id) == 1


def check_launch_task(cloud: LocalCloud, world: World, event: dict[str, Any]) -> None:
    # GIVEN the job and item the event names (job.json, items.json seeded)
    before = event["state"]
    spot_attempts = int(
        cloud.stack.functions["LaunchTaskFunction"].environment["SPOT_ATTEMPTS_BEFORE_ON_DEMAND"]
    )
    on_demand = before["spot_interruptions"] >= spot_attempts

    # WHEN LaunchTask runs the event
    state = invoke(cloud, "LaunchTaskFunction", event)

    # THEN the item's next attempt is a new task of the job, on the capacity the rules choose
    assert state["task_arn"] and state["task_arn"] != before["task_arn"]
    assert (state["status"], state["attempt"]) == ("RUNNING", before["attempt"] + 1)
    assert state["capacity"] == ("FARGATE" if on_demand else "FARGATE_SPOT")
    assert state["wait_seconds"] >= 1
    task = describe_task(cloud, state["task_arn"])
    assert task["startedBy"] == world.job_id
    assert task["capacityProviderName"] == state["capacity"]
    # AND the task was handed the job descriptor in JOB: LaunchTask read jobs/<id>/job.json with its
    # own role's credentials, which the local cloud authorizes as AWS would
    (container,) = task["overrides"]["containerOverrides"]
    environment = {variable["name"]: variable["value"] for variable in container["environment"]}
    assert "JOB" in environment, f"no JOB in the task's overrides: {sorted(environment)}"
    assert json.loads(environment["JOB"]) == get_json(cloud, layout.descriptor_key(world.job_id))


def check_poll_task(cloud: LocalCloud, world: World, event: dict[str, Any]) -> None:
    # GIVEN the item's task really running (its ARN in place of the file's example ARN)
    arn = running_task(cloud, world, attempt=event["attempt"])
    polled = {**event, "task_arn": arn}

    # WHEN PollTask runs the event
    state = invoke(cloud, "PollTaskFunction", polled)

    # THEN the task is RUNNING and PollTask says when to look again; the poll is counted
    poll_max = int(cloud.stack.functions["PollTaskFunction"].environment["POLL_MAX_SECONDS"])
    assert state["status"] == "RUNNING"
    assert 1 <= state["wait_seconds"] <= poll_max
    assert state["polls"] == event["polls"] + 1
    assert state["usage"]["lambda_invocations"] == event["usage"]["lambda_invocations"] + 1

    # AND once the task has stopped (SIGTERM, exit 143), the next poll fails the item and records it
    client(cloud, "ecs").stop_task(cluster=cloud.stack.cluster_arn, task=arn, reason="test: stop")
    wait_for(lambda: describe_task(cloud, arn)["lastStatus"] == "STOPPED", f"task {arn} to stop")
    final = invoke(cloud, "PollTaskFunction", state)
    assert final["status"] == "FAILED"
    assert "exited with code 143" in final["reason"], final["reason"]
    outcome = get_json(cloud, layout.outcome_key(world.job_id, world.item["index"], "FAILED"))
    assert outcome["reason"] == final["reason"]


def check_record_failure(cloud: LocalCloud, world: World, event: dict[str, Any]) -> None:
    # GIVEN the item's task still running (its ARN in place of the file's example ARN)
    arn = running_task(cloud, world, attempt=event["attempt"])

    # WHEN RecordFailure runs the event (the error the state machine caught)
    state = invoke(cloud, "RecordFailureFunction", {**event, "task_arn": arn})

    # THEN the item failed with a readable reason naming the error, recorded as its outcome
    assert state["status"] == "FAILED"
    assert state["reason"].startswith(f"{event['error']['Error']}: "), state["reason"]
    outcome = get_json(cloud, layout.outcome_key(world.job_id, world.item["index"], "FAILED"))
    assert outcome["reason"] == state["reason"]
    # AND the task that was still running is being stopped
    task = describe_task(cloud, arn)
    assert (task["desiredStatus"], task["stoppedReason"]) == ("STOPPED", "spotmap: item failed")


def check_task_stopped(cloud: LocalCloud, world: World, event: dict[str, Any]) -> None:
    # GIVEN the item's task really stopped, its launch persisted as LaunchTask leaves it, and the event
    # carrying that task's description (the file's example ARN replaced) with a token no step waits for
    arn = running_task(cloud, world, attempt=int(_env_of(event)["ATTEMPT"]))
    client(cloud, "ecs").stop_task(cluster=cloud.stack.cluster_arn, task=arn, reason="test: stop")
    wait_for(lambda: describe_task(cloud, arn)["lastStatus"] == "STOPPED", f"task {arn} to stop")
    launched = {**load_event("poll_task.json"), "task_arn": arn}
    put_json(cloud, layout.launched_key(world.job_id, world.item["index"], launched["attempt"]), launched)
    outcome_key = layout.outcome_key(world.job_id, world.item["index"], "FAILED")
    before = get_json(cloud, outcome_key)
    detail = {
        **event["detail"],
        "taskArn": arn,
        "containers": [{**event["detail"]["containers"][0], "taskArn": arn}],
    }
    stopped = {**event, "resources": [arn], "detail": detail}

    # WHEN TaskStopped runs it
    answer = invoke(cloud, "TaskStoppedFunction", stopped)

    # THEN the closed token changes nothing (Step Functions answers it, under the function's own role):
    # the item is not resumed and its outcome is not written again
    assert answer["resumed"] is False
    assert answer["ignored"].startswith(("InvalidToken", "TaskTimedOut")), answer
    assert get_json(cloud, outcome_key) == before

    # AND an event of a task launched for polling (no token in its overrides) is ignored
    environment = [e for e in _overrides(event) if e["name"] != "TASK_TOKEN"]
    polling = copy.deepcopy(stopped)
    polling["detail"]["overrides"]["containerOverrides"][0]["environment"] = environment
    assert invoke(cloud, "TaskStoppedFunction", polling)["resumed"] is False


def _overrides(event: dict[str, Any]) -> list[dict[str, str]]:
    return list(event["detail"]["overrides"]["containerOverrides"][0]["environment"])


def _env_of(event: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _overrides(event)}


def expected_verdict(cloud: LocalCloud, world: World) -> dict[str, Any]:
    tolerated = float(
        cloud.stack.functions["EvaluateJobFunction"].environment["TOLERATED_FAILURE_PERCENTAGE"]
    )
    failed = ITEM_COUNT - len(SUCCEEDED)
    return {
        "job_id": world.job_id,
        "total": ITEM_COUNT,
        "succeeded": len(SUCCEEDED),
        "failed": failed,
        "within_tolerance": failed * 100 <= tolerated * ITEM_COUNT,
    }


def check_evaluate_job(cloud: LocalCloud, world: World, event: dict[str, Any]) -> None:
    # GIVEN the job the event names: four items, three succeeded, one failed
    assert event["job_id"] == world.job_id
    # WHEN EvaluateJob runs the event
    verdict = invoke(cloud, "EvaluateJobFunction", event)
    # THEN it counts the outcomes and applies ToleratedFailurePercentage
    assert verdict == expected_verdict(cloud, world)


def check_summarize(cloud: LocalCloud, world: World, event: dict[str, Any]) -> None:
    detail = event["detail"]
    s3 = client(cloud, "s3")
    # GIVEN no summary yet for the job, nor for the execution the event is about
    for job_id in {world.job_id, detail["name"]}:
        s3.delete_object(Bucket=cloud.stack.bucket, Key=layout.summary_key(job_id))
    child = "/" in detail["executionArn"].split(":execution:", 1)[1]

    # WHEN Summarize runs the status-change event
    response = invoke(cloud, "SummarizeFunction", event)

    if detail["status"] not in CLOSED or child:
        # THEN a running or Map Run child execution is ignored: no summary is written
        assert response["summary_key"] is None and response["ignored"]
        for job_id in {world.job_id, detail["name"]}:
            assert get_json(cloud, layout.summary_key(job_id)) is None
        return
    # THEN the job's summary is written from S3 and the event: status, items, merged result, cost
    assert response["summary_key"] == layout.summary_key(world.job_id)
    summary = get_json(cloud, layout.summary_key(world.job_id))
    assert (summary["job_id"], summary["status"]) == (world.job_id, detail["status"])
    assert summary["execution_arn"] == detail["executionArn"]
    assert summary["items"] == {"total": ITEM_COUNT, "succeeded": len(SUCCEEDED), "failed": 1}
    assert [failure["index"] for failure in summary["failures"]] == [world.item["index"]]
    assert summary["result"] == {"items": len(SUCCEEDED)}
    assert summary["timing"]["seconds"] == (detail["stopDate"] - detail["startDate"]) / 1000
    assert summary["cost"]["total_usd"] > 0
    assert (summary["error"] is None) == (detail["status"] == "SUCCEEDED"), summary["error"]


def check_stop_job_tasks(cloud: LocalCloud, world: World, event: dict[str, Any]) -> None:
    # GIVEN a running task of the job the event names
    assert event["detail"]["name"] == world.job_id
    arn = running_task(cloud, world, attempt=1)

    # WHEN StopJobTasks runs the status-change event
    result = invoke(cloud, "StopJobTasksFunction", event)

    # THEN every running task of the job is being stopped, with the job's status as the reason
    assert result["job_id"] == world.job_id and result["stopped"] >= 1
    task = describe_task(cloud, arn)
    assert task["desiredStatus"] == "STOPPED"
    assert event["detail"]["status"] in task["stoppedReason"]
    ecs = client(cloud, "ecs")
    listed = ecs.list_tasks(cluster=cloud.stack.cluster_arn, startedBy=world.job_id)  # RUNNING by default
    assert listed["taskArns"] == []


def check_reconcile(cloud: LocalCloud, world: World, event: dict[str, Any]) -> None:
    # GIVEN a job whose execution closed (a malformed manifest: FAILED at once) and whose summary is
    # missing, as if its status event had been lost
    s3 = client(cloud, "s3")
    key = f"input/lost-status-event-{time.time_ns()}.job.json"
    put = s3.put_object(Bucket=cloud.stack.bucket, Key=key, Body=b"{not json")  # signed: StartJob runs
    job_id = job_id_for(cloud.stack.bucket, key, put["VersionId"])
    summary_key = layout.summary_key(job_id)
    wait_for(lambda: get_json(cloud, summary_key), f"the summary of {job_id}")
    s3.delete_object(Bucket=cloud.stack.bucket, Key=summary_key)

    # WHEN the scheduled Reconcile runs the event
    report = invoke(cloud, "ReconcileFunction", event)

    # THEN it found the closed execution without a summary and wrote it
    assert report["checked"] >= 1 and report["written"] >= 1, report
    summary = get_json(cloud, summary_key)
    assert summary is not None and summary["status"] == "FAILED"
    assert summary["error"], summary


CHECKS: dict[str, Callable[[LocalCloud, World, dict[str, Any]], None]] = {
    "StartJobFunction": check_start_job,
    "LaunchTaskFunction": check_launch_task,
    "PollTaskFunction": check_poll_task,
    "RecordFailureFunction": check_record_failure,
    "EvaluateJobFunction": check_evaluate_job,
    "SummarizeFunction": check_summarize,
    "StopJobTasksFunction": check_stop_job_tasks,
    "ReconcileFunction": check_reconcile,
    "TaskStoppedFunction": check_task_stopped,
}


# ---------------------------------------------------------------- `spotmap invoke`


def test_spotmap_invoke_runs_an_event_file_against_the_running_cloud(
    cloud: LocalCloud, world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the project directory and the running local cloud with the seeded job
    monkeypatch.chdir(ROOT)
    capsys.readouterr()

    # WHEN `spotmap invoke EvaluateJobFunction -e events/evaluate_job.json --endpoint-url ...` runs
    code = spotmap_main(
        ["invoke", "EvaluateJobFunction", "-e", "events/evaluate_job.json", "--endpoint-url", cloud.endpoint]
    )

    # THEN it exits 0 and prints the function's answer
    out = capsys.readouterr().out
    assert code == 0, out
    assert json.loads(out) == expected_verdict(cloud, world)


def test_spotmap_invoke_names_the_template_functions_for_an_unknown_one(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a logical id the template does not have
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    # WHEN it is invoked
    code = spotmap_main(
        ["invoke", "EvaluateJob", "-e", "events/evaluate_job.json", "--endpoint-url", cloud.endpoint]
    )
    # THEN the command fails with the list of the template's functions
    assert code == 2
    assert "EvaluateJobFunction" in capsys.readouterr().err
