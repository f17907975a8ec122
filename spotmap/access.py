"""IAM enforcement for the local cloud: every request a role of the stack makes is authorized against
that role's identity policies and the bucket policy, as the template EXPANDED by the SAM translator
defines them (the roles SAM generates, its policy templates, the managed policies it attaches), before
moto or the local services answer it.

- Who calls: the access key id of the request's SigV4 credential scope (header or presigned query);
  spotmap/principals.py gives each role its own. The admin key ("testing": CLI, tests, AWS CLI users)
  is the account's administrator and is allowed everything. An unknown key is refused as AWS refuses
  it (S3 InvalidAccessKeyId, JSON services UnrecognizedClientException).
- What it asks: each request is mapped to the IAM actions AWS authorizes for it, their resource ARNs and
  request context (condition keys), following the Service Authorization Reference pages:
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html
  and S3's "Required permissions for Amazon S3 API operations"
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html).
- The answer: spotmap/iam.py's evaluation; a denial in the service's own error shape (S3: 403 XML
  AccessDenied; ECS / Step Functions: AccessDeniedException; Lambda: 403 AccessDeniedException). A role's
  request this module cannot map, or a policy it cannot evaluate, is answered 501 NotImplemented with
  the reason and logged: an error, never an allow.

aws:SecureTransport: the local endpoint is plain HTTP standing in for AWS's HTTPS endpoints (the SDKs
use HTTPS there by default), so requests on it are evaluated as arriving over TLS ("true"). The
bucket policy's TLS Deny is therefore never triggered here; tests/unit/test_access.py shows that it
does deny a request whose context says "false". s3:TlsVersion is not modelled (a policy on it is
undecidable).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from werkzeug.wrappers import Response

from spotmap import iam
from spotmap.principals import ADMIN_ACCESS_KEY_ID, credentials_for, role_of_access_key
from spotmap.template import ACCOUNT_ID, PARTITION, REGION, Stack, _Resolver

log = logging.getLogger("spotmap.access")

# The two AWS managed policies SAM attaches to the roles it generates, as AWS publishes them:
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSXrayWriteOnlyAccess.html
MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    },
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ],
                "Resource": ["*"],
            }
        ],
    },
}

ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
SFN_TARGET = "AWSStepFunctions."
EVENTS_TARGET = "AWSEvents."
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


# ------------------------------------------------------------------------------------------ policies
@dataclass(frozen=True)
class Role:
    logical_id: str
    name: str
    arn: str
    policies: tuple[Mapping[str, Any], ...]

    def assumed_role_arn(self, session: str) -> str:
        return f"arn:{PARTITION}:sts::{ACCOUNT_ID}:assumed-role/{self.name}/{session}"


@dataclass(frozen=True)
class StackPolicies:
    """The stack's roles (with their identity policies) and bucket policy, from the expanded template."""

    roles: dict[str, Role]
    bucket_policies: dict[str, Mapping[str, Any]]  # bucket name -> policy document
    function_roles: dict[str, str]  # function logical id -> role logical id
    state_machine_role: str
    task_role: str
    task_definition_roles: tuple[str, ...]  # role ARNs RunTask passes (task role, execution role)


@functools.lru_cache(maxsize=8)
def _expanded(template_text: str, root: str) -> dict[str, Any]:
    """The SAM translator's expansion, once per template text and process (~0.5 s)."""
    from spotmap.expansion import expand, load_template

    return expand(load_template(Path(root) / "template.yaml"), base_dir=Path(root))


