"""Stop requests: SIGTERM (and SIGINT) become a `Terminated` exception, raised where the worker is.

A Spot interruption, StopTask and an abort all arrive as SIGTERM, with up to `stopTimeout` seconds before
SIGKILL. The worker must stop promptly and must never write a result record for an interrupted attempt,
so by default the signal handler raises `Terminated` at once, wherever the main thread is (reading S3,
inside a processor, waiting for a child process). Two sections change that:

* `deferred()`: signals only set a flag while inside; on leaving, a pending stop is raised. Cooperative
  processors run in it and poll `should_stop()`; the command processor starts its child in it.
* `commit()`: called just before the result record's PUT. From then on a signal never raises: the PUT
  (atomic in S3) finishes and the worker exits 0, so there is never a half-written record and never a
  record from an attempt that reported failure.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from worker.errors import Terminated

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Cancellation:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._raise = True
        self._committed = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def committed(self) -> bool:
        return self._committed

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Record a stop request; raises `Terminated` unless deferred or committed. Only the first request
        raises, so cleanup after a stop is not interrupted by a second signal."""
        first = self.signum is None
        if first:
            self.signum = int(signum)
        if first and self._raise and not self._committed:
            raise Terminated(signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)

    def check(self) -> None:
        """Raise `Terminated` if a stop was requested (and the result is not being committed)."""
        if self.signum is not None and not self._committed:
            raise Terminated(self.signum)

    @contextmanager
    def deferred(self, check_after: bool = True) -> Iterator[None]:
        """Inside, a stop request only sets the flag; on a normal exit a pending stop is raised
        (unless `check_after` is False, for callers that check themselves)."""
        previous, self._raise = self._raise, False
        try:
            yield
        finally:
            self._raise = previous
        if check_after:
            self.check()

    def commit(self) -> None:
        """The result is about to be written: from now on stop requests never raise."""
        self._committed = True

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Route SIGTERM and SIGINT to this object while inside; the previous handlers are restored after.
        Signal handlers can only be set from the main thread; elsewhere this does nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {}
        try:
            for signum in STOP_SIGNALS:
                previous[signum] = signal.signal(signum, self._handle)
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
