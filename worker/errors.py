"""The worker's exceptions; each maps to an exit code (see worker/README.md)."""

from __future__ import annotations

import signal

from jobcore.settings import ConfigError

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "ConfigError", "ProcessingError", "Terminated"]

EXIT_OK = 0
EXIT_FAILED = 1
# ConfigError is jobcore's, the one class the functions' settings raise too: the worker or the job is
# misconfigured (missing environment, unknown processor, bad params).
EXIT_CONFIG = ConfigError.exit_code


class ProcessingError(Exception):
    """The item cannot be processed (bad input, a failing command, ...): exit 1, no result record."""

    exit_code = EXIT_FAILED


class Terminated(BaseException):  # noqa: N818 - it is a stop request, not an error
    """A stop signal arrived (SIGTERM: Spot interruption, StopTask, abort). Derives from BaseException so an
    `except Exception` in a processor cannot swallow it. Exit 128 + signal number (143 for SIGTERM)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = int(signum)
        super().__init__(f"stopped by {signal.Signals(self.signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
