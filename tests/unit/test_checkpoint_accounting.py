"""What checkpoints saved, from the worker's result record to the summary: PollTask copies an item's
resumptions into its outcome, and the summary's `checkpoints` block adds them up, exactly, whichever
way it reads the items."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

from botocore.stub import Stubber

from jobcore import layout
from jobcore.models import ItemOutcome, Resumption, TaskStatus
from jobcore.summary import build_summary, execution_info
from poll_task import app
from tests.unit.conftest import BUCKET
from tests.unit.job_builder import item_usage, put_descriptor, put_json, put_map_run, succeeded_child
from tests.unit.test_poll_task import describe, ecs, outcome, state, stopped  # noqa: F401

ARN = "arn:aws:states:us-east-1:123456789012:execution:spotmap-job:job-1"
START = datetime(2026, 11, 23, 10, 0, 0, tzinfo=timezone.utc)
STOP = datetime(2026, 11, 23, 10, 42, 13, tzinfo=timezone.utc)


def test_poll_task_copies_the_resumptions_of_the_result_record_into_the_outcome(
    ecs: Stubber,  # noqa: F811
    s3: Any,
    state: dict[str, Any],  # noqa: F811
    lambda_context: Any,
) -> None:
    # GIVEN a task that exited 0 after resuming from a checkpoint, as its result record says
    resumption = {"resumed_attempts": 1, "saved_units": 40, "saved_seconds": 61.25}
    key = layout.result_key(state["job_id"], state["item"]["index"])
    body = {"partial": {"rows": {"$sum": 7}}, "resumption": resumption}
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(body).encode())
    describe(ecs, state, stopped(state, 0))

    # WHEN PollTask sees it stopped
    result = app.lambda_handler(state, lambda_context)

    # THEN the outcome object, and the child's output the summary reads, carry the resumptions
    assert result["status"] == "SUCCEEDED"
    assert outcome(s3, state, "SUCCEEDED")["resumption"] == resumption
    assert result["outcome"]["resumption"] == resumption


def _success(s3: Any, index: int, resumption: Resumption | None) -> ItemOutcome:
    item = ItemOutcome(
        index=index,
        status=TaskStatus.SUCCEEDED,
        attempts=1 + (resumption.resumed_attempts if resumption else 0),
        usage=item_usage(600),
        partial={"n": {"$sum": 1}},
        resumption=resumption,
    )
    put_json(s3, layout.outcome_key("job-1", index, "SUCCEEDED"), item.model_dump(mode="json"))
    put_json(s3, layout.result_key("job-1", index), {"partial": item.partial})
    return item


def test_the_summary_adds_up_resumed_attempts_and_work_saved_the_same_either_way(s3: Any) -> None:
    # GIVEN 5 items: three resumed from checkpoints (seconds that no float sum adds up exactly in every
    # order), two never did
    put_descriptor(s3, "job-1", 5, processor="slow-squares")
    resumptions = {
        0: Resumption(resumed_attempts=1, saved_units=40, saved_seconds=0.1),
        2: Resumption(resumed_attempts=2, saved_units=15.5, saved_seconds=1e16),
        3: Resumption(resumed_attempts=1, saved_units=0, saved_seconds=0.2),
    }
    outcomes = [_success(s3, index, resumptions.get(index)) for index in range(5)]
    put_map_run(
        s3, "job-1", [[succeeded_child(outcomes[i]) for i in (4, 2, 0)], [succeeded_child(outcomes[1])]]
    )
    execution = execution_info(ARN, "SUCCEEDED", START, STOP)

    # WHEN the summary is built from the Map's result files, and again object by object
    with_files = build_summary(s3, BUCKET, "job-1", execution)
    per_item = build_summary(s3, BUCKET, "job-1", execution, result_files=False)

    # THEN both count 3 items that resumed, 4 resumed attempts and the work they did not redo, exactly
    assert json.dumps(with_files, sort_keys=True) == json.dumps(per_item, sort_keys=True)
    assert with_files["checkpoints"] == {
        "items_resumed": 3,
        "resumed_attempts": 4,
        "saved_units": 55.5,
        "saved_seconds": round(float(sum(map(Fraction, (0.1, 1e16, 0.2)))), 3),
    }
