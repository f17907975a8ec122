"""How long Fargate bills a task: from the start of its image pull until it stops, rounded up to the
second, and never less than a minute.

"AWS Fargate pricing is calculated based on the vCPU, memory, ... used from the time you start to
download your container image until the Amazon ECS Task ... terminates, rounded up to the nearest
second", with a one-minute minimum for Linux tasks (https://aws.amazon.com/fargate/pricing/). A job of
many one-second tasks therefore costs a minute per task, not a second: the cost block must say so, or
short items look free when they are the most wasteful (batches: jobcore.batching).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

MINIMUM_SECONDS = 60.0


def billed_seconds(task: dict[str, Any], until: Any) -> float:
    """Seconds Fargate bills for a task (a DescribeTasks entry) stopped, or looked at, at `until`:
    from `pullStartedAt` (else `createdAt`, an upper bound: ECS creates the task just before the pull)
    to `until`, rounded up, at least MINIMUM_SECONDS. A task that never began pulling nor started
    (no `pullStartedAt`, no `startedAt`) is not billed."""
    if not task.get("pullStartedAt") and not task.get("startedAt"):
        return 0.0
    begin = task.get("pullStartedAt") or task.get("createdAt") or task.get("startedAt")
    if not isinstance(begin, datetime) or not isinstance(until, datetime):
        return MINIMUM_SECONDS
    return max(MINIMUM_SECONDS, float(math.ceil(max(0.0, (until - begin).total_seconds()))))


def billed_duration(seconds: float) -> float:
    """A run of `seconds` as Fargate bills it (rounded up, at least a minute)."""
    return max(MINIMUM_SECONDS, float(math.ceil(max(0.0, seconds))))
