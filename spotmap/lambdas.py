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
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from spotmap.forkserver import ForkServer
from spotmap.template import FunctionSpec, Stack

log = logging.getLogger("spotmap.lambda")


# The Lambda instances' fork server (spotmap/forkserver.py) runs this program: it imports only
# spotmap.lambda_runtime (plus the runtime's libraries and what the handlers import); each handler's
# directory goes first on sys.path in its own instance, as Lambda's /var/task.
INSTANCE_PROGRAM = "spotmap.lambda_runtime:instance_program"


def _fork_server(handlers: Iterable[tuple[str, str]], label: str) -> ForkServer:
    """A fork server with boto3, pydantic, Powertools and what the handlers import preloaded: a cold
    start costs milliseconds instead of the seconds these imports take."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        # (code dir, handler) of every function: the program preloads what they import
        "SPOTMAP_PRELOAD": json.dumps(sorted(set(handlers))),
    }
    return ForkServer(INSTANCE_PROGRAM, env, name="Lambda fork server", label=label)


@dataclass
class Invocation:
    """What an Invoke returns: the payload and, for an unhandled error, its kind."""

    payload: bytes
    function_error: str | None = None

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class _Instance:
    def __init__(self, spec: FunctionSpec, env: dict[str, str], log_path: Path, fork_server: ForkServer):
        self.spec = spec
        ours, theirs = socket.socketpair()
        try:
            args = {"code_dir": str(spec.code_dir), "handler": spec.handler}
            self._process = fork_server.fork(env, log_path, args=args, pass_fd=theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.pid = self._process.pid
        self._socket = ours
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
        if self._process.exited:  # the fork server reaped it
            return False
        try:
            os.kill(self.pid, 0)
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
        self._fork_server = _fork_server(
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
            instance = _Instance(pool.spec, self._environment(pool.spec), log_path, self._fork_server)
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
                instance = _Instance(pool.spec, self._environment(pool.spec), log_path, self._fork_server)
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
        self._fork_server.close()
