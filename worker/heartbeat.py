"""Task heartbeats: while the worker runs, it tells Step Functions that the item's Launch step should keep
waiting for the task's stop event (completion by events, functions/jobcore/completion.py).

LaunchTask puts the step's task token in TASK_TOKEN and the step's HeartbeatSeconds in
TASK_HEARTBEAT_SECONDS; the worker calls SendTaskHeartbeat every third of that period, so a lost stop
event costs the item at most one period before its backstop poll. TASK_HEARTBEAT_FOR_SECONDS after
its start (the item's timeout) it stops vouching for the task: the step times out and PollTask stops
the task as timed out. A closed token (TaskTimedOut / InvalidToken: the item already moved on) ends
the heartbeats. Without TASK_TOKEN (TaskEvents Disabled) nothing runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from worker import storage

LOG = logging.getLogger("worker.heartbeat")

BEATS_PER_PERIOD = 3
FIRST_BEAT_SECONDS = 1.0  # a task shorter than this finishes before it would need a client at all
CLOSED_TOKEN_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})


def _client(env: Mapping[str, str]) -> Any:
    import boto3  # only tasks that live long enough to beat pay for a Step Functions client

    return boto3.session.Session().client("stepfunctions", **storage.client_settings(env, "SFN"))


class Heartbeat:
    def __init__(self, env: Mapping[str, str], token: str, period: float, until: float | None):
        self._env = env
        self._token = token
        self._interval = max(0.2, period / BEATS_PER_PERIOD)
        self._until = until
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="task-heartbeat", daemon=True)
        self.sent = 0

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _beat(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = None
        wait = min(self._interval, FIRST_BEAT_SECONDS)
        while not self._stop.wait(wait):
            wait = self._interval
            if self._until is not None and time.time() >= self._until:
                LOG.warning("item timeout reached: no more heartbeats")
                return
            try:
                client = client or _client(self._env)
                client.send_task_heartbeat(taskToken=self._token)
                self.sent += 1
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code in CLOSED_TOKEN_CODES:
                    LOG.info("the item no longer waits for this task (%s): heartbeats end", code)
                    return
                LOG.warning("heartbeat failed: %s", error)
            except BotoCoreError as error:  # the next beat may get through
                LOG.warning("heartbeat failed: %s", error)


def from_env(env: Mapping[str, str]) -> Heartbeat | None:
    token = env.get("TASK_TOKEN")
    if not token:
        return None
    try:
        period = float(env.get("TASK_HEARTBEAT_SECONDS") or 0)
        vouch = env.get("TASK_HEARTBEAT_FOR_SECONDS")
        until = time.time() + float(vouch) if vouch else None  # from the worker's start
    except ValueError:
        LOG.warning("malformed heartbeat settings: no heartbeats")
        return None
    if period <= 0:
        return None
    return Heartbeat(env, token, period, until)


@contextlib.contextmanager
def running(env: Mapping[str, str]) -> Iterator[Heartbeat | None]:
    """Heartbeats for as long as the block runs (none without a task token)."""
    heartbeat = from_env(env)
    if heartbeat is not None:
        heartbeat.start()
    try:
        yield heartbeat
    finally:
        if heartbeat is not None:
            heartbeat.stop()
