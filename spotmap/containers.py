"""Local Fargate tasks as Docker containers of the worker image (`spotmap local run --runtime docker`).

Each task runs the worker image exactly as the task definition in template.yaml says: its User, a
read-only root file system, dropped (and added) capabilities, Privileged, one fresh named volume per
task-definition volume mounted at its MountPoints, its Environment plus RunTask's container overrides,
StopTimeout, and the task's cpu/memory as --cpus/--memory. What AWS refuses at run time (a directory
the user cannot write, a write to the root file system, a capability the program needs) fails here too.

ECS stops a task by sending SIGTERM and, after the container's stopTimeout, SIGKILL: that is
`docker stop -t <StopTimeout>`. A crash is `docker kill`. The exit code is the container's (143, 137).

A task gets its role's credentials the way ECS gives them: from the container credentials endpoint,
which boto3 finds through AWS_CONTAINER_CREDENTIALS_FULL_URI by itself; no access key is put in the
container's environment. ECS serves the endpoint on 169.254.170.2
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html), and botocore only
accepts a plain-http endpoint on that address, a few other link-local ones or loopback
(botocore.utils.ContainerMetadataFetcher): the address is added to the docker0 bridge (we are root) and
a small server answers there. The local cloud's API is served to the containers on the bridge's gateway
address, never on 0.0.0.0.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from spotmap.principals import RoleCredentials, credentials_for
from spotmap.template import Stack, TaskDefinitionSpec

DEFAULT_IMAGE = "spotmap-worker:local"
ECS_CREDENTIALS_ADDRESS = "169.254.170.2"
BRIDGE_NETWORK = "bridge"
BRIDGE_INTERFACE = "docker0"
LABEL_CLOUD = "spotmap.local-cloud"  # every container and volume of one local cloud carries its id
LABEL_TASK = "spotmap.task"
DOCKER_TIMEOUT = 60.0  # seconds for one docker CLI call (image present: create/start take ~0.3 s)
BUILD_HINT = "tools/images/build worker"


class DockerUnavailable(RuntimeError):
    """Docker cannot run the worker image here: the message says what is missing and what to do."""


def _docker(*args: str, env: dict[str, str] | None = None, timeout: float | None = DOCKER_TIMEOUT) -> str:
    """Run a docker CLI command; its stdout, or RuntimeError with its stderr."""
    try:
        done = subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as error:
        raise DockerUnavailable(
            "Docker is not available (no `docker` command): install and start it "
            "(tools/images/ensure-docker), or use the default --runtime process"
        ) from error
    if done.returncode != 0:
        raise RuntimeError(f"docker {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def check_docker(image: str) -> None:
    """DockerUnavailable with a one-line reason unless the daemon answers and the image is there."""
    try:
        _docker("version", "--format", "{{.Server.Version}}", timeout=15)
    except DockerUnavailable:
        raise
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        detail = str(error).splitlines()[-1] if str(error) else "no answer"
        raise DockerUnavailable(
            f"Docker is not available ({detail}): start it (tools/images/ensure-docker), "
            "or use the default --runtime process"
        ) from error
    try:
        _docker("image", "inspect", "--format", "{{.Id}}", image, timeout=15)
    except RuntimeError as error:
        raise DockerUnavailable(
            f"the worker image {image} is missing: build it with `{BUILD_HINT}`"
        ) from error


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge (where containers reach the host): the network's
    IPAM gateway, or else (the default bridge often lists none) the bridge interface's own address."""
    gateway = _docker(
        "network", "inspect", BRIDGE_NETWORK, "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"
    )
    if gateway:
        return gateway
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", BRIDGE_INTERFACE],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in shown.stdout.splitlines():
        fields = line.split()
        address = fields[fields.index("inet") + 1].split("/")[0] if "inet" in fields else ""
        if address and address != ECS_CREDENTIALS_ADDRESS:
            return address
    raise DockerUnavailable(f"Docker's {BRIDGE_NETWORK} network has no gateway address on {BRIDGE_INTERFACE}")


