"""Stop signals for the CLI: SIGTERM (kill, timeout, CI cancellation), SIGINT (Ctrl-C) and SIGHUP (a
closed terminal) become one exception in the main thread, so `local run` and `local serve` stop every
task, Lambda instance and fork server they started, print one line and exit with 128 + the signal,
as a shell reports a process killed by it."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(BaseException):
    """Raised in the main thread by the first stop signal. A BaseException, as KeyboardInterrupt is,
    so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.detail = ""  # what stopping did, for the one line the CLI prints

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """While active, the first stop signal raises Stopped in the main thread, at once or, inside
    `deferred()` (starting or stopping the local cloud, which must not be cut half-way), when the
    deferred block ends. Later signals are ignored: the stop they ask for is already under way."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._raised = False
        self._deferring = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signum
        if not self._deferring:
            self._raised = True
            raise Stopped(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        self.raise_pending()

    def raise_pending(self) -> None:
        if self.received is not None and not self._raised and not self._deferring:
            self._raised = True
            raise Stopped(self.received)
