"""EvaluateJob: after the Map, decide whether the job's failed items are within tolerance.
Input `{"job_id", "bucket"}`; output `{"job_id", "total", "succeeded", "failed", "within_tolerance"}`
(jobcore.evaluation.JobEvaluation)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from jobcore import aws
from jobcore.config import EvaluateJobSettings
from jobcore.evaluation import evaluate_job
from jobcore.observability import count, handler, log_job, logger, settings_loader

settings = settings_loader(EvaluateJobSettings)


class EvaluateRequest(BaseModel):
    job_id: str
    bucket: str


@handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = EvaluateRequest.model_validate(event)
    log_job(request.job_id)
    verdict = evaluate_job(aws.s3(), request.bucket, request.job_id, settings().tolerated_failure_percentage)
    count("JobsEvaluated")
    if not verdict.within_tolerance:
        count("JobsOverFailureTolerance")
    answer = verdict.model_dump()
    logger.info("job evaluated", extra=answer)
    return answer