def _without_novalue(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """A policy whose statement list had an Fn::If choose AWS::NoValue: CloudFormation drops the
    statement (e.g. Summarize's sns:Publish when the stack has no notification topic)."""
    statements = document.get("Statement")
    if isinstance(statements, list) and None in statements:
        return {**document, "Statement": [statement for statement in statements if statement is not None]}
    return document


def load_policies(stack: Stack) -> StackPolicies:
    expanded = _expanded((stack.root / "template.yaml").read_text(encoding="utf-8"), str(stack.root))
    resolver = _Resolver(expanded, stack.name, stack.parameters)
    resources: dict[str, Any] = expanded["Resources"]

    def logical_of(arn_expression: Any) -> str:
        if isinstance(arn_expression, dict) and "Fn::GetAtt" in arn_expression:
            return str(arn_expression["Fn::GetAtt"][0])
        raise iam.Undecidable(f"a role given as {arn_expression!r}, not as a GetAtt of a template role")

    roles: dict[str, Role] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        props = resource.get("Properties", {})
        # a policy under Fn::If (e.g. sns:Publish only when the stack notifies) resolves to the
        # chosen policy, or to AWS::NoValue: no policy
        documents: list[Mapping[str, Any]] = [
            _without_novalue(policy["PolicyDocument"])
            for policy in resolver.resolve(props.get("Policies", []))
            if policy
        ]
        for managed in resolver.resolve(props.get("ManagedPolicyArns", [])):
            if managed not in MANAGED_POLICIES:
                raise iam.Undecidable(
                    f"{logical_id}: managed policy {managed} is not embedded in spotmap/access.py"
                )
            documents.append(MANAGED_POLICIES[managed])
        name = resolver.physical_name(logical_id)
        roles[logical_id] = Role(logical_id, name, resolver.get_att(logical_id, "Arn"), tuple(documents))
    for resource in resources.values():  # AWS::IAM::Policy / ManagedPolicy attached to roles
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            props = resource["Properties"]
            for role_ref in props.get("Roles", []):
                role = roles[role_ref["Ref"]]
                document = resolver.resolve(props["PolicyDocument"])
                roles[role.logical_id] = Role(
                    role.logical_id, role.name, role.arn, (*role.policies, document)
                )

    bucket_policies: dict[str, Mapping[str, Any]] = {}
    function_roles: dict[str, str] = {}
    state_machine_role = task_role = ""
    passed: list[str] = []
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::S3::BucketPolicy":
            bucket_policies[str(resolver.resolve(props["Bucket"]))] = resolver.resolve(
                props["PolicyDocument"]
            )
        elif resource["Type"] == "AWS::Lambda::Function":
            function_roles[logical_id] = logical_of(props["Role"])
        elif resource["Type"] == "AWS::StepFunctions::StateMachine":
            state_machine_role = logical_of(props["RoleArn"])
        elif resource["Type"] == "AWS::ECS::TaskDefinition":
            task_role = logical_of(props["TaskRoleArn"])
            passed = [
                str(resolver.resolve(props[name]))
                for name in ("TaskRoleArn", "ExecutionRoleArn")
                if name in props
            ]
    return StackPolicies(roles, bucket_policies, function_roles, state_machine_role, task_role, tuple(passed))


# ------------------------------------------------------------------------------------------ requests
class Unmapped(iam.Undecidable):
    """A role's request this module does not know how to authorize."""


@dataclass
class HttpRequest:
    """What the mapping needs of one HTTP request."""

    method: str
    path: str  # raw (still percent-encoded) path
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    host: str
    body: Callable[[], bytes]

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> HttpRequest:
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
        raw_path = raw_path.split("?", 1)[0]
        headers = {
            name[5:].replace("_", "-").lower(): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]

        def body() -> bytes:
            return request_body(environ)

        return cls(
            method=environ["REQUEST_METHOD"],
            path=raw_path,
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            host=environ.get("HTTP_HOST", "").split(":")[0],
            body=body,
        )

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


def request_body(environ: dict[str, Any]) -> bytes:
    """A WSGI request's body, read once and put back for whoever answers it (moto or local services)."""
    cached = environ.get("spotmap.body")
    if cached is None:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        cached = environ["wsgi.input"].read(length) if length else b""
        environ["spotmap.body"] = cached
        environ["wsgi.input"] = io.BytesIO(cached)
        environ["CONTENT_LENGTH"] = str(len(cached))
    return bytes(cached)


def virtual_hosted_bucket(host: str) -> str | None:
    """The bucket a virtual-hosted-style S3 host names (`bucket.localhost`, `bucket.s3.amazonaws.com`),
    or None for a path-style request. moto's rule (S3Response.subdomain_based_buckets): localhost,
    host.docker.internal, a host name without a dot and an IP address are path-style endpoints."""
    if host.endswith(".localhost"):
        return host.split(".", 1)[0]
    if (
        not host
        or host.startswith(("localhost", "localstack", "host.docker.internal"))
        or "." not in host
        or host.replace(".", "").isdigit()
        or host.startswith("[")
        or host == "s3.amazonaws.com"
        or re.match(r"s3[.\-][^.]*\.amazonaws\.com", host)
    ):
        return None
    return host.split(".", 1)[0]


def s3_location(request: HttpRequest) -> tuple[str, str]:
    """(bucket, key) of an S3 request, path-style or virtual-host style; key "" for bucket requests."""
    bucket = virtual_hosted_bucket(request.host)
    if bucket is not None:
        return unquote(bucket), unquote(request.path.lstrip("/"))
    parts = request.path.lstrip("/").split("/", 1)
    return unquote(parts[0]), unquote(parts[1]) if len(parts) > 1 else ""


def _present(value: str | None) -> list[str] | None:
    return None if value is None else [value]


@dataclass
class Caller:
    role: Role
    session: str

    @property
    def principal(self) -> iam.Principal:
        return iam.Principal(self.role.arn, ACCOUNT_ID)


def global_context(caller: Caller, request: HttpRequest | None) -> dict[str, Sequence[str] | None]:
    """Global condition keys the local cloud knows for a role's request
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html).
    Keys it cannot know (aws:SourceIp, aws:SourceVpce, aws:ResourceTag/*, ...) are left out, so a
    policy on them is undecidable rather than guessed."""
    now = datetime.now(timezone.utc)
    return {
        "aws:SecureTransport": ["true"],  # the local endpoint stands in for AWS's HTTPS endpoints
        "aws:PrincipalArn": [caller.role.arn],
        "aws:PrincipalAccount": [ACCOUNT_ID],
        "aws:PrincipalType": ["AssumedRole"],
        "aws:PrincipalIsAWSService": ["false"],
        "aws:PrincipalServiceName": None,
        "aws:PrincipalTag/*": None,  # the template's roles carry no tags
        "aws:userid": [f"AROA{caller.role.logical_id.upper()[:17]}:{caller.session}"],
        "aws:username": None,  # roles have no user name
        "aws:RequestedRegion": [REGION],
        "aws:ViaAWSService": ["false"],
        "aws:CalledVia": None,
        "aws:CalledViaFirst": None,
        "aws:CalledViaLast": None,
        "aws:MultiFactorAuthPresent": None,
        "aws:SourceArn": None,
        "aws:SourceAccount": None,
        "aws:SourceOwner": None,
        "aws:ResourceAccount": [ACCOUNT_ID],
        "aws:CurrentTime": [now.strftime("%Y-%m-%dT%H:%M:%SZ")],
        "aws:EpochTime": [str(int(now.timestamp()))],
        "aws:RequestTag/*": None,
        "aws:TagKeys": None,
    }


def _s3_context(
    request: HttpRequest, extra: Mapping[str, Sequence[str] | None]
) -> dict[str, Sequence[str] | None]:
    headers = request.headers
    context: dict[str, Sequence[str] | None] = {
        "s3:authType": ["REST-QUERY-STRING" if "X-Amz-Credential" in request.query else "REST-HEADER"],
        "s3:signatureversion": ["AWS4-HMAC-SHA256"],
        "s3:ResourceAccount": [ACCOUNT_ID],
        "s3:x-amz-content-sha256": _present(headers.get("x-amz-content-sha256")),
        "s3:DataAccessPointArn": None,
        "s3:DataAccessPointAccount": None,
        "s3:AccessPointNetworkOrigin": None,
    }
    context.update(extra)
    return context


def _object_write_context(request: HttpRequest) -> dict[str, Sequence[str] | None]:
    headers = request.headers
    context: dict[str, Sequence[str] | None] = {
        "s3:x-amz-acl": _present(headers.get("x-amz-acl")),
        "s3:x-amz-server-side-encryption": _present(headers.get("x-amz-server-side-encryption")),
        "s3:x-amz-server-side-encryption-aws-kms-key-id": _present(
            headers.get("x-amz-server-side-encryption-aws-kms-key-id")
        ),
        "s3:x-amz-storage-class": _present(headers.get("x-amz-storage-class")),
        "s3:x-amz-copy-source": _present(headers.get("x-amz-copy-source")),
        "s3:x-amz-metadata-directive": _present(headers.get("x-amz-metadata-directive")),
        "s3:object-lock-mode": _present(headers.get("x-amz-object-lock-mode")),
        "s3:object-lock-legal-hold": _present(headers.get("x-amz-object-lock-legal-hold")),
        "s3:object-lock-retain-until-date": _present(headers.get("x-amz-object-lock-retain-until-date")),
    }
    if "x-amz-tagging" not in headers:  # with tags on the request, their keys are not modelled
        context["s3:RequestObjectTag/*"] = None
    return context


def _object_arn(bucket: str, key: str) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}/{key}"