def ensure_credentials_address(interface: str = BRIDGE_INTERFACE) -> None:
    """Give the bridge the ECS credentials endpoint's address (idempotent; shared by every local cloud
    of this machine, so it is left in place)."""
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", interface], capture_output=True, text=True, check=False
    )
    if f" {ECS_CREDENTIALS_ADDRESS}/" in shown.stdout:
        return
    added = subprocess.run(
        ["ip", "addr", "add", f"{ECS_CREDENTIALS_ADDRESS}/32", "dev", interface],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0 and "File exists" not in added.stderr:
        raise DockerUnavailable(
            f"cannot add {ECS_CREDENTIALS_ADDRESS} (the ECS credentials endpoint) to {interface}: "
            f"{added.stderr.strip()} (needs root)"
        )


class CredentialsEndpoint:
    """The container credentials endpoint: GET /v2/credentials/<id> answers the task role's temporary
    credentials in the shape ECS's agent does (AccessKeyId, SecretAccessKey, Token, Expiration, RoleArn).
    Each task has its own unguessable id; an unknown id is a 404."""

    def __init__(self, address: str = ECS_CREDENTIALS_ADDRESS):
        self._tasks: dict[str, RoleCredentials] = {}
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                token = self.path.rsplit("/", 1)[-1] if self.path.startswith("/v2/credentials/") else ""
                with endpoint._lock:
                    credentials = endpoint._tasks.get(token)
                if credentials is None:
                    self.send_error(404, "Not Found")
                    return
                expiration = (datetime.now(UTC) + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
                body = json.dumps(credentials.as_container_credentials(expiration)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        self._server = ThreadingHTTPServer((address, 0), Handler)
        self._server.daemon_threads = True
        self.address = address
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True, name="credentials-endpoint").start()

    def register(self, credentials: RoleCredentials) -> str:
        """The FULL_URI for one task's credentials."""
        token = uuid.uuid4().hex
        with self._lock:
            self._tasks[token] = credentials
        return f"http://{self.address}:{self.port}/v2/credentials/{token}"

    def forget(self, uri: str) -> None:
        with self._lock:
            self._tasks.pop(uri.rsplit("/", 1)[-1], None)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class DockerContainer:
    """One running task container: waits for it, stops/kills it, then removes it and its volumes."""

    def __init__(
        self,
        container_id: str,
        volumes: list[str],
        logs: subprocess.Popen[bytes],
        stop_timeout: int,
        on_exit: Callable[[], None],
    ):
        self.container_id = container_id
        self.volumes = volumes
        self._logs = logs
        self.pid = logs.pid
        self.stop_timeout = stop_timeout
        self._on_exit = on_exit
        self._done = threading.Event()

    def wait(self) -> int:
        try:
            code = int(_docker("wait", self.container_id, timeout=None))  # as long as the task runs
        except (RuntimeError, ValueError):  # removed under us (the cloud is stopping): as if killed
            code = 128 + signal.SIGKILL
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._logs.wait(timeout=10)  # the rest of the log, then the follower ends by itself
            if self._logs.poll() is None:
                self._logs.kill()
            self._done.set()
            self._remove()
        return code

    def signal(self, signum: int) -> None:
        """SIGTERM: ECS's stop (docker stop -t StopTimeout: SIGTERM, then SIGKILL); SIGKILL: docker kill."""
        if self._done.is_set():
            return
        if signum == signal.SIGTERM:
            command = ["stop", "-t", str(self.stop_timeout), self.container_id]
        else:
            command = ["kill", "--signal", signal.Signals(signum).name, self.container_id]
        threading.Thread(target=self._quietly, args=(command,), daemon=True).start()

    @staticmethod
    def _quietly(command: list[str]) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _docker(*command, timeout=None)

    def _remove(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _docker("rm", "--force", "--volumes", self.container_id)
        for volume in self.volumes:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _docker("volume", "rm", "--force", volume)
        self._on_exit()


def docker_run_args(
    definition: TaskDefinitionSpec, task_id: str, cloud_id: str, volumes: dict[str, str]
) -> list[str]:
    """`docker run` options that apply the task definition's (first) container settings; `volumes` maps
    each task-definition volume to the Docker volume created for this task."""
    spec = definition.containers[0]
    args = ["--name", f"spotmap-task-{task_id}", "--network", BRIDGE_NETWORK]
    args += ["--label", f"{LABEL_CLOUD}={cloud_id}", "--label", f"{LABEL_TASK}={task_id}"]
    if spec.user:
        args += ["--user", spec.user]
    if spec.readonly_root_filesystem:
        args.append("--read-only")
    # Fargate refuses what a Docker host would allow: privileged containers, and adding any capability
    # but SYS_PTRACE (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_KernelCapabilities.html,
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html "privileged")
    if spec.privileged:
        raise RuntimeError("privileged is not supported for tasks run on Fargate")
    refused = [name for name in spec.capabilities_add if name != "SYS_PTRACE"]
    if refused:
        raise RuntimeError(f"Fargate only supports adding SYS_PTRACE, not {', '.join(refused)}")
    for capability in spec.capabilities_drop:
        args += ["--cap-drop", capability]
    for capability in spec.capabilities_add:
        args += ["--cap-add", capability]
    args += ["--stop-timeout", str(spec.stop_timeout), "--stop-signal", "SIGTERM"]
    # ECS ignores a HEALTHCHECK baked into the image; only a task definition's healthCheck runs
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/healthcheck.html
    args.append("--no-healthcheck")
    # task size: 1024 CPU units are one vCPU (at most this machine's); memory in MiB is a hard limit
    args += ["--cpus", f"{min(int(definition.cpu) / 1024, os.cpu_count() or 1):g}"]
    args += ["--memory", f"{int(definition.memory)}m"]
    for mount in spec.mount_points:
        if mount.source_volume not in volumes:
            raise RuntimeError(
                f"the container's mount point names volume {mount.source_volume!r}, "
                "which the task definition does not declare"
            )
        option = f"type=volume,source={volumes[mount.source_volume]},target={mount.container_path}"
        args += ["--mount", option + (",readonly" if mount.read_only else "")]
    return args


class DockerLauncher:
    """Starts each task as a container of `image`, configured from the stack's task definition.

    `wsgi_app` is the local cloud's endpoint: it is served on the bridge's gateway address too, so that
    containers reach it (task_env's AWS_ENDPOINT_URL)."""

    def __init__(self, stack: Stack, image: str, wsgi_app: Callable[..., Any]):
        check_docker(image)
        ensure_credentials_address()
        self.stack = stack
        self.image = image
        self.cloud_id = uuid.uuid4().hex[:12]
        self.container = stack.task_definition.containers[0]
        self.gateway = bridge_gateway()
        self.credentials = CredentialsEndpoint()
        self._server = make_server(self.gateway, 0, wsgi_app, threaded=True)
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name="local-cloud-bridge",
        ).start()
        self.endpoint = f"http://{self.gateway}:{self._server.server_port}"
        role = stack.task_definition.task_role
        self.role_credentials = credentials_for(role) if role else None

    @property
    def task_env(self) -> dict[str, str]:
        """What every task's container gets besides the task definition's Environment (as ECS sets
        AWS_REGION and AWS_EXECUTION_ENV), plus the local cloud's endpoint."""
        return {
            "AWS_REGION": self.stack.region,
            "AWS_DEFAULT_REGION": self.stack.region,
            "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def start(self, env: dict[str, str], log_path: Path) -> DockerContainer:
        task_arn = env.get("ECS_CONTAINER_METADATA_TASK_ARN", "")
        task_id = task_arn.rsplit("/", 1)[-1] or uuid.uuid4().hex
        container_env = dict(env)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            container_env.pop(name, None)  # a task's credentials come from its role, never the env
        credentials_uri = None
        if self.role_credentials is not None:
            credentials_uri = self.credentials.register(self.role_credentials)
            container_env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = credentials_uri
        labels = ["--label", f"{LABEL_CLOUD}={self.cloud_id}", "--label", f"{LABEL_TASK}={task_id}"]
        volumes: dict[str, str] = {}
        try:
            for name in self.stack.task_definition.volumes:
                volume = f"spotmap-{task_id}-{name}"
                _docker("volume", "create", *labels, volume)
                volumes[name] = volume
            # values travel in the docker CLI's environment (`-e NAME`): never on a command line, and
            # multi-line values (ITEM, JOB) survive
            cli_env = {**os.environ, **container_env}
            names = [arg for name in sorted(container_env) for arg in ("--env", name)]
            container_id = _docker(
                "run",
                "--detach",
                *docker_run_args(self.stack.task_definition, task_id, self.cloud_id, volumes),
                *names,
                self.image,
                env=cli_env,
            )
        except Exception:
            for volume in volumes.values():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    _docker("volume", "rm", "--force", volume)
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _docker("rm", "--force", f"spotmap-task-{task_id}")
            if credentials_uri:
                self.credentials.forget(credentials_uri)
            raise
        with log_path.open("ab") as log_file:
            logs = subprocess.Popen(
                ["docker", "logs", "--follow", container_id],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

        def forget() -> None:
            if credentials_uri:
                self.credentials.forget(credentials_uri)

        return DockerContainer(
            container_id, list(volumes.values()), logs, self.container.stop_timeout, forget
        )

    def close(self) -> None:
        """Remove every container and volume this local cloud started, then stop its listeners."""
        label = f"label={LABEL_CLOUD}={self.cloud_id}"
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            containers = _docker("ps", "--all", "--quiet", "--filter", label).split()
            if containers:
                _docker("rm", "--force", "--volumes", *containers)
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            volumes = _docker("volume", "ls", "--quiet", "--filter", label).split()
            if volumes:
                _docker("volume", "rm", "--force", *volumes)
        self._server.shutdown()
        self.credentials.close()
