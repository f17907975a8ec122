"""EvaluateJob's rule: the job succeeds while failed items stay within ToleratedFailurePercentage.

The Map itself tolerates every child failure (moto's interpreter ignores tolerance), so this one
rule decides the verdict on AWS and on the local cloud alike."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from jobcore.errors import JobNotFound
from jobcore.job_store import JobStore
from jobcore.models import TaskStatus


class JobEvaluation(BaseModel):
    """EvaluateJob's answer, which the state machine's Choice reads (`within_tolerance`)."""

    job_id: str
    total: int
    succeeded: int
    failed: int
    within_tolerance: bool


def within_tolerance(failed: int, total: int, tolerated_percentage: float) -> bool:
    """failed / total ≤ tolerated %, in integers so 1 of 3 at 33.3% is exact; no items → True."""
    return total == 0 or failed * 100 <= tolerated_percentage * total


def evaluate_job(s3: Any, bucket: str, job_id: str, tolerated_percentage: float) -> JobEvaluation:
    store = JobStore(s3, bucket, job_id)
    descriptor = store.read_descriptor()
    if descriptor is None:  # nothing to count: "0 of 0 failed" would call a job that never was a success
        raise JobNotFound(f"job {job_id}: no descriptor {store.where(store.descriptor_key)}")
    total = descriptor.item_count
    failed = store.count_outcomes(TaskStatus.FAILED)
    succeeded = store.count_outcomes(TaskStatus.SUCCEEDED)
    # Every child has ended when EvaluateJob runs, so an item without a succeeded outcome failed, even
    # if its failure could not be recorded (e.g. UnknownTaskStatus).
    failed = min(total, max(failed, total - succeeded)) if total else failed
    return JobEvaluation(
        job_id=job_id,
        total=total,
        succeeded=max(0, total - failed),
        failed=failed,
        within_tolerance=within_tolerance(failed, total, tolerated_percentage),
    )
