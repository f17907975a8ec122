"""The local cloud: one HTTP endpoint on 127.0.0.1 where moto serves S3, Step Functions (executing
our real ASL) and EventBridge, local Lambda instances serve Invoke with our handlers, and a local
Fargate serves RunTask/DescribeTasks/StopTask/ListTasks with our worker. Everything is provisioned
from template.yaml."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from spotmap import moto_patches, quotas, service_rules
from spotmap.access import LocalIam, virtual_hosted_bucket
from spotmap.events import STATUS_CHANGE, TASK_STATE_CHANGE, LocalEventBus, envelope
from spotmap.fargate import EcsError, Faults, LocalFargate, WorkerLauncher
from spotmap.forkserver import ForkServerLauncher
from spotmap.lambdas import Invocation, LocalLambda
from spotmap.launchers import SubprocessLauncher
from spotmap.notifications import NotificationLog, publish_request
from spotmap.principals import ADMIN_CREDENTIALS, credentials_for
from spotmap.template import Stack, load_stack

log = logging.getLogger("spotmap.cloud")

CREDENTIALS = ADMIN_CREDENTIALS
ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
LOCAL_ECS_ACTIONS = ("RunTask", "DescribeTasks", "StopTask", "ListTasks")
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
MAX_EVENT_INPUT = 248 * 1024
RANGE = re.compile(r"bytes=(\d+)-(\d*)")  # larger inputs are left out of status events, as AWS does


def project_root() -> Path:
    """The directory holding template.yaml: SPOTMAP_ROOT, else the current directory or a parent."""
    if os.environ.get("SPOTMAP_ROOT"):
        return Path(os.environ["SPOTMAP_ROOT"]).resolve()
    for candidate in [Path.cwd(), *Path.cwd().parents]:
        if (candidate / "template.yaml").exists():
            return candidate
    raise FileNotFoundError("template.yaml not found here or above; run from the project or set SPOTMAP_ROOT")


def local_client(service: str, endpoint: str, region: str) -> Any:
    """A boto3 client for the local cloud, with moto's fake credentials (never real AWS)."""
    client: Any = boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        # Over plain HTTP the SDK signs (SHA-256) every upload's body, streamed through Python a few KB
        # at a time by the CRT signer: ~6 s of CPU for a 450 MB input. moto checks no signature.
        config=Config(
            retries={"max_attempts": 10, "mode": "standard"}, s3={"payload_signing_enabled": False}
        ),
    )
    return client


class InProcessLambdaClient:
    """What moto's interpreter calls for a `lambda:invoke` Task: the local Lambda's Invoke, without the
    HTTP round trip to our own endpoint (a boto3 call and a request to serve, both on the endpoint's
    interpreter lock, for every Launch and Poll). Same payloads, statuses and errors as the HTTP path."""

    def __init__(self, cloud: LocalCloud):
        self._cloud = cloud

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
            result = self._cloud.invoke_function(name, payload, asynchronous=InvocationType == "Event")
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
        local_iam = self._cloud.iam
        if local_iam is None:
            return
        role = local_iam.policies.state_machine_role
        refused = local_iam.invoke_allowed(role, function, session="StepFunctions")
        if refused is not None:
            error: Any = {
                "Error": {"Code": "AccessDeniedException", "Message": refused},
                "ResponseMetadata": {"HTTPStatusCode": 403},
            }
            raise ClientError(error, "Invoke")


# moto server port -> the local cloud's in-process Lambda client / its state machine role's credentials:
# where the interpreter's patched client factory (spotmap/moto_patches.py) sends its calls
_IN_PROCESS_LAMBDA = moto_patches.IN_PROCESS_LAMBDA
_INTERPRETER_ROLE = moto_patches.INTERPRETER_ROLE


