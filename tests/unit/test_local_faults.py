"""The local Fargate's injected faults: when a reclaim lands."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotmap.cloud import project_root
from spotmap.fargate import Faults, LocalFargate, _Task
from spotmap.template import load_stack


def _task(tmp_path: Path, capacity: str, attempt: int) -> _Task:
    tags = [{"key": "spotmap:item-index", "value": "0"}, {"key": "spotmap:attempt", "value": str(attempt)}]
    return _Task(
        arn=f"arn:aws:ecs:us-east-1:123456789012:task/c/{attempt}",
        task_id=str(attempt),
        capacity=capacity,
        started_by=None,
        group=None,
        tags=tags,
        overrides={},
        env={},
        log_path=tmp_path / f"{attempt}.log",
        stop_timeout=120,
    )


def test_spot_interruption_after_sets_the_moment_of_every_reclaim_and_of_nothing_else(tmp_path: Path) -> None:
    # GIVEN a local Fargate that reclaims every Spot task 2.5 s after it starts, and crashes every task
    faults = Faults(spot_interruption_rate=1.0, crash_rate=1.0, spot_interruption_after=2.5, seed=7)
    fargate = LocalFargate(
        load_stack(project_root()), launcher=None, base_env={}, log_dir=tmp_path, faults=faults
    )  # type: ignore[arg-type]

    # WHEN it decides the faults of Spot tasks and of an on-demand task
    spot = [fargate._decide_faults(_task(tmp_path, "FARGATE_SPOT", attempt)) for attempt in (1, 2)]
    on_demand = fargate._decide_faults(_task(tmp_path, "FARGATE", 3))

    # THEN each Spot reclaim lands at 2.5 s; the on-demand task's crash keeps a random moment of a run
    assert [(d.interrupt, d.moment) for d in spot] == [(True, 2.5), (True, 2.5)]
    assert not on_demand.interrupt and on_demand.crash and on_demand.moment < 2.5


def test_a_negative_moment_is_refused() -> None:
    # GIVEN / WHEN a reclaim moment before the task starts / THEN it is refused, naming the option
    with pytest.raises(ValueError, match="spot-interruption-after must be 0 or more seconds"):
        Faults(spot_interruption_after=-1)
