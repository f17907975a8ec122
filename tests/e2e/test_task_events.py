"""Completion by ECS task events (jobcore.completion): items resume from their task's stop event; a lost
event costs a heartbeat period and a poll, a duplicated one nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.jobs import JobRunner

ITEMS = 3
# The heartbeat period bounds how long an item waits for a lost event. Where events must win, it is
# long enough that a busy machine's slow Lambda start cannot look like a lost event.
PATIENT_HEARTBEAT = "30"
SHORT_HEARTBEAT = "2"


def _sweep(tmp_path: Path) -> Path:
    path = tmp_path / "sleepers.job.json"
    command = ["python3", "-c", "import time; time.sleep(1)"]
    path.write_text(
        json.dumps({"processor": "command", "params": {"command": command}, "source": {"count": ITEMS}})
    )
    return path


def _run(
    tmp_path: Path, heartbeat: str, **faults: float
) -> tuple[dict[str, Any], list[dict[str, Any]], int, dict[str, int]]:
    """The job's summary, its outcome records, how many versions of outcome objects were written, and
    the local EventBridge's task event counts."""
    params = {"TaskHeartbeatSeconds": heartbeat, "PollMinSeconds": "1", "PollMaxSeconds": "5"}
    options = CloudOptions(
        parameters=params, state_dir=tmp_path / "state", run_schedules=False, seed=7, **faults
    )
    with LocalCloud(options=options) as cloud:
        runner = JobRunner(cloud, progress=None)
        watch = runner.submit(_sweep(tmp_path))
        (summary,) = runner.wait([watch], timeout=180)
        s3 = cloud.client("s3")
        prefix = f"jobs/{watch.job_id}/outcomes/"
        versions = s3.list_object_versions(Bucket=cloud.stack.bucket, Prefix=prefix).get("Versions", [])
        outcomes = [
            json.loads(s3.get_object(Bucket=cloud.stack.bucket, Key=v["Key"])["Body"].read())
            for v in versions
            if v["IsLatest"]
        ]
        counts = dict(cloud.events.task_events)
    assert summary is not None, f"no summary: {watch.status} {watch.error}"
    return summary, sorted(outcomes, key=lambda o: o["index"]), len(versions), counts


def test_a_job_is_completed_by_its_tasks_stop_events_without_a_poll(tmp_path: Path) -> None:
    # GIVEN a job of three short tasks, with task events (the template's default)
    # WHEN it runs on the local cloud, whose Fargate emits ECS Task State Change events
    summary, outcomes, versions, counts = _run(tmp_path, PATIENT_HEARTBEAT)

    # THEN every item succeeded, resumed by its stop event: no DescribeTasks poll, and four state
    # transitions (ChooseCompletion, LaunchAndWait, CheckTask, ItemSucceeded) instead of poll cycles
    assert summary["status"] == "SUCCEEDED", summary
    assert summary["items"] == {"total": ITEMS, "succeeded": ITEMS, "failed": 0}
    assert [o["status"] for o in outcomes] == ["SUCCEEDED"] * ITEMS
    assert [o["polls"] for o in outcomes] == [0] * ITEMS
    assert [o["usage"]["state_transitions"] for o in outcomes] == [4] * ITEMS
    assert all(o["detection_delay_seconds"] is not None for o in outcomes)
    assert versions == ITEMS  # one outcome written per item
    assert counts["put"] >= ITEMS and counts["dropped"] == counts["duplicated"] == 0


def test_with_every_task_event_lost_the_job_completes_through_the_backstop(tmp_path: Path) -> None:
    # GIVEN the same job, and an EventBridge that loses every ECS task event
    # WHEN it runs with a short heartbeat period
    summary, outcomes, versions, counts = _run(tmp_path, SHORT_HEARTBEAT, drop_task_events=1.0)

    # THEN no event reached TaskStopped, yet every item succeeded: its wait ended with a heartbeat
    # timeout and PollTask, the backstop, found the stopped task
    assert counts["put"] >= ITEMS and counts["dropped"] == counts["put"]
    assert summary["status"] == "SUCCEEDED", summary
    assert summary["items"] == {"total": ITEMS, "succeeded": ITEMS, "failed": 0}
    assert all(o["polls"] >= 1 for o in outcomes), [o["polls"] for o in outcomes]
    assert summary["attempts"]["launched"] == ITEMS  # the backstop launched nothing twice
    assert versions == ITEMS


def test_duplicated_task_events_change_nothing(tmp_path: Path) -> None:
    # GIVEN the same job, and an EventBridge that delivers every ECS task event twice
    # WHEN it runs
    summary, outcomes, versions, counts = _run(tmp_path, PATIENT_HEARTBEAT, duplicate_task_events=1.0)

    # THEN the counts are exactly those of a run without duplicates: each item resumed once, by one
    # delivery (the other found the token closed or the event claimed), one outcome, one launch
    assert counts["duplicated"] == counts["put"] >= ITEMS
    assert summary["status"] == "SUCCEEDED", summary
    assert summary["items"] == {"total": ITEMS, "succeeded": ITEMS, "failed": 0}
    assert summary["attempts"]["launched"] == ITEMS
    assert [o["polls"] for o in outcomes] == [0] * ITEMS
    assert [o["usage"]["state_transitions"] for o in outcomes] == [4] * ITEMS
    assert [o["usage"]["lambda_invocations"] for o in outcomes] == [2] * ITEMS  # LaunchTask + TaskStopped
    assert versions == ITEMS
