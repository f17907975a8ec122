"""The local Fargate's container runtime (`--runtime docker`): the real worker image, started exactly as
the task definition says, refuses what Fargate refuses and stops as ECS stops a task.

Docker is required when SPOTMAP_REQUIRE_DOCKER=1 (make test): then a missing Docker fails these tests
instead of skipping them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from spotmap.cloud import CloudOptions, LocalCloud, project_root
from spotmap.containers import DEFAULT_IMAGE, LABEL_TASK
from spotmap.jobs import JobRunner
from spotmap.principals import credentials_for
from spotmap.template import load_stack
from tests.e2e.conftest import assert_profile_equal, profile_csv, require_docker, write_csv

BUILD_TIMEOUT_SECONDS = 900


@pytest.fixture(scope="session")
def worker_image() -> str:
    """The worker image as tools/images/build makes it (cached: rebuilt only when its inputs changed)."""
    require_docker()
    root = project_root()
    subprocess.run(
        [str(root / "tools/images/build"), "worker"], cwd=root, check=True, timeout=BUILD_TIMEOUT_SECONDS
    )
    return DEFAULT_IMAGE


def _manifest(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_a_csv_job_succeeds_in_the_worker_image_run_as_the_task_definition_says(
    tmp_path: Path, local_run, worker_image: str
) -> None:
    # GIVEN a small CSV, and the worker image run as user 10001 with a read-only root file system and a
    # fresh `scratch` volume at /scratch (as Fargate runs it: bug 1 made every item exit 2 there)
    data_file = write_csv(tmp_path / "orders.csv", rows=300, seed=5)

    # WHEN it runs on the local cloud with the container runtime
    run = local_run(data_file, extra=["--runtime", "docker", "--image", worker_image])

    # THEN the job succeeds with the profile of the whole file
    (summary,) = run.summaries
    assert summary["status"] == "SUCCEEDED", summary.get("failures")
    assert run.exit_code == 0
    assert_profile_equal(summary["result"], profile_csv(data_file.read_bytes()))


def test_the_worker_sees_the_task_definitions_user_read_only_root_capabilities_and_role(
    tmp_path: Path, local_run, worker_image: str
) -> None:
    # GIVEN a command that reports what the container lets it see and do
    probe = "\n".join(
        [
            "import errno, json, os, boto3",
            "try:",
            "    open('/probe', 'w')",
            "    root = 'writable'",
            "except OSError as error:",
            "    root = errno.errorcode[error.errno]",
            "caps = [line.split()[1] for line in open('/proc/self/status') if line.startswith('CapEff')]",
            "creds = boto3.Session().get_credentials()",
            "print(json.dumps({'uid': os.getuid(), 'root': root, 'effective_capabilities': caps[0],",
            "    'access_key_in_environment': 'AWS_ACCESS_KEY_ID' in os.environ,",
            "    'credentials_from': creds.method, 'access_key_id': creds.access_key}))",
        ]
    )
    manifest = _manifest(
        tmp_path / "probe.job.json",
        {"processor": "command", "params": {"command": ["python3", "-c", probe]}, "source": {"count": 1}},
    )

    # WHEN it runs in the worker image on the container runtime
    run = local_run(manifest, extra=["--runtime", "docker", "--image", worker_image])

    # THEN it ran as the task definition's user, on a read-only root, with every capability dropped, and
    # with the task role's credentials from the container credentials endpoint (none in its environment)
    (summary,) = run.summaries
    assert summary["status"] == "SUCCEEDED", summary.get("failures")
    task_role = load_stack(project_root()).task_definition.task_role
    assert task_role is not None
    assert summary["result"] == {
        "uid": 10001,
        "root": "EROFS",
        "effective_capabilities": "0000000000000000",
        "access_key_in_environment": False,
        "credentials_from": "container-role",
        "access_key_id": credentials_for(task_role).access_key_id,
    }


def _running_task_with_log_line(cloud: LocalCloud, text: str, timeout: float) -> str:
    """The ARN of a RUNNING task whose log has a line containing `text` (bounded wait)."""
    ecs = cloud.client("ecs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for arn in ecs.list_tasks(cluster=cloud.stack.cluster_arn)["taskArns"]:
            log_path = cloud.task_log_dir / f"{arn.rsplit('/', 1)[-1]}.log"
            if log_path.exists() and text in log_path.read_text(encoding="utf-8", errors="replace"):
                return arn
        time.sleep(0.2)
    raise AssertionError(f"no running task logged {text!r} within {timeout} s")


def test_a_spot_interruption_is_a_docker_stop_and_the_item_is_relaunched(
    tmp_path: Path, worker_image: str
) -> None:
    # GIVEN a one-item job whose command says it started, then works for a few seconds
    manifest = _manifest(
        tmp_path / "slow.job.json",
        {
            "processor": "command",
            "params": {
                "command": [
                    "python3",
                    "-c",
                    "import json, time; print('working', flush=True); time.sleep(3); "
                    "print(json.dumps({'runs': {'$sum': 1}}))",
                ]
            },
            "source": {"count": 1},
        },
    )
    options = CloudOptions(runtime="docker", image=worker_image, state_dir=tmp_path / "state")
    with LocalCloud(options=options) as cloud:
        runner = JobRunner(cloud, progress=None)
        watch = runner.submit(manifest)
        arn = _running_task_with_log_line(cloud, "working", timeout=30)
        container = subprocess.run(
            ["docker", "ps", "--quiet", "--filter", f"label={LABEL_TASK}={arn.rsplit('/', 1)[-1]}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        stop_timeout = json.loads(
            subprocess.run(
                ["docker", "inspect", "--format", "{{json .Config.StopTimeout}}", container],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )

        # WHEN Fargate reclaims its Spot task mid-run
        assert cloud.fargate.interrupt(arn)
        (summary,) = runner.wait([watch], timeout=120)
        (stopped,) = cloud.client("ecs").describe_tasks(cluster=cloud.stack.cluster_arn, tasks=[arn])["tasks"]
        log_text = (cloud.task_log_dir / f"{arn.rsplit('/', 1)[-1]}.log").read_text(encoding="utf-8")

    # THEN the container was stopped as ECS stops it (SIGTERM with the task definition's stopTimeout
    # before SIGKILL) and exited 143, and the relaunched attempt finished the job
    assert stop_timeout == load_stack(project_root()).task_definition.containers[0].stop_timeout
    assert stopped["stopCode"] == "SpotInterruption"
    assert stopped["containers"][0]["exitCode"] == 143
    assert "stopped by SIGTERM" in log_text
    assert summary is not None and summary["status"] == "SUCCEEDED", summary
    assert summary["attempts"]["spot_interruptions"] >= 1
    assert summary["attempts"]["launched"] == 2
    assert summary["result"] == {"runs": 1}
    # AND nothing of the task is left behind: its container and its scratch volume are removed
    leftovers = [
        subprocess.run(
            ["docker", *kind, "--quiet", "--filter", f"label={LABEL_TASK}={arn.rsplit('/', 1)[-1]}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for kind in (["ps", "--all"], ["volume", "ls"])
    ]
    assert leftovers == ["", ""]


def test_sigterm_of_local_run_with_docker_leaves_no_container_and_no_process(
    worker_image: str, tmp_path: Path
) -> None:
    from tests.e2e.test_cli import (
        _processes_marked,
        _sleeping_job,
        _start_cli,
        _stop_and_collect,
        _wait_for_commands,
    )

    # GIVEN `spotmap local run --runtime docker` of a job whose three items sleep, their commands running
    marker = f"spotmap-docker-signal-{os.getpid()}-{time.monotonic_ns()}"
    job = _sleeping_job(tmp_path / "slow.job.json", marker)
    cli = _start_cli(
        tmp_path, "local", "run", "--json", str(job), "--out", str(tmp_path / "out"),
        "--runtime", "docker", "--image", worker_image,
    )  # fmt: skip
    try:
        _wait_for_commands(marker, 3, cli)

        # WHEN it gets SIGTERM
        code, err = _stop_and_collect(cli, signal.SIGTERM)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)

    # THEN it exits 143 in one line, and neither a task container nor a command of it is left
    task_ids = [log.stem for log in (tmp_path / "state" / "logs" / "tasks").glob("*.log")]
    assert len(task_ids) >= 3
    left = [
        task_id
        for task_id in task_ids
        if subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"name=spotmap-task-{task_id}"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()
    ]  # fmt: skip
    assert left == []
    assert _processes_marked(marker) == []
    assert code == 143, err
    assert err.strip().count("\n") == 0 and "SIGTERM" in err, err
