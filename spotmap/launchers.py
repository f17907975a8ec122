"""How the local Fargate starts a task's container: a fresh OS process of the worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path


def exit_status(returncode: int) -> int:
    """A process killed by signal N reports 128 + N, as a container's exit code does (137, 143)."""
    return 128 - returncode if returncode < 0 else returncode


class _Subprocess:
    def __init__(self, popen: subprocess.Popen[bytes]):
        self.popen = popen
        self.pid = popen.pid

    def wait(self) -> int:
        return exit_status(self.popen.wait())

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)  # the container's whole process tree, as docker stop does


class SubprocessLauncher:
    """Starts `python -m worker` in a new session with exactly the task's environment."""

    def __init__(self, root: Path):
        self.root = root

    def start(self, env: dict[str, str], log_path: Path) -> _Subprocess:
        full_env = dict(env)
        full_env["PYTHONPATH"] = os.pathsep.join([str(self.root), str(self.root / "functions")])
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(
                [sys.executable, "-m", "worker"],
                cwd=self.root,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return _Subprocess(popen)


__all__ = ["SubprocessLauncher", "exit_status", "signal"]
