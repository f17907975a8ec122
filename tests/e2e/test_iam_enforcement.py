"""The local cloud refuses what the template's roles are not granted, as AWS does: each principal calls
with its own role's credentials (spotmap/principals.py), the endpoint evaluates that role's policies
from the expanded template and the bucket policy (spotmap/access.py), and a denial reaches boto3 in
the service's own error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from spotmap.cloud import _IN_PROCESS_LAMBDA, CloudOptions, LocalCloud
from spotmap.principals import credentials_for
from tests.conftest import load_event


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    options = CloudOptions(run_schedules=False, state_dir=tmp_path_factory.mktemp("state"))
    with LocalCloud(options=options) as running:
        yield running


def as_role(cloud: LocalCloud, service: str, role: str) -> Any:
    """A boto3 client calling the local cloud with a role's credentials (as that principal does)."""
    credentials = credentials_for(role)
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=cloud.endpoint,
        region_name=cloud.stack.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        config=Config(retries={"max_attempts": 1}),
    )


def refusal(call: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response
    return (
        error["Error"]["Code"],
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["Error"].get("Message", ""),
    )


def test_summarize_writes_summaries_but_nothing_else(cloud: LocalCloud) -> None:
    # GIVEN Summarize's role (s3:PutObject on summaries/* only)
    s3 = as_role(cloud, "s3", "SummarizeFunctionRole")
    # WHEN it writes a summary / THEN S3 accepts it
    s3.put_object(Bucket=cloud.stack.bucket, Key="summaries/a-job.json", Body=b"{}")
    # WHEN it writes outside summaries/ / THEN S3 answers 403 AccessDenied, naming the action and key
    code, status, message = refusal(
        s3.put_object, Bucket=cloud.stack.bucket, Key="jobs/a-job/job.json", Body=b"{}"
    )
    assert (code, status) == ("AccessDenied", 403)
    assert (
        "SummarizeFunctionRole" in message and "s3:PutObject" in message and "jobs/a-job/job.json" in message
    )


def test_the_worker_cannot_write_inputs_and_the_admin_can(cloud: LocalCloud) -> None:
    # GIVEN the worker task's role (writes output/ and its results only)
    worker = as_role(cloud, "s3", "WorkerTaskRole")
    # WHEN it writes under input/ (which would start a job) / THEN it is refused
    assert refusal(worker.put_object, Bucket=cloud.stack.bucket, Key="input/x.csv", Body=b"a\n")[:2] == (
        "AccessDenied",
        403,
    )
    worker.put_object(Bucket=cloud.stack.bucket, Key="output/x.txt", Body=b"ok")
    # AND the admin (the CLI's and tests' "testing" key) may do anything
    admin = cloud.client("s3")
    admin.put_object(Bucket=cloud.stack.bucket, Key="data/admin.txt", Body=b"ok")
    assert admin.list_objects_v2(Bucket=cloud.stack.bucket)["KeyCount"] >= 2
    assert admin.get_object(Bucket=cloud.stack.bucket, Key="output/x.txt")["Body"].read() == b"ok"


def test_a_missing_key_is_404_only_to_a_role_that_may_list_it(cloud: LocalCloud) -> None:
    bucket = cloud.stack.bucket
    # GIVEN PollTask (GetObject and ListBucket on jobs/) and the worker (GetObject on jobs/, no ListBucket)
    poll = as_role(cloud, "s3", "PollTaskFunctionRole")
    worker = as_role(cloud, "s3", "WorkerTaskRole")
    # WHEN each reads a key that does not exist
    # THEN PollTask learns it is missing (404 NoSuchKey); the worker only that it may not know (403)
    assert refusal(poll.get_object, Bucket=bucket, Key="jobs/none/job.json")[:2] == ("NoSuchKey", 404)
    assert refusal(poll.head_object, Bucket=bucket, Key="jobs/none/job.json")[:2] == ("404", 404)
    assert refusal(worker.get_object, Bucket=bucket, Key="jobs/none/job.json")[:2] == ("AccessDenied", 403)
    assert refusal(worker.head_object, Bucket=bucket, Key="jobs/none/job.json")[:2] == ("403", 403)


def test_denials_of_ecs_step_functions_and_lambda_in_their_own_shapes(cloud: LocalCloud) -> None:
    # GIVEN the worker task's role, which may call none of these services
    role = "WorkerTaskRole"
    stack = cloud.stack
    # WHEN it calls RunTask, StartExecution and Invoke
    ecs = refusal(
        as_role(cloud, "ecs", role).run_task,
        cluster=stack.cluster_arn,
        taskDefinition=stack.task_definition.arn,
        launchType="FARGATE",
    )
    sfn = refusal(
        as_role(cloud, "stepfunctions", role).start_execution,
        stateMachineArn=stack.state_machine_arn,
        input="{}",
    )
    invoke = refusal(
        as_role(cloud, "lambda", role).invoke,
        FunctionName=stack.functions["EvaluateJobFunction"].name,
        Payload=b"{}",
    )
    # THEN each answers AccessDeniedException as that service does (awsJson: 400; Lambda: 403)
    assert ecs[:2] == ("AccessDeniedException", 400) and "ecs:RunTask" in ecs[2]
    assert sfn[:2] == ("AccessDeniedException", 400) and "states:StartExecution" in sfn[2]
    assert invoke[:2] == ("AccessDeniedException", 403) and "lambda:InvokeFunction" in invoke[2]


def test_launch_task_may_run_the_worker_only_on_the_stack_cluster(cloud: LocalCloud) -> None:
    # GIVEN LaunchTask's role (ecs:RunTask with ecs:cluster = the stack's cluster, and PassRole)
    ecs = as_role(cloud, "ecs", "LaunchTaskFunctionRole")
    # WHEN it runs the worker on another cluster / THEN the condition on ecs:cluster refuses it
    code, _, message = refusal(
        ecs.run_task,
        cluster=cloud.stack.cluster_arn.replace(cloud.stack.cluster_name, "other"),
        taskDefinition=cloud.stack.task_definition.arn,
        launchType="FARGATE",
    )
    assert code == "AccessDeniedException" and "ecs:RunTask" in message


def test_the_state_machine_role_invokes_only_its_functions(cloud: LocalCloud) -> None:
    # GIVEN the interpreter's in-process Lambda client (it calls as the state machine's role)
    interpreter = _IN_PROCESS_LAMBDA[str(cloud.endpoint.rsplit(":", 1)[1])]
    # WHEN a Task state would invoke a function the role is not granted (Summarize)
    with pytest.raises(ClientError) as caught:
        interpreter.invoke(FunctionName=cloud.stack.functions["SummarizeFunction"].arn, Payload=b"{}")
    # THEN Lambda refuses it; a granted function (EvaluateJob) is invoked
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    event = load_event("evaluate_job.json")
    answer = interpreter.invoke(
        FunctionName=cloud.stack.functions["EvaluateJobFunction"].arn, Payload=json.dumps(event)
    )
    assert answer["StatusCode"] == 200


def test_an_unknown_key_and_an_unmapped_request_are_errors_not_allows(cloud: LocalCloud) -> None:
    # GIVEN a key that belongs to no role
    stranger = boto3.client(  # type: ignore[call-overload]
        "s3",
        endpoint_url=cloud.endpoint,
        region_name=cloud.stack.region,
        aws_access_key_id="ASIANOBODY",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}),
    )
    # THEN S3 does not recognise it
    assert refusal(stranger.list_objects_v2, Bucket=cloud.stack.bucket)[:2] == ("InvalidAccessKeyId", 403)
    # AND a role's request the local cloud cannot map (ListBuckets) is refused as not implemented
    code, status, message = refusal(as_role(cloud, "s3", "SummarizeFunctionRole").list_buckets)
    assert (code, status) == ("NotImplemented", 501) and "cannot decide" in message


def test_the_interpreters_s3_calls_are_the_state_machine_roles(cloud: LocalCloud) -> None:
    # GIVEN the S3 client moto's interpreter uses for ItemReader / ResultWriter
    from moto.stepfunctions.parser.asl.utils import boto_client

    s3 = boto_client.boto_client_for(cloud.stack.region, "s3")
    bucket = cloud.stack.bucket
    # WHEN it writes the Map's result files / THEN that is granted
    s3.put_object(Bucket=bucket, Key="jobs/a-job/map-results/run/manifest.json", Body=b"{}")
    # WHEN it writes anywhere else / THEN it is refused as the state machine's role
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=bucket, Key="summaries/a-job.json", Body=b"{}")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert "JobStateMachineRole" in caught.value.response["Error"]["Message"]
