"""The local cloud: one HTTP endpoint on 127.0.0.1 where moto serves S3, Step Functions (executing
our real ASL) and EventBridge, local Lambda instances serve Invoke with our handlers, and a local
Fargate serves RunTask/DescribeTasks/StopTask/ListTasks with our worker. Everything is provisioned
from template.yaml.

This module is the composition root: it starts the parts and routes each request to its part.
Lambda's Invoke is spotmap/lambda_invoke.py's, ECS requests are parsed in spotmap/ecs_requests.py and
served by spotmap/fargate.py, S3 requests the endpoint reads itself are spotmap/s3_requests.py's,
the services' EventBridge events spotmap/service_events.py's, and moto's patches
spotmap/moto_patches.py's."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import boto3
from botocore.config import Config
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from spotmap import ecs_requests, lambda_invoke, moto_patches, quotas, s3_requests, service_rules
from spotmap.access import LocalIam
from spotmap.events import LocalEventBus
from spotmap.fargate import EcsError, Faults, LocalFargate, WorkerLauncher
from spotmap.forkserver import ForkServerLauncher
from spotmap.lambda_invoke import InProcessLambdaClient, LambdaInvoke
from spotmap.lambdas import Invocation, LocalLambda
from spotmap.launchers import SubprocessLauncher
from spotmap.notifications import NotificationLog, publish_request
from spotmap.principals import ADMIN_CREDENTIALS, credentials_for
from spotmap.s3_requests import RANGE
from spotmap.service_events import MAX_EVENT_INPUT, TERMINAL, ServiceEvents
from spotmap.template import Stack, load_stack

# The local cloud is composed here from its parts; the names they had here are still importable from
# here: the Lambda Invoke paths (spotmap/lambda_invoke.py), the S3 requests and fast path
# (spotmap/s3_requests.py), the services' events (spotmap/service_events.py), the local Fargate.
__all__ = [
    "CREDENTIALS",
    "MAX_EVENT_INPUT",
    "RANGE",
    "TERMINAL",
    "CloudOptions",
    "EcsError",
    "Faults",
    "InProcessLambdaClient",
    "LocalCloud",
    "WorkerLauncher",
    "local_client",
    "log_to_stderr",
    "project_root",
]

log = logging.getLogger("spotmap.cloud")

CREDENTIALS = ADMIN_CREDENTIALS
ECS_TARGET = ecs_requests.TARGET
LOCAL_ECS_ACTIONS = ecs_requests.ACTIONS


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
        self.lambda_invoke = LambdaInvoke(self.stack, self.lambdas, self._hooks)
        _IN_PROCESS_LAMBDA[str(port)] = InProcessLambdaClient(self.lambda_invoke, self.iam)
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
        self.service_events = ServiceEvents(self.stack, self.events, self._stop)
        self.fargate.on_state_change = self.service_events.task_state_change
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="local-cloud"
        ).start()
        self.lambdas.prewarm()
        self._provision()
        threading.Thread(
            target=self.service_events.watch_executions, daemon=True, name="execution-watcher"
        ).start()
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
        if lambda_invoke.is_invoke_path(environ.get("PATH_INFO", "")):
            return self.lambda_invoke.respond(Request(environ))(environ, start_response)
        ecs_action = ecs_requests.action_of(environ)
        if ecs_action is not None:
            answer = ecs_requests.respond(self.fargate.handle, ecs_action, Request(environ))
            return answer(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(quotas.SERVICE_QUOTAS_TARGET):
            values = {
                quotas.SPOT_VCPU: self.options.fargate_spot_vcpu_quota,
                quotas.ON_DEMAND_VCPU: self.options.fargate_on_demand_vcpu_quota,
            }
            action = target[len(quotas.SERVICE_QUOTAS_TARGET) :]
            answer = quotas.answer(Request(environ), action, values, self.stack.region, self.stack.account_id)
            return answer(environ, start_response)
        s3 = s3_requests.is_s3(environ)
        located = s3_requests.bucket_and_key(environ) if s3 else None
        refused = service_rules.refusal(environ, located[1] if located else None)  # AWS refuses, moto accepts
        if refused is not None:
            return refused(environ, start_response)
        if environ["REQUEST_METHOD"] == "GET" and s3:
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
            and s3
            and self.options.object_events
        ):
            created = s3_requests.created_object(environ)
            if created:
                self._hooks.submit(self.service_events.object_created, *created)
        return response

    def invoke_function(self, name: str, payload: bytes, asynchronous: bool = False) -> Invocation | None:
        """Lambda's Invoke, for the HTTP endpoint and the interpreter alike: the result, or None for an
        asynchronous (Event) invocation, which runs in the background. KeyError: no such function."""
        return self.lambda_invoke.invoke(name, payload, asynchronous)

    def _plain_get(self, environ: dict[str, Any]) -> Response | None:
        """The S3 fast path (tests compare it with moto's own answers by patching it out)."""
        return s3_requests.plain_get(environ, self.stack.account_id)


def log_to_stderr(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
