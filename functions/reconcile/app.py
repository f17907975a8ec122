"""Reconcile (scheduled): write the summary of every recently closed execution that has none, and stop
the tasks still running for jobs that failed, timed out or were aborted."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws
from jobcore.config import ReconcileSettings
from jobcore.reconciling import reconcile

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@functools.cache
def settings() -> ReconcileSettings:
    return ReconcileSettings.from_env()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    report = reconcile(
        aws.s3(),
        aws.stepfunctions(),
        config.job_bucket,
        config.state_machine_arn,
        ecs=aws.ecs() if config.cluster_arn else None,
        cluster_arn=config.cluster_arn,
        lookback=timedelta(days=config.reconcile_lookback_days),
        max_executions=config.reconcile_max_executions,
    )
    metrics.add_metric(name="ExecutionsChecked", unit=MetricUnit.Count, value=report.checked)
    metrics.add_metric(name="SummariesReconciled", unit=MetricUnit.Count, value=report.written)
    metrics.add_metric(name="TasksStopped", unit=MetricUnit.Count, value=report.tasks_stopped)
    logger.info("reconciled", extra=report.as_dict())
    return report.as_dict()
