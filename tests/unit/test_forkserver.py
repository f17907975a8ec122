"""The local cloud's one fork server (spotmap/forkserver.py), as tasks and Lambda instances use it:
each child its own OS process in its own session, with exactly its environment, its exit code and
its signals, and none outliving the server's client."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotmap.forkserver import ForkedProcess, ForkServer

PROGRAM = "tests.unit.forkserver_programs:reporting_program"
WAIT_SECONDS = 20


@pytest.fixture
def server() -> Iterator[ForkServer]:
    running = ForkServer(PROGRAM, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, name="test fork server")
    try:
        yield running
    finally:
        running.close()


def _exit_code(process: ForkedProcess) -> int:
    deadline = time.monotonic() + WAIT_SECONDS
    while not process.exited and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.exited, "the child's exit was not reported"
    return process.wait()


def test_a_child_has_its_own_session_exactly_its_environment_and_its_exit_code(
    server: ForkServer, tmp_path: Path
) -> None:
    # GIVEN a child's environment and the end of a socket to pass it
    env = {"ONLY": "this", "LANG": "C.UTF-8"}
    ours, theirs = socket.socketpair()

    # WHEN the fork server starts it, to exit with 3
    with ours:
        process = server.fork(env, tmp_path / "child.log", args={"code": 3}, pass_fd=theirs.fileno())
        theirs.close()
        ours.settimeout(WAIT_SECONDS)
        facts = json.loads(ours.recv(1 << 16))

    # THEN it ran in its own session with exactly that environment, and its exit code is reported
    assert facts == {"own_session": True, "env": env}
    assert process.pid != os.getpid() and _exit_code(process) == 3


def test_a_signal_ends_the_child_and_its_exit_code_says_which(server: ForkServer, tmp_path: Path) -> None:
    # GIVEN a child that runs for a while
    process = server.fork({}, tmp_path / "child.log", args={"code": 0, "sleep": WAIT_SECONDS})

    # WHEN it is sent SIGTERM, as StopTask does
    process.signal(signal.SIGTERM)

    # THEN it ended by that signal: 128 + 15, as a container's exit code says
    assert _exit_code(process) == 128 + signal.SIGTERM


def test_no_child_outlives_the_server_being_closed(tmp_path: Path) -> None:
    # GIVEN a fork server with a running child
    server = ForkServer(PROGRAM, {}, name="test fork server")
    process = server.fork({}, tmp_path / "child.log", args={"code": 0, "sleep": WAIT_SECONDS})

    # WHEN its client closes it (as a local cloud that stops, or dies, does)
    server.close()

    # THEN the child is killed with the server: reported killed, and gone
    assert _exit_code(process) == 128 + signal.SIGKILL
    deadline = time.monotonic() + WAIT_SECONDS
    while _alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(process.pid), "the child outlived its fork server"


def _alive(pid: int) -> bool:
    """Running, or stopped: neither gone nor a zombie left for init to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
