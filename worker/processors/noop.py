"""noop: does nothing and counts its items; for measuring the pipeline's own overhead."""

from __future__ import annotations

import time
from typing import Any

from worker.api import Context, processor


@processor("noop")
def noop(ctx: Context) -> dict[str, Any]:
    """Returns {"items": 1} per item; params.sleep_seconds (default 0) makes it take that long."""
    seconds = float(ctx.params.get("sleep_seconds") or 0)
    if seconds > 0:
        time.sleep(seconds)  # a stop signal interrupts the sleep
    return {"items": {"$sum": 1}}
