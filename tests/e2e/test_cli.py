"""The command line as a user meets it: signals stop everything it started, errors are one line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spotmap.cloud import project_root

START_SECONDS = 120  # bounded waits: the tasks start, the CLI exits
STOP_SECONDS = 60


def _processes_marked(marker: str) -> list[int]:
    """Live processes whose command line or environment names `marker` (zombies are gone already)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        if marker.encode() in text:
            found.append(int(entry.name))
    return found


def _sleeping_job(path: Path, marker: str, count: int = 3) -> Path:
    """A command-processor job whose items sleep for minutes; each command line carries the marker."""
    path.write_text(
        json.dumps(
            {
                "processor": "command",
                "params": {"command": ["python3", "-c", "import time; time.sleep(600)", marker]},
                "source": {"count": count},
            }
        )
    )
    return path


def _start_cli(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "spotmap.cli", *args, "--state-dir", str(tmp_path / "state")],
        cwd=project_root(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # as a shell's job: its own group, so our test runner is not signalled
    )


def _wait_for_commands(marker: str, count: int, cli: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and cli.poll() is None:
        if len(_commands(marker)) >= count:
            return
        time.sleep(0.3)
    raise AssertionError(f"the job's commands did not start (CLI exit {cli.poll()})")


def _commands(marker: str) -> list[int]:
    """The job's own commands (the sleeping Python programs), not the workers that started them."""
    found = []
    for pid in _processes_marked(marker):
        with contextlib.suppress(OSError):
            if b"time.sleep(600)" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def _stop_and_collect(cli: subprocess.Popen[str], signum: int) -> tuple[int, str]:
    cli.send_signal(signum)
    try:
        _out, err = cli.communicate(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(cli.pid, signal.SIGKILL)
        cli.communicate()
        raise AssertionError(f"spotmap did not exit within {STOP_SECONDS} s of {signum}") from None
    return cli.returncode, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_local_run_and_leaves_no_process_of_it_behind(tmp_path: Path, signum: int) -> None:
    # GIVEN `spotmap local run` of a job whose three items sleep for minutes, the commands running
    marker = f"spotmap-signal-test-{os.getpid()}-{signum}-{time.monotonic_ns()}"
    job = _sleeping_job(tmp_path / "slow.job.json", marker)
    cli = _start_cli(tmp_path, "local", "run", "--json", str(job), "--out", str(tmp_path / "out"))
    try:
        _wait_for_commands(marker, 3, cli)
        state_dir = str(tmp_path / "state")
        assert _processes_marked(state_dir), "the local cloud's processes carry its state directory"

        # WHEN it gets the signal (as `timeout`, `kill`, Ctrl-C or a closed terminal send it)
        code, err = _stop_and_collect(cli, signum)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)

    # THEN no process of it is left: no command of the job, no worker task, no fork server, no Lambda
    # instance; and it exits with 128 + the signal, saying so in one line
    try:
        deadline = time.monotonic() + 5  # the kernel may take a moment to finish a SIGKILLed process
        while (_processes_marked(marker) or _processes_marked(state_dir)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_marked(marker) == []
        assert _processes_marked(state_dir) == []
    finally:  # whatever escaped, it does not outlive the test
        for pid in _processes_marked(marker) + _processes_marked(state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert code == 128 + signum, err
    assert err.strip().count("\n") == 0 and signal.Signals(signum).name in err, err
    assert "Traceback" not in err
