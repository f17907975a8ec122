"""The command line as a user meets it: signals stop everything it started, errors are one line."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spotmap.cli import main as spotmap_main
from spotmap.cloud import CloudOptions, LocalCloud, local_client, project_root
from spotmap.jobs import JobRunner
from spotmap.template import load_stack

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


# ---------------------------------------------------------------- one line, the truth


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A local cloud as `spotmap local serve` runs it, for the commands that talk to one."""
    with LocalCloud(options=CloudOptions(state_dir=tmp_path_factory.mktemp("served"))) as cloud:
        yield cloud


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_aborting_a_finished_job_says_so_and_fails(
    served: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job that has finished
    manifest = tmp_path / "done.job.json"
    manifest.write_text(json.dumps({"processor": "noop", "source": {"count": 1}}))
    runner = JobRunner(served, progress=None)
    watch = runner.submit(manifest)
    (summary,) = runner.wait([watch], timeout=120)
    assert summary is not None and summary["status"] == "SUCCEEDED"
    capsys.readouterr()

    # WHEN the user aborts it
    code = spotmap_main(["local", "abort", str(watch.job_id), "--endpoint-url", served.endpoint])

    # THEN the CLI says in one line that it had already ended, exits non-zero, and the summary is unchanged
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and f"job {watch.job_id} already ended SUCCEEDED; nothing to abort" in err
    assert runner.summary(watch) == summary

    # AND a job that does not exist is a user error
    assert spotmap_main(["local", "abort", "no-such-job", "--endpoint-url", served.endpoint]) == 2
    assert "no job no-such-job" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["local", "abort", "some-job"],
        ["local", "upload", "README.md", "--event", "events/start_job_s3_put.json"],
        ["invoke", "StartJobFunction", "-e", "events/start_job_s3_put.json"],
    ],
    ids=["abort", "upload", "invoke"],
)
def test_a_dead_endpoint_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an endpoint where nothing listens
    endpoint = f"http://127.0.0.1:{_free_port()}"

    # WHEN a command that talks to a running local cloud is pointed at it
    code = spotmap_main([*argv, "--endpoint-url", endpoint])

    # THEN it says so in one line and exits 2, no traceback
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and f"nothing answers at {endpoint}" in err


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("MaxConcurrency=0", "Parameter 'MaxConcurrency' must be a number not less than 1; got '0'"),
        ("ToleratedFailurePercentage=150", "must be a number not greater than 100"),
        ("TaskCpu=4096", "TaskMemory must be one of 8192, 9216, 10240"),
    ],
)
def test_a_parameter_cloudformation_would_refuse_is_one_line_and_exit_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], param: str, expected: str
) -> None:
    # GIVEN a data file and a parameter value the template forbids
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    state = tmp_path / "state"

    # WHEN `local run` is given it
    code = spotmap_main(["local", "run", str(data), "--param", param, "--state-dir", str(state)])

    # THEN one line naming the parameter and the rule, exit 2, and no local cloud was started
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and expected in err, err
    assert not state.exists()


def test_an_out_that_is_a_file_or_a_foreign_directory_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a data file, and --out naming a file, then a directory of the user's own files
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    state = tmp_path / "state"

    for out, expected in ((a_file, "is a file"), (foreign, "is a directory of other files")):
        # WHEN `local run` is given it
        code = spotmap_main(["local", "run", str(data), "--out", str(out), "--state-dir", str(state)])

        # THEN one line, exit 2, no job ran and nothing of the user's was touched
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.count("\n") == 1 and expected in err, err
    assert a_file.read_text() == "mine"
    assert [p.name for p in foreign.iterdir()] == ["cat.jpg"]
    assert not (state / "logs" / "tasks").exists() or not any((state / "logs" / "tasks").iterdir())


def test_each_run_replaces_the_previous_copy_and_logs_and_keeps_unmappable_keys_in_an_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a first run whose bucket copy and logs are on disk
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    out, state = tmp_path / "out", tmp_path / "state"
    common = ["--out", str(out), "--state-dir", str(state), "--json"]
    assert spotmap_main(["local", "run", str(data), *common]) == 0
    first_logs = set((state / "logs" / "tasks").iterdir())
    assert first_logs and len(list((out / "summaries").glob("*.json"))) == 1
    capsys.readouterr()

    # WHEN a second run uploads it under a key whose name is longer than a file name may be (255 bytes)
    long_key = "input/" + "n" * 300 + ".csv"
    code = spotmap_main(["local", "run", str(data), "--key", long_key, *common])

    # THEN it succeeds and says it replaced the previous copy; only this run's objects and logs are there;
    # the object under the long key is copied under a hashed name, its key kept in an index
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"replacing the previous bucket copy in {out}" in captured.err
    (summary,) = json.loads(captured.out.strip().splitlines()[-1])
    assert sorted(p.name for p in (out / "summaries").iterdir()) == [
        f"{summary['job_id']}.html",
        f"{summary['job_id']}.json",
    ]
    assert not first_logs & set((state / "logs" / "tasks").iterdir())
    index = json.loads((out / "unmapped-keys.json").read_text())
    (copied,) = [name for name, key in index.items() if key == long_key]
    assert (out / copied).read_text() == data.read_text()
    assert "1 key(s) cannot be files of their own name" in captured.err


def test_serve_prints_each_job_as_it_starts_and_ends_and_stops_on_sigterm(tmp_path: Path) -> None:
    # GIVEN `spotmap local serve` running in the background
    port = _free_port()
    serve = _start_cli(tmp_path, "local", "serve", "--port", str(port))
    lines: queue.Queue[str] = queue.Queue()
    assert serve.stdout is not None
    stdout = serve.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()

    def next_line_with(text: str) -> str:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if text in line:
                return line
        raise AssertionError(f"serve printed no line with {text!r} (exit {serve.poll()})")

    try:
        endpoint = next_line_with("listening on").split()[-1]
        stack = load_stack(project_root())

        # WHEN a manifest is uploaded to it
        s3 = local_client("s3", endpoint, stack.region)
        s3.put_object(
            Bucket=stack.bucket,
            Key="input/hello.job.json",
            Body=json.dumps({"processor": "noop", "source": {"count": 1}}).encode(),
        )

        # THEN it prints the job's id and key when it starts, and its status and summary when it ends
        started = next_line_with(" started: s3://")
        job_id = started.split()[1]
        assert started.strip() == f"job {job_id} started: s3://{stack.bucket}/input/hello.job.json"
        ended = next_line_with(f"job {job_id} ")
        assert ended.strip() == f"job {job_id} SUCCEEDED: summary s3://{stack.bucket}/summaries/{job_id}.json"

        # AND SIGTERM stops it with 143 and one line
        code, err = _stop_and_collect(serve, signal.SIGTERM)
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    assert code == 143, err
    assert err.strip().count("\n") == 0 and "SIGTERM" in err, err
