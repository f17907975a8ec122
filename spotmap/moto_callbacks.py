"""Step Functions' callback pattern as AWS answers it, on moto's interpreter (applied by
moto_patches.configure()).

moto 5.2's interpreter keeps a task token usable after its Task state ended: a second SendTaskSuccess is
accepted (and overwrites the outcome), a heartbeat after the wait timed out is accepted, and an
outcome sent before the Lambda invocation returned is lost to a heartbeat timeout. AWS answers
TaskTimedOut ("The task token has either expired or the task associated with the token has already
been closed", SendTaskSuccess / SendTaskHeartbeat API reference) once the task is closed, and accepts
a completion at any time while it is open. A local cloud that accepted duplicates would hide exactly
the bugs the task-event path must not have (a double count, a second outcome).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from spotmap.moto_patches import SFN, _replace, _target

CALLBACK = f"{SFN}.eval.callback.callback"
POOL = (CALLBACK, "CallbackPoolManager")  # .notify, .heartbeat
ENDPOINT = (CALLBACK, "CallbackEndpoint")  # .interrupt_all, .setup_heartbeat_endpoint
API = "moto.stepfunctions.parser.api"
# moto raises these without a message (a TypeError: HTTP 500); AWS's messages
ERRORS = {
    "TaskTimedOut": "Task Timed Out: 'Provided task does not exist anymore'",
    "InvalidToken": "Invalid Token: 'Invalid token'",
    "TaskDoesNotExist": "Task Does Not Exist: 'Provided task does not exist'",
}
# (class, method) of every patch, for the tests
METHODS = (
    (POOL, "notify"),
    (POOL, "heartbeat"),
    (ENDPOINT, "interrupt_all"),
    (ENDPOINT, "setup_heartbeat_endpoint"),
    *(((API, name), "__init__") for name in ERRORS),
)

_lock = threading.Lock()


def _closed(endpoint: Any) -> bool:
    return bool(getattr(endpoint, "spotmap_closed", False)) or endpoint.get_outcome() is not None


@functools.cache
def install() -> None:
    pool_class = _target(*POOL)
    endpoint_class = _target(*ENDPOINT)
    timed_out = _target(API, "TaskTimedOut")
    aws_error = _target("moto.core.exceptions", "AWSError")
    interrupt_all = endpoint_class.interrupt_all
    setup_heartbeat_endpoint = endpoint_class.setup_heartbeat_endpoint

    def notify(self: Any, callback_id: str, outcome: Any) -> bool:
        endpoint = self._pool.get(callback_id, None)
        if endpoint is None:
            return False
        with _lock:  # one outcome per token: a concurrent second one finds it closed
            if _closed(endpoint) or endpoint.consumer_error is not None:
                raise timed_out()
            endpoint.notify(outcome=outcome)
        return True

    def heartbeat(self: Any, callback_id: str) -> bool:
        endpoint = self._pool.get(callback_id, None)
        if endpoint is None:
            return False
        with _lock:
            if _closed(endpoint) or endpoint.consumer_error is not None:
                raise timed_out()
            endpoint.notify_heartbeat()
        return True  # an open task accepts a heartbeat even before its heartbeat clock runs

    def interrupt_all_and_close(self: Any) -> None:
        # called when the Task state's wait ends (outcome, timeout or error): the token is closed
        self.spotmap_closed = True
        interrupt_all(self)

    def setup_heartbeat_endpoint_after_outcome(self: Any, heartbeat_seconds: int) -> Any:
        heartbeat_endpoint = setup_heartbeat_endpoint(self, heartbeat_seconds)
        if self.get_outcome() is not None:  # completed while the Lambda invocation still ran
            heartbeat_endpoint.notify()
        return heartbeat_endpoint

    def with_message(name: str) -> Any:
        def __init__(self: Any, message: str = ERRORS[name]) -> None:  # noqa: N807 - the patched method
            aws_error.__init__(self, message, name, 400)

        return __init__

    for name in ERRORS:
        _replace(_target(API, name), "__init__", with_message(name))
    _replace(pool_class, "notify", notify)
    _replace(pool_class, "heartbeat", heartbeat)
    _replace(endpoint_class, "interrupt_all", interrupt_all_and_close)
    _replace(endpoint_class, "setup_heartbeat_endpoint", setup_heartbeat_endpoint_after_outcome)
