"""The plan's arithmetic (jobcore.planning): waves, the quotas, the launch rate, wall time and cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobcore.cost import PARENT_TRANSITIONS, cost_block
from jobcore.models import Usage
from jobcore.planning import (
    PlanInputs,
    Quota,
    format_plan,
    make_plan,
    quota_concurrency,
    start_plan,
    start_warnings,
)

PLENTY = Quota(4000.0, "test default")


def inputs(**changes: object) -> PlanInputs:
    base: dict[str, object] = {
        "items": 250,
        "max_concurrency": 100,
        "task_vcpu": 1.0,
        "task_memory_gb": 2.0,
        "spot_quota": PLENTY,
        "on_demand_quota": PLENTY,
        "item_seconds": 60.0,
        "start_seconds": 45.0,
        "poll_seconds": 30.0,
    }
    base.update(changes)
    return PlanInputs(**base)  # type: ignore[arg-type]


def test_max_concurrency_sets_the_waves_when_no_quota_binds() -> None:
    # GIVEN 250 items of 60 s, MaxConcurrency 100, 4,000 Spot vCPUs
    # WHEN the job is planned
    plan = make_plan(inputs())

    # THEN 100 tasks run at once in 3 waves of 105 s each, and no limit is warned about
    assert (plan["concurrency"], plan["waves"]) == (100, 3)
    assert plan["vcpus"]["needed"] == 100
    assert plan["estimate"]["wall_seconds"] == 315.0
    assert plan["estimate"]["paced_by"] == "MaxConcurrency"
    assert plan["launch_rate"]["seconds_to_launch_all"] == 7.5  # (250 - 100) / 20
    assert plan["warnings"] == []


def test_a_spot_quota_that_binds_sets_the_pace_and_says_so() -> None:
    # GIVEN the same job in an account whose Fargate Spot quota is 40 vCPUs
    plan = make_plan(inputs(spot_quota=Quota(40.0, "Service Quotas L-36FBB829")))

    # THEN 40 tasks run at once, in 7 waves instead of 3, and the warning names the quota and its code
    assert (plan["concurrency"], plan["waves"]) == (40, 7)
    assert plan["estimate"]["wall_seconds"] == 7 * 105.0
    assert plan["estimate"]["paced_by"] == "the Fargate Spot vCPU quota"
    assert plan["warnings"] == [
        "the Fargate Spot vCPU quota sets the pace: 40 vCPUs (Service Quotas L-36FBB829) run 40 task(s) of 1 "
        "vCPU at once, not 100 (100 vCPUs needed): 7 wave(s) instead of 3; ask for more in Service Quotas "
        "(fargate L-36FBB829)"
    ]


def test_a_quota_smaller_than_one_task_starts_nothing() -> None:
    # GIVEN 2-vCPU tasks and a Spot quota of 1 vCPU
    plan = make_plan(inputs(task_vcpu=2.0, spot_quota=Quota(1.0, "flag")))

    # THEN no task can start: no waves, no wall time, and a warning that says so
    assert (plan["concurrency"], plan["waves"], plan["estimate"]["wall_seconds"]) == (0, None, None)
    assert "no task can start" in plan["warnings"][0]


def test_the_launch_rate_sets_the_pace_of_many_short_items() -> None:
    # GIVEN 5,000 items of 10 s, all allowed at once
    plan = make_plan(
        inputs(
            items=5000,
            max_concurrency=10_000,
            item_seconds=10.0,
            start_seconds=5.0,
            spot_quota=Quota(100_000.0, "flag"),
        )
    )

    # THEN launching them (100 at once, then 20 per second) takes 245 s, longer than the work (15 s)
    assert (plan["concurrency"], plan["waves"]) == (5000, 1)
    assert plan["estimate"]["wall_seconds"] == 245.0 + 15.0
    assert plan["estimate"]["paced_by"] == "the Fargate launch rate"
    assert any(warning.startswith("the Fargate launch rate sets the pace") for warning in plan["warnings"])


def test_the_estimated_cost_uses_the_summarys_price_table() -> None:
    # GIVEN 250 items of 60 s on 1 vCPU / 2 GB, polled every 30 s
    plan = make_plan(inputs())

    # THEN the cost block is jobcore.cost's for that usage: Spot, on-demand equivalent and orchestration
    expected = cost_block(
        Usage(
            spot_vcpu_seconds=250 * 60.0,
            spot_gb_seconds=250 * 120.0,
            lambda_invocations=250 * 3,
            lambda_gb_seconds=250 * 3 * 128 / 1024 * 0.2,
            state_transitions=250 * (1 + 2 * 3 + 1),
        ),
        "us-east-1",
        None,
        PARENT_TRANSITIONS,
    )
    assert plan["cost"]["total_usd"] == expected["total_usd"]
    assert plan["cost"]["on_demand_equivalent_usd"] == expected["on_demand_equivalent_usd"]
    assert plan["cost"]["orchestration_usd"] == pytest.approx(
        expected["lambda"]["usd"] + expected["step_functions"]["usd"], abs=1e-9
    )


def test_start_warnings_are_the_plans_quota_warnings() -> None:
    # GIVEN StartJob's view of a job: items, MaxConcurrency, TaskCpu/TaskMemory units, the quotas
    quotas = (Quota(2.0, "Service Quotas L-36FBB829"), PLENTY)

    # WHEN it computes the warnings, THEN they are the plan's, word for word
    plan = make_plan(inputs(items=8, max_concurrency=4, spot_quota=quotas[0], item_seconds=None))
    assert start_warnings(8, 4, 1024, 2048, quotas) == plan["warnings"] != []
    assert start_warnings(2, 4, 1024, 2048, quotas) == []


def test_the_printed_plan_names_each_number_and_its_source() -> None:
    lines = format_plan(make_plan(inputs(spot_quota=Quota(40.0, "Service Quotas L-36FBB829"))))
    assert "  Fargate Spot vCPU quota: 40 (Service Quotas L-36FBB829): 40 task(s) at once" in lines
    assert "estimated wall time: 12:15 (735 s), paced by the Fargate Spot vCPU quota" in lines
    assert lines[-1].startswith("WARNING: the Fargate Spot vCPU quota sets the pace")


def test_startjob_caps_the_maps_concurrency_at_what_the_spot_quota_fits() -> None:
    # GIVEN StartJob's plans: a quota that fits 2 of MaxConcurrency 4, one that fits all, one that fits none
    binding = start_plan(8, 4, 1024, 2048, (Quota(2.0, "q"), PLENTY))
    roomy = start_plan(8, 4, 1024, 2048, (Quota(8.0, "q"), PLENTY))
    none_fit = start_plan(8, 4, 2048, 4096, (Quota(1.0, "q"), PLENTY))

    # THEN the Map runs 2 at once, its own MaxConcurrency, and 1 (a Map's 0 would mean "no limit")
    assert (quota_concurrency(binding), quota_concurrency(roomy), quota_concurrency(none_fit)) == (2, None, 1)


def test_a_batched_job_is_planned_in_tasks_of_many_items() -> None:
    # GIVEN 10,000 items of 3 s in 100 batches of 100, MaxConcurrency 100
    plan = make_plan(
        inputs(items=10_000, task_count=100, batch={"max_items": 100}, item_seconds=3.0, max_concurrency=100)
    )

    # THEN the waves are of tasks: one wave of 100 tasks, each starting once and running its 100 items
    assert (plan["tasks"], plan["concurrency"], plan["waves"]) == (100, 100, 1)
    assert plan["estimate"]["per_task_seconds"] == 45.0 + 100 * 3.0
    assert plan["launch_rate"]["seconds_to_launch_all"] == 0.0  # 100 launches: the burst
    # AND the cost is of 100 tasks of 300 s (10 polls of 30 s each), not of 10,000 launches and polls
    task_seconds = 300.0
    expected = cost_block(
        Usage(
            spot_vcpu_seconds=100 * task_seconds,
            spot_gb_seconds=100 * 2.0 * task_seconds,
            lambda_invocations=100 * 11,
            lambda_gb_seconds=100 * 11 * 128 / 1024 * 0.2,
            state_transitions=100 * (1 + 10 * 3 + 1),
        ),
        "us-east-1",
        None,
        PARENT_TRANSITIONS,
    )
    assert plan["cost"]["total_usd"] == expected["total_usd"]
    assert format_plan(plan)[0] == (
        "items: 10000   tasks: 100 (batches of max_items 100: 100 items per task on average)"
    )
    # AND StartJob's quota warnings count the tasks that need vCPUs, not the items
    quotas = (Quota(100.0, "Service Quotas L-36FBB829"), PLENTY)
    assert start_warnings(10_000, 200, 1024, 2048, quotas, task_count=100) == []
    assert start_warnings(10_000, 200, 1024, 2048, quotas) != []


def test_spotmap_plan_counts_a_manifests_batches_and_the_stacks_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from spotmap.cli import main as spotmap_main

    # GIVEN a sweep of 8 items in batches of 3, and one that says nothing of batches
    batched, plain = tmp_path / "batched.job.json", tmp_path / "plain.job.json"
    batched.write_text(json.dumps({"processor": "noop", "count": 8, "batch": {"max_items": 3}}))
    plain.write_text(json.dumps({"processor": "noop", "count": 8}))

    def plan(path: Path, *extra: str) -> dict[str, Any]:
        capsys.readouterr()
        assert spotmap_main(["plan", str(path), "--local", "--item-seconds", "10", "--json", *extra]) == 0
        document: dict[str, Any] = json.loads(capsys.readouterr().out)
        return document

    # WHEN they are planned (the second with the stack's BatchMaxItems=4)
    first, second = plan(batched), plan(plain, "--param", "BatchMaxItems=4")

    # THEN the tasks are the batches StartJob would make: 3 + 3 + 2, and 4 + 4
    assert (first["items"], first["tasks"]) == (8, 3)
    assert (second["items"], second["tasks"]) == (8, 2)
    assert plan(plain)["tasks"] == 8
    assert (first.get("batch"), second.get("batch")) == ({"max_items": 3}, {"max_items": 4})