@dataclass
class CloudOptions:
    parameters: dict[str, str] | None = None
    faults: Faults | None = None
    drop_status_events: float = 0.0
    # ECS Task State Change events lost / delivered twice (the items' heartbeat backstop and the token's
    # single use must make either cost latency at most)
    drop_task_events: float = 0.0
    duplicate_task_events: float = 0.0
    seed: int | None = None
    port: int = 0
    host: str = "127.0.0.1"
    state_dir: Path | None = None
    # instances per function: Lambda itself scales out at once; a low local cap makes invocations queue
    # (and, waiting past a Task state's TimeoutSeconds, fail as States.Timeout)
    lambda_concurrency: int = 32
    launcher: WorkerLauncher | None = None
    run_schedules: bool = True
    # "process": tasks are OS processes (no Docker needed); "docker": containers of `image`, started as
    # the task definition says (spotmap/containers.py)
    runtime: str = "process"
    image: str = "spotmap-worker:local"
    # S3 -> EventBridge "Object Created" events for uploads. Off, as with a bucket whose EventBridge
    # notifications are off, nothing starts a job by itself: the caller delivers the upload's event
    # (e.g. `sam local invoke StartJobFunction` in SAM's Lambda container).
    object_events: bool = True
    # each principal calls with its own role's credentials; the endpoint authorizes them (spotmap/access.py)
    enforce_iam: bool = True
    # where SNS messages published on the local cloud are shown (besides logs/notifications.log)
    notifications_echo: TextIO | None = None
    # the account's Fargate vCPU quotas, as Service Quotas answers them (spotmap/quotas.py; `spotmap plan`)
    fargate_spot_vcpu_quota: float = quotas.DEFAULT_VCPU_QUOTA
    fargate_on_demand_vcpu_quota: float = quotas.DEFAULT_VCPU_QUOTA


