"""spotmap/access.py: the template's roles and bucket policy as the local cloud evaluates them, and the
mapping of the product's requests to IAM actions, resources and condition keys (Service Authorization
Reference pages for S3, ECS, Step Functions and Lambda; S3's "Required permissions for Amazon S3 API
operations")."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from spotmap import iam
from spotmap.access import (
    HttpRequest,
    LocalIam,
    ecs_requests,
    global_context,
    s3_requests,
    virtual_hosted_bucket,
)
from spotmap.template import load_stack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_iam() -> LocalIam:
    return LocalIam.for_stack(load_stack(ROOT))


def http(
    method: str, path: str, query: str = "", headers: dict[str, str] | None = None, body: bytes = b""
) -> HttpRequest:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "RAW_URI": path + (f"?{query}" if query else ""),
        "QUERY_STRING": query,
        "HTTP_HOST": "127.0.0.1:4566",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in (headers or {}).items()},
    }
    return HttpRequest.from_environ(environ)


def asked_of(local_iam: LocalIam, role: str, request: HttpRequest) -> list[iam.Request]:
    caller = local_iam.caller_for_role(role, "test")
    return s3_requests(request, global_context(caller, request))


def decide(local_iam: LocalIam, role: str, asked: iam.Request) -> iam.Decision:
    return local_iam.decide(local_iam.caller_for_role(role, "test"), asked)


def test_the_bucket_policy_denies_a_request_without_tls(local_iam: LocalIam) -> None:
    # GIVEN the worker's allowed write of its output, as the local endpoint maps it (TLS assumed: the
    # plain-HTTP endpoint stands in for AWS's HTTPS one)
    bucket = local_iam.stack.bucket
    (put,) = asked_of(local_iam, "WorkerTaskRole", http("PUT", f"/{bucket}/output/a.txt"))
    assert put.context["aws:SecureTransport"] == ["true"]
    assert decide(local_iam, "WorkerTaskRole", put) is iam.Decision.ALLOW
    # WHEN the same request says it came without TLS
    plain = iam.Request(put.action, put.resource, {**put.context, "aws:SecureTransport": ["false"]})
    # THEN the template's DenyInsecureTransport statement denies it explicitly
    assert decide(local_iam, "WorkerTaskRole", plain) is iam.Decision.EXPLICIT_DENY


def test_list_objects_is_list_bucket_with_the_prefix(local_iam: LocalIam) -> None:
    bucket = local_iam.stack.bucket
    # GIVEN ListObjectsV2 under jobs/ and under input/, by PollTask (ListBucket on jobs/* only)
    (jobs,) = asked_of(
        local_iam, "PollTaskFunctionRole", http("GET", f"/{bucket}", "list-type=2&prefix=jobs%2Fa%2F")
    )
    (inputs,) = asked_of(
        local_iam, "PollTaskFunctionRole", http("GET", f"/{bucket}", "list-type=2&prefix=input%2F")
    )
    # THEN both are s3:ListBucket on the bucket with s3:prefix, and only the first is allowed
    assert (jobs.action, jobs.resource, jobs.context["s3:prefix"]) == (
        "s3:ListBucket",
        f"arn:aws:s3:::{bucket}",
        ["jobs/a/"],
    )
    assert decide(local_iam, "PollTaskFunctionRole", jobs) is iam.Decision.ALLOW
    assert decide(local_iam, "PollTaskFunctionRole", inputs) is iam.Decision.IMPLICIT_DENY


def test_object_requests_map_to_their_actions(local_iam: LocalIam) -> None:
    bucket = local_iam.stack.bucket

    def actions(request: HttpRequest) -> list[tuple[str, str]]:
        return [
            (one.action, one.resource.split(":::", 1)[1])
            for one in asked_of(local_iam, "WorkerTaskRole", request)
        ]

    assert actions(http("GET", f"/{bucket}/input/a.csv")) == [("s3:GetObject", f"{bucket}/input/a.csv")]
    assert actions(http("HEAD", f"/{bucket}/input/a.csv")) == [("s3:GetObject", f"{bucket}/input/a.csv")]
    assert actions(http("GET", f"/{bucket}/input/a.csv", "versionId=v1")) == [
        ("s3:GetObjectVersion", f"{bucket}/input/a.csv")
    ]
    assert actions(http("PUT", f"/{bucket}/output/b", "partNumber=1&uploadId=u")) == [
        ("s3:PutObject", f"{bucket}/output/b")
    ]
    assert actions(http("POST", f"/{bucket}/output/b", "uploads")) == [("s3:PutObject", f"{bucket}/output/b")]
    assert actions(http("DELETE", f"/{bucket}/output/b", "uploadId=u")) == [
        ("s3:AbortMultipartUpload", f"{bucket}/output/b")
    ]
    assert actions(http("GET", f"/{bucket}/output/b", "uploadId=u")) == [
        ("s3:ListMultipartUploadParts", f"{bucket}/output/b")
    ]
    assert actions(http("DELETE", f"/{bucket}/output/b")) == [("s3:DeleteObject", f"{bucket}/output/b")]
    # CopyObject reads the source (a version of it here) and writes the destination
    copy = http(
        "PUT", f"/{bucket}/output/c", headers={"x-amz-copy-source": f"/{bucket}/input/a.csv?versionId=v2"}
    )
    assert actions(copy) == [
        ("s3:GetObjectVersion", f"{bucket}/input/a.csv"),
        ("s3:PutObject", f"{bucket}/output/c"),
    ]
    # DeleteObjects asks for each key
    body = (
        b"<Delete><Object><Key>output/x</Key></Object>"
        b"<Object><Key>output/y</Key><VersionId>v</VersionId></Object></Delete>"
    )
    assert actions(http("POST", f"/{bucket}", "delete", body=body)) == [
        ("s3:DeleteObject", f"{bucket}/output/x"),
        ("s3:DeleteObjectVersion", f"{bucket}/output/y"),
    ]


def test_record_failure_may_read_result_records_to_keep_what_a_batch_recorded(local_iam: LocalIam) -> None:
    bucket = local_iam.stack.bucket
    # GIVEN RecordFailure ending a batch whose task recorded some of its items before it failed
    (result,) = asked_of(
        local_iam, "RecordFailureFunctionRole", http("GET", f"/{bucket}/jobs/j/results/3.json")
    )
    (output,) = asked_of(local_iam, "RecordFailureFunctionRole", http("GET", f"/{bucket}/output/j/3/a.txt"))
    # WHEN it reads an item's result record THEN it is allowed (the item keeps its success)
    assert decide(local_iam, "RecordFailureFunctionRole", result) is iam.Decision.ALLOW
    # AND nothing else it has no use for (the items' outputs) becomes readable
    assert decide(local_iam, "RecordFailureFunctionRole", output) is not iam.Decision.ALLOW


def test_an_unmapped_s3_request_is_undecidable(local_iam: LocalIam) -> None:
    bucket = local_iam.stack.bucket
    with pytest.raises(iam.Undecidable):
        asked_of(local_iam, "WorkerTaskRole", http("GET", f"/{bucket}/input/a.csv", "torrent"))


def test_run_task_asks_for_run_task_pass_role_and_tag_resource(local_iam: LocalIam) -> None:
    # GIVEN RunTask as LaunchTask issues it (the stack's task definition and cluster, tags)
    stack = local_iam.stack
    caller = local_iam.caller_for_role("LaunchTaskFunctionRole", "test")
    body = {
        "cluster": stack.cluster_arn,
        "taskDefinition": stack.task_definition.arn,
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        "tags": [{"key": "job", "value": "j"}],
    }
    asked = ecs_requests("RunTask", body, global_context(caller, None), local_iam.policies, stack)
    # THEN RunTask on the task definition with ecs:cluster, PassRole for the task's two roles to ECS
    # tasks, TagResource on the new task with ecs:CreateAction; all granted to LaunchTask
    assert [one.action for one in asked] == ["ecs:RunTask", "iam:PassRole", "iam:PassRole", "ecs:TagResource"]
    assert asked[0].context["ecs:cluster"] == [stack.cluster_arn]
    assert {one.resource for one in asked[1:3]} == set(local_iam.policies.task_definition_roles)
    assert asked[3].context["ecs:CreateAction"] == ["RunTask"]
    assert local_iam.authorize(caller, asked) is None
    # AND PollTask may do none of it
    poller = local_iam.caller_for_role("PollTaskFunctionRole", "test")
    refused = local_iam.authorize(poller, asked)
    assert refused is not None and refused[0].action == "ecs:RunTask"


def test_every_role_of_the_expanded_template_has_its_managed_policies_embedded(local_iam: LocalIam) -> None:
    # GIVEN the roles SAM generates (functions: basic execution + X-Ray; the state machine: X-Ray)
    roles = local_iam.policies.roles
    # THEN each function's role can write its logs, and every traced role can send traces
    logs = iam.Request("logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:x:*", {})
    traces = iam.Request("xray:PutTraceSegments", "*", {})
    for function, role in local_iam.policies.function_roles.items():
        assert iam.evaluate(logs, roles[role].policies).allowed, function
        assert iam.evaluate(traces, roles[role].policies).allowed, function
    assert iam.evaluate(traces, roles[local_iam.policies.state_machine_role].policies).allowed
    assert json.dumps(roles["WorkerTaskRole"].policies)  # plain JSON once resolved


@pytest.mark.parametrize(
    ("host", "bucket"),
    [
        ("127.0.0.1", None),
        ("localhost", None),
        ("host.docker.internal", None),  # SAM's Lambda container reaching the local cloud
        ("172.17.0.1", None),
        ("s3.amazonaws.com", None),
        ("s3.us-east-1.amazonaws.com", None),
        ("spotmap-jobbucket.localhost", "spotmap-jobbucket"),
        ("spotmap-jobbucket.s3.us-east-1.amazonaws.com", "spotmap-jobbucket"),
    ],
)
def test_path_style_and_virtual_hosted_requests_name_their_bucket_as_moto_reads_them(
    host: str, bucket: str | None
) -> None:
    # GIVEN a request's Host header / WHEN the bucket is read from it / THEN it is moto's reading
    assert virtual_hosted_bucket(host) == bucket


def sns_publish(topic: str) -> HttpRequest:
    body = f"Action=Publish&TopicArn={topic}&Subject=s&Message=m&Version=2010-03-31".encode()
    return http("POST", "/", headers={"content-type": "application/x-www-form-urlencoded"}, body=body)


@pytest.mark.parametrize(
    ("email", "allowed"),
    [("ops@example.com", True), ("", False)],
)
def test_summarize_may_publish_to_the_notification_topic_only_when_the_stack_has_one(
    email: str, allowed: bool
) -> None:
    # GIVEN the stack with a notification address, or without (its sns:Publish statement then resolves
    # to AWS::NoValue and is dropped, as CloudFormation drops it)
    stack = load_stack(ROOT, {"NotificationEmail": email})
    local_iam = LocalIam.for_stack(stack)
    role = local_iam.function_role("SummarizeFunction")
    caller = local_iam.caller_for_role(role, "test")
    topic = f"arn:aws:sns:{stack.region}:{stack.account_id}:{stack.name}-NotificationTopic"
    # WHEN Summarize publishes to the stack's topic, and to another topic
    mine = local_iam.requests_for("sns", sns_publish(topic), caller)
    other = local_iam.requests_for("sns", sns_publish(f"{topic}-other"), caller)
    # THEN each is sns:Publish on the topic it names; only the stack's topic is allowed, only with one
    assert mine is not None and [(one.action, one.resource) for one in mine] == [("sns:Publish", topic)]
    assert local_iam.decide(caller, mine[0]).allowed is allowed
    assert other is not None and not local_iam.decide(caller, other[0]).allowed
    # AND SNS actions the stack does not use are not mapped: refused as NotImplemented, never allowed
    with pytest.raises(iam.Undecidable):
        local_iam.requests_for("sns", http("POST", "/", body=b"Action=CreateTopic&Name=x"), caller)
