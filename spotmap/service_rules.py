"""What Lambda, Step Functions, EventBridge and S3 refuse that moto accepts: size and name limits
checked in front of moto (or of the local Lambda), answered with AWS's error codes, messages and
shapes. (ECS's rules are in spotmap/ecs_rules.py; the 256 KiB limit on a state's output inside an
execution is enforced by moto's interpreter itself: moto.stepfunctions.parser.quotas.)

Sources:
- Lambda Invoke: "For synchronous invocations, the maximum payload size is 6 MB. For asynchronous
  invocations, the maximum payload size is 1 MB." https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html
  and https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html. AWS answers an oversized
  request 413 RequestEntityTooLargeException "Request must be smaller than 6291456 bytes for the
  InvokeFunction operation" (or "<n> byte payload is too large for the Event invocation type (limit
  <limit> bytes)"), and an oversized response as the function's error Function.ResponseSizeTooLarge
  "Response payload size (<n> bytes) exceeded maximum allowed payload size (6291556 bytes)."
- Step Functions StartExecution (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html,
  https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html): name 1-80 characters
  without white space, brackets `< > { } [ ]`, wildcards `? *`, special characters
  `" # % \\ ^ | ~ ` $ & , ; : /` or control characters -> InvalidName; a name over 80 characters or an
  input over 262,144 bytes (UTF-8) -> ValidationException ("1 validation error detected: ...").
  moto validates names only in its non-executing backend, not in the interpreter's (moto 5.2.5).
- EventBridge PutEvents (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html,
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html): the entries of one
  request, sized as that page computes them, must total less than the limit, else ValidationException
  "Total size of the entries in the request is over the limit." The limit was 256 KB; the PutEvents
  reference (botocore 1.43's model) now reads "the total entry size must be less than 1MB".
- S3 object keys (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html): "a maximum
  length of 1,024 bytes"; a longer key is refused with 400 KeyTooLongError "Your key is too long"
  (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from typing import Any

from botocore.exceptions import ClientError
from werkzeug.wrappers import Response

MAX_SYNC_INVOKE_REQUEST = 6 * 1024 * 1024  # 6291456 bytes
MAX_ASYNC_INVOKE_REQUEST = 1024 * 1024
MAX_SYNC_INVOKE_RESPONSE = 6 * 1024 * 1024 + 100  # 6291556 bytes, as Lambda's error message states
MAX_EXECUTION_NAME = 80
MAX_EXECUTION_INPUT = 256 * 1024  # 262144 bytes of UTF-8
MAX_PUT_EVENTS_ENTRIES_SIZE = 1024 * 1024
MAX_S3_KEY_BYTES = 1024

START_EXECUTION = "AWSStepFunctions.StartExecution"
PUT_EVENTS = "AWSEvents.PutEvents"
_FORBIDDEN_IN_NAMES = re.compile(
    '[\\s<>{}\\[\\]?*"#%\\\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f\ufffe\uffff\ud800-\udfff]'
)


class ServiceError(Exception):
    """An AWS API error in the protocol of the service that raises it."""

    def __init__(self, code: str, message: str, status: int = 400, protocol: str = "json", **extra: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.protocol = protocol  # "json" (awsJson / restJson) or "s3" (REST-XML)
        self.extra = extra

    def response(self) -> Response:
        request_id = str(uuid.uuid4())
        if self.protocol == "s3":
            fields = "".join(f"<{name}>{value}</{name}>" for name, value in self.extra.items())
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{self.code}</Code><Message>{self.message}</Message>{fields}"
                f"<RequestId>{request_id}</RequestId><HostId>local</HostId></Error>"
            )
            return Response(
                body,
                status=self.status,
                content_type="application/xml",
                headers={"x-amz-request-id": request_id},
            )
        document = {"__type": self.code, "message": self.message, **self.extra}
        return Response(
            json.dumps(document),
            status=self.status,
            content_type="application/json",
            headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": self.code},
        )

    def client_error(self, operation: str) -> ClientError:
        """The same error as boto3 raises it (for in-process callers, e.g. moto's interpreter)."""
        error: Any = {
            "Error": {"Code": self.code, "Message": self.message},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        return ClientError(error, operation)


# ---------------------------------------------------------------- Lambda


def check_invoke_request(payload: bytes, asynchronous: bool) -> None:
    """Lambda's Invoke payload quota: 6 MB synchronous, 1 MB asynchronous (Event)."""
    size = len(payload)
    if asynchronous and size > MAX_ASYNC_INVOKE_REQUEST:
        raise ServiceError(
            "RequestEntityTooLargeException",
            f"{size} byte payload is too large for the Event invocation type "
            f"(limit {MAX_ASYNC_INVOKE_REQUEST} bytes)",
            413,
            Type="User",
        )
    if not asynchronous and size > MAX_SYNC_INVOKE_REQUEST:
        raise ServiceError(
            "RequestEntityTooLargeException",
            f"Request must be smaller than {MAX_SYNC_INVOKE_REQUEST} bytes for the InvokeFunction operation",
            413,
            Type="User",
        )


def oversized_response(payload: bytes) -> bytes | None:
    """The function error Lambda returns instead of a synchronous response over its quota, or None."""
    if len(payload) <= MAX_SYNC_INVOKE_RESPONSE:
        return None
    message = (
        f"Response payload size ({len(payload)} bytes) exceeded maximum allowed payload size "
        f"({MAX_SYNC_INVOKE_RESPONSE} bytes)."
    )
    return json.dumps({"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}).encode()


# ---------------------------------------------------------------- in front of moto


def refusal(environ: dict[str, Any], s3_key: str | None) -> Response | None:
    """The error AWS would answer this request with, where moto would accept it; None otherwise.
    `s3_key` is the (decoded) object key of an S3 request, if it names one."""
    try:
        if s3_key is not None and environ.get("REQUEST_METHOD") in ("PUT", "POST"):
            check_s3_key(s3_key)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target in (START_EXECUTION, PUT_EVENTS):
            body = _json_body(environ)
            if target == START_EXECUTION:
                check_start_execution(body)
            else:
                check_put_events(body)
    except ServiceError as error:
        return error.response()
    return None


def _json_body(environ: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON document; the body is put back for moto to read again."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        document = json.loads(raw or b"{}")
    except ValueError:
        return {}  # moto answers a malformed body itself
    return document if isinstance(document, dict) else {}


def check_s3_key(key: str) -> None:
    size = len(key.encode("utf-8"))
    if size > MAX_S3_KEY_BYTES:
        raise ServiceError(
            "KeyTooLongError",
            "Your key is too long",
            protocol="s3",
            Size=size,
            MaxSizeAllowed=MAX_S3_KEY_BYTES,
        )


def check_start_execution(body: dict[str, Any]) -> None:
    name = body.get("name")
    if isinstance(name, str):
        if len(name) > MAX_EXECUTION_NAME or not name:
            bound = f"less than or equal to {MAX_EXECUTION_NAME}" if name else "greater than or equal to 1"
            raise ServiceError(
                "ValidationException",
                f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
                f"Member must have length {bound}",
            )
        if _FORBIDDEN_IN_NAMES.search(name):
            raise ServiceError("InvalidName", f"Invalid Name: '{name}'")
    execution_input = body.get("input")
    if isinstance(execution_input, str) and len(execution_input.encode("utf-8")) > MAX_EXECUTION_INPUT:
        # the input is sensitive data: AWS leaves its value out of the message
        raise ServiceError(
            "ValidationException",
            "1 validation error detected: Value at 'input' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_EXECUTION_INPUT}",
        )


def put_events_entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as "Calculating Amazon EventBridge PutEvents event entry size" computes it."""
    size = 14 if entry.get("Time") is not None else 0
    for name in ("Source", "DetailType", "Detail"):
        if entry.get(name) is not None:
            size += len(str(entry[name]).encode("utf-8"))
    for resource in entry.get("Resources") or []:
        if resource is not None:
            size += len(str(resource).encode("utf-8"))
    return size


def check_put_events(body: dict[str, Any]) -> None:
    total = sum(
        put_events_entry_size(entry) for entry in body.get("Entries") or [] if isinstance(entry, dict)
    )
    if total >= MAX_PUT_EVENTS_ENTRIES_SIZE:
        raise ServiceError(
            "ValidationException", "Total size of the entries in the request is over the limit."
        )
