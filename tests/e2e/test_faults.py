"""Faults injected in the local cloud: the pipeline loses nothing and summarises every job."""

from __future__ import annotations

import json
from pathlib import Path

from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.fargate import Faults
from spotmap.jobs import JobRunner
from tests.e2e.conftest import assert_profile_equal, profile_csv, write_csv


def _manifest(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_spot_interruptions_and_capacity_failures_change_nothing_in_the_result(
    tmp_path: Path, local_run
) -> None:
    # GIVEN a 100,000-row CSV split into 10 items
    data_file = write_csv(tmp_path / "orders.csv", rows=100_000, seed=3)
    shard_mb = round(data_file.stat().st_size / 1e6 / 10, 3)

    # WHEN it runs with Spot reclaims and Spot capacity shortages injected
    run = local_run(
        data_file,
        params={"ShardSizeMB": shard_mb, "MaxConcurrency": 4},
        extra=["--spot-interruption-rate", "0.3", "--capacity-failure-rate", "0.5", "--seed", "1"],
    )

    # THEN the job still succeeds, reports what happened, and its result is the fault-free result
    assert run.exit_code == 0, run.summaries
    (summary,) = run.summaries
    assert summary["status"] == "SUCCEEDED"
    assert summary["items"]["total"] == 10
    assert summary["items"]["failed"] == 0
    assert summary["attempts"]["spot_interruptions"] > 0
    assert summary["attempts"]["capacity_retries"] > 0
    assert (
        summary["attempts"]["launched"]
        == summary["items"]["total"] + summary["attempts"]["spot_interruptions"]
    )
    assert_profile_equal(summary["result"], profile_csv(data_file.read_bytes()))


def test_crashed_workers_fail_their_items_with_exit_code_class_and_log(tmp_path: Path, local_run) -> None:
    # GIVEN a sweep whose every worker process is killed (SIGKILL) mid-run
    manifest = _manifest(
        tmp_path / "sweep.job.json",
        {
            "processor": "command",
            "params": {"command": ["python3", "-c", "import time; time.sleep(2)"]},
            "source": {"count": 3},
        },
    )

    # WHEN it runs
    run = local_run(manifest, extra=["--crash-rate", "1", "--seed", "2"])

    # THEN every item failed with exit code 137, its class and its log file, and the job FAILED
    assert run.exit_code == 1
    (summary,) = run.summaries
    assert summary["status"] == "FAILED"
    assert summary["items"] == {"total": 3, "succeeded": 0, "failed": 3}
    assert summary["attempts"]["spot_interruptions"] == 0  # a crash is not mistaken for a Spot reclaim
    assert [failure["index"] for failure in summary["failures"]] == [0, 1, 2]
    for failure in summary["failures"]:
        assert "137" in failure["reason"] and "killed" in failure["reason"].lower()
        log_path = failure["reason"].split("log: ")[-1].strip().rstrip(")")
        assert Path(log_path).exists(), failure["reason"]


def test_failures_within_the_tolerance_let_the_job_succeed_and_are_listed(tmp_path: Path, local_run) -> None:
    # GIVEN a sweep in which items 1 and 3 exit non-zero
    manifest = _manifest(
        tmp_path / "tolerant.job.json",
        {
            "processor": "command",
            "params": {
                "command": [
                    "python3",
                    "-c",
                    "import os, sys; sys.exit(3 if os.environ['SPOTMAP_PARAM_X'] in '13' else 0)",
                ]
            },
            "source": {"items": [{"x": "0"}, {"x": "1"}, {"x": "2"}, {"x": "3"}]},
        },
    )

    # WHEN it runs with half of the items allowed to fail
    run = local_run(manifest, params={"ToleratedFailurePercentage": 50})

    # THEN the job succeeds and still lists both failures with their exit code
    assert run.exit_code == 0, run.summaries
    (summary,) = run.summaries
    assert summary["status"] == "SUCCEEDED"
    assert summary["items"] == {"total": 4, "succeeded": 2, "failed": 2}
    assert [f["index"] for f in summary["failures"]] == [1, 3]
    assert all("exit code 3" in f["reason"] or "code 3" in f["reason"] for f in summary["failures"])


def test_items_running_longer_than_the_timeout_are_stopped_and_fail_as_timed_out(
    tmp_path: Path, local_run
) -> None:
    # GIVEN a program that runs far longer than ItemTimeoutMinutes
    manifest = _manifest(
        tmp_path / "slow.job.json",
        {
            "processor": "command",
            "params": {"command": ["python3", "-c", "import time; time.sleep(120)"]},
            "source": {"count": 1},
        },
    )

    # WHEN it runs with a 3-second item timeout
    run = local_run(manifest, params={"ItemTimeoutMinutes": 0.05})

    # THEN the item is stopped and fails as timed out
    (summary,) = run.summaries
    assert summary["status"] == "FAILED"
    assert "timed out" in summary["failures"][0]["reason"]


def test_lost_status_events_are_made_good_by_the_reconciler(tmp_path: Path, local_run) -> None:
    # GIVEN every Step Functions status-change event is lost
    data_file = write_csv(tmp_path / "small.csv", rows=200)

    # WHEN a job runs
    run = local_run(data_file, extra=["--drop-status-events", "1"])

    # THEN the scheduled reconciler still writes its summary before `local run` returns
    assert run.exit_code == 0
    (summary,) = run.summaries
    assert summary["status"] == "SUCCEEDED"
    assert summary["result"]["rows"] == 200


def test_results_that_do_not_merge_fail_the_job_and_the_exit_code_follows(tmp_path: Path, local_run) -> None:
    # GIVEN a program whose item 0 declares `n` as a $sum and whose item 1 prints a plain number (each
    # valid alone: this used to give SUCCEEDED, exit 0 and result null)
    manifest = _manifest(
        tmp_path / "clash.job.json",
        {
            "processor": "command",
            "params": {"command": ["python3", "-c", "import os; print(os.environ['SPOTMAP_PARAM_PARTIAL'])"]},
            "source": {"items": [{"partial": {"n": {"$sum": 1}}}, {"partial": {"n": 5}}]},
        },
    )

    # WHEN it runs
    run = local_run(manifest)

    # THEN the summary is FAILED and names both items and the key, and `local run` exits 1
    (summary,) = run.summaries
    assert summary["status"] == "FAILED" and summary["execution_status"] == "SUCCEEDED"
    assert summary["result"] is None
    assert (
        "item 0 and item 1 do not merge: key `n`: $sum in one item and a number in another"
        in summary["error"]
    )
    assert run.exit_code == 1


def test_an_interruption_rate_of_one_reclaims_every_spot_attempt_however_short(tmp_path: Path) -> None:
    # GIVEN a local cloud whose tasks so far ran for seconds (reclaims land at a random moment of a
    # typical run), and then items whose tasks finish in milliseconds
    slow = _manifest(
        tmp_path / "slow.job.json",
        {"processor": "command", "params": {"command": ["sleep", "2"]}, "source": {"count": 2}},
    )
    quick = _manifest(tmp_path / "quick.job.json", {"processor": "noop", "source": {"count": 4}})
    options = CloudOptions(
        parameters={"PollMinSeconds": "1", "PollMaxSeconds": "2"}, state_dir=tmp_path / "state"
    )
    with LocalCloud(options=options) as cloud:
        runner = JobRunner(cloud, progress=None)
        (first,) = runner.wait([runner.submit(slow)], timeout=300)
        assert first is not None and first["status"] == "SUCCEEDED", first
        known = set(cloud.fargate.tasks)

        # WHEN the quick job runs with every Spot attempt to be interrupted
        cloud.fargate.faults = Faults(spot_interruption_rate=1.0, seed=5)
        watch = runner.submit(quick)
        (summary,) = runner.wait([watch], timeout=300)
        tasks = [task for arn, task in cloud.fargate.tasks.items() if arn not in known]

    # THEN every Spot task was reclaimed while it ran (SIGTERM, stop code SpotInterruption), whenever
    # its worker would have finished; the items still succeed (on-demand FARGATE after 2 reclaims, or
    # a reclaim that came after the result was recorded) and the summary counts every launch
    spot = [task for task in tasks if task.capacity == "FARGATE_SPOT"]
    assert spot
    assert [task.stop_code for task in spot] == ["SpotInterruption"] * len(spot)
    assert summary is not None and summary["status"] == "SUCCEEDED", summary
    assert summary["items"]["succeeded"] == 4
    assert summary["attempts"]["launched"] == len(tasks)
