"""Scale and cost, end to end on the local cloud (not timed: benchmarks measure speed)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.fargate import Faults
from spotmap.jobs import JobRunner
from tests.e2e.conftest import write_csv

# More no-op items than the launch bucket below holds, all at once: enough that many launches are
# throttled many times, small enough for the suite's budget on 2 cores; the 10,000-item run is
# benchmark P4 (`make bench`). Raise it with SPOTMAP_SCALE_ITEMS=10000.
SCALE_ITEMS = int(os.environ.get("SPOTMAP_SCALE_ITEMS", "30"))


def test_a_large_job_all_at_once_is_throttled_yet_runs_every_item_exactly_once_on_spot(
    tmp_path: Path,
) -> None:
    # GIVEN a manifest of more no-op items than Fargate's launch bucket holds
    manifest = tmp_path / "many.job.json"
    manifest.write_text(json.dumps({"processor": "noop", "source": {"count": SCALE_ITEMS}}))
    # AND a bucket of 2 launches refilled at one every 2 seconds (AWS: 100 and 20 per second), so that
    # launches throttle however slowly a loaded machine asks
    options = CloudOptions(
        parameters={"MaxConcurrency": str(SCALE_ITEMS), "PollMinSeconds": "1", "PollMaxSeconds": "2"},
        faults=Faults(launch_rate=0.5, launch_burst=2),
        state_dir=tmp_path / "state",
        run_schedules=False,
    )

    # WHEN they all start at once
    with LocalCloud(options=options) as cloud:
        runner = JobRunner(cloud, progress=None)
        watch = runner.submit(manifest)
        (summary,) = runner.wait([watch], timeout=900)
        refused = cloud.fargate.counters["run_task_throttled"]
        tasks = list(cloud.fargate.tasks.values())
        s3 = cloud.client("s3")
        outcomes = [
            json.loads(s3.get_object(Bucket=cloud.stack.bucket, Key=obj["Key"])["Body"].read())
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=cloud.stack.bucket, Prefix=f"jobs/{watch.job_id}/outcomes/"
            )
            for obj in page.get("Contents", [])
        ]

    # THEN every item ran and counted once, with no second task for any of them
    assert summary is not None and summary["status"] == "SUCCEEDED", summary
    assert summary["items"] == {"total": SCALE_ITEMS, "succeeded": SCALE_ITEMS, "failed": 0}
    assert summary["attempts"]["launched"] == SCALE_ITEMS == len(tasks)
    assert summary["result"] == {"items": SCALE_ITEMS}
    # AND every task ran on Spot: throttling is about rate, not capacity ...
    assert {task.capacity for task in tasks} == {"FARGATE_SPOT"}
    assert summary["attempts"]["on_demand_fallbacks"] == 0
    assert summary["attempts"]["capacity_retries"] == 0
    assert summary["cost"]["fargate"]["on_demand"]["vcpu_seconds"] == 0
    # ... though many items were throttled, some more often than CapacityRetriesBeforeOnDemand (3)
    throttled = [outcome["throttled_run_task_calls"] for outcome in outcomes]
    assert len(outcomes) == SCALE_ITEMS
    assert sum(1 for count in throttled if count) >= SCALE_ITEMS // 5
    assert max(throttled) > 3
    # AND the summary counts exactly the RunTask calls the local Fargate refused
    assert refused > 0
    assert summary["attempts"]["throttled_run_task_calls"] == sum(throttled) == refused


def test_the_cost_block_matches_a_hand_computation(tmp_path: Path, local_run) -> None:
    # GIVEN a small CSV job of a few items
    data_file = write_csv(tmp_path / "small.csv", rows=3000)
    shard_mb = round(data_file.stat().st_size / 1e6 / 3, 4)

    # WHEN it runs
    run = local_run(data_file, params={"ShardSizeMB": shard_mb})
    (summary,) = run.summaries
    assert summary["status"] == "SUCCEEDED"

    # THEN the cost block is what the task sizes, run times and the dated price table give by hand
    task_definition = {"vcpu": 1024 / 1024, "gb": 2048 / 1024}  # template defaults TaskCpu, TaskMemory
    outcomes = [
        json.loads(p.read_text()) for p in (run.out_dir / "jobs" / summary["job_id"]).glob("outcomes/*/*")
    ]
    assert len(outcomes) == summary["items"]["total"] == summary["attempts"]["launched"] >= 3
    # each task ran (and pulled) well under a minute, so Fargate bills each its one-minute minimum
    # (https://aws.amazon.com/fargate/pricing/), not the seconds it ran
    assert max(outcome["task_seconds"] for outcome in outcomes) < 50
    seconds = 60.0 * len(outcomes)
    cost = summary["cost"]
    spot, on_demand = cost["fargate"]["spot"], cost["fargate"]["on_demand"]
    assert spot["vcpu_seconds"] + on_demand["vcpu_seconds"] == pytest.approx(
        seconds * task_definition["vcpu"], abs=0.01
    )
    assert spot["gb_seconds"] + on_demand["gb_seconds"] == pytest.approx(
        seconds * task_definition["gb"], abs=0.01
    )
    assert cost["prices"]["region"] == "us-east-1"
    # us-east-1 list prices of the table's date: Fargate Spot $0.012144/vCPU-h, $0.0013335/GB-h;
    # on-demand $0.04048/vCPU-h, $0.004445/GB-h; Lambda $0.20/M requests + $0.0000166667/GB-s;
    # Step Functions $0.025 per 1,000 transitions
    datetime.fromisoformat(cost["prices"]["date"])
    by_hand_spot = (spot["vcpu_seconds"] * 0.012144 + spot["gb_seconds"] * 0.0013335) / 3600
    by_hand_on_demand = (on_demand["vcpu_seconds"] * 0.04048 + on_demand["gb_seconds"] * 0.004445) / 3600
    lam = cost["lambda"]
    by_hand_lambda = lam["invocations"] * 0.20 / 1e6 + lam["gb_seconds"] * 0.0000166667
    by_hand_transitions = cost["step_functions"]["state_transitions"] * 0.025 / 1000
    assert spot["usd"] == pytest.approx(by_hand_spot, rel=5e-3, abs=1e-9)
    assert on_demand["usd"] == pytest.approx(by_hand_on_demand, rel=5e-3, abs=1e-9)
    assert cost["total_usd"] == pytest.approx(
        by_hand_spot + by_hand_on_demand + by_hand_lambda + by_hand_transitions, rel=5e-3, abs=1e-9
    )
    all_on_demand = (
        (spot["vcpu_seconds"] + on_demand["vcpu_seconds"]) * 0.04048
        + (spot["gb_seconds"] + on_demand["gb_seconds"]) * 0.004445
    ) / 3600
    assert cost["on_demand_equivalent_usd"] == pytest.approx(
        all_on_demand + by_hand_lambda + by_hand_transitions, rel=5e-3, abs=1e-9
    )
    # a Launch and at least one Poll per item, each billed
    assert lam["invocations"] >= 2 * len(outcomes)
