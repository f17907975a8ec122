"""A fork server program for tests/unit/test_forkserver.py: nothing preloaded; each child reports what
it is (its session, its environment) and does what its request's args say."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from spotmap.forkserver import Entry


def reporting_program() -> Entry:
    def child(request: dict[str, Any], passed: int | None) -> int:
        facts = {"own_session": os.getsid(0) == os.getpid(), "env": dict(os.environ)}
        if passed is not None:  # what it reports goes to the socket passed to it
            os.write(passed, json.dumps(facts).encode())
        deadline = time.monotonic() + float(request["args"].get("sleep", 0))
        while time.monotonic() < deadline:  # bounded: until its signal, at most `sleep` seconds
            time.sleep(0.01)
        return int(request["args"]["code"])

    return child
