"""Local Lambda: each function gets instances, OS processes with the function's own environment.

As AWS documents it: an instance handles one event at a time; a warm idle instance is reused; a new
instance starts (cold start) when all are busy, up to the function's concurrency limit; an
unhandled exception comes back as `X-Amz-Function-Error: Unhandled` with the error's type and message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from spotmap.template import FunctionSpec, Stack

log = logging.getLogger("spotmap.lambda")


# The zygote imports only spotmap.lambda_runtime (plus the runtime's libraries); each handler's
# directory goes first on sys.path in its own instance, as Lambda's /var/task.
_BOOTSTRAP = (
    "import os, sys; sys.path.append(os.environ.pop('SPOTMAP_RUNTIME_PATH'));"
    "from spotmap.lambda_runtime import zygote; zygote(int(sys.argv[1]))"
)


class _Zygote:
    """A process with boto3, pydantic and Powertools imported that forks Lambda instances on request:
    a cold start costs milliseconds instead of the seconds these imports take."""

    def __init__(self, handlers: Iterable[tuple[str, str]] = (), label: str = "") -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "SPOTMAP_RUNTIME_PATH": str(Path(__file__).resolve().parent.parent),
            # (code dir, handler) of every function: the zygote preloads what they import
            "SPOTMAP_PRELOAD": json.dumps(sorted(set(handlers))),
        }
        self.process = subprocess.Popen(
            # label (unused by the zygote): which local cloud this process and its instances belong to
            [sys.executable, "-c", _BOOTSTRAP, str(child.fileno()), label],
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=(child.fileno(),),
            # out of the CLI's process group: Ctrl-C or `timeout` signal the CLI, which stops us
            start_new_session=True,
        )
        child.close()
        self.socket = parent
        self.lock = threading.Lock()

    def fork(
        self, env: dict[str, str], code_dir: str, handler: str, log_path: Path
    ) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair()
        request = json.dumps({"env": env, "code_dir": code_dir, "handler": handler, "log": str(log_path)})
        try:
            with self.lock:
                socket.send_fds(self.socket, [request.encode()], [theirs.fileno()])
                reply = self.socket.recv(1024)
        finally:
            theirs.close()
        if not reply:
            raise RuntimeError("the Lambda fork server exited")
        return int(json.loads(reply)["pid"]), ours

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass
class Invocation:
    """What an Invoke returns: the payload and, for an unhandled error, its kind."""

    payload: bytes
    function_error: str | None = None

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class _Instance:
    def __init__(self, spec: FunctionSpec, env: dict[str, str], log_path: Path, zygote: _Zygote):
        self.spec = spec
        self.pid, self._socket = zygote.fork(env, str(spec.code_dir), spec.handler, log_path)
        self.conn = Connection(os.dup(self._socket.fileno()))

    def invoke(self, payload: bytes, timeout_s: float) -> Invocation:
        self.conn.send_bytes(payload)
        if not self.conn.poll(timeout_s):
            self.kill()
            message = f"Task timed out after {timeout_s:.2f} seconds"
            body = {"errorMessage": message, "errorType": "Sandbox.Timedout"}
            return Invocation(json.dumps(body).encode(), "Unhandled")
        try:
            reply = self.conn.recv_bytes()
        except EOFError:
            body = {
                "errorMessage": "Runtime exited without providing a reason",
                "errorType": "Runtime.ExitError",
            }
            return Invocation(json.dumps(body).encode(), "Unhandled")
        if reply[:1] == b"E":
            return Invocation(reply[1:], "Unhandled")
        return Invocation(reply[1:])

    @property
    def alive(self) -> bool:
        if self.conn.closed:  # killed (e.g. after a timeout): its process may linger a moment as a zombie
            return False
        try:
            os.kill(self.pid, 0)  # the zygote reaps its children, so a dead one is gone
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """End the process only; the thread invoking it still owns its connection."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def kill(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self.conn.close()


@dataclass
class _Pool:
    spec: FunctionSpec
    idle: list[_Instance] = field(default_factory=list)
    busy: int = 0
    cold_starts: int = 0
    invocations: int = 0