def _bucket_arn(bucket: str) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}"


# bucket subresources of GET (read) and PUT (write) -> action
_BUCKET_GET = {
    "location": "s3:GetBucketLocation",
    "versioning": "s3:GetBucketVersioning",
    "policy": "s3:GetBucketPolicy",
    "notification": "s3:GetBucketNotification",
    "tagging": "s3:GetBucketTagging",
    "acl": "s3:GetBucketAcl",
    "encryption": "s3:GetEncryptionConfiguration",
    "lifecycle": "s3:GetLifecycleConfiguration",
    "cors": "s3:GetBucketCORS",
    "publicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "ownershipControls": "s3:GetBucketOwnershipControls",
}
_BUCKET_PUT = {
    "versioning": "s3:PutBucketVersioning",
    "policy": "s3:PutBucketPolicy",
    "notification": "s3:PutBucketNotification",
    "tagging": "s3:PutBucketTagging",
    "acl": "s3:PutBucketAcl",
    "encryption": "s3:PutEncryptionConfiguration",
    "lifecycle": "s3:PutLifecycleConfiguration",
    "cors": "s3:PutBucketCORS",
    "publicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "ownershipControls": "s3:PutBucketOwnershipControls",
}


def _copy_source(header: str) -> tuple[str, str, str | None]:
    source, _, query = unquote(header).lstrip("/").partition("?")
    bucket, _, key = source.partition("/")
    version = parse_qs(query).get("versionId", [None])[0]
    return bucket, key, version