class LocalCloud:
    def __init__(self, root: Path | None = None, options: CloudOptions | None = None):
        self.root = root or project_root()
        self.options = options or CloudOptions()
        self.stack: Stack = load_stack(self.root, self.options.parameters)
        self.state_dir = (self.options.state_dir or self.root / ".spotmap").resolve()
        self.task_log_dir = self.state_dir / "logs" / "tasks"
        self.endpoint = ""
        self._server: Any = None
        self._stop = threading.Event()
        self._seen: dict[str, str] = {}
        self._hooks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="s3-events")
        self.access = LocalIam.for_stack(self.stack, self.state_dir / "logs" / "iam.log")
        self.iam: LocalIam | None = self.access if self.options.enforce_iam else None
        self.notifications = NotificationLog(
            self.state_dir / "logs" / "notifications.log", self.options.notifications_echo
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalCloud:
        from moto.moto_api._internal.models import moto_api_backend

        if self.options.runtime not in ("process", "docker"):
            raise ValueError(f"unknown runtime {self.options.runtime!r} (process or docker)")
        docker = None
        if self.options.runtime == "docker" and self.options.launcher is None:
            from spotmap.containers import DockerLauncher

            docker = DockerLauncher(self.stack, self.options.image, self._wsgi)  # fails first if no Docker
        self._moto_executed = moto_patches.configure()
        moto_api_backend.reset()  # moto's state is per process: each local cloud starts empty
        if not log.isEnabledFor(logging.DEBUG):
            # the interpreter logs every caught task error (e.g. a retried CapacityUnavailable)
            logging.getLogger("moto").setLevel(logging.CRITICAL)
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self._moto = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self.options.host, self.options.port, self._wsgi, threaded=True)
        port = self._server.server_port
        self.endpoint = f"http://127.0.0.1:{port}"  # how this machine (and moto's interpreter) reaches it
        self._previous_moto_port = os.environ.get("MOTO_PORT")
        os.environ["MOTO_PORT"] = str(port)  # where moto's interpreter sends its Lambda/S3 calls
        _IN_PROCESS_LAMBDA[str(port)] = InProcessLambdaClient(self)
        _INTERPRETER_ROLE[str(port)] = credentials_for(self.access.policies.state_machine_role)
        base_env = {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.stack.region,
            "AWS_DEFAULT_REGION": self.stack.region,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
        }
        lambda_env = {
            **base_env,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "LOCAL_TASK_LOG_DIR": str(self.task_log_dir),
        }
        self.lambdas = LocalLambda(
            self.stack,
            lambda_env,
            self.state_dir / "logs" / "lambda",
            max_instances=self.options.lambda_concurrency,
            extra_env=lambda spec: credentials_for(self.access.function_role(spec.logical_id)).as_env(),
        )
        task_env = {
            **base_env,
            **credentials_for(self.access.policies.task_role).as_env(),
            "SCRATCH_DIR": str(self.state_dir / "scratch"),
        }
        if docker is not None:
            task_env = docker.task_env  # the image's PATH, no static credentials, the bridge endpoint
        self._launcher = (
            self.options.launcher
            or docker
            or (
                SubprocessLauncher(self.root)
                if os.environ.get("SPOTMAP_LAUNCHER") == "subprocess"
                else ForkServerLauncher(self.root, task_env)
            )
        )
        self.fargate = LocalFargate(
            self.stack, self._launcher, task_env, self.task_log_dir, self.options.faults
        )
        self.fargate.vcpu_quotas = {
            "FARGATE_SPOT": self.options.fargate_spot_vcpu_quota,
            "FARGATE": self.options.fargate_on_demand_vcpu_quota,
        }
        (self.state_dir / "scratch").mkdir(parents=True, exist_ok=True)
        self.events = LocalEventBus(
            self.stack,
            self.lambdas,
            self.options.drop_status_events,
            self.options.seed,
            drop_task_events=self.options.drop_task_events,
            duplicate_task_events=self.options.duplicate_task_events,
        )
        self.fargate.on_state_change = self._task_state_change
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="local-cloud"
        ).start()
        self.lambdas.prewarm()
        self._provision()
        threading.Thread(target=self._watch_executions, daemon=True, name="execution-watcher").start()
        if self.options.run_schedules:
            self.events.start_scheduler()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is None:
            return
        self.fargate.stop_all()
        deadline = time.monotonic() + 10
        while self.fargate.running_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.events.close()
        self.lambdas.close()
        close_launcher = getattr(self._launcher, "close", None)
        if close_launcher:
            close_launcher()
        self._server.shutdown()
        _IN_PROCESS_LAMBDA.pop(str(self._server.server_port), None)
        _INTERPRETER_ROLE.pop(str(self._server.server_port), None)
        if self._previous_moto_port is None:  # moto's settings are per process: leave them as found
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = self._previous_moto_port
        self._hooks.shutdown(wait=False)
        self._server = None
        moto_patches.configure(self._moto_executed)  # moto's settings are per process: leave them as found

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        return local_client(service, self.endpoint, self.stack.region)

    def _provision(self) -> None:
        s3 = self.client("s3")
        s3.create_bucket(Bucket=self.stack.bucket)
        if self.stack.versioned:
            s3.put_bucket_versioning(Bucket=self.stack.bucket, VersioningConfiguration={"Status": "Enabled"})
        sfn = self.client("stepfunctions")
        sfn.create_state_machine(
            name=self.stack.state_machine_name,
            definition=self.stack.definition,
            roleArn=f"arn:aws:iam::{self.stack.account_id}:role/{self.stack.name}-JobStateMachineRole",
            type="STANDARD",
        )
        events = self.client("events")
        for rule in self.stack.rules:
            if rule.pattern is not None:
                events.put_rule(Name=rule.name, EventPattern=json.dumps(rule.pattern))
            else:
                events.put_rule(Name=rule.name, ScheduleExpression=rule.schedule)
            target = self.stack.functions[rule.function]
            events.put_targets(Rule=rule.name, Targets=[{"Id": rule.function, "Arn": target.arn}])
        if self.stack.topics:
            sns = self.client("sns")
            for topic_arn in self.stack.topics:
                sns.create_topic(Name=topic_arn.rsplit(":", 1)[1])
            for topic_arn, protocol, endpoint in self.stack.subscriptions:
                sns.subscribe(TopicArn=topic_arn, Protocol=protocol, Endpoint=endpoint)

    # ------------------------------------------------------------------ HTTP
    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        refused = self.iam.check(environ) if self.iam is not None else None
        if refused is not None:
            return refused(environ, start_response)
        path = environ.get("PATH_INFO", "")
        if path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
            return self._lambda_invoke(Request(environ))(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(ECS_TARGET) and target[len(ECS_TARGET) :] in LOCAL_ECS_ACTIONS:
            return self._ecs(Request(environ), target[len(ECS_TARGET) :])(environ, start_response)
        if target.startswith(quotas.SERVICE_QUOTAS_TARGET):
            values = {
                quotas.SPOT_VCPU: self.options.fargate_spot_vcpu_quota,
                quotas.ON_DEMAND_VCPU: self.options.fargate_on_demand_vcpu_quota,
            }
            action = target[len(quotas.SERVICE_QUOTAS_TARGET) :]
            answer = quotas.answer(Request(environ), action, values, self.stack.region, self.stack.account_id)
            return answer(environ, start_response)
        located = self._bucket_and_key(environ) if self._is_s3(environ) else None
        refused = service_rules.refusal(environ, located[1] if located else None)  # AWS refuses, moto accepts
        if refused is not None:
            return refused(environ, start_response)
        if environ["REQUEST_METHOD"] == "GET" and self._is_s3(environ):
            answered = self._plain_get(environ)
            if answered is not None:
                return answered(environ, start_response)
        published = publish_request(environ)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        response = self._moto(environ, capture)
        if published is not None and captured.get("status") == 200:
            self.notifications.record(published)
        if (
            captured.get("status") == 200
            and environ["REQUEST_METHOD"] in ("PUT", "POST")
            and self._is_s3(environ)
            and self.options.object_events
        ):
            created = self._created_object(environ)
            if created:
                self._hooks.submit(self._object_created, *created)
        return response

    def invoke_function(self, name: str, payload: bytes, asynchronous: bool = False) -> Invocation | None:
        """Lambda's Invoke, for the HTTP endpoint and the interpreter alike: the result, or None for an
        asynchronous (Event) invocation, which runs in the background. KeyError: no such function."""
        if self.stack.function_by_name(name) is None:
            raise KeyError(name)
        service_rules.check_invoke_request(payload, asynchronous)  # Lambda's payload quotas
        if asynchronous:
            self._hooks.submit(self.lambdas.invoke, name, payload)
            return None
        result = self.lambdas.invoke(name, payload)
        oversized = service_rules.oversized_response(result.payload)
        return result if oversized is None else Invocation(oversized, "Unhandled")

    def _lambda_invoke(self, request: Request) -> Response:
        name = unquote(request.path.split("/functions/", 1)[1].rsplit("/invocations", 1)[0])
        asynchronous = request.headers.get("X-Amz-Invocation-Type") == "Event"
        try:
            result = self.invoke_function(name, request.get_data(), asynchronous)
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

    def _ecs(self, request: Request, action: str) -> Response:
        try:
            body = json.loads(request.get_data() or b"{}")
            result = self.fargate.handle(action, body)
            return Response(
                json.dumps(result),
                status=200,
                content_type="application/x-amz-json-1.1",
                headers={"x-amzn-RequestId": str(uuid.uuid4())},
            )
        except EcsError as error:
            body = {"__type": error.code, "message": str(error)}
            return Response(
                json.dumps(body),
                status=error.status,
                content_type="application/x-amz-json-1.1",
                headers={"x-amzn-RequestId": str(uuid.uuid4())},
            )

    # ------------------------------------------------------------------ S3 → EventBridge
    def _created_object(self, environ: dict[str, Any]) -> tuple[str, str, str] | None:
        """(bucket, key, reason) when this successful request created an object."""
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        method = environ["REQUEST_METHOD"]
        if method == "PUT":
            if query:  # parts, tagging, acl, versioning...: not a new object
                return None
            reason = "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject"
        elif "uploadId" in query and "uploads" not in query:
            reason = "CompleteMultipartUpload"
        else:
            return None
        located = self._bucket_and_key(environ)
        return (*located, reason) if located else None

    @staticmethod
    def _is_s3(environ: dict[str, Any]) -> bool:
        return "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", "")

    @staticmethod
    def _bucket_and_key(environ: dict[str, Any]) -> tuple[str, str] | None:
        """The (decoded) bucket and key an S3 request names, path-style or virtual-host style."""
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
        raw_path = raw_path.split("?", 1)[0]
        bucket = virtual_hosted_bucket(environ.get("HTTP_HOST", "").split(":")[0])
        if bucket is not None:
            key = raw_path.lstrip("/")
        else:
            parts = raw_path.lstrip("/").split("/", 1)
            if len(parts) < 2 or not parts[1]:
                return None
            bucket, key = parts
        return unquote(bucket), unquote(key)

    def _plain_get(self, environ: dict[str, Any]) -> Response | None:
        """A plain GetObject (whole object, or a `bytes=a-b` / `bytes=a-` range, optionally of a
        version) answered from moto's stored object, as moto's own handler answers it.

        Two costs of moto, measured: it reads (and copies) the whole object for every GET and then
        slices it, so the shards of a 500 MB file cost seconds each; and its request routing costs a
        few ms per GET, several GETs per item. Anything else (conditions, SSE-C, CORS, parts,
        response-header overrides, other storage classes, missing keys, unsatisfiable ranges) is left
        to moto, which answers exactly as S3 does."""
        from moto.s3.models import s3_backends

        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        requested_range = environ.get("HTTP_RANGE", "").strip()
        match = RANGE.fullmatch(requested_range) if requested_range else None
        located = self._bucket_and_key(environ)
        if (
            (requested_range and not match)
            or not located
            or not located[1]
            or set(query) - {"versionId", "x-id"}
            or "HTTP_ORIGIN" in environ
            or any(
                name.startswith(("HTTP_IF_", "HTTP_X_AMZ_SERVER_SIDE_ENCRYPTION_CUSTOMER"))
                for name in environ
            )
        ):
            return None
        version = query.get("versionId", [None])[0]
        try:
            key = s3_backends[self.stack.account_id]["aws"].get_object(*located, version_id=version)
        except Exception:  # noqa: BLE001 - moto will answer with the proper error
            return None
        if (
            key is None
            or getattr(key, "is_delete_marker", False)
            or key.storage_class not in (None, "STANDARD")
        ):
            return None
        headers = {name: value for name, value in key.response_dict.items() if value is not None}
        if key.version_id != "null":
            headers["x-amz-version-id"] = key.version_id
        # a whole object's checksum only: a range is not what it was computed over
        if match is None and environ.get("HTTP_X_AMZ_CHECKSUM_MODE") == "ENABLED" and key.checksum_algorithm:
            checksum = key.checksum_value
            if key.checksum_type == "COMPOSITE":
                checksum = f"{key.checksum_value}-{key.checksum_parts}"
            headers[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = checksum
            if key.checksum_type:
                headers["x-amz-checksum-type"] = key.checksum_type
        headers.update(key.metadata)
        headers["accept-ranges"] = "bytes"
        headers["x-amz-request-id"] = uuid.uuid4().hex
        if match is None:
            with key.lock:
                key._value_buffer.seek(0)
                body = key._value_buffer.read()
            headers["content-length"] = str(len(body))
            return Response(body, status=200, headers=headers)
        start = int(match.group(1))
        if start >= key.size:
            return None
        end = min(int(match.group(2)) if match.group(2) else key.size - 1, key.size - 1)
        with key.lock:
            key._value_buffer.seek(start)
            body = key._value_buffer.read(end - start + 1)
        headers["content-length"] = str(len(body))
        headers["content-range"] = f"bytes {start}-{end}/{key.size}"
        headers.setdefault("content-type", "binary/octet-stream")
        return Response(body, status=206, headers=headers)

    def _object_created(self, bucket: str, key: str, reason: str) -> None:
        from moto.s3.models import s3_backends

        try:
            obj = s3_backends[self.stack.account_id]["aws"].get_object(bucket, key)
        except Exception:  # deleted meanwhile
            return
        if obj is None:
            return
        detail = {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,  # verbatim, as moto and (by most accounts) AWS send it
                "size": obj.size,
                "etag": obj.etag.strip('"'),
                **({"version-id": obj.version_id} if obj.version_id and obj.version_id != "null" else {}),
                "sequencer": f"{int(time.time() * 1e6):016X}",
            },
            "request-id": "local",
            "requester": self.stack.account_id,
            "source-ip-address": "127.0.0.1",
            "reason": reason,
        }
        self.events.put(envelope(self.stack, "aws.s3", "Object Created", detail, [f"arn:aws:s3:::{bucket}"]))

    # ------------------------------------------------------------------ ECS → EventBridge
    def _task_state_change(self, detail: dict[str, Any]) -> None:
        if self._stop.is_set():
            # The local cloud is shutting down and stops its own tasks: no Lambda instance is left to
            # resume an item with their stop events (delivering them only raced the instances' exit).
            return
        self.events.put(envelope(self.stack, "aws.ecs", TASK_STATE_CHANGE, detail, [detail["taskArn"]]))

    # ------------------------------------------------------------------ Step Functions → EventBridge
    def _watch_executions(self) -> None:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[self.stack.account_id][self.stack.region]
        while not self._stop.wait(0.2):
            try:
                executions: list[Any] = [
                    e for sm in list(backend.state_machines) for e in list(sm.executions)
                ]
                for execution in executions:
                    status = str(getattr(execution.exec_status, "value", execution.exec_status))
                    if status == "None" or self._seen.get(execution.exec_arn) == status:
                        continue
                    self._seen[execution.exec_arn] = status
                    self.events.put(self._status_event(execution, status))
            except Exception:
                log.exception("execution watcher")

    def _status_event(self, execution: Any, status: str) -> dict[str, Any]:
        def millis(moment: Any) -> int | None:
            return int(moment.timestamp() * 1000) if moment else None

        raw_input = json.dumps(execution.input_data)
        include_input = len(raw_input) <= MAX_EVENT_INPUT
        output = execution.output if status == "SUCCEEDED" else None
        if output is not None and not isinstance(output, str):
            output = json.dumps(output)
        detail = {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "startDate": millis(execution.start_date),
            "stopDate": millis(execution.stop_date) if status in TERMINAL else None,
            "input": raw_input if include_input else None,
            "output": output,
            "inputDetails": {"included": include_input},
            "outputDetails": {"included": output is not None} if status == "SUCCEEDED" else None,
            "error": execution.error if status in TERMINAL else None,
            "cause": execution.cause if status in TERMINAL else None,
        }
        return envelope(self.stack, "aws.states", STATUS_CHANGE, detail, [execution.exec_arn])


def log_to_stderr(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
