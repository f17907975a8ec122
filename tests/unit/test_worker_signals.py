"""`python -m worker` as a real process against a moto server: exit codes and the SIGTERM path
(a Spot interruption, StopTask or an abort)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from jobcore import layout
from spotmap.principals import ADMIN_ACCESS_KEY_ID, SECRET_ACCESS_KEY
from tests.conftest import FAKE_CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "spotmap-test-signals"
PY = sys.executable


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3(endpoint):
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ADMIN_ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    client.create_bucket(Bucket=BUCKET)
    return client


def put_job(s3, job_id: str, processor: str, params: dict) -> None:
    descriptor = {
        "job_id": job_id,
        "input": {"bucket": BUCKET, "key": "input/none", "size": 0},
        "processor": processor,
        "params": params,
        "item_count": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    s3.put_object(Bucket=BUCKET, Key=layout.descriptor_key(job_id), Body=json.dumps(descriptor))


class Worker:
    """`python -m worker` in a subprocess, its stderr log lines collected by a thread."""

    def __init__(self, endpoint: str, job_id: str, tmp_path: Path, own_session: bool = False) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(FAKE_CREDENTIALS)
        env.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_DEFAULT_REGION="us-east-1",
            PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'functions'}",
            JOB_BUCKET=BUCKET,
            JOB_ID=job_id,
            ITEM_INDEX="0",
            ATTEMPT="1",
            ITEM=json.dumps({"index": 0}),
            SCRATCH_DIR=str(tmp_path / "scratch"),
        )
        self.proc = subprocess.Popen(
            [PY, "-m", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=own_session,  # True: the worker leads its group, as in a container
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for_log(self, message: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.log.append(line)
            if json.loads(line)["message"] == message:
                return
        self.proc.kill()
        pytest.fail(f"worker never logged {message!r}; log so far:\n{''.join(self.log)}")

    def wait(self, timeout: float = 15) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("worker did not exit in time")
        time.sleep(0.05)
        while not self.lines.empty():
            self.log.append(self.lines.get())
        return code


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for_file(path: Path, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    pytest.fail(f"{path} never appeared")


def results(s3, job_id: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=layout.results_prefix(job_id))
    return [o["Key"] for o in listing.get("Contents", [])]


def test_a_successful_task_exits_0_with_its_result_record(endpoint, s3, tmp_path):
    # GIVEN a noop job
    put_job(s3, "ok-job", "noop", {})

    # WHEN `python -m worker` runs it
    worker = Worker(endpoint, "ok-job", tmp_path)

    # THEN it exits 0 and the result record exists
    assert worker.wait() == 0
    assert results(s3, "ok-job") == [layout.result_key("ok-job", 0)]


def test_sigterm_stops_a_python_processor_with_143_and_no_result_record(endpoint, s3, tmp_path):
    # GIVEN a worker busy in a long-running processor
    put_job(s3, "sleep-job", "noop", {"sleep_seconds": 60})
    worker = Worker(endpoint, "sleep-job", tmp_path)
    worker.wait_for_log("processing item")

    # WHEN it receives SIGTERM (a Spot interruption)
    started = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)

    # THEN it exits 143 promptly and writes no result record
    assert worker.wait() == 143
    assert time.monotonic() - started < 5
    assert results(s3, "sleep-job") == []
    assert any("no result record written" in line for line in worker.log)


SPAWNING_COMMAND = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "open(sys.argv[1], 'w').write(f'{os.getpid()} {child.pid}')\n"
    "time.sleep(60)\n"
)


def wait_until_gone(*pids: int) -> bool:
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


@pytest.mark.parametrize("own_session", [False, True], ids=["started-from-a-shell", "group-leader"])
def test_sigterm_is_forwarded_to_the_command_and_its_children(endpoint, s3, tmp_path, own_session):
    # GIVEN a command that starts a child of its own and sleeps
    pids = tmp_path / "pids"
    job = f"cmd-job-{own_session}".lower()
    put_job(s3, job, "command", {"command": [PY, "-c", SPAWNING_COMMAND, str(pids)]})
    worker = Worker(endpoint, job, tmp_path, own_session=own_session)
    command_pid, grandchild_pid = map(int, wait_for_file(pids).split())

    # WHEN the worker alone receives SIGTERM (as ECS sends it to the container's main process)
    worker.proc.send_signal(signal.SIGTERM)

    # THEN the command and its child are stopped, the worker exits 143, and there is no result record
    assert worker.wait() == 143
    assert wait_until_gone(command_pid, grandchild_pid)
    assert results(s3, job) == []


def test_sigkill_of_the_tasks_group_leaves_no_command_behind(endpoint, s3, tmp_path):
    # GIVEN a worker leading its process group (as a local-cloud task) running a command with a child
    pids = tmp_path / "pids"
    put_job(s3, "crash-job", "command", {"command": [PY, "-c", SPAWNING_COMMAND, str(pids)]})
    worker = Worker(endpoint, "crash-job", tmp_path, own_session=True)
    command_pid, grandchild_pid = map(int, wait_for_file(pids).split())

    # WHEN the task is killed by its group (a crash or the end of the stop timeout)
    os.killpg(worker.proc.pid, signal.SIGKILL)

    # THEN nothing of the task survives, and there is no result record
    assert worker.wait() == -signal.SIGKILL
    assert wait_until_gone(command_pid, grandchild_pid)
    assert results(s3, "crash-job") == []


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace_period(endpoint, s3, tmp_path):
    # GIVEN a command that ignores SIGTERM, with a 1 s grace period
    ready = tmp_path / "ready"
    script = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    put_job(
        s3, "stubborn-job", "command", {"command": [PY, "-c", script, str(ready)], "stop_grace_seconds": 1}
    )
    worker = Worker(endpoint, "stubborn-job", tmp_path)
    command_pid = int(wait_for_file(ready))

    # WHEN the worker receives SIGTERM
    started = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)

    # THEN the command is killed after the grace period and the worker still exits 143
    assert worker.wait() == 143
    # (after the grace, not after the command's own 60 s: a bound, not a timing)
    assert 0.9 < time.monotonic() - started < 30
    assert not alive(command_pid)
    assert results(s3, "stubborn-job") == []
