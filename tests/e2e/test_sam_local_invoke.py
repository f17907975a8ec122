"""`sam local invoke` for real: the README's commands (between the sam-local-invoke markers), run as
written - the offline Lambda-like image, `make build`'s python3.13 artifacts, the local cloud served on
all interfaces, an upload and its event piped into SAM, which runs StartJob in its Lambda container
(Runtime Interface Emulator) against the local cloud.

Needs Docker: skipped without it, unless SPOTMAP_REQUIRE_DOCKER=1, which makes a missing Docker fail.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spotmap.cloud import local_client
from spotmap.principals import credentials_for
from tests.conftest import ROOT
from tests.e2e.conftest import require_docker

README = ROOT / "README.md"
BEGIN, END = "<!-- sam-local-invoke:begin -->", "<!-- sam-local-invoke:end -->"
README_PORT = "4566"
SERVE_STARTUP_SECONDS = 60
INVOKE_TIMEOUT_SECONDS = 300


def readme_commands() -> list[str]:
    """The commands of the README's sam-local-invoke block, one per shell line (continuations joined)."""
    readme = README.read_text(encoding="utf-8")
    section = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "the sam-local-invoke section holds a bash block"
    joined = re.sub(r"\\\n\s*", " ", match.group(1))
    lines = [line.strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@dataclass(frozen=True)
class Commands:
    build_image: str
    build_artifacts: str
    serve: str
    credentials: str
    upload_and_invoke: str


def readme_steps() -> Commands:
    commands = readme_commands()
    assert len(commands) == 5, commands
    build_image, build_artifacts, serve, credentials, upload_and_invoke = commands
    # the shape this test relies on: builds, the server in the background, then the invocation
    assert build_image == "tools/images/build lambda"
    assert build_artifacts == "make build FUNCTIONS=StartJobFunction"
    assert serve.startswith(".venv/bin/spotmap local serve ") and serve.endswith(" &")
    # the function's own role's local credentials, as Lambda gives a function its role's
    role = credentials_for("StartJobFunctionRole").as_env()
    exported = dict(word.split("=", 1) for word in shlex.split(credentials.removeprefix("export ")))
    assert {name: exported.get(name) for name in role} == role, credentials
    assert "| .venv/bin/sam local invoke StartJobFunction -e - " in upload_and_invoke
    return Commands(build_image, build_artifacts, serve, credentials, upload_and_invoke)


def shell_env() -> dict[str, str]:
    """The test process's environment without its AWS settings: the README's `export` line gives them."""
    return {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}


def run_step(command: str, timeout: float) -> None:
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=ROOT,
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"`{command}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    print(f"`{command}`: {time.monotonic() - started:.1f} s", file=sys.stderr)


@pytest.fixture(scope="session")
def sam_ready() -> Commands:
    """Docker, the image and the artifacts, once per session: the README's first two commands."""
    require_docker()
    if not (ROOT / ".venv/bin/sam").exists():
        pytest.fail("the SAM CLI is not installed in .venv (make install)")
    steps = readme_steps()
    run_step(steps.build_image, timeout=900)  # cached: seconds once the images exist
    run_step(steps.build_artifacts, timeout=600)
    return steps


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    endpoint: str
    upload_and_invoke: str
    credentials: str


@pytest.fixture
def served(sam_ready: Commands, tmp_path: Path) -> Iterator[Served]:
    """The README's `spotmap local serve ... &`, on 4566 when it is free; on another port otherwise,
    with that port in the commands and in a copy of events/env.json."""
    upload_and_invoke = sam_ready.upload_and_invoke
    serve = sam_ready.serve.removesuffix("&").strip()
    port = README_PORT
    if not port_is_free(int(README_PORT)):
        port = str(free_port())
        env_copy = tmp_path / "env.json"
        env_copy.write_text(
            (ROOT / "events/env.json").read_text().replace(f":{README_PORT}", f":{port}"), encoding="utf-8"
        )
        serve = serve.replace(f"--port {README_PORT}", f"--port {port}")
        upload_and_invoke = upload_and_invoke.replace(f":{README_PORT}", f":{port}").replace(
            "--env-vars events/env.json", f"--env-vars {shlex.quote(str(env_copy))}"
        )
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        shlex.split(serve), cwd=ROOT, env=shell_env(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        for _ in range(SERVE_STARTUP_SECONDS * 10):
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", int(port))) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"spotmap local serve did not listen on {port} within {SERVE_STARTUP_SECONDS} s")
        yield Served(f"http://127.0.0.1:{port}", upload_and_invoke, sam_ready.credentials)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()


def test_the_readme_block_is_what_this_module_runs() -> None:
    # GIVEN the README's sam-local-invoke block (checked without Docker too)
    steps = readme_steps()
    # THEN the server lets the container reach it and leaves starting the job to the container
    assert "--host 0.0.0.0" in steps.serve and "--no-object-events" in steps.serve
    assert "--add-host host.docker.internal:host-gateway" in steps.upload_and_invoke
    assert "--invoke-image spotmap/lambda-python:3.13 --skip-pull-image" in steps.upload_and_invoke


def test_start_job_in_sams_lambda_container_starts_the_job_on_the_local_cloud(
    served: Served, tmp_path: Path
) -> None:
    # GIVEN a CSV (the README's data.csv) and the local cloud serving, uploads raising no event
    data = tmp_path / "data.csv"
    data.write_text("region,amount\nnorth,10\nsouth,32\neast,5\n", encoding="utf-8")
    command = served.upload_and_invoke.replace("upload data.csv ", f"upload {shlex.quote(str(data))} ")
    assert command != served.upload_and_invoke

    # WHEN the README's upload is piped into `sam local invoke StartJobFunction` (SAM's container)
    started = time.monotonic()
    invoked = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f"{served.credentials}\n{command}"],
        cwd=ROOT,
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=INVOKE_TIMEOUT_SECONDS,
        check=False,
    )
    print(f"upload | sam local invoke: {time.monotonic() - started:.1f} s", file=sys.stderr)
    assert invoked.returncode == 0, invoked.stderr[-4000:]

    # THEN the handler answered from inside the container: one job started, not a duplicate
    answer: dict[str, Any] = json.loads(invoked.stdout.strip().splitlines()[-1])
    assert "jobs" in answer, f"sam local invoke answered {answer}; stderr: {invoked.stderr[-3000:]}"
    (job,) = answer["jobs"]
    assert job["key"] == "input/sales 2024 Q1.csv"
    assert job["duplicate"] is False and job["rejected"] is False
    assert job["items"] >= 1
    assert "Invoking start_job.app.lambda_handler (python3.13)" in invoked.stderr

    # AND the local cloud holds what it did: the job's descriptor for this very upload, its items
    s3 = local_client("s3", served.endpoint, "us-east-1")
    sfn = local_client("stepfunctions", served.endpoint, "us-east-1")
    bucket = "spotmap-jobbucket"
    upload = s3.head_object(Bucket=bucket, Key=job["key"])
    descriptor = json.loads(s3.get_object(Bucket=bucket, Key=f"jobs/{job['job_id']}/job.json")["Body"].read())
    assert descriptor["input"]["version_id"] == upload["VersionId"]
    assert descriptor["input"]["size"] == data.stat().st_size
    items = json.loads(s3.get_object(Bucket=bucket, Key=f"jobs/{job['job_id']}/items.json")["Body"].read())
    assert len(items) == job["items"]

    # AND the one execution of the state machine is the one the container started (the upload alone
    # started nothing)
    execution = sfn.describe_execution(executionArn=job["execution_arn"])
    assert execution["name"] == job["job_id"]
    executions = sfn.list_executions(stateMachineArn=execution["stateMachineArn"])["executions"]
    assert [e["executionArn"] for e in executions] == [job["execution_arn"]]
