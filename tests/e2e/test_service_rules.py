"""The local cloud refuses what AWS refuses, for every call the product makes: each rule once, through
boto3 against one local cloud, asserting the error code and message AWS answers with.

Sources are cited next to each rule in spotmap/ecs_rules.py and spotmap/service_rules.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from jobcore import aws
from spotmap import service_rules
from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.lambdas import Invocation
from spotmap.principals import ADMIN_ACCESS_KEY_ID, SECRET_ACCESS_KEY

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    options = CloudOptions(run_schedules=False, state_dir=tmp_path_factory.mktemp("state"))
    with LocalCloud(options=options) as running:
        yield running


def client(cloud: LocalCloud, service: str) -> Any:
    """A client that does not retry: the first answer is the one under test."""
    return boto3.client(
        service,
        endpoint_url=cloud.endpoint,
        region_name=cloud.stack.region,
        aws_access_key_id=ADMIN_ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=NO_RETRIES,
    )


def refused(call: Callable[[], Any]) -> tuple[str, str, int]:
    """(code, message, HTTP status) of the ClientError the call raises."""
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]


# ---------------------------------------------------------------- ECS RunTask


def run_task(cloud: LocalCloud, **changes: Any) -> Any:
    """RunTask as LaunchTask issues it (FARGATE_SPOT, awsvpc), with `changes` applied (None removes)."""
    request: dict[str, Any] = {
        "cluster": cloud.stack.cluster_arn,
        "taskDefinition": cloud.stack.task_definition.arn,
        "count": 1,
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        "startedBy": "rules-job",
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-a"],
                "securityGroups": ["sg-a"],
                "assignPublicIp": "ENABLED",
            }
        },
    }
    request.update(changes)
    return client(cloud, "ecs").run_task(
        **{key: value for key, value in request.items() if value is not None}
    )


def env_overrides(size: int) -> dict[str, Any]:
    value = "x" * size
    return {"containerOverrides": [{"name": "worker", "environment": [{"name": "PAD", "value": value}]}]}


def awsvpc(**vpc: Any) -> dict[str, Any]:
    return {"awsvpcConfiguration": {"subnets": ["subnet-a"], **vpc}}


INVALID = "InvalidParameterException"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"count": 11}, "count must be between 1 and 10"),
        ({"clientToken": "t" * 65}, "clientToken must be 1 to 64 characters in the range 33-126 (got 65)"),
        ({"startedBy": "j" * 129}, "startedBy must be up to 128 letters"),
        ({"startedBy": "job with spaces"}, "startedBy must be up to 128 letters"),
        ({"overrides": env_overrides(8192)}, "Container Overrides length must be at most 8192"),
        (
            {"tags": [{"key": f"k{i}", "value": "v"} for i in range(51)]},
            "Tags cannot have more than 50 elements",
        ),
        (
            {"tags": [{"key": "aws:job", "value": "v"}]},
            "Tag keys and values beginning with 'aws:' are reserved",
        ),
        ({"tags": [{"key": "k", "value": "v" * 257}]}, "Tag values must be at most 256 characters"),
        ({"tags": [{"key": "k" * 129, "value": "v"}]}, "Tag keys must be 1 to 128 characters"),
        ({"networkConfiguration": None}, "Network Configuration must be provided when networkMode 'awsvpc'"),
        (
            {"networkConfiguration": awsvpc(subnets=[f"s{i}" for i in range(17)])},
            "subnets can have at most 16",
        ),
        (
            {"networkConfiguration": awsvpc(securityGroups=[f"g{i}" for i in range(6)])},
            "securityGroups can have",
        ),
        (
            {"networkConfiguration": awsvpc(assignPublicIp="YES")},
            "assignPublicIp must be ENABLED or DISABLED",
        ),
        (
            {"launchType": "FARGATE"},
            "Specifying both a launchType and capacityProviderStrategy is not supported.",
        ),
        ({"launchType": "EC2", "capacityProviderStrategy": None}, "No Container Instances were found"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_run_task_refuses_what_ecs_refuses(cloud: LocalCloud, changes: dict[str, Any], message: str) -> None:
    # GIVEN LaunchTask's RunTask request with one parameter ECS does not accept
    # WHEN it is sent
    code, text, status = refused(lambda: run_task(cloud, **changes))

    # THEN ECS's client error comes back, and no task was started
    assert (code, status) == (INVALID, 400)
    assert text.startswith(message), text
    assert (
        client(cloud, "ecs").list_tasks(cluster=cloud.stack.cluster_arn, startedBy="rules-job")["taskArns"]
        == []
    )


# ---------------------------------------------------------------- ECS ListTasks, DescribeTasks, StopTask


@pytest.mark.parametrize(
    "other", [{"desiredStatus": "RUNNING"}, {"family": "spotmap-worker"}, {"launchType": "FARGATE"}]
)
def test_list_tasks_takes_started_by_only_as_the_sole_filter(
    cloud: LocalCloud, other: dict[str, str]
) -> None:
    # GIVEN / WHEN ListTasks filters by startedBy and another filter
    ecs = client(cloud, "ecs")
    code, text, _ = refused(
        lambda: ecs.list_tasks(cluster=cloud.stack.cluster_arn, startedBy="job-1", **other)
    )

    # THEN InvalidParameterException: "When you specify startedBy as the filter, it must be the only filter"
    assert code == INVALID
    assert text == f"startedBy must be the only filter when it is specified (also given: {next(iter(other))})"


def test_describe_tasks_takes_at_most_100_tasks(cloud: LocalCloud) -> None:
    ecs = client(cloud, "ecs")
    arns = [f"{cloud.stack.cluster_arn.replace(':cluster/', ':task/')}/{index:032x}" for index in range(101)]
    code, text, _ = refused(lambda: ecs.describe_tasks(cluster=cloud.stack.cluster_arn, tasks=arns))
    assert (code, text) == (INVALID, "Tasks cannot have more than 100 elements")


def test_stop_task_refuses_a_long_reason_and_an_unknown_task(cloud: LocalCloud) -> None:
    ecs = client(cloud, "ecs")
    task = f"{cloud.stack.cluster_arn.replace(':cluster/', ':task/')}/{0:032x}"
    code, text, _ = refused(
        lambda: ecs.stop_task(cluster=cloud.stack.cluster_arn, task=task, reason="r" * 256)
    )
    assert (code, text) == (INVALID, "reason must be at most 255 characters (got 256)")
    code, text, _ = refused(lambda: ecs.stop_task(cluster=cloud.stack.cluster_arn, task=task, reason="stop"))
    assert (code, text) == (INVALID, "The referenced task was not found.")


# ---------------------------------------------------------------- Step Functions


def test_start_execution_refuses_names_aws_refuses(cloud: LocalCloud) -> None:
    sfn = client(cloud, "stepfunctions")
    arn = cloud.stack.state_machine_arn
    for name in ("job one", "job/one", "job:one", "job{1}", "job\u0007"):
        assert refused(lambda name=name: sfn.start_execution(stateMachineArn=arn, name=name, input="{}"))[
            :2
        ] == (
            "InvalidName",
            f"Invalid Name: '{name}'",
        )
    long_name = "j" * 81
    code, text, _ = refused(lambda: sfn.start_execution(stateMachineArn=arn, name=long_name, input="{}"))
    assert code == "ValidationException"
    assert text == (
        f"1 validation error detected: Value '{long_name}' at 'name' failed to satisfy constraint: "
        "Member must have length less than or equal to 80"
    )


def test_start_execution_refuses_an_input_over_256_kib(cloud: LocalCloud) -> None:
    sfn = client(cloud, "stepfunctions")
    too_large = json.dumps({"pad": "é" * (128 * 1024)})  # 128 Ki characters, 256 KiB + 11 bytes of UTF-8
    code, text, _ = refused(
        lambda: sfn.start_execution(
            stateMachineArn=cloud.stack.state_machine_arn, name="big", input=too_large
        )
    )
    assert code == "ValidationException"
    assert text.endswith(
        "at 'input' failed to satisfy constraint: Member must have length less than or equal to 262144"
    )


def test_a_state_output_over_256_kib_fails_the_execution_with_data_limit_exceeded(cloud: LocalCloud) -> None:
    # GIVEN a state machine whose Pass state doubles a 200 KiB input (moto's interpreter enforces this
    # quota itself: moto.stepfunctions.parser.quotas; this test keeps it so in the local cloud)
    sfn = client(cloud, "stepfunctions")
    definition = {
        "StartAt": "Double",
        "States": {"Double": {"Type": "Pass", "Parameters": {"a.$": "$.pad", "b.$": "$.pad"}, "End": True}},
    }
    machine = sfn.create_state_machine(
        name="rules-data-limit",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{cloud.stack.account_id}:role/rules",
    )["stateMachineArn"]

    # WHEN it runs
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"pad": "x" * 200 * 1024}))

    # THEN the execution fails with States.DataLimitExceeded
    deadline = time.monotonic() + WAIT_SECONDS
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    while described["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
        described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert (described["status"], described.get("error")) == ("FAILED", "States.DataLimitExceeded"), described


# ---------------------------------------------------------------- Lambda


def test_invoke_refuses_a_request_over_6_mb(cloud: LocalCloud) -> None:
    function = cloud.stack.functions["EvaluateJobFunction"].name
    payload = json.dumps({"pad": "x" * (6 * 1024 * 1024)}).encode()
    code, text, status = refused(
        lambda: client(cloud, "lambda").invoke(FunctionName=function, Payload=payload)
    )
    assert (code, status) == ("RequestEntityTooLargeException", 413)
    assert text == "Request must be smaller than 6291456 bytes for the InvokeFunction operation"


def test_invoke_refuses_an_event_over_1_mb(cloud: LocalCloud) -> None:
    function = cloud.stack.functions["EvaluateJobFunction"].name
    payload = json.dumps({"pad": "x" * (1024 * 1024)}).encode()
    code, text, status = refused(
        lambda: client(cloud, "lambda").invoke(FunctionName=function, Payload=payload, InvocationType="Event")
    )
    assert (code, status) == ("RequestEntityTooLargeException", 413)
    assert (
        text
        == f"{len(payload)} byte payload is too large for the Event invocation type (limit 1048576 bytes)"
    )


def test_a_response_over_6_mb_is_the_functions_error(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a function whose answer is 6 MB + 101 bytes (no handler of the product answers that much:
    # the local Lambda's answer is replaced, the local cloud's Invoke path is the one under test)
    answer = b'"' + b"x" * (6 * 1024 * 1024 + 99) + b'"'
    monkeypatch.setattr(cloud.lambdas, "invoke", lambda name, payload: Invocation(answer))
    function = cloud.stack.functions["EvaluateJobFunction"].name

    # WHEN it is invoked synchronously
    response = client(cloud, "lambda").invoke(FunctionName=function, Payload=b"{}")

    # THEN Lambda answers with the function error Function.ResponseSizeTooLarge
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read()) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size (6291557 bytes) exceeded maximum allowed payload size "
        "(6291556 bytes).",
    }


# ---------------------------------------------------------------- EventBridge and S3


def test_put_events_refuses_entries_totalling_1_mb(cloud: LocalCloud) -> None:
    events = client(cloud, "events")

    def entry(detail_bytes: int) -> dict[str, Any]:
        return {
            "Source": "rules.test",
            "DetailType": "Sized",
            "Detail": json.dumps({"pad": "x" * detail_bytes}),
        }

    # 300 KB is within the limit (256 KB before EventBridge raised it to 1 MB). (Not sent: moto's
    # PutEvents answers 500 in the local cloud, whose scheduled rule moto cannot match; the product
    # never calls PutEvents.)
    service_rules.check_put_events({"Entries": [entry(300 * 1024)]})
    # two entries of 512 KiB together are not
    code, text, _ = refused(lambda: events.put_events(Entries=[entry(512 * 1024), entry(512 * 1024)]))
    assert (code, text) == (
        "ValidationException",
        "Total size of the entries in the request is over the limit.",
    )


def test_put_object_refuses_a_key_over_1024_bytes(cloud: LocalCloud) -> None:
    s3 = client(cloud, "s3")
    s3.put_object(Bucket=cloud.stack.bucket, Key="data/" + "k" * 1019, Body=b"1")  # 1,024 bytes: accepted
    for key in ("data/" + "k" * 1020, "data/" + "é" * 510):  # 1,025 bytes of ASCII; 1,025 bytes of UTF-8
        code, text, status = refused(
            lambda key=key: s3.put_object(Bucket=cloud.stack.bucket, Key=key, Body=b"1")
        )
        assert (code, text, status) == ("KeyTooLongError", "Your key is too long", 400)


# ---------------------------------------------------------------- ECS throttling (last: it drains a bucket)


def test_describe_tasks_beyond_the_read_bucket_is_throttled_and_the_sdk_retries(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the "Cluster resource read actions" bucket (100 tokens, refilled 20 per second), and the
    # product's own ECS client (jobcore.aws.ecs(): standard retry mode, 5 attempts) on the local cloud
    ecs = client(cloud, "ecs")
    task = f"{cloud.stack.cluster_arn.replace(':cluster/', ':task/')}/{0:032x}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", cloud.endpoint)
    aws.reset()
    products_ecs = aws.ecs()

    # WHEN DescribeTasks is called faster than that, without retries
    throttled = None
    for _ in range(400):
        try:
            ecs.describe_tasks(cluster=cloud.stack.cluster_arn, tasks=[task])
        except ClientError as error:
            throttled = error.response
            break

    # THEN ECS answers ThrottlingException "Rate exceeded" ...
    assert throttled is not None, "400 DescribeTasks calls in a row were never throttled"
    assert (throttled["Error"]["Code"], throttled["Error"]["Message"]) == (
        "ThrottlingException",
        "Rate exceeded",
    )
    # ... and the product's client, calling at once, still gets its answer (the SDK retries throttling)
    try:
        answer = products_ecs.describe_tasks(cluster=cloud.stack.cluster_arn, tasks=[task])
    finally:
        aws.reset()
    assert answer["failures"] == [{"arn": task, "reason": "MISSING"}]
