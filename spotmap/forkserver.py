"""Cheap local tasks: a fork server with the worker's imports (boto3, the processors) preloaded.

A fresh `python -m worker` pays an interpreter start and `import boto3` (~0.33 s of CPU here) per
task. The fork server pays it once; each task is still its own OS process (forked, in its own
session, with exactly the task's environment, its own exit code and signals), as a container is.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from spotmap.launchers import exit_status


class _ForkedProcess:
    def __init__(self, pid: int):
        self.pid = pid
        self._done = threading.Event()
        self._code = -1

    def _exited(self, code: int) -> None:
        self._code = code
        self._done.set()

    def wait(self) -> int:
        self._done.wait()
        return self._code

    def signal(self, signum: int) -> None:
        if self._done.is_set():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)


class ForkServerLauncher:
    """Starts tasks by asking a preloaded zygote process to fork."""

    holds_exit = True  # start(hold_exit=True): see _child

    def __init__(self, root: Path, base_env: dict[str, str]):
        parent_sock, child_sock = socket.socketpair()
        env = dict(base_env)
        env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "functions")])
        runtime_path = str(Path(__file__).resolve().parent.parent)
        self._zygote = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.append({runtime_path!r}); from spotmap.forkserver import serve; "
                f"serve({child_sock.fileno()})",
            ],
            env=env,
            cwd=root,
            pass_fds=(child_sock.fileno(),),
            stdin=subprocess.DEVNULL,
            # out of the CLI's process group: Ctrl-C or `timeout` signal the CLI, which stops every task
            # and then us (a signal of our own would leave the tasks' exits unreported)
            start_new_session=True,
        )
        child_sock.close()
        self._conn = Connection(os.dup(parent_sock.fileno()))
        self._socket = parent_sock  # kept to shut down: closing alone leaves a blocked reader hanging
        self._lock = threading.Lock()
        self._spawned: dict[int, threading.Event] = {}
        self._pids: dict[int, int] = {}
        self._processes: dict[int, _ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._next = 0
        threading.Thread(target=self._read, daemon=True, name="forkserver-reader").start()

    def start(self, env: dict[str, str], log_path: Path, hold_exit: float = 0.0) -> _ForkedProcess:
        """hold_exit: seconds from its start when the task is to be reclaimed (a Spot interruption decided
        for it); should its worker finish earlier, its process waits at exit until then, so the reclaim's
        signal lands while it runs."""
        request = {"id": 0, "env": env, "log": str(log_path), "hold_exit": hold_exit}
        with self._lock:
            self._next += 1
            request_id = request["id"] = self._next
            ready = self._spawned[request_id] = threading.Event()
            self._conn.send_bytes(json.dumps(request).encode())
        if not ready.wait(30) or self._zygote.poll() is not None:
            raise RuntimeError("the worker fork server did not answer")
        with self._lock:
            pid = self._pids.pop(request_id)
            process = _ForkedProcess(pid)
            if pid in self._early_exits:
                process._exited(self._early_exits.pop(pid))
            else:
                self._processes[pid] = process
        return process

    def _read(self) -> None:
        while True:
            try:
                message: dict[str, Any] = json.loads(self._conn.recv_bytes())
            except (EOFError, OSError):
                with self._lock:
                    for orphan in self._processes.values():
                        orphan._exited(137)
                return
            with self._lock:
                if "spawned" in message:
                    self._pids[message["id"]] = message["spawned"]
                    self._spawned.pop(message["id"]).set()
                else:
                    pid, code = message["exited"], message["code"]
                    exited = self._processes.pop(pid, None)
                    if exited is None:
                        self._early_exits[pid] = code
                    else:
                        exited._exited(code)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)  # the zygote and our reader both see EOF now
        self._socket.close()
        self._conn.close()
        try:
            self._zygote.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._zygote.kill()


def serve(fd: int) -> None:
    """The zygote: preload, then fork one child per request and report how each one exits."""
    import worker.runner as runner
    from worker import storage

    runner.preload()  # processors imported, S3 model loaded: a forked task starts in milliseconds
    storage.make_s3_client(os.environ)  # the tasks' client (they share our endpoint and credentials)
    gc.freeze()  # preloaded objects stay shared with the tasks instead of copied by the collector
    conn = Connection(fd)
    children: set[int] = set()
    while True:
        if wait([conn], timeout=0.02):
            try:
                request = json.loads(conn.recv_bytes())
            except EOFError:
                # the local cloud stopped: it stops every task before closing us, but if it was killed
                # outright its tasks must not outlive it (each leads its own group: kill the groups)
                for child in children:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(child, signal.SIGKILL)
                return
            pid = os.fork()
            if pid == 0:
                _child(request, runner.main)
            children.add(pid)
            conn.send_bytes(json.dumps({"id": request["id"], "spawned": pid}).encode())
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            code = exit_status(os.waitstatus_to_exitcode(status))
            conn.send_bytes(json.dumps({"exited": pid, "code": code}).encode())


def _child(request: dict[str, Any], main: Any) -> None:
    started = time.monotonic()
    code = 1
    try:
        os.setsid()
        log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
        code = int(main(dict(request["env"])))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must never return into the zygote's loop
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
