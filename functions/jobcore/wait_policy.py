"""Adaptive polling: how long an item's WaitForTask waits before the next DescribeTasks.

Every poll cycle costs three state transitions (Wait, Poll, CheckTask) and a Lambda invocation, and
the history of a child execution is limited, so polls should be few; but every second between a
task's end and its detection is wall-clock time the job loses. The policy:

- Unknown expectation (no item of the job has finished yet): geometric growth. Each wait is half
  the time elapsed so far (at least the minimum), so the number of polls grows with log(duration)
  and a task is noticed at most a third of its duration late.
- Known expectation (the median task duration of the job's finished items): wait until about the
  expected end, then poll every ~5% of the expected duration. A task running far past the
  expectation gets geometric growth again (measured from the expected end), so a wrong expectation
  cannot cause a burst of polls.
- Every wait is clamped to [POLL_MIN_SECONDS, POLL_MAX_SECONDS] and is a whole number of seconds
  (a Wait state's SecondsPath needs an integer).

On a job of equal-length tasks of duration D with D ≤ a few times POLL_MAX_SECONDS and more items
than MaxConcurrency, items after the first wave know the expectation: about 4 polls (13 transitions
including Launch) and a detection delay under 5% of D; the first wave costs more (see the unit test
that simulates it: the job-wide means meet ≤ 15 transitions per item and ≤ 10% delay).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from cachetools import TLRUCache

from jobcore.job_store import JobStore
from jobcore.models import TaskStatus

UNKNOWN_GROWTH = 0.5  # wait = this × elapsed while the duration is unknown
SHORT_POLL_FRACTION = 0.05  # polls around the expected end, as a fraction of the expected duration
OVERDUE_GROWTH = 0.5  # wait = this × time past the expected end, once well past it

EXPECTATION_SAMPLES = 10
# how long an instance reuses a job's expectation: briefly while none is known (the first items are
# about to finish), longer once known (a median of finished durations moves slowly)
UNKNOWN_TTL_SECONDS = 5.0
KNOWN_TTL_SECONDS = 60.0


def next_wait(elapsed_s: float, expected_s: float | None, min_s: float, max_s: float) -> int:
    """Seconds to wait before the next poll of a task that has been running `elapsed_s` seconds."""
    low = max(0, math.ceil(min_s))
    high = max(low, math.ceil(max_s))
    elapsed = max(0.0, elapsed_s)
    if expected_s is None or expected_s <= 0:
        wait = UNKNOWN_GROWTH * elapsed
    else:
        remaining = expected_s - elapsed
        short = SHORT_POLL_FRACTION * expected_s
        wait = remaining if remaining > short else max(short, OVERDUE_GROWTH * -remaining)
    return min(high, max(low, math.ceil(wait)))


class _ExpectationCache:
    """Per-job expected durations kept for a while: a warm Lambda instance polls many items of the
    same job, and one S3 listing per job every 5 s (60 s once known) is plenty. A cachetools TLRUCache:
    each entry's time to live depends on its value, and an instance that lives through many jobs keeps
    the 256 most recent."""

    def __init__(self, unknown_ttl_s: float, known_ttl_s: float, timer: Callable[[], float] = time.monotonic):
        def expires(key: tuple[str, str], value: float | None, now: float) -> float:
            return now + (unknown_ttl_s if value is None else known_ttl_s)

        self._entries: TLRUCache[tuple[str, str], float | None] = TLRUCache(
            maxsize=256, ttu=expires, timer=timer
        )
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe

    def get(self, bucket: str, job_id: str) -> tuple[bool, float | None]:
        with self._lock:
            if (bucket, job_id) not in self._entries:
                return False, None
            return True, self._entries[(bucket, job_id)]

    def put(self, bucket: str, job_id: str, value: float | None) -> None:
        with self._lock:
            self._entries[(bucket, job_id)] = value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _ExpectationCache(UNKNOWN_TTL_SECONDS, KNOWN_TTL_SECONDS)


def clear_cache() -> None:
    _cache.clear()


def expected_duration(s3: Any, bucket: str, job_id: str, samples: int = EXPECTATION_SAMPLES) -> float | None:
    """Median task duration (seconds) of up to `samples` succeeded items of the job; None if none."""
    return expected_duration_of(JobStore(s3, bucket, job_id), samples)


def expected_duration_of(store: JobStore, samples: int = EXPECTATION_SAMPLES) -> float | None:
    """Median task duration (seconds) of up to `samples` succeeded items of the store's job; None if
    none. Kept per job for a while by the instance (_ExpectationCache)."""
    hit, value = _cache.get(store.bucket, store.job_id)
    if hit:
        return value
    durations = [
        seconds
        for seconds in map(_task_seconds, store.sample_outcomes(TaskStatus.SUCCEEDED, samples))
        if seconds is not None and seconds > 0
    ]
    value = statistics.median(durations) if durations else None
    _cache.put(store.bucket, store.job_id, value)
    return value


def _task_seconds(record: Any) -> float | None:
    seconds = record.get("task_seconds") if isinstance(record, dict) else None
    return float(seconds) if isinstance(seconds, (int, float)) else None
