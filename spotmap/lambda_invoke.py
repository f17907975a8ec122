"""Lambda's Invoke on the local cloud, two ways in and one way through: the endpoint's HTTP API
(`POST /2015-03-31/functions/<name>/invocations`) and the in-process client moto's interpreter calls
for a `lambda:invoke` Task, both answering with the local Lambda's results, statuses and errors."""

from __future__ import annotations

import io
import json
import uuid
from concurrent.futures import Executor
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError
from werkzeug.wrappers import Request, Response

from spotmap import service_rules
from spotmap.access import LocalIam
from spotmap.lambdas import Invocation, LocalLambda
from spotmap.template import Stack


def is_invoke_path(path: str) -> bool:
    return path.startswith("/2015-03-31/functions/") and path.endswith("/invocations")


class LambdaInvoke:
    """Invoke: the function's result, with Lambda's payload quotas; an asynchronous (Event) invocation
    runs on `background`."""

    def __init__(self, stack: Stack, lambdas: LocalLambda, background: Executor):
        self.stack = stack
        self.lambdas = lambdas
        self.background = background

    def invoke(self, name: str, payload: bytes, asynchronous: bool = False) -> Invocation | None:
        """The result, or None for an asynchronous (Event) invocation, which runs in the background.
        KeyError: no such function."""
        if self.stack.function_by_name(name) is None:
            raise KeyError(name)
        service_rules.check_invoke_request(payload, asynchronous)  # Lambda's payload quotas
        if asynchronous:
            self.background.submit(self.lambdas.invoke, name, payload)
            return None
        result = self.lambdas.invoke(name, payload)
        oversized = service_rules.oversized_response(result.payload)
        return result if oversized is None else Invocation(oversized, "Unhandled")

    def respond(self, request: Request) -> Response:
        """The HTTP API's answer to an Invoke request."""
        name = unquote(request.path.split("/functions/", 1)[1].rsplit("/invocations", 1)[0])
        asynchronous = request.headers.get("X-Amz-Invocation-Type") == "Event"
        try:
            result = self.invoke(name, request.get_data(), asynchronous)
        except KeyError:
            body = {"Type": "User", "message": f"Function not found: {name}"}
            return Response(
                json.dumps(body),
                status=404,
                content_type="application/json",
                headers={
                    "x-amzn-ErrorType": "ResourceNotFoundException",
                    "x-amzn-RequestId": str(uuid.uuid4()),
                },
            )
        except service_rules.ServiceError as refused:
            return refused.response()
        if result is None:
            return Response(b"", status=202, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": str(uuid.uuid4())}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        return Response(result.payload, status=200, content_type="application/json", headers=headers)


class InProcessLambdaClient:
    """What moto's interpreter calls for a `lambda:invoke` Task: the local Lambda's Invoke, without the
    HTTP round trip to our own endpoint (a boto3 call and a request to serve, both on the endpoint's
    interpreter lock, for every Launch and Poll). Same payloads, statuses and errors as the HTTP path.
    iam: the endpoint's authorizer (None: IAM is not enforced)."""

    def __init__(self, service: LambdaInvoke, iam: LocalIam | None):
        self._service = service
        self._iam = iam

    def invoke(
        self, FunctionName: str, Payload: Any = None, InvocationType: str = "RequestResponse", **_: Any
    ) -> dict[str, Any]:  # noqa: N803 - boto3's parameter names
        name = FunctionName.split(":function:", 1)[-1].split(":", 1)[0]
        self._authorize(FunctionName)
        if Payload is None:
            payload = b""
        elif isinstance(Payload, bytes):
            payload = Payload
        elif isinstance(Payload, str):
            payload = Payload.encode()
        else:
            payload = json.dumps(Payload).encode()
        try:
            result = self._service.invoke(name, payload, asynchronous=InvocationType == "Event")
        except KeyError:
            error: Any = {
                "Error": {
                    "Code": "ResourceNotFoundException",
                    "Message": f"Function not found: {FunctionName}",
                },
                "ResponseMetadata": {"HTTPStatusCode": 404},
            }
            raise ClientError(error, "Invoke") from None
        except service_rules.ServiceError as refused:
            raise refused.client_error("Invoke") from None
        if result is None:
            return {"StatusCode": 202, "Payload": io.BytesIO(b"")}
        response: dict[str, Any] = {
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": io.BytesIO(result.payload),
        }
        if result.function_error:
            response["FunctionError"] = result.function_error
        return response

    def _authorize(self, function: str) -> None:
        """lambda:InvokeFunction for the state machine's role, as the HTTP path authorizes it."""
        if self._iam is None:
            return
        role = self._iam.policies.state_machine_role
        refused = self._iam.invoke_allowed(role, function, session="StepFunctions")
        if refused is not None:
            error: Any = {
                "Error": {"Code": "AccessDeniedException", "Message": refused},
                "ResponseMetadata": {"HTTPStatusCode": 403},
            }
            raise ClientError(error, "Invoke")