class LocalLambda:
    """Serves Invoke for the template's functions."""

    def __init__(
        self,
        stack: Stack,
        base_env: dict[str, str],
        log_dir: Path,
        max_instances: int = 8,
        extra_env: Callable[[FunctionSpec], dict[str, str]] | None = None,
    ):
        self.stack = stack
        self.base_env = base_env
        self.log_dir = log_dir
        self.max_instances = max_instances
        self._extra_env = extra_env
        self._pools = {spec.logical_id: _Pool(spec) for spec in stack.functions.values()}
        self._lock = threading.Condition()
        self._closed = False
        self._busy: set[_Instance] = set()  # invoking now: killed too when the local cloud stops
        self._zygote = _Zygote(
            [(str(spec.code_dir), spec.handler) for spec in stack.functions.values()], label=str(log_dir)
        )
        log_dir.mkdir(parents=True, exist_ok=True)

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": "local",
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "_HANDLER": spec.handler,
                "SPOTMAP_FUNCTION_ARN": spec.arn,
                "SPOTMAP_FUNCTION_TIMEOUT": str(spec.timeout),
            }
        )
        # the template's own values, except empty ones (AWS_ENDPOINT_URL is declared empty for SAM)
        env.update({name: value for name, value in spec.environment.items() if value or name not in env})
        if self._extra_env:
            env.update(self._extra_env(spec))
        return env

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                name: {"invocations": pool.invocations, "cold_starts": pool.cold_starts}
                for name, pool in self._pools.items()
            }

    def _acquire(self, pool: _Pool) -> _Instance:
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError("the local cloud is shutting down")
                while pool.idle:
                    instance = pool.idle.pop()
                    if instance.alive:
                        pool.busy += 1
                        self._busy.add(instance)
                        return instance
                if pool.busy < self.max_instances:
                    pool.busy += 1
                    pool.cold_starts += 1
                    break
                self._lock.wait(timeout=1.0)
        try:
            log_path = self.log_dir / f"{pool.spec.logical_id}.log"
            instance = _Instance(pool.spec, self._environment(pool.spec), log_path, self._zygote)
        except Exception:
            with self._lock:
                pool.busy -= 1
                self._lock.notify_all()
            raise
        with self._lock:
            self._busy.add(instance)
        return instance

    def prewarm(self) -> None:
        """Start one instance of every function now, so the first events do not wait for imports.
        (AWS keeps no warm instance before the first event; this only saves local wall time.)"""

        def start(pool: _Pool) -> None:
            with self._lock:
                if self._closed or pool.idle or pool.busy:
                    return
                pool.busy += 1
                pool.cold_starts += 1
            try:
                log_path = self.log_dir / f"{pool.spec.logical_id}.log"
                instance = _Instance(pool.spec, self._environment(pool.spec), log_path, self._zygote)
            except (OSError, RuntimeError):
                if not self._closed:  # closing meanwhile (a short-lived cloud) is not an error
                    log.exception("prewarming %s failed", pool.spec.logical_id)
                return
            finally:
                with self._lock:
                    pool.busy -= 1
            self._release_idle(pool, instance)

        for pool in self._pools.values():
            threading.Thread(
                target=start, args=(pool,), daemon=True, name=f"prewarm-{pool.spec.logical_id}"
            ).start()

    def _release_idle(self, pool: _Pool, instance: _Instance) -> None:
        with self._lock:
            if self._closed:
                instance.kill()
                return
            pool.idle.append(instance)
            self._lock.notify_all()

    def _release(self, pool: _Pool, instance: _Instance) -> None:
        with self._lock:
            self._busy.discard(instance)
            pool.busy -= 1
            if instance.alive and not self._closed:
                pool.idle.append(instance)
            else:
                instance.kill()
            self._lock.notify_all()

    def invoke(self, function: str, payload: bytes) -> Invocation:
        spec = self.stack.function_by_name(function)
        if spec is None:
            raise KeyError(function)
        pool = self._pools[spec.logical_id]
        instance = self._acquire(pool)
        started = time.monotonic()
        try:
            result = instance.invoke(payload, spec.timeout)
        finally:
            self._release(pool, instance)
        with self._lock:
            pool.invocations += 1
        log.debug("%s took %.3fs", spec.logical_id, time.monotonic() - started)
        return result

    def close(self) -> None:
        with self._lock:
            self._closed = True
            instances = [inst for pool in self._pools.values() for inst in pool.idle]
            for pool in self._pools.values():
                pool.idle.clear()
            busy = list(self._busy)
            self._lock.notify_all()
        for instance in instances:
            instance.kill()
        for instance in busy:  # its invoker sees the instance exit (Runtime.ExitError) and releases it
            instance.stop()
        self._zygote.close()
