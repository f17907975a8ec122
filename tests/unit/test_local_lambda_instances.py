"""Local Lambda instances: one killed after a timeout is never handed another event."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from multiprocessing.connection import Connection

from spotmap.lambdas import _Instance


def test_an_instance_killed_after_a_timeout_is_not_alive_even_before_its_process_is_reaped() -> None:
    # GIVEN an instance whose process has been killed but not yet reaped (a zombie: signal 0 still
    # reaches it), as after `invoke` timed out and killed it
    process = subprocess.Popen(["sleep", "30"])
    ours, theirs = socket.socketpair()
    instance = object.__new__(_Instance)
    instance.pid = process.pid
    instance._socket = ours
    instance.conn = Connection(os.dup(ours.fileno()))
    try:
        instance.kill()
        os.kill(process.pid, 0)  # the zombie still answers

        # WHEN the pool asks whether it may reuse it
        # THEN it may not: its connection is closed, and the next event would fail on it
        assert not instance.alive
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        theirs.close()
