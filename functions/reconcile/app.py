"""Reconcile (scheduled): write the summary of every recently closed execution that has none, and stop
the tasks still running for jobs that failed, timed out or were aborted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws
from jobcore.config import ReconcileSettings
from jobcore.observability import count, handler, logger, settings_loader
from jobcore.reconciling import reconcile

settings = settings_loader(ReconcileSettings)


@handler
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
    count("ExecutionsChecked", report.checked)
    count("SummariesReconciled", report.written)
    count("TasksStopped", report.tasks_stopped)
    logger.info("reconciled", extra=report.as_dict())
    return report.as_dict()
