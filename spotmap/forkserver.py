"""One fork server for the local cloud's processes: Fargate tasks and Lambda instances alike.

A fresh interpreter pays its start and its imports (`import boto3` alone ~0.33 s of CPU here) per
process. A fork server pays them once: it starts, runs a *program* that preloads what its children
import, then forks one child per request. Each child is still its own OS process, in its own session,
with exactly the environment it was asked for, its output appended to its own log, its own exit code
(128 + N when signal N ended it) and its own signals, as a container or a Lambda sandbox is.

What differs between tasks and instances is a parameter, not a second server: the program (what is
preloaded and what a child runs: spotmap.forkserver:worker_program for tasks,
spotmap.lambda_runtime:instance_program for Lambda instances), the server's own environment and working
directory, each child's environment and log path, and an optional socket passed to the child (a Lambda
instance's connection to its pool).

The protocol, on an AF_UNIX SOCK_SEQPACKET socket pair, one JSON object per message:
- request (client -> server): {"id": n, "env": {...}, "log": path, "hold_exit": seconds, "args": {...}},
  carrying at most one file descriptor (SCM_RIGHTS) for the child;
- {"id": n, "spawned": pid} (server -> client) once the child is forked;
- {"exited": pid, "code": c} (server -> client) once the child has exited and been reaped.
The client's end closing is the server's end: it kills what is left of its children (each leads its
own process group) and exits, so no child outlives a local cloud that was killed outright.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spotmap.launchers import exit_status

# what a program returns: the children's entry, run in each child with its request and passed fd
Entry = Callable[[dict[str, Any], int | None], int]

REAP_INTERVAL_SECONDS = 0.02  # how often the server looks for exited children between requests
MAX_MESSAGE = 1 << 20
ORPHAN_EXIT_CODE = 137  # a child whose server vanished is reported as killed (SIGKILL)
_BOOTSTRAP = (
    "import sys; sys.path.append({runtime_path!r}); from spotmap.forkserver import serve; "
    "serve(int(sys.argv[1]), sys.argv[2])"
)


class ForkedProcess:
    """A child of a fork server: its pid, its exit code once reported, and its process group to signal."""

    def __init__(self, pid: int):
        self.pid = pid
        self._done = threading.Event()
        self._code = -1

    def _exited(self, code: int) -> None:
        self._code = code
        self._done.set()

    @property
    def exited(self) -> bool:
        return self._done.is_set()

    def wait(self) -> int:
        self._done.wait()
        return self._code

    def signal(self, signum: int) -> None:
        if self._done.is_set():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)  # the child's whole process group, as docker stop does


class ForkServer:
    """The client of one fork server process, which it starts with `env` in `cwd` and which runs
    `program` ("module:function") before serving. `label` only marks the server's command line (and
    so its children's): which local cloud they belong to. `answer_timeout`: how long a fork waits for
    the server's answer (None: until it answers or exits)."""

    def __init__(
        self,
        program: str,
        env: dict[str, str],
        *,
        name: str,
        cwd: Path | None = None,
        label: str = "",
        answer_timeout: float | None = None,
    ):
        self.name = name
        self.answer_timeout = answer_timeout
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        runtime_path = str(Path(__file__).resolve().parent.parent)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP.format(runtime_path=runtime_path), str(child.fileno()), program]
            + ([label] if label else []),
            env=env,
            cwd=cwd,
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            # out of the CLI's process group: Ctrl-C or `timeout` signal the CLI, which stops every child
            # and then us (a signal of our own would leave the children's exits unreported)
            start_new_session=True,
        )
        child.close()
        self._socket = parent
        self._lock = threading.Lock()  # the state below, which the reader updates
        self._send_lock = threading.Lock()
        self._next = 0
        self._closed = False
        self._answers: dict[int, threading.Event] = {}
        self._spawned: dict[int, ForkedProcess] = {}
        self._children: dict[int, ForkedProcess] = {}
        threading.Thread(target=self._read, daemon=True, name=f"{name}-reader").start()

    def fork(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        args: dict[str, Any] | None = None,
        pass_fd: int | None = None,
        hold_exit: float = 0.0,
    ) -> ForkedProcess:
        """A child with exactly `env`, its output appended to `log_path`; `args` and `pass_fd` go to the
        program's entry. hold_exit: seconds from its start until which the child, should it finish
        earlier, waits at exit (so that a reclaim decided for a task lands while it runs)."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.name} exited")
            self._next += 1
            request_id = self._next
            answered = self._answers[request_id] = threading.Event()
        request = {"id": request_id, "env": env, "log": str(log_path), "hold_exit": hold_exit}
        message = json.dumps({**request, "args": args or {}}).encode()
        try:
            # a lock of its own: a send waiting for room never holds up the reader, which makes room
            with self._send_lock:
                socket.send_fds(self._socket, [message], [] if pass_fd is None else [pass_fd])
        except OSError as error:
            with self._lock:
                self._answers.pop(request_id, None)
            raise RuntimeError(f"the {self.name} exited") from error
        if not answered.wait(self.answer_timeout):
            raise RuntimeError(f"the {self.name} did not answer")
        with self._lock:
            self._answers.pop(request_id, None)
            process = self._spawned.pop(request_id, None)
        if process is None:
            raise RuntimeError(f"the {self.name} exited")
        return process

    def _read(self) -> None:
        while True:
            try:
                data = self._socket.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            with self._lock:
                if not data:  # the server exited, or we closed it
                    self._closed = True
                    for answered in self._answers.values():
                        answered.set()
                    for orphan in self._children.values():
                        orphan._exited(ORPHAN_EXIT_CODE)
                    self._children.clear()
                    return
                message: dict[str, Any] = json.loads(data)
                if "spawned" in message:  # always before that child's "exited"
                    process = ForkedProcess(message["spawned"])
                    self._children[process.pid] = process
                    self._spawned[message["id"]] = process
                    answer = self._answers.get(message["id"])
                    if answer is not None:
                        answer.set()
                else:
                    exited = self._children.pop(message["exited"], None)
                    if exited is not None:
                        exited._exited(message["code"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # the server and our reader both see EOF now
        self._socket.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


# ---------------------------------------------------------------- the server process


def serve(fd: int, program: str) -> None:
    """The server: run the program (it preloads, and returns the children's entry), then fork one
    child per request and report how each one exits."""
    module, function = program.split(":")
    entry: Entry = getattr(importlib.import_module(module), function)()
    channel = socket.socket(fileno=fd)
    children: set[int] = set()

    def answer(message: dict[str, Any]) -> bool:
        try:
            channel.send(json.dumps(message).encode())
        except OSError:  # the client is gone: as at end of input
            return False
        return True

    def stop() -> None:
        # the local cloud stopped: it stops every child before closing us, but if it was killed
        # outright its children must not outlive it (each leads its own group: kill the groups)
        for child in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)

    while True:
        if select.select([channel], [], [], REAP_INTERVAL_SECONDS)[0]:
            try:
                message, fds, _flags, _address = socket.recv_fds(channel, MAX_MESSAGE, 1)
            except OSError:
                message, fds = b"", []
            if not message:
                stop()
                return
            request = json.loads(message)
            passed = fds[0] if fds else None
            session_r, session_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(session_r)
                _child(request, passed, entry, channel, session_w)
            os.close(session_w)
            # answered only once the child leads its own session (its end closed: setsid done, or it
            # died): a signal sent to its process group as soon as its pid is known is never lost
            os.read(session_r, 1)
            os.close(session_r)
            if passed is not None:
                os.close(passed)
            children.add(pid)
            if not answer({"id": request["id"], "spawned": pid}):
                stop()
                return
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            if not answer({"exited": pid, "code": exit_status(os.waitstatus_to_exitcode(status))}):
                stop()
                return


def _child(
    request: dict[str, Any], passed: int | None, entry: Entry, channel: socket.socket, session_w: int
) -> None:
    """In the forked child: become the process asked for, run the entry, exit with its code."""
    started = time.monotonic()
    code = 1
    try:
        channel.close()
        os.setsid()
        os.close(session_w)  # the server answers now
        log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        random.seed()  # not the server's sequence, shared by every child
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
        code = int(entry(request, passed))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must never return into the server's loop
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            if request.get("hold_exit"):
                # the reclaim decided for this task lands before it exits: its SIGTERM (or a stop's
                # SIGKILL) ends the process here; a reclaim that landed already leaves it nothing to wait for
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_DFL)
                remaining = started + float(request["hold_exit"]) - time.monotonic()
                if remaining > 0:
                    time.sleep(remaining)
        finally:
            os._exit(code)


# ---------------------------------------------------------------- Fargate tasks


def worker_program() -> Entry:
    """The tasks' program: the worker's imports preloaded (processors imported, S3 model loaded) and
    the tasks' S3 client made (they share the server's endpoint and credentials), so that a forked
    task starts in milliseconds; each child runs the worker with its task's environment."""
    import worker.runner as runner
    from worker import storage

    runner.preload()
    storage.make_s3_client(os.environ)
    gc.freeze()  # preloaded objects stay shared with the tasks instead of copied by the collector

    def run_task(request: dict[str, Any], _passed: int | None) -> int:
        return int(runner.main(dict(request["env"])))

    return run_task


class ForkServerLauncher:
    """Starts the local Fargate's tasks as children of a fork server running worker_program."""

    holds_exit = True  # start(hold_exit=...): see ForkServer.fork

    def __init__(self, root: Path, base_env: dict[str, str]):
        env = dict(base_env)
        env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "functions")])
        self._server = ForkServer(
            f"{__name__}:worker_program", env, name="worker fork server", cwd=root, answer_timeout=30
        )

    def start(self, env: dict[str, str], log_path: Path, hold_exit: float = 0.0) -> ForkedProcess:
        """hold_exit: seconds from its start when the task is to be reclaimed (a Spot interruption decided
        for it); should its worker finish earlier, its process waits at exit until then, so the reclaim's
        signal lands while it runs."""
        return self._server.fork(env, log_path, hold_exit=hold_exit)

    def close(self) -> None:
        self._server.close()
