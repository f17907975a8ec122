"""EvaluateJob applies ToleratedFailurePercentage to the job's outcomes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from evaluate_job import app
from jobcore import layout
from jobcore.errors import JobNotFound
from jobcore.evaluation import within_tolerance
from tests.conftest import load_event
from tests.unit.conftest import BUCKET


def make_job(s3: Any, job_id: str, total: int, succeeded: list[int], failed: list[int]) -> None:
    descriptor = {
        "job_id": job_id,
        "input": {"bucket": BUCKET, "key": "input/x.csv", "size": 1},
        "processor": "csv-profile",
        "item_count": total,
        "created_at": "2026-11-23T10:00:00.000Z",
    }
    s3.put_object(Bucket=BUCKET, Key=layout.descriptor_key(job_id), Body=json.dumps(descriptor))
    for status, indices in (("SUCCEEDED", succeeded), ("FAILED", failed)):
        for index in indices:
            s3.put_object(Bucket=BUCKET, Key=layout.outcome_key(job_id, index, status), Body=b"{}")


@pytest.mark.parametrize(
    ("tolerated", "expected"),
    [("0", False), ("24.9", False), ("25", True), ("100", True)],
)
def test_failed_items_against_the_tolerance(
    s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, tolerated: str, expected: bool
) -> None:
    # GIVEN a job of 4 items, one failed
    event = load_event("evaluate_job.json")
    make_job(s3, event["job_id"], 4, [0, 1, 3], [2])
    monkeypatch.setenv("TOLERATED_FAILURE_PERCENTAGE", tolerated)
    app.settings.cache_clear()

    # WHEN EvaluateJob runs, THEN 1 of 4 (25%) is within tolerance only from 25%
    verdict = app.lambda_handler(event, lambda_context)
    assert verdict == {
        "job_id": event["job_id"],
        "total": 4,
        "succeeded": 3,
        "failed": 1,
        "within_tolerance": expected,
    }


def test_an_item_without_a_succeeded_outcome_counts_as_failed(s3: Any, lambda_context: Any) -> None:
    # GIVEN 3 items, one of which ended without any outcome (e.g. UnknownTaskStatus)
    event = load_event("evaluate_job.json")
    make_job(s3, event["job_id"], 3, [0, 1], [])
    verdict = app.lambda_handler(event, lambda_context)
    assert verdict["failed"] == 1 and verdict["within_tolerance"] is False


def test_a_job_without_items_is_within_tolerance(s3: Any, lambda_context: Any) -> None:
    event = load_event("evaluate_job.json")
    make_job(s3, event["job_id"], 0, [], [])
    assert app.lambda_handler(event, lambda_context)["within_tolerance"] is True


def test_the_rule_is_exact_in_integers() -> None:
    assert within_tolerance(1, 3, 33.34) and not within_tolerance(1, 3, 33.33)
    assert within_tolerance(0, 0, 0)


def test_a_job_that_does_not_exist_is_never_judged_a_success(s3: Any, lambda_context: Any) -> None:
    # GIVEN an EvaluateJob request for a job id without a descriptor
    event = load_event("evaluate_job.json")

    # WHEN EvaluateJob runs, THEN it raises JobNotFound (uncaught in the ASL: the execution FAILS)
    # instead of "0 of 0 failed, within tolerance"
    with pytest.raises(JobNotFound, match="no descriptor"):
        app.lambda_handler(event, lambda_context)
