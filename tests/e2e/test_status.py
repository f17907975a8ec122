"""Seeing a job: `spotmap status` against `spotmap local serve` (a separate process, as a user runs it)
while the job runs and after it ends, and `spotmap local run`'s progress display in a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# imported before pytest replaces stdout, as any earlier import in the session does: the command must
# print to the stdout of the moment it runs, not to the one of its import
import spotmap.status  # noqa: F401
from spotmap.cli import main as spotmap_main
from spotmap.cloud import local_client, project_root
from spotmap.notifications import NotificationLog
from spotmap.product import jobcore_ids
from spotmap.template import load_stack

WAIT_SECONDS = 120
ITEMS = 4
SLEEP_SECONDS = 5  # long enough to catch the job midway on a loaded machine
NOTIFY = "ops@example.com"
FAST_POLLS = ["--param", "PollMinSeconds=1", "--param", "PollMaxSeconds=2", "--param", "MaxConcurrency=2"]


def spotmap(*args: str, timeout: float = WAIT_SECONDS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spotmap.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=project_root(),
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sleeping_job(path: Path, items: int = ITEMS, seconds: int = SLEEP_SECONDS) -> Path:
    path.write_text(
        json.dumps({"processor": "noop", "params": {"sleep_seconds": seconds}, "source": {"count": items}})
    )
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`spotmap local serve` in its own process; yields its endpoint."""
    port = free_port()
    state = tmp_path_factory.mktemp("serve-state")
    log = (state / "serve.out").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spotmap.cli",
            "local",
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(state),
        ]
        + FAST_POLLS
        + ["--param", f"NotificationEmail={NOTIFY}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=project_root(),
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while "listening on" not in (state / "serve.out").read_text():
            assert server.poll() is None, (state / "serve.out").read_text()
            assert time.monotonic() < deadline, "spotmap local serve did not start"
            time.sleep(0.2)
        yield endpoint, state
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def submit(endpoint: str, path: Path) -> str:
    """Upload a job file as a user would; its job id, derived as StartJob derives it."""
    stack = load_stack(project_root())
    s3 = local_client("s3", endpoint, stack.region)
    key = f"input/{path.name}"
    s3.upload_file(str(path), stack.bucket, key)
    head = s3.head_object(Bucket=stack.bucket, Key=key)
    job_id: str = jobcore_ids().job_id_for(
        stack.bucket, key, version_id=head.get("VersionId"), etag=head["ETag"].strip('"')
    )
    return job_id


def status_json(endpoint: str, job_id: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`spotmap status JOB_ID --json`, in this process (quick enough to catch a job midway)."""
    capsys.readouterr()
    code = spotmap_main(["status", job_id, "--endpoint-url", endpoint, "--json"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    document: dict[str, Any] = json.loads(captured.out.strip().splitlines()[-1])
    return document


def test_status_of_a_running_job_and_of_the_ended_job(
    served: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job of four items of five seconds each, two at a time, on `spotmap local serve` of a
    # stack that notifies an e-mail address
    endpoint, state = served
    job_id = submit(endpoint, sleeping_job(tmp_path / "sleepy.job.json"))

    # WHEN `spotmap status` is asked while it runs, until some items have finished and others not
    deadline = time.monotonic() + WAIT_SECONDS
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen.append(status_json(endpoint, job_id, capsys))
        if seen[-1]["status"] == "RUNNING" and 0 < seen[-1]["succeeded"] < ITEMS:
            break
        assert seen[-1]["status"] in ("NOT_FOUND", "RUNNING"), seen
        time.sleep(0.5)
    running = seen[-1]

    # THEN it shows the job midway: counts that add up, an ETA from the finished items, a cost so far
    assert running["status"] == "RUNNING", seen
    assert running["total"] == ITEMS
    assert running["succeeded"] + running["failed"] + running["running"] + running["pending"] == ITEMS
    assert running["mean_item_seconds"] >= SLEEP_SECONDS
    assert running["eta_seconds"] is not None
    assert running["cost_usd"] > 0
    assert running["elapsed_seconds"] > 0
    assert running["summary_key"] is None

    # WHEN `spotmap status --watch` follows it to the end (plain lines: stdout is a pipe)
    watched = spotmap("status", job_id, "--endpoint-url", endpoint, "--watch", "--interval", "3")

    # THEN it ends when the job does, with the final counts and where the summary is
    assert watched.returncode == 0, watched.stdout + watched.stderr
    lines = watched.stdout.strip().splitlines()
    assert re.search(rf"{job_id}: SUCCEEDED, {ITEMS}/{ITEMS} items finished \(succeeded {ITEMS}", lines[-2])
    assert "\x1b[" not in watched.stdout  # no cursor movement on a pipe
    assert lines[-1].strip() == f"summary: summaries/{job_id}.json"

    # AND asked after the end, the JSON agrees with the summary Summarize wrote
    ended = status_json(endpoint, job_id, capsys)
    stack = load_stack(project_root())
    summary_object = local_client("s3", endpoint, stack.region).get_object(
        Bucket=stack.bucket, Key=f"summaries/{job_id}.json"
    )
    summary = json.loads(summary_object["Body"].read())
    assert ended["status"] == summary["status"] == "SUCCEEDED"
    assert (ended["succeeded"], ended["failed"], ended["total"]) == (ITEMS, 0, ITEMS)
    assert ended["cost_usd"] == summary["cost"]["total_usd"]
    assert ended["eta_seconds"] == 0
    assert ended["summary_key"] == f"summaries/{job_id}.json"

    # AND the job's end was published to the stack's SNS topic: recorded in the notifications log and
    # shown on `spotmap local serve`'s output
    topic = f"arn:aws:sns:{stack.region}:{stack.account_id}:{stack.name}-NotificationTopic"
    notices = NotificationLog(state / "logs" / "notifications.log").read()
    mine = [notice for notice in notices if job_id in notice.message]
    assert [(notice.topic_arn, notice.subject) for notice in mine] == [
        (topic, f"spotmap job SUCCEEDED: {job_id}")
    ]
    assert f"Items: {ITEMS}/{ITEMS} succeeded, 0 failed" in mine[0].message
    assert f"Summary: s3://{stack.bucket}/summaries/{job_id}.json" in mine[0].message
    assert f"Report:  s3://{stack.bucket}/summaries/{job_id}.html" in mine[0].message
    assert (
        f"SNS notification to {topic}: spotmap job SUCCEEDED: {job_id}" in (state / "serve.out").read_text()
    )


def test_status_of_an_unknown_job_fails(served: tuple[str, Path]) -> None:
    # GIVEN no job of that id WHEN its status is asked THEN the command says so and fails
    done = spotmap("status", "no-such-job", "--endpoint-url", served[0])
    assert done.returncode == 1
    assert "no job no-such-job" in done.stderr


def read_pty(fd: int, process: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Everything the process writes to the terminal until it exits (bounded)."""
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    return output


def test_local_run_redraws_its_progress_in_a_terminal(tmp_path: Path) -> None:
    # GIVEN `spotmap local run` whose output is a terminal (a pseudo-terminal)
    job = sleeping_job(tmp_path / "tty.job.json", items=3, seconds=3)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "spotmap.cli", "local", "run", str(job), "--out", str(tmp_path / "out")]
        + ["--state-dir", str(tmp_path / "state")]
        + FAST_POLLS,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=project_root(),
    )
    os.close(terminal)
    try:
        # WHEN it runs the job to the end
        output = read_pty(controller, process, WAIT_SECONDS).decode("utf-8", "replace")
        assert process.wait(timeout=30) == 0, output
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()

    # THEN the progress is one line per job redrawn in place (cursor up, line cleared), with a bar,
    # the counts, Spot interruptions, elapsed time, an ETA while it runs and the cost so far
    frames = re.findall(r"\x1b\[2K(\[[#x>.?]+\] [^\r\n]*)", output)
    assert len(frames) >= 2, output
    assert "\x1b[1F" in output, output
    assert any("RUNNING" in frame and "ETA" in frame for frame in frames), frames
    final = frames[-1]
    assert re.search(r"SUCCEEDED, 3/3 items finished \(succeeded 3, running 0, failed 0, pending 0\)", final)
    assert "spot interruptions 0" in final and "elapsed" in final and "cost so far $" in final
    assert final.startswith("[" + "#" * 24 + "]")
