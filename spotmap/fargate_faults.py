"""The faults Fargate Spot brings, injected into the local Fargate on demand: no capacity for a launch,
a reclaim (Spot interruption) or a crash at a moment of a task's run, reproducible with a seed."""

from __future__ import annotations

import random
import statistics
import threading
from dataclasses import dataclass


@dataclass
class Faults:
    """Fault injection, reproducible with a seed."""

    spot_interruption_rate: float = 0.0
    capacity_failure_rate: float = 0.0
    crash_rate: float = 0.0
    launch_rate: float = 20.0  # Fargate's task launch bucket: refill per second
    launch_burst: int = 100  # and size
    seed: int | None = None
    # when a reclaim decided by spot_interruption_rate lands: this many seconds after its task started
    # (e.g. after a checkpoint); None: a random moment of a typical run
    spot_interruption_after: float | None = None

    def __post_init__(self) -> None:
        for name in ("spot_interruption_rate", "capacity_failure_rate", "crash_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.launch_rate <= 0:
            raise ValueError(f"launch-rate must be positive, got {self.launch_rate}")
        if self.launch_burst < 1:
            raise ValueError(f"launch-burst must be at least 1, got {self.launch_burst}")
        after = self.spot_interruption_after
        if after is not None and not after >= 0:
            raise ValueError(f"spot-interruption-after must be 0 or more seconds, got {after}")


@dataclass
class FaultDecision:
    interrupt: bool
    crash: bool
    moment: float  # seconds after the start


class FaultInjector:
    """Decides which launches find no capacity and which tasks are reclaimed or crash, and when.

    `faults` may be replaced while tasks run (tests raise the rates mid-job); `rng` is the unseeded
    source, also of the capacity provider a mixed strategy picks."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self._calls: dict[str, int] = {}
        self._durations: list[float] = []  # of the last tasks that ran to a successful end
        self._lock = threading.Lock()

    def calls_with(self, attempt: str) -> int:
        """How many RunTask calls named this item attempt so far (the n-th retry draws anew)."""
        with self._lock:
            self._calls[attempt] = self._calls.get(attempt, 0) + 1
            return self._calls[attempt]

    def draw(self, kind: str, attempt: str, call: int = 0) -> random.Random:
        """The random numbers of one fault decision. With a seed they depend only on the seed, the item
        index and attempt: `--seed N` reproduces the same faults whatever order threads run in."""
        if self.faults.seed is None:
            return self.rng
        return random.Random(f"{self.faults.seed}/{kind}/{attempt}/{call}")

    def no_capacity(self, capacity: str, attempt: str) -> bool:
        """Whether this launch of an item attempt finds no Spot capacity."""
        draw = self.draw("capacity", attempt, self.calls_with(attempt))
        return capacity == "FARGATE_SPOT" and draw.random() < self.faults.capacity_failure_rate

    def decide(self, capacity: str, attempt: str) -> FaultDecision:
        """Decide, as a task starts, whether and when a fault hits it (a random moment of its run)."""
        draw = self.draw("task", attempt)
        with self._lock:
            interrupt = capacity == "FARGATE_SPOT" and draw.random() < self.faults.spot_interruption_rate
            crash = draw.random() < self.faults.crash_rate
            # a random moment of the run: within the first 80 % of a typical run of this cloud's tasks
            moment = draw.uniform(0.0, 0.8 * self._expected_run_seconds())
            if interrupt and self.faults.spot_interruption_after is not None:
                moment = self.faults.spot_interruption_after  # a crash keeps its random moment
        return FaultDecision(interrupt, crash, moment)

    def ran(self, seconds: float) -> None:
        """A task ran to a successful end in this time (what a typical run is)."""
        with self._lock:
            self._durations.append(seconds)
            del self._durations[:-50]

    def _expected_run_seconds(self) -> float:
        # before any task has finished, assume a short one: a fault must land inside the run
        return statistics.median(self._durations) if self._durations else 0.05