def s3_requests(request: HttpRequest, context: Mapping[str, Sequence[str] | None]) -> list[iam.Request]:
    """The IAM actions S3 authorizes for one request."""
    bucket, key = s3_location(request)
    subresources = set(request.query) - {
        "x-id",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    }
    method = request.method
    version = request.param("versionId")

    def ask(action: str, resource: str, **extra: Sequence[str] | None) -> iam.Request:
        return iam.Request(action, resource, _s3_context(request, {**context, **extra}))

    if not bucket:
        raise Unmapped(f"S3 {method} without a bucket (ListBuckets) is not mapped")
    if not key:
        bucket_arn = _bucket_arn(bucket)
        listing = {
            "s3:prefix": _present(request.param("prefix")),
            "s3:delimiter": _present(request.param("delimiter")),
            "s3:max-keys": _present(request.param("max-keys")),
        }
        if method == "HEAD" and not subresources:
            return [ask("s3:ListBucket", bucket_arn, **listing)]  # HeadBucket
        if method == "GET":
            if subresources <= {
                "list-type",
                "prefix",
                "delimiter",
                "max-keys",
                "continuation-token",
                "start-after",
                "fetch-owner",
                "encoding-type",
                "marker",
            }:
                return [ask("s3:ListBucket", bucket_arn, **listing)]
            if "versions" in subresources:
                return [ask("s3:ListBucketVersions", bucket_arn, **listing)]
            if "uploads" in subresources:
                return [ask("s3:ListBucketMultipartUploads", bucket_arn, **listing)]
            named = [_BUCKET_GET[name] for name in subresources if name in _BUCKET_GET]
            if len(named) == 1:
                return [ask(named[0], bucket_arn)]
        if method == "PUT":
            if not subresources:
                return [
                    ask(
                        "s3:CreateBucket",
                        bucket_arn,
                        **{"s3:x-amz-acl": _present(request.headers.get("x-amz-acl"))},
                    )
                ]
            named = [_BUCKET_PUT[name] for name in subresources if name in _BUCKET_PUT]
            if len(named) == 1:
                return [ask(named[0], bucket_arn)]
        if method == "DELETE" and not subresources:
            return [ask("s3:DeleteBucket", bucket_arn)]
        if method == "POST" and subresources == {"delete"}:
            # DeleteObjects: S3 authorizes each key (s3:DeleteObject, or s3:DeleteObjectVersion)
            body = request.body().decode("utf-8", "replace")
            asked = []
            for entry in re.findall(r"<Object>(.*?)</Object>", body, re.DOTALL):
                name = re.search(r"<Key>(.*?)</Key>", entry, re.DOTALL)
                entry_version = re.search(r"<VersionId>(.*?)</VersionId>", entry, re.DOTALL)
                if name is None:
                    continue
                object_arn = _object_arn(bucket, unescape(name.group(1)))
                if entry_version:
                    asked.append(
                        ask(
                            "s3:DeleteObjectVersion", object_arn, **{"s3:versionid": [entry_version.group(1)]}
                        )
                    )
                else:
                    asked.append(ask("s3:DeleteObject", object_arn))
            return asked
        raise Unmapped(f"S3 bucket request {method} ?{sorted(subresources)} is not mapped")

    object_arn = _object_arn(bucket, key)
    versioned = {"s3:versionid": [version]} if version else {}
    if method in ("GET", "HEAD"):
        if "uploadId" in subresources:
            return [ask("s3:ListMultipartUploadParts", object_arn)]
        reading = subresources <= {"versionId", "partNumber"} or all(
            name.startswith("response-") or name in ("versionId", "partNumber") for name in subresources
        )
        if reading:
            if version:
                return [ask("s3:GetObjectVersion", object_arn, **versioned)]
            return [ask("s3:GetObject", object_arn)]
        if subresources - {"versionId"} == {"tagging"} and method == "GET":
            action = "s3:GetObjectVersionTagging" if version else "s3:GetObjectTagging"
            return [ask(action, object_arn, **versioned)]
        if subresources - {"versionId"} == {"acl"} and method == "GET":
            action = "s3:GetObjectVersionAcl" if version else "s3:GetObjectAcl"
            return [ask(action, object_arn, **versioned)]
        if subresources - {"versionId"} == {"attributes"} and method == "GET":
            action = "s3:GetObjectVersionAttributes" if version else "s3:GetObjectAttributes"
            return [ask(action, object_arn, **versioned)]
    if method == "PUT":
        writes = _object_write_context(request)
        copy_header = request.headers.get("x-amz-copy-source")
        asked = []
        if copy_header:
            source_bucket, source_key, source_version = _copy_source(copy_header)
            source_arn = _object_arn(source_bucket, source_key)
            if source_version:
                asked.append(ask("s3:GetObjectVersion", source_arn, **{"s3:versionid": [source_version]}))
            else:
                asked.append(ask("s3:GetObject", source_arn))
        if not subresources or subresources == {"partNumber", "uploadId"}:
            return [*asked, ask("s3:PutObject", object_arn, **writes)]
        if subresources - {"versionId"} == {"tagging"}:
            action = "s3:PutObjectVersionTagging" if version else "s3:PutObjectTagging"
            return [ask(action, object_arn, **versioned)]
    if method == "POST" and subresources in ({"uploads"}, {"uploadId"}):
        # Create / CompleteMultipartUpload
        return [ask("s3:PutObject", object_arn, **_object_write_context(request))]
    if method == "DELETE":
        if subresources == {"uploadId"}:
            return [ask("s3:AbortMultipartUpload", object_arn)]
        if not subresources:
            return [ask("s3:DeleteObject", object_arn)]
        if subresources == {"versionId"}:
            return [ask("s3:DeleteObjectVersion", object_arn, **versioned)]
        if subresources - {"versionId"} == {"tagging"}:
            action = "s3:DeleteObjectVersionTagging" if version else "s3:DeleteObjectTagging"
            return [ask(action, object_arn, **versioned)]
    raise Unmapped(f"S3 object request {method} ?{sorted(subresources)} is not mapped")


