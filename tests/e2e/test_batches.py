"""Batches end to end on the local cloud: many items per task give exactly an unbatched run's items."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.jobs import JobRunner, JobWatch

PREFIX = "data/batch-e2e/"
BAD = 5  # the object that is not UTF-8
# Reads its object as UTF-8 (a bad one fails, naming its key), takes a moment, prints a mergeable result.
SCRIPT = (
    "import json, os, sys, time\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "key = json.loads(os.environ['SPOTMAP_ITEM'])['key']\n"
    "try:\n"
    "    text = data.decode('utf-8')\n"
    "except UnicodeDecodeError as error:\n"
    "    sys.exit(f'{key} is not UTF-8: {error}')\n"
    "time.sleep(0.5)\n"
    "print(json.dumps({'files': {'$sum': 1}, 'chars': {'$sum': len(text)}, 'weight': {'$sum': len(text) / 7},"
    " 'keys': {'$list': [key]}, 'longest': {'$max': len(text)}}))\n"
)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    params = {"MaxConcurrency": "10", "PollMinSeconds": "1", "PollMaxSeconds": "2"}
    options = CloudOptions(parameters=params, state_dir=tmp_path_factory.mktemp("state"))
    with LocalCloud(options=options) as running:
        yield running


def _manifest(tmp_path: Path, name: str, batch: Any) -> Path:
    document = {
        "processor": "command",
        "params": {"command": ["python3", "-c", SCRIPT, "{input}"]},
        "source": {"prefix": PREFIX},
        "batch": batch,
    }
    path = tmp_path / f"{name}.job.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _get_json(cloud: LocalCloud, key: str) -> Any:
    s3 = cloud.client("s3")
    try:
        return json.loads(s3.get_object(Bucket=cloud.stack.bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def _wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _finish(runner: JobRunner, watch: JobWatch) -> dict[str, Any]:
    (summary,) = runner.wait([watch], timeout=300)
    assert summary is not None, watch
    return summary


def test_a_batched_prefix_job_interrupted_mid_batch_with_a_bad_object_gives_the_unbatched_result(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    # GIVEN 8 small objects under a prefix, the 6th of which is not UTF-8
    s3 = cloud.client("s3")
    for number in range(8):
        body = b"\xff\xfe broken" if number == BAD else f"object {number} ".encode() * (number + 1)
        s3.put_object(Bucket=cloud.stack.bucket, Key=f"{PREFIX}{number:02d}.txt", Body=body)
    runner = JobRunner(cloud, progress=None)

    # WHEN the job runs once with one item per task
    unbatched = _finish(runner, runner.submit(_manifest(tmp_path, "unbatched", None)))

    # AND once with 4 items per task, its first task reclaimed by Spot after its first item is recorded
    watch = runner.submit(_manifest(tmp_path, "batched", {"max_items": 4}))
    job = watch.job_id
    assert job is not None
    first_launch = f"jobs/{job}/attempts/0/attempt-1.json"
    launch = _wait_for("the first batch's launch", lambda: _get_json(cloud, first_launch))
    _wait_for("item 0's result record", lambda: _get_json(cloud, f"jobs/{job}/results/0.json"))
    assert _get_json(cloud, f"jobs/{job}/results/batch-0.json") is None  # mid-batch: not finished
    assert cloud.fargate.interrupt(launch["task_arn"])
    batched = _finish(runner, watch)

    # THEN both runs give the same items, failures and merged result, to the last bit
    assert unbatched["items"] == batched["items"] == {"total": 8, "succeeded": 7, "failed": 1}
    assert batched["result"] == unbatched["result"]
    assert json.dumps(batched["result"]["weight"]) == json.dumps(unbatched["result"]["weight"])
    assert [failure["index"] for failure in batched["failures"]] == [BAD]
    assert [failure["index"] for failure in unbatched["failures"]] == [BAD]
    bad_key = f"{PREFIX}{BAD:02d}.txt"
    assert bad_key in batched["failures"][0]["reason"] and "not UTF-8" in batched["failures"][0]["reason"]
    assert bad_key in unbatched["failures"][0]["reason"]
    assert batched["status"] == unbatched["status"] == "FAILED"  # 1 of 8 failed, none tolerated

    # AND the batched job ran 2 tasks (3 launches: one relaunch after the interruption), the unbatched 8
    assert batched["tasks"] == {"total": 2, "launched": 3}
    assert unbatched["tasks"] == {"total": 8, "launched": 8}
    assert batched["attempts"]["spot_interruptions"] == 1

    # AND the relaunched task skipped what the reclaimed one had recorded, and ran the rest
    record = _get_json(cloud, f"jobs/{job}/results/batch-0.json")
    attempts = {entry["index"]: entry["attempt"] for entry in record["items"]}
    assert attempts[0] == 1 and attempts[3] == 2 and record["attempt"] == 2

    # AND each task (1 vCPU) is billed at least a minute: 3 launches, at least 180 vCPU-seconds, cost less
    # than the unbatched run's 8, and the summary shows what one task per item would have cost
    def vcpu_seconds(summary: dict[str, Any]) -> float:
        fargate = summary["cost"]["fargate"]
        return float(fargate["spot"]["vcpu_seconds"] + fargate["on_demand"]["vcpu_seconds"])

    assert vcpu_seconds(batched) >= 3 * 60 and vcpu_seconds(unbatched) >= 8 * 60
    assert batched["cost"]["total_usd"] < unbatched["cost"]["total_usd"]
    estimate = batched["cost"]["one_task_per_item"]
    assert estimate["tasks"] == 8 and estimate["usd"] > batched["cost"]["total_usd"]
    assert "one_task_per_item" not in unbatched["cost"]
