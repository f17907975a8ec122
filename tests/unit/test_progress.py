"""spotmap/progress.py: the progress model shared by `spotmap local run` and `spotmap status` (ETA,
the plain line and the bar) and its reader's bound on reads."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest

from spotmap.progress import Progress, ProgressDisplay, ProgressReader, bar, describe, running_items
from spotmap.status import StackNotFound, aws_target
from tests.unit.conftest import ACCOUNT, BUCKET, STATE_MACHINE_NAME

STATE_MACHINE_ARN = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{STATE_MACHINE_NAME}"


def running(**changes: Any) -> Progress:
    fields: dict[str, Any] = {
        "job_id": "job-1",
        "status": "RUNNING",
        "total": 10,
        "succeeded": 3,
        "failed": 1,
        "running": 2,
        "pending": 4,
        "spot_interruptions": 2,
        "started_at": 1000.0,
        "read_at": 1060.0,
        "mean_item_seconds": 20.0,
        "cost_usd": 0.0125,
    }
    return Progress(**{**fields, **changes})


def test_eta_is_the_remaining_items_in_parallel_rounds_of_the_mean_item_duration() -> None:
    # GIVEN 6 items left, 2 running, finished items taking 20 s on average, read 5 s ago
    progress = running()
    # WHEN the ETA is asked
    # THEN it is 3 rounds of 20 s, less the 5 s since the read; 0 once closed; unknown before any item
    assert progress.eta(now=1065.0) == 55.0
    assert running(status="SUCCEEDED").eta(now=1065.0) == 0.0
    assert running(mean_item_seconds=None).eta(now=1065.0) is None


def test_the_eta_goes_by_the_jobs_pace_when_the_tasks_run_time_is_spent_while_items_remain() -> None:
    # GIVEN a batched job whose 16 finished tasks of 100 items ran 1 s on average, yet 120 s after the
    # start 8,400 items are still running (the quickest finished first, or the pace is set elsewhere)
    progress = running(
        total=10_000,
        succeeded=1_600,
        failed=0,
        running=8_400,
        pending=0,
        started_at=1000.0,
        read_at=1120.0,
        mean_item_seconds=1.0,
        items_per_task=100.0,
    )
    # WHEN the ETA is asked 2 s after the read
    eta = progress.eta(now=1122.0)
    # THEN it is the 8,400 items left at the 1,600 items per 122 s seen so far, not 0:00
    assert eta == pytest.approx(8_400 * 122.0 / 1_600)


def test_a_batched_jobs_running_items_and_eta_are_counted_in_tasks(
    s3: Any, sfn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobcore import layout

    # GIVEN a running job of 1,000 items in 10 tasks of 100 (job.json), 2 tasks done (200 items, each
    # outcome with its task's 300 s), and 8 tasks running in its Map Run
    job_id = "batched-job"
    sfn.start_execution(stateMachineArn=STATE_MACHINE_ARN, name=job_id, input="{}")
    descriptor = {"job_id": job_id, "item_count": 1000, "task_count": 10, "batch": {"max_items": 100}}
    s3.put_object(Bucket=BUCKET, Key=layout.descriptor_key(job_id), Body=json.dumps(descriptor))
    for index in range(200):
        outcome = {"index": index, "task_seconds": 300.0, "usage": {}}
        key = layout.outcome_key(job_id, index, "succeeded")
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(outcome))
    reader = ProgressReader(s3, sfn, BUCKET, STATE_MACHINE_ARN, "us-east-1", clock=lambda: 5000.0)
    monkeypatch.setattr(reader, "_map_run_counts", lambda arn: (8, 0))  # the Map Run counts tasks

    # WHEN its progress is read
    progress = reader.read(job_id)

    # THEN the 800 items of the running tasks are running and none is pending
    assert (progress.total, progress.succeeded, progress.running, progress.pending) == (1000, 200, 800, 0)
    # AND the ETA is one round of tasks (8 tasks left, 8 at once), not 100 rounds of 300 s
    assert progress.eta(now=5000.0) == 300.0
    # AND the last tasks' items are bounded by the items left
    assert running_items(1000, 950, 3, 100.0) == 50


def test_the_plain_line_and_the_bar_show_counts_interruptions_elapsed_eta_and_cost() -> None:
    # GIVEN a running job WHEN it is described
    line = describe(running(), now=1065.0)
    # THEN one line says everything a user asks
    assert line == (
        "job-1: RUNNING, 4/10 items finished (succeeded 3, running 2, failed 1, pending 4), "
        "spot interruptions 2, elapsed 1:05, ETA 0:55, cost so far $0.012500"
    )
    # AND the bar shows succeeded, failed, running and pending cells in proportion
    assert bar(running(), width=10) == "[###x>>....]"


def test_a_pipe_gets_plain_lines_and_a_terminal_gets_frames_redrawn_in_place() -> None:
    # GIVEN the same progress shown twice on a pipe and on a terminal
    pipe, terminal = io.StringIO(), io.StringIO()
    plain = ProgressDisplay(pipe, plain_interval=3600, terminal=False)
    redrawn = ProgressDisplay(terminal, terminal=True)
    for _ in range(2):
        plain.show([running()])
        redrawn.show([running(), running(job_id="job-2")])
    # THEN the pipe gets one plain line per interval, no escape sequence
    assert pipe.getvalue().count("job-1: RUNNING") == 1 and "\x1b" not in pipe.getvalue()
    # AND the terminal's second frame moves back over the first's two lines and clears them
    first, second = terminal.getvalue().split("\x1b[2F")
    assert first.count("\x1b[2K") == 2 and second.count("\x1b[2K") == 2


def test_a_job_is_read_at_most_once_per_interval(s3: Any, sfn: Any) -> None:
    # GIVEN a reader of one job, with a clock the test moves
    now = [0.0]
    reader = ProgressReader(
        s3, sfn, BUCKET, STATE_MACHINE_ARN, "us-east-1", min_interval=3.0, clock=lambda: now[0]
    )
    # WHEN it is asked every half second for ten seconds
    answers = []
    for step in range(20):
        now[0] = step * 0.5
        answers.append(reader.read("job-1"))
    # THEN AWS was read once every 3 s (0, 3, 6, 9), and the job is not started
    assert reader.reads == 4
    assert {answer.status for answer in answers} == {"NOT_FOUND"}


def test_in_aws_the_stack_outputs_name_the_bucket_and_the_state_machine(aws: None) -> None:
    # GIVEN a deployed stack (moto's CloudFormation) whose outputs name the bucket and the state machine
    template = {
        "Resources": {"JobBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": BUCKET}}},
        "Outputs": {
            "JobBucketName": {"Value": {"Ref": "JobBucket"}},
            "JobStateMachineArn": {"Value": STATE_MACHINE_ARN},
        },
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="spotmap", TemplateBody=json.dumps(template)
    )
    # WHEN `spotmap status` resolves its target with the default credentials
    target = aws_target("spotmap", "us-east-1")
    # THEN it reads that bucket and that state machine
    assert (target.bucket, target.state_machine_arn, target.region) == (
        BUCKET,
        STATE_MACHINE_ARN,
        "us-east-1",
    )
    # AND a stack that does not exist is a clear error, not a traceback
    with pytest.raises(StackNotFound, match="stack spotmap-prod"):
        aws_target("spotmap-prod", "us-east-1")


def test_the_last_frame_is_read_afresh_whatever_the_interval(s3: Any, sfn: Any) -> None:
    # GIVEN a reader that has just read a job (its interval not yet over)
    now = [0.0]
    reader = ProgressReader(
        s3, sfn, BUCKET, STATE_MACHINE_ARN, "us-east-1", min_interval=3.0, clock=lambda: now[0]
    )
    reader.read("job-1")
    now[0] = 1.0

    # WHEN the run's last frame asks for it (its jobs have ended meanwhile)
    reader.read("job-1", fresh=True)

    # THEN it was read again, not taken from the cache
    assert reader.reads == 2