# ------------------------------------------------------------------------------------------ JSON services
def _arn(service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def _cluster_arn(cluster: str | None) -> str:
    cluster = cluster or "default"
    return cluster if cluster.startswith("arn:") else _arn("ecs", f"cluster/{cluster}")


def _cluster_name(cluster_arn: str) -> str:
    return cluster_arn.rsplit("/", 1)[-1]


def _task_arn(task: str, cluster_arn: str) -> str:
    return task if task.startswith("arn:") else _arn("ecs", f"task/{_cluster_name(cluster_arn)}/{task}")


def _request_tags(
    tags: Sequence[Mapping[str, str]], key_field: str, value_field: str
) -> dict[str, Sequence[str] | None]:
    context: dict[str, Sequence[str] | None] = {
        "aws:TagKeys": [tag[key_field] for tag in tags] if tags else None
    }
    for tag in tags:
        context[f"aws:RequestTag/{tag[key_field]}"] = [tag[value_field]]
    return context


def ecs_requests(
    operation: str,
    body: Mapping[str, Any],
    context: Mapping[str, Sequence[str] | None],
    policies: StackPolicies,
    stack: Stack,
) -> list[iam.Request]:
    cluster_arn = _cluster_arn(body.get("cluster"))
    on_cluster = {**context, "ecs:cluster": [cluster_arn]}
    if operation == "RunTask":
        definition = str(body.get("taskDefinition", ""))
        if not definition.startswith("arn:"):
            family, _, revision = definition.partition(":")
            latest = stack.task_definition.arn if family == stack.task_definition.family else None
            definition = (
                _arn("ecs", f"task-definition/{definition}") if revision or latest is None else latest
            )
        tags = list(body.get("tags") or [])
        tag_context = _request_tags(tags, "key", "value")
        strategy = body.get("capacityProviderStrategy") or []
        run_context = {
            **on_cluster,
            **tag_context,
            "ecs:capacity-provider": [item["capacityProvider"] for item in strategy] if strategy else None,
            "ecs:enable-execute-command": ["true" if body.get("enableExecuteCommand") else "false"],
        }
        asked = [iam.Request("ecs:RunTask", definition, run_context)]
        overrides = body.get("overrides") or {}
        roles = list(policies.task_definition_roles) if definition == stack.task_definition.arn else []
        if not roles and definition != stack.task_definition.arn:
            raise Unmapped(f"RunTask of a task definition the template does not define: {definition}")
        for override in ("taskRoleArn", "executionRoleArn"):
            if overrides.get(override):
                roles.append(str(overrides[override]))
        for role_arn in dict.fromkeys(roles):
            # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html: the caller
            # of RunTask must be allowed to pass the task's roles to ECS tasks
            asked.append(
                iam.Request(
                    "iam:PassRole",
                    role_arn,
                    {
                        **context,
                        "iam:PassedToService": ["ecs-tasks.amazonaws.com"],
                        "iam:AssociatedResourceArn": None,
                    },
                )
            )
        if tags:
            # tagging on create: ecs:TagResource on the task being created, with ecs:CreateAction
            # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html)
            new_task = _task_arn(uuid.uuid4().hex, cluster_arn)
            asked.append(
                iam.Request(
                    "ecs:TagResource",
                    new_task,
                    {**on_cluster, **tag_context, "ecs:CreateAction": ["RunTask"]},
                )
            )
        return asked
    if operation in ("DescribeTasks", "StopTask"):
        tasks = body.get("tasks") if operation == "DescribeTasks" else [body.get("task")]
        return [
            iam.Request(f"ecs:{operation}", _task_arn(str(task), cluster_arn), on_cluster)
            for task in tasks or []
        ]
    if operation == "ListTasks":
        # ListTasks is authorized on the container instance (Service Authorization Reference); without
        # one (Fargate), on every container instance of the cluster
        instance = body.get("containerInstance")
        resource = (
            instance
            if instance and str(instance).startswith("arn:")
            else _arn("ecs", f"container-instance/{_cluster_name(cluster_arn)}/{instance or '*'}")
        )
        return [
            iam.Request(
                "ecs:ListTasks", str(resource), {**on_cluster, "ecs:container-instance": _present(instance)}
            )
        ]
    raise Unmapped(f"ECS {operation} is not mapped")


_SFN_RESOURCE = {
    "StartExecution": "stateMachineArn",
    "StartSyncExecution": "stateMachineArn",
    "DescribeStateMachine": "stateMachineArn",
    "DescribeExecution": "executionArn",
    "StopExecution": "executionArn",
    "GetExecutionHistory": "executionArn",
    "DescribeStateMachineForExecution": "executionArn",
    "ListMapRuns": "executionArn",
    "DescribeMapRun": "mapRunArn",
    "UpdateMapRun": "mapRunArn",
}


# The callback actions take no resource-level permissions in the Service Authorization Reference ("*");
# AWS evaluates them, and names in its denial, the state machine that issued the token.
_SFN_TOKEN_ACTIONS = frozenset({"SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"})


def sfn_requests(
    operation: str,
    body: Mapping[str, Any],
    context: Mapping[str, Sequence[str] | None],
    state_machine_arn: str | None = None,
) -> list[iam.Request]:
    if operation in _SFN_TOKEN_ACTIONS and body.get("taskToken") and state_machine_arn:
        return [iam.Request(f"states:{operation}", state_machine_arn, dict(context))]
    if operation in _SFN_RESOURCE and body.get(_SFN_RESOURCE[operation]):
        return [iam.Request(f"states:{operation}", str(body[_SFN_RESOURCE[operation]]), dict(context))]
    if operation == "ListExecutions":
        resource = body.get("stateMachineArn") or body.get("mapRunArn")
        if resource:
            return [iam.Request("states:ListExecutions", str(resource), dict(context))]
    raise Unmapped(f"Step Functions {operation} is not mapped")


SERVICE_QUOTAS_TARGET = "ServiceQuotasV20190624."


def servicequotas_requests(
    request: HttpRequest, context: Mapping[str, Sequence[str] | None], stack: Stack
) -> list[iam.Request]:
    """GetServiceQuota is servicequotas:GetServiceQuota; the action has no resource-level scoping (the
    Service Authorization Reference lists no resource type for it), so a policy grants it on "*": the
    request names the quota's ARN all the same."""
    operation = request.headers.get("x-amz-target", "").rsplit(".", 1)[-1]
    if operation != "GetServiceQuota":
        raise Unmapped(f"Service Quotas {operation} is not mapped")
    try:
        body = json.loads(request.body() or b"{}")
    except ValueError as error:
        raise Unmapped("Service Quotas GetServiceQuota: body is not JSON") from error
    quota = f"{body.get('ServiceCode')}/{body.get('QuotaCode')}"
    resource = f"arn:aws:servicequotas:{stack.region}:{stack.account_id}:{quota}"
    return [iam.Request("servicequotas:GetServiceQuota", resource, dict(context))]


def sns_requests(body: bytes, context: Mapping[str, Sequence[str] | None]) -> list[iam.Request]:
    """SNS (query protocol): Publish is sns:Publish on the topic it names (TopicArn, or TargetArn when
    that is a topic); the stack's roles call nothing else of SNS.
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html"""
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    action = (form.get("Action") or [""])[0]
    if action == "Publish":
        topic = (form.get("TopicArn") or form.get("TargetArn") or [""])[0]
        if topic.startswith("arn:") and ":sns:" in topic:
            return [iam.Request("sns:Publish", topic, dict(context))]
        raise Unmapped("SNS Publish to a phone number or an endpoint is not mapped")
    raise Unmapped(f"SNS {action or 'request'} is not mapped")


def lambda_invoke_request(
    name: str, qualifier: str | None, context: Mapping[str, Sequence[str] | None]
) -> iam.Request:
    """lambda:InvokeFunction on the function's ARN (qualified when the call names a version or alias)."""
    if name.startswith("arn:"):
        arn = name
    else:
        base, _, inline_qualifier = name.partition(":")
        arn = _arn("lambda", f"function:{base}") + (f":{inline_qualifier}" if inline_qualifier else "")
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return iam.Request("lambda:InvokeFunction", arn, dict(context))


# ------------------------------------------------------------------------------------------ answers
def _request_id() -> str:
    return uuid.uuid4().hex.upper()[:16]


def denial_message(caller: Caller, asked: iam.Request, decision: iam.Decision) -> str:
    # AWS's wording for a same-account denial (IAM "Access denied error messages")
    why = (
        "with an explicit deny"
        if decision is iam.Decision.EXPLICIT_DENY
        else f"because no identity-based policy allows the {asked.action} action"
    )
    return (
        f"User: {caller.role.assumed_role_arn(caller.session)} is not authorized to perform: "
        f"{asked.action} on resource: {asked.resource} {why}"
    )


def s3_error(status: int, code: str, message: str, head: bool) -> Response:
    request_id = _request_id()
    headers = {"x-amz-request-id": request_id, "x-amz-id-2": request_id}
    if head:  # a HEAD answer has no body: boto3 then reports the status as the code ("403")
        return Response(b"", status=status, headers=headers)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{_xml(message)}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
    )
    return Response(body, status=status, content_type="application/xml", headers=headers)


