"""EvaluateJob: after the Map, decide whether the job's failed items are within tolerance.
Input `{"job_id", "bucket"}`; output `{"job_id", "total", "failed", "within_tolerance"}`."""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from jobcore import aws
from jobcore.config import EvaluateJobSettings
from jobcore.evaluation import evaluate_job

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@functools.cache
def settings() -> EvaluateJobSettings:
    return EvaluateJobSettings.from_env()


class EvaluateRequest(BaseModel):
    job_id: str
    bucket: str


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = EvaluateRequest.model_validate(event)
    logger.append_keys(job_id=request.job_id)
    verdict = evaluate_job(aws.s3(), request.bucket, request.job_id, settings().tolerated_failure_percentage)
    metrics.add_metric(name="JobsEvaluated", unit=MetricUnit.Count, value=1)
    if not verdict["within_tolerance"]:
        metrics.add_metric(name="JobsOverFailureTolerance", unit=MetricUnit.Count, value=1)
    logger.info("job evaluated", extra=verdict)
    return verdict
