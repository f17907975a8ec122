"""Adaptive polling: the policy's shape, and the issue-6 target on a simulated job of equal tasks."""

from __future__ import annotations

import heapq
import itertools
import json
import statistics
from dataclasses import dataclass
from typing import Any

import pytest

from jobcore import layout, wait_policy
from jobcore.wait_policy import expected_duration, next_wait

LAUNCH_TRANSITIONS = 1
POLL_CYCLE_TRANSITIONS = 3  # Wait + Poll + CheckTask


def test_unknown_duration_grows_geometrically_within_bounds() -> None:
    waits = [next_wait(elapsed, None, 10, 300) for elapsed in (0, 10, 40, 100, 400, 10_000)]
    assert waits == [10, 10, 20, 50, 200, 300]


def test_known_duration_waits_until_the_expected_end_then_polls_briefly() -> None:
    # a 600 s task: from 100 s, wait the 500 s left (clamped to 300); near the end, 5% of 600 s
    assert next_wait(100, 600, 10, 300) == 300
    assert next_wait(450, 600, 10, 300) == 150
    assert next_wait(590, 600, 10, 300) == 30
    assert next_wait(620, 600, 10, 300) == 30
    # far past the expectation, the wait grows again instead of polling every 30 s
    assert next_wait(1800, 600, 10, 300) == 300


def test_waits_are_whole_seconds_rounded_up_and_never_negative() -> None:
    assert next_wait(0, None, 0.2, 0.5) == 1
    assert next_wait(3.3, 3.4, 0, 100) == 1
    assert isinstance(next_wait(12.34, 100.5, 1.5, 60.7), int)
    assert next_wait(-5, None, 0, 10) == 0


@dataclass
class SimulatedJob:
    transitions_per_item: float
    mean_delay_fraction: float


def simulate(
    items: int, concurrency: int, duration: float, min_s: float, max_s: float, startup: float
) -> SimulatedJob:
    """A job of equal tasks through the state machine's Launch → (Wait → Poll → Choice)* loop.

    Launch waits POLL_MIN_SECONDS (it knows no expectation); each Poll sees the median duration of
    items already detected as finished, as PollTask's S3 sample does."""
    sequence = itertools.count()
    queue: list[tuple[float, int, float, float, int]] = []
    finished_at: list[float] = []
    transitions: list[int] = []
    delays: list[float] = []
    pending = iter(range(items))

    def launch(now: float) -> None:
        if next(pending, None) is None:
            return
        started, ends = now + startup, now + startup + duration
        heapq.heappush(
            queue, (now + next_wait(0, None, min_s, min_s), next(sequence), started, ends, LAUNCH_TRANSITIONS)
        )

    for _ in range(concurrency):
        launch(0.0)
    while queue:
        now, _, started, ends, count = heapq.heappop(queue)
        count += POLL_CYCLE_TRANSITIONS
        if now >= ends:
            finished_at.append(now)
            transitions.append(count)
            delays.append((now - ends) / duration)
            launch(now)
            continue
        expected = duration if any(done <= now for done in finished_at) else None
        elapsed = now - started if now >= started else now - (started - startup)
        heapq.heappush(
            queue, (now + next_wait(elapsed, expected, min_s, max_s), next(sequence), started, ends, count)
        )
    return SimulatedJob(statistics.mean(transitions), statistics.mean(delays))


@pytest.mark.parametrize("duration", [60, 300, 600, 900])
@pytest.mark.parametrize("startup", [0, 30])
@pytest.mark.parametrize(("items", "concurrency"), [(200, 20), (1000, 100)])
def test_equal_tasks_meet_the_transition_and_detection_targets(
    duration: float, startup: float, items: int, concurrency: int
) -> None:
    # GIVEN a job of equal-length tasks, more items than MaxConcurrency, and the template's poll bounds
    # (POLL_MAX_SECONDS must allow reaching the expected end in a few waits: 900 s here)
    # WHEN its polling is simulated
    job = simulate(items, concurrency, duration, min_s=10, max_s=900, startup=startup)

    # THEN on average an item costs at most 15 transitions and is noticed within 10% of its duration
    assert job.transitions_per_item <= 15, job
    assert job.mean_delay_fraction <= 0.10, job


def put_outcome(s3: Any, job_id: str, index: int, seconds: float | None) -> None:
    body = {"index": index, "status": "SUCCEEDED", "task_seconds": seconds}
    s3.put_object(
        Bucket="spotmap-jobbucket",
        Key=layout.outcome_key(job_id, index, "SUCCEEDED"),
        Body=json.dumps(body).encode(),
    )


def test_expected_duration_is_the_median_of_finished_items_and_is_cached(s3: Any) -> None:
    # GIVEN three succeeded items of a job (and one without a duration)
    for index, seconds in enumerate([100.0, 300.0, 200.0, None]):
        put_outcome(s3, "job-a", index, seconds)

    # WHEN the expectation is read twice, with a fourth outcome written in between
    first = expected_duration(s3, "spotmap-jobbucket", "job-a")
    put_outcome(s3, "job-a", 9, 10_000.0)
    second = expected_duration(s3, "spotmap-jobbucket", "job-a")

    # THEN it is the median, and the second read came from the instance's cache (60 s once known)
    assert first == 200.0
    assert second == 200.0
    wait_policy.clear_cache()
    assert expected_duration(s3, "spotmap-jobbucket", "job-a") == 250.0


def test_no_finished_item_means_no_expectation(s3: Any) -> None:
    assert expected_duration(s3, "spotmap-jobbucket", "job-without-outcomes") is None


def test_an_expectation_is_kept_briefly_while_unknown_and_longer_once_known() -> None:
    # GIVEN the instance's cache of expectations, on a clock the test moves
    now = [1000.0]
    cache = wait_policy._ExpectationCache(5.0, 60.0, timer=lambda: now[0])
    cache.put("bucket", "job-unknown", None)
    cache.put("bucket", "job-known", 200.0)

    # WHEN 4 s pass THEN both are still kept
    now[0] += 4
    assert cache.get("bucket", "job-unknown") == (True, None)
    assert cache.get("bucket", "job-known") == (True, 200.0)

    # WHEN 6 s have passed THEN the unknown one is read again, the known one kept until 60 s
    now[0] += 2
    assert cache.get("bucket", "job-unknown") == (False, None)
    assert cache.get("bucket", "job-known") == (True, 200.0)
    now[0] += 55
    assert cache.get("bucket", "job-known") == (False, None)