def sns_error(status: int, code: str, message: str) -> Response:
    body = (
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
        f"<Code>{_xml(code)}</Code><Message>{_xml(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Response(body, status=status, content_type="text/xml")


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def json_error(status: int, code: str, message: str, content_type: str) -> Response:
    # awsJson services (ECS, Step Functions, EventBridge): {"__type", "message"}
    return Response(
        json.dumps({"__type": code, "message": message}),
        status=status,
        content_type=content_type,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


def lambda_error(status: int, code: str, message: str) -> Response:
    # Lambda's REST-JSON errors: x-amzn-ErrorType header, {"Type": "User", "Message": ...}
    return Response(
        json.dumps({"Type": "User", "Message": message}),
        status=status,
        content_type="application/json",
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


@dataclass
class Verdict:
    caller: str  # role logical id, "admin" or "anonymous"
    action: str
    resource: str
    decision: str  # Allow, ExplicitDeny, ImplicitDeny, Undecidable


@dataclass
class LocalIam:
    """The local cloud's authorizer."""

    stack: Stack
    policies: StackPolicies
    log_path: Path | None = None
    verdicts: list[Verdict] = field(default_factory=list)  # denials and undecidable requests, for tests
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _keys: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # time spent authorizing, and requests authorized (the cost of enforcement)
    checked: int = 0

    def __post_init__(self) -> None:
        self._keys = {credentials_for(role).access_key_id: role for role in self.policies.roles}

    @classmethod
    def for_stack(cls, stack: Stack, log_path: Path | None = None) -> LocalIam:
        return cls(stack, load_policies(stack), log_path)

    # -- who ----------------------------------------------------------------------------------
    def role_credentials_env(self, role_logical_id: str) -> dict[str, str]:
        return credentials_for(role_logical_id).as_env()

    def function_role(self, function_logical_id: str) -> str:
        return self.policies.function_roles[function_logical_id]

    def _caller(self, access_key: str, session: str) -> Caller | None:
        logical_id = self._keys.get(access_key) or role_of_access_key(access_key, list(self.policies.roles))
        if logical_id is None:
            return None
        return Caller(self.policies.roles[logical_id], session)

    def caller_for_role(self, role_logical_id: str, session: str) -> Caller:
        return Caller(self.policies.roles[role_logical_id], session)

    # -- decide --------------------------------------------------------------------------------
    def decide(self, caller: Caller, asked: iam.Request) -> iam.Decision:
        resource_policy = None
        if asked.action.lower().startswith("s3:"):
            bucket = asked.resource.split(":::", 1)[-1].split("/", 1)[0]
            resource_policy = self.policies.bucket_policies.get(bucket)
        return iam.evaluate(asked, caller.role.policies, resource_policy, caller.principal)

    def _record(self, caller: str, asked: iam.Request | None, decision: str, detail: str = "") -> None:
        verdict = Verdict(caller, asked.action if asked else "?", asked.resource if asked else "?", decision)
        with self._lock:
            self.verdicts.append(verdict)
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a", encoding="utf-8") as handle:
                    handle.write(
                        f"{datetime.now(timezone.utc).isoformat()} {decision} {caller} {verdict.action} "
                        f"{verdict.resource} {detail}\n"
                    )
        (log.error if decision == "Undecidable" else log.info)(
            "%s %s %s %s %s", decision, caller, verdict.action, verdict.resource, detail
        )

    def authorize(
        self, caller: Caller, asked: Sequence[iam.Request]
    ) -> tuple[iam.Request, iam.Decision] | None:
        """The first request that is not allowed, with its decision; None when all are allowed.
        Raises iam.Undecidable."""
        for one in asked:
            decision = self.decide(caller, one)
            if not decision.allowed:
                self._record(caller.role.logical_id, one, decision.value)
                return one, decision
        return None

    # -- the WSGI hook -------------------------------------------------------------------------
    def check(self, environ: dict[str, Any]) -> Response | None:
        """None when the request may go on; otherwise the service's answer refusing it."""
        if environ.get("PATH_INFO", "").startswith("/moto-api/"):
            return None  # moto's own control API: the harness, not AWS
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        request = HttpRequest.from_environ(environ)
        credential = request.param("X-Amz-Credential") or authorization
        found = CREDENTIAL.search(credential if "Credential=" in credential else f"Credential={credential}")
        service = found.group(3) if found else self._service_of(request)
        if found and found.group(1) == ADMIN_ACCESS_KEY_ID:
            return None
        if found is None:
            return self._anonymous(service, request)
        session = (
            request.headers.get("x-amz-security-token", "") or request.param("X-Amz-Security-Token") or ""
        )
        caller = self._caller(found.group(1), session.removeprefix("spotmap-local-"))
        if caller is None:
            return self._unknown_key(service, request, found.group(1))
        started = time.perf_counter()
        try:
            asked = self.requests_for(service, request, caller)
            if asked is None:
                return None  # needs no authorization (sts:GetCallerIdentity)
            refused = self.authorize(caller, asked)
            if refused is None and service == "s3" and self._hidden_missing_object(caller, request, asked):
                # S3's own words for it: no detail that would tell whether the key exists
                return self._error(service, request, 403, "AccessDenied", "Access Denied")
        except iam.Undecidable as error:
            self._record(caller.role.logical_id, None, "Undecidable", str(error))
            return self._error(
                service,
                request,
                501,
                "NotImplemented",
                f"spotmap local IAM cannot decide this request: {error}",
            )
        finally:
            self.seconds += time.perf_counter() - started
            self.checked += 1
        if refused is None:
            return None
        one, decision = refused
        return self._error(service, request, 403, "AccessDenied", denial_message(caller, one, decision))

    @staticmethod
    def _service_of(request: HttpRequest) -> str:
        target = request.headers.get("x-amz-target", "")
        if target.startswith(ECS_TARGET):
            return "ecs"
        if target.startswith(SFN_TARGET):
            return "states"
        if target.startswith(EVENTS_TARGET):
            return "events"
        if INVOKE_PATH.match(request.path):
            return "lambda"
        if target.startswith(SERVICE_QUOTAS_TARGET):
            return "servicequotas"
        return "s3"

    def requests_for(self, service: str, request: HttpRequest, caller: Caller) -> list[iam.Request] | None:
        context = global_context(caller, request)
        if service == "s3":
            return s3_requests(request, context)
        if service in ("ecs", "states", "events"):
            target = request.headers.get("x-amz-target", "")
            operation = target.rsplit(".", 1)[-1]
            try:
                body = json.loads(request.body() or b"{}")
            except ValueError as error:
                raise Unmapped(f"{service} {operation}: body is not JSON") from error
            if service == "ecs":
                return ecs_requests(operation, body, context, self.policies, self.stack)
            if service == "states":
                return sfn_requests(operation, body, context, self.stack.state_machine_arn)
            raise Unmapped(f"EventBridge {operation} is not mapped")
        if service == "lambda":
            match = INVOKE_PATH.match(request.path)
            if match is None or request.method != "POST":
                raise Unmapped(f"Lambda {request.method} {request.path} is not mapped")
            return [lambda_invoke_request(unquote(match.group(1)), request.param("Qualifier"), context)]
        if service == "sns":
            return sns_requests(request.body(), context)
        if service == "servicequotas":
            return servicequotas_requests(request, context, self.stack)
        if service == "sts" and b"Action=GetCallerIdentity" in request.body():
            return None  # "No permissions are required to perform this operation." (STS API reference)
        raise Unmapped(f"service {service!r} is not mapped")

    def invoke_allowed(self, role_logical_id: str, function: str, session: str) -> str | None:
        """For the interpreter's in-process Invoke: None when the state machine's role may invoke the
        function, else AWS's denial message. Raises iam.Undecidable."""
        caller = self.caller_for_role(role_logical_id, session)
        asked = lambda_invoke_request(function, None, global_context(caller, None))
        refused = self.authorize(caller, [asked])
        return None if refused is None else denial_message(caller, *refused)

    def _hidden_missing_object(
        self, caller: Caller, request: HttpRequest, asked: Sequence[iam.Request]
    ) -> bool:
        """Whether this is a GetObject / HeadObject of a missing key by a caller that may not know it is
        missing: S3 answers 404 only to a caller that may s3:ListBucket the bucket (for that key as
        prefix), 403 to anyone else (GetObject API reference, "Permissions":
        https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html)."""
        if request.method not in ("GET", "HEAD") or len(asked) != 1 or asked[0].action != "s3:GetObject":
            return False
        bucket, key = s3_location(request)
        if self._object_exists(bucket, key):
            return False
        listing = iam.Request(
            "s3:ListBucket",
            _bucket_arn(bucket),
            _s3_context(
                request,
                {
                    **global_context(caller, request),
                    "s3:prefix": [key],
                    "s3:delimiter": None,
                    "s3:max-keys": None,
                },
            ),
        )
        if self.decide(caller, listing).allowed:
            return False
        self._record(caller.role.logical_id, asked[0], "MissingObjectWithoutListBucket")
        return True

    def _object_exists(self, bucket: str, key: str) -> bool:
        from moto.s3.models import FakeKey, s3_backends

        try:
            stored = s3_backends[self.stack.account_id]["aws"].get_bucket(bucket)
        except Exception:  # noqa: BLE001 - no such bucket: moto answers NoSuchBucket
            return True
        return isinstance(stored.keys.get(key), FakeKey)

    def _anonymous(self, service: str, request: HttpRequest) -> Response:
        if service == "s3":
            return self._error(service, request, 403, "AccessDenied", "Access Denied")
        return self._error(
            service, request, 403, "MissingAuthenticationTokenException", "Missing Authentication Token"
        )

    def _unknown_key(self, service: str, request: HttpRequest, key: str) -> Response:
        self._record(f"unknown key {key}", None, "InvalidAccessKeyId")
        if service == "s3":
            return self._error(
                service,
                request,
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        return self._error(
            service,
            request,
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )

    def _error(self, service: str, request: HttpRequest, status: int, code: str, message: str) -> Response:
        if service == "s3":
            return s3_error(status, code, message, head=request.method == "HEAD")
        if service == "lambda":
            return lambda_error(status, "AccessDeniedException" if code == "AccessDenied" else code, message)
        if service == "sns":
            # SNS (query protocol) answers an XML ErrorResponse; a denial is AuthorizationError, HTTP 403
            # (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html#API_Publish_Errors)
            return sns_error(status, "AuthorizationError" if code == "AccessDenied" else code, message)
        json_11 = ("ecs", "servicequotas")
        content_type = "application/x-amz-json-1.1" if service in json_11 else "application/x-amz-json-1.0"
        if code == "AccessDenied":
            # ECS, Step Functions, EventBridge and Service Quotas answer AccessDeniedException with HTTP 400
            # (Service Quotas: https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/CommonErrors.html)
            return json_error(400, "AccessDeniedException", message, content_type)
        return json_error(status, code, message, content_type)


__all__ = ["LocalIam", "MANAGED_POLICIES", "StackPolicies", "load_policies", "s3_location"]
